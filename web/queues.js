// Queues: the list with pause, resume and clear, and one queue's jobs in FETCH order with
// deletion of selected jobs.

import { apiGet, apiPost, ApiError, url } from './api.js';
import {
    formatArgs, formatDuration, formatNumber, h, pluralize, timeElement,
} from './dom.js';
import { renderJobDetail } from './jobview.js';
import {
    confirmAction, navigate, refreshNow, runAction, showDialog,
} from './shell.js';
import {
    emptyTableRow, pageFromQuery, pager, perPageFromQuery, selectAllHeader, selectCell,
    Selection, syncCheckboxes, syncRows,
} from './table.js';

function queuePath(name) {
    return `/queues/${encodeURIComponent(name)}`;
}

function queueAction(button, name, action) {
    const done = { pause: 'Paused', resume: 'Resumed', clear: 'Cleared' }[action];
    return runAction(button, () => apiPost(`/api/queues/${encodeURIComponent(name)}`, { action }),
        (result) => (action === 'clear'
            ? `Cleared queue ${name}: ${pluralize(result.affected, 'job')} deleted`
            : `${done} queue ${name}`));
}

async function clearQueue(button, name, size) {
    const confirmed = await confirmAction({
        title: `Clear queue ${name}?`,
        text: `This deletes ${pluralize(size, 'job')} waiting in ${name} and removes the queue. ` +
            'It cannot be undone.',
        confirmLabel: 'Clear queue',
    });
    if (!confirmed) {
        return null;
    }
    return queueAction(button, name, 'clear');
}

function pauseButton(queue, small) {
    const action = queue.paused ? 'resume' : 'pause';
    return h('button', {
        type: 'button',
        class: `button${small ? ' button-small' : ''}`,
        'aria-label': `${queue.paused ? 'Resume' : 'Pause'} queue ${queue.name}`,
        dataset: { focusKey: `pause-${queue.name}`, action },
        onclick: (event) => queueAction(event.currentTarget, queue.name, action),
    }, queue.paused ? 'Resume' : 'Pause');
}

function stateBadge(queue) {
    return queue.paused
        ? h('span', { class: 'badge badge-warn' }, 'paused')
        : h('span', { class: 'badge badge-ok' }, 'active');
}

function queueRow(queue) {
    return h('tr', null,
        h('td', null, h('a', { href: url(queuePath(queue.name)) }, queue.name)),
        h('td', { class: 'num' }, formatNumber(queue.size)),
        h('td', { class: 'num' }, formatDuration(queue.latency)),
        h('td', null, stateBadge(queue)),
        h('td', { class: 'actions' },
            pauseButton(queue, true),
            h('button', {
                type: 'button',
                class: 'button button-small button-danger',
                'aria-label': `Clear queue ${queue.name}`,
                dataset: { focusKey: `clear-${queue.name}`, action: 'clear' },
                onclick: (event) => clearQueue(event.currentTarget, queue.name, queue.size),
            }, 'Clear')));
}

export function createQueuesView() {
    let abort = new AbortController();
    let tbody;
    let countText;

    return {
        title: 'Queues',
        tab: 'queues',

        mount(container) {
            tbody = h('tbody');
            countText = h('p', { class: 'subtitle' }, '');
            container.replaceChildren(
                h('div', { class: 'page-head' },
                    h('div', null, h('h1', { tabindex: '-1' }, 'Queues'), countText)),
                h('div', { class: 'table-wrap' },
                    h('table', { id: 'queues-table' },
                        h('caption', { class: 'visually-hidden' }, 'Queues'),
                        h('thead', null, h('tr', null,
                            h('th', { scope: 'col' }, 'Queue'),
                            h('th', { scope: 'col', class: 'num' }, 'Size'),
                            h('th', { scope: 'col', class: 'num' }, 'Latency'),
                            h('th', { scope: 'col' }, 'State'),
                            h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
                        tbody)));
        },

        async refresh() {
            const data = await apiGet('/api/queues', null, abort.signal);
            const queues = data.queues || [];
            const waiting = queues.reduce((sum, q) => sum + q.size, 0);
            countText.textContent = `${pluralize(queues.length, 'queue')}, ` +
                `${pluralize(waiting, 'job')} waiting`;
            syncRows(tbody, queues, (q) => q.name, queueRow,
                () => emptyTableRow(5, 'No queues yet. A queue appears when a job is pushed to it.'));
        },

        unmount() {
            abort.abort();
            abort = new AbortController();
        },
    };
}

function queueJobRow(selection, job, position) {
    return h('tr', null,
        selectCell(selection, job.id, `Select job ${job.jid}`),
        h('td', { class: 'num' }, formatNumber(position)),
        h('td', null, h('span', { class: 'jid' }, job.jid)),
        h('td', null, job.display_type || job.jobtype),
        h('td', { class: 'args' }, formatArgs(job.args)),
        h('td', { class: 'num' }, String(job.priority ?? '')),
        h('td', null, timeElement(job.enqueued_at)),
        h('td', { class: 'actions' }, h('button', {
            type: 'button',
            class: 'button button-small',
            'aria-label': `Show job ${job.jid}`,
            dataset: { focusKey: `show-${job.id}` },
            onclick: () => showDialog(`Job ${job.jid}`, renderJobDetail(job)),
        }, 'Details')));
}

export function createQueueView(name) {
    let abort = new AbortController();
    let query = new URLSearchParams();
    let queue = null;
    let parts;
    const selection = new Selection(() => updateSelection());

    function updateSelection() {
        if (!parts) {
            return;
        }
        syncCheckboxes(parts.table, selection);
        parts.selectedText.textContent = `${formatNumber(selection.size)} selected`;
        parts.deleteSelected.disabled = selection.size === 0;
    }

    async function deleteSelected(button) {
        const ids = selection.list();
        const confirmed = await confirmAction({
            title: `Delete ${pluralize(ids.length, 'job')}?`,
            text: `The selected jobs are removed from queue ${name}. This cannot be undone.`,
            confirmLabel: 'Delete',
        });
        if (!confirmed) {
            return;
        }
        const result = await runAction(button,
            () => apiPost(`/api/queues/${encodeURIComponent(name)}`, { action: 'delete', ids }),
            (r) => `Deleted ${pluralize(r.affected, 'job')} from ${name}`);
        if (result) {
            selection.clear();
        }
    }

    function updateHead() {
        parts.status.replaceChildren(
            stateBadge(queue), ' ',
            `${pluralize(queue.size, 'job')} waiting, latency ${formatDuration(queue.latency)}`);
        const pause = pauseButton(queue, false);
        pause.id = 'queue-pause';
        const old = parts.actions.querySelector('#queue-pause');
        if (!old || old.dataset.action !== pause.dataset.action) {
            const hadFocus = old && old === document.activeElement;
            if (old) {
                old.replaceWith(pause);
            } else {
                parts.actions.prepend(pause);
            }
            if (hadFocus) {
                pause.focus();
            }
        }
    }

    function render(data) {
        queue = data.queue;
        updateHead();
        const offset = (data.page - 1) * data.per_page;
        const jobs = data.jobs || [];
        syncRows(parts.tbody, jobs.map((job, i) => ({ ...job, position: offset + i + 1 })),
            (job) => job.id, (job) => queueJobRow(selection, job, job.position),
            () => emptyTableRow(8, 'This queue is empty.'));
        parts.pager.replaceChildren(pager(queuePath(name), query,
            { page: data.page, perPage: data.per_page, total: data.total }));
        updateSelection();
        if (jobs.length === 0 && data.total > 0 && data.page > 1) {
            const params = new URLSearchParams(query);
            params.set('page', String(Math.ceil(data.total / data.per_page)));
            navigate(`${queuePath(name)}?${params}`, { replace: true });
        }
    }

    function showMissing() {
        parts.main.replaceChildren(h('p', { class: 'notice' },
            `Queue ${name} does not exist. It may have been cleared, or all its jobs were fetched. `,
            h('a', { href: url('/queues') }, 'Back to all queues')));
    }

    return {
        title: `Queue ${name}`,
        tab: 'queues',

        mount(container, ctx) {
            query = ctx.query;
            const table = h('table', { id: 'queue-jobs' });
            const tbody = h('tbody');
            const selectedText = h('span', { class: 'selection-count', 'aria-live': 'polite' }, '0 selected');
            const deleteButton = h('button', {
                type: 'button', class: 'button button-danger', id: 'delete-selected', disabled: true,
                onclick: (event) => deleteSelected(event.currentTarget),
            }, 'Delete selected');
            const clearButton = h('button', {
                type: 'button', class: 'button button-danger', id: 'queue-clear',
                onclick: async (event) => {
                    const result = await clearQueue(event.currentTarget, name, queue ? queue.size : 0);
                    if (result) {
                        navigate('/queues');
                    }
                },
            }, 'Clear queue');
            table.append(
                h('caption', { class: 'visually-hidden' }, `Jobs in queue ${name}, in fetch order`),
                h('thead', null, h('tr', null,
                    selectAllHeader(selection, table),
                    h('th', { scope: 'col', class: 'num' }, '#'),
                    h('th', { scope: 'col' }, 'JID'),
                    h('th', { scope: 'col' }, 'Job type'),
                    h('th', { scope: 'col' }, 'Arguments'),
                    h('th', { scope: 'col', class: 'num' }, 'Priority'),
                    h('th', { scope: 'col' }, 'Enqueued'),
                    h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
                tbody);
            parts = {
                table,
                tbody,
                selectedText,
                deleteSelected: deleteButton,
                status: h('p', { class: 'subtitle' }, ''),
                actions: h('div', { class: 'toolbar' }, clearButton),
                pager: h('div'),
            };
            parts.main = h('div', null,
                h('div', { class: 'toolbar', style: 'margin-bottom: 0.75rem' },
                    selectedText, deleteButton),
                h('div', { class: 'table-wrap' }, table),
                parts.pager);
            container.replaceChildren(
                h('p', null, h('a', { href: url('/queues') }, '← All queues')),
                h('div', { class: 'page-head' },
                    h('div', null, h('h1', { tabindex: '-1' }, `Queue ${name}`), parts.status),
                    parts.actions),
                parts.main);
        },

        queryChanged(ctx) {
            query = ctx.query;
            return refreshNow();
        },

        async refresh() {
            try {
                const data = await apiGet(`/api/queues/${encodeURIComponent(name)}`, {
                    page: pageFromQuery(query), per_page: perPageFromQuery(query),
                }, abort.signal);
                if (!parts.main.contains(parts.table)) {
                    // The queue exists again after it was missing: rebuild the page.
                    this.mount(document.getElementById('main'), { query });
                }
                render(data);
            } catch (err) {
                if (err instanceof ApiError && err.status === 404) {
                    showMissing();
                    return;
                }
                throw err;
            }
        },

        unmount() {
            abort.abort();
            abort = new AbortController();
        },
    };
}

