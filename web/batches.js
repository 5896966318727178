// Batches: the list of batches with their progress and callback states, and one batch's page
// with its counts, callbacks, parent, children and member jobs with where each job is now.

import { apiGet, ApiError, url } from './api.js';
import {
    formatArgs, formatNumber, h, pluralize, timeElement,
} from './dom.js';
import { renderJobDetail, stateName } from './jobview.js';
import { navigate, refreshNow, showDialog } from './shell.js';
import {
    emptyTableRow, pageFromQuery, pager, PER_PAGE_CHOICES, perPageFromQuery, syncRows,
} from './table.js';

const LIST_PATH = '/batches';
const STATUSES = [
    ['', 'All'],
    ['open', 'Open (not committed)'],
    ['pending', 'Pending'],
    ['finished', 'Finished'],
];
const SEARCH_DELAY_MS = 400;
const LIST_COLUMNS = 10;
const MEMBER_COLUMNS = 6;
const CALLBACK_NAMES = ['complete', 'success', 'death'];

// Words for the callback states of BATCH STATUS: "" not enqueued, "1" enqueued, "2" succeeded.
const CALLBACK_WORDS = { '': 'waiting', 1: 'enqueued', 2: 'succeeded' };
const CALLBACK_BADGES = { '': '', 1: ' badge-warn', 2: ' badge-ok' };

// Text of the Where column for a member whose job row is gone, by member state.
const GONE_WORDS = {
    succeeded: 'succeeded',
    ended: 'ended',
    failed: 'gone',
    pending: 'gone',
};

export function batchPath(bid) {
    return `${LIST_PATH}/${encodeURIComponent(bid)}`;
}

// Returns open (never committed), pending (committed, members or callbacks still to run) or
// finished.
function batchStatus(batch) {
    if (!batch.committed_at) {
        return 'open';
    }
    return batch.finished_at ? 'finished' : 'pending';
}

function statusBadge(batch) {
    const status = batchStatus(batch);
    const cls = { open: ' badge-warn', pending: '', finished: ' badge-ok' }[status];
    return h('span', { class: `badge${cls}`, dataset: { status } }, status);
}

// Shows a callback stage: its state as a word, or "none" when the batch declares no such
// callback (the stage then completes without a job).
function callbackBadge(batch, name) {
    const declared = batch.callbacks && batch.callbacks[name];
    if (!declared) {
        return h('span', { class: 'muted', dataset: { callback: name, state: 'none' } }, 'none');
    }
    const st = batch[`${name}_st`] ?? '';
    return h('span', { class: `badge${CALLBACK_BADGES[st] ?? ''}`, dataset: { callback: name, state: st } },
        CALLBACK_WORDS[st] ?? String(st));
}

// A bar of the members that ran to their end (succeeded or ended) against the total.
function progressBar(batch) {
    const done = batch.total - batch.pending;
    const percent = batch.total > 0 ? Math.min(100, (100 * done) / batch.total) : 0;
    return h('div', { class: 'slots batch-progress' },
        h('div', {
            class: `slot-bar${batch.total > 0 && done >= batch.total ? ' done' : ''}`,
            role: 'meter',
            'aria-label': `Progress of batch ${batch.bid}`,
            'aria-valuemin': '0',
            'aria-valuemax': String(batch.total),
            'aria-valuenow': String(done),
            'aria-valuetext': `${formatNumber(done)} of ${formatNumber(batch.total)} jobs done`,
        }, h('div', { class: 'slot-bar-fill', style: `width: ${percent}%` })),
        h('span', { class: 'slot-count' }, `${formatNumber(done)} / ${formatNumber(batch.total)}`));
}

function description(batch) {
    return batch.description ? batch.description : h('span', { class: 'muted' }, '–');
}

function batchRow(batch) {
    return h('tr', null,
        h('td', null, h('a', {
            href: url(batchPath(batch.bid)), class: 'jid', dataset: { focusKey: `open-${batch.bid}` },
        }, batch.bid)),
        h('td', { class: 'batch-description' }, description(batch)),
        h('td', null, statusBadge(batch)),
        h('td', null, timeElement(batch.created_at)),
        h('td', { class: 'num' }, formatNumber(batch.total)),
        h('td', { class: 'num' }, formatNumber(batch.pending)),
        h('td', { class: `num${batch.failed > 0 ? ' warn-text' : ''}` }, formatNumber(batch.failed)),
        h('td', null, callbackBadge(batch, 'complete')),
        h('td', null, callbackBadge(batch, 'success')),
        h('td', { class: 'usage' }, progressBar(batch)));
}

function batchTable(id, caption, tbody) {
    const headers = [['Batch'], ['Description'], ['Status'], ['Created'], ['Total', 'num'],
        ['Pending', 'num'], ['Failed', 'num'], ['Complete'], ['Success'], ['Progress']];
    return h('div', { class: 'table-wrap' },
        h('table', { id, class: 'batches-table' },
            h('caption', { class: 'visually-hidden' }, caption),
            h('thead', null, h('tr', null, headers.map(([text, cls]) =>
                h('th', { scope: 'col', class: cls }, text)))),
            tbody));
}

function filterField(id, label, control) {
    return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

// The page /batches: every batch, newest first, filtered by status and text.
export function createBatchesView() {
    let abort = new AbortController();
    let query = new URLSearchParams();
    let parts = null;
    let searchTimer = null;

    function filtersFromQuery() {
        const filters = {};
        const status = query.get('status');
        if (STATUSES.some(([value]) => value && value === status)) {
            filters.status = status;
        }
        if (query.get('q')) {
            filters.q = query.get('q');
        }
        return filters;
    }

    function applyFilters() {
        clearTimeout(searchTimer);
        const params = new URLSearchParams();
        if (parts.status.value) {
            params.set('status', parts.status.value);
        }
        const text = parts.search.value.trim();
        if (text) {
            params.set('q', text);
        }
        if (parts.perPage.value !== '25') {
            params.set('per_page', parts.perPage.value);
        }
        const current = new URLSearchParams(query);
        current.delete('page');
        if (params.toString() === current.toString()) {
            return;
        }
        const next = params.toString();
        navigate(next ? `${LIST_PATH}?${next}` : LIST_PATH, { replace: true });
    }

    function syncControls() {
        const filters = filtersFromQuery();
        parts.status.value = filters.status || '';
        if (document.activeElement !== parts.search) {
            parts.search.value = filters.q || '';
        }
        parts.perPage.value = String(perPageFromQuery(query));
        parts.clearFilters.hidden = Object.keys(filters).length === 0;
    }

    function buildFilters() {
        parts.status = h('select', { id: 'filter-status', onchange: applyFilters },
            STATUSES.map(([value, label]) => h('option', { value }, label)));
        parts.search = h('input', {
            type: 'search', id: 'filter-q', placeholder: 'Batch ID or description', autocomplete: 'off',
            oninput: () => {
                clearTimeout(searchTimer);
                searchTimer = setTimeout(applyFilters, SEARCH_DELAY_MS);
            },
        });
        parts.perPage = h('select', { id: 'filter-per-page', onchange: applyFilters },
            PER_PAGE_CHOICES.map((n) => h('option', { value: String(n) }, String(n))));
        parts.clearFilters = h('button', {
            type: 'button', class: 'button', id: 'clear-filters', hidden: true,
            onclick: () => {
                parts.status.value = '';
                parts.search.value = '';
                applyFilters();
            },
        }, 'Clear filters');
        return h('form', {
            class: 'filters', role: 'search', 'aria-label': 'Filter batches',
            onsubmit: (event) => {
                event.preventDefault();
                applyFilters();
            },
        },
        filterField('filter-status', 'Status', parts.status),
        h('div', { class: 'field field-grow' }, h('label', { for: 'filter-q' }, 'Search'), parts.search),
        filterField('filter-per-page', 'Per page', parts.perPage),
        h('button', { type: 'submit', class: 'button button-primary' }, 'Search'),
        parts.clearFilters);
    }

    function render(data) {
        const filtered = Object.keys(filtersFromQuery()).length > 0;
        syncControls();
        parts.count.textContent = filtered
            ? `${pluralize(data.total, 'batch', 'batches')} match the filters`
            : pluralize(data.total, 'batch', 'batches');
        syncRows(parts.tbody, data.batches || [], (batch) => batch.bid, batchRow,
            () => emptyTableRow(LIST_COLUMNS, filtered ? 'No batches match the filters.'
                : 'No batches. A client creates one with BATCH NEW.'));
        parts.pager.replaceChildren(data.total > 0
            ? pager(LIST_PATH, query, { page: data.page, perPage: data.per_page, total: data.total })
            : '');
        if ((data.batches || []).length === 0 && data.total > 0 && data.page > 1) {
            const params = new URLSearchParams(query);
            params.set('page', String(Math.ceil(data.total / data.per_page)));
            navigate(`${LIST_PATH}?${params}`, { replace: true });
        }
    }

    return {
        title: 'Batches',
        tab: 'batches',

        mount(container, ctx) {
            query = ctx.query;
            parts = { count: h('p', { class: 'subtitle' }, ''), tbody: h('tbody'), pager: h('div') };
            container.replaceChildren(
                h('div', { class: 'page-head' },
                    h('div', null, h('h1', { tabindex: '-1' }, 'Batches'), parts.count)),
                buildFilters(),
                batchTable('batches-table', 'Batches, newest first', parts.tbody),
                parts.pager);
            syncControls();
        },

        queryChanged(ctx) {
            query = ctx.query;
            syncControls();
            return refreshNow();
        },

        async refresh() {
            const params = {
                page: pageFromQuery(query), per_page: perPageFromQuery(query), ...filtersFromQuery(),
            };
            render(await apiGet('/api/batches', params, abort.signal));
        },

        unmount() {
            clearTimeout(searchTimer);
            abort.abort();
            abort = new AbortController();
        },
    };
}

// Returns the link to where an existing job is: its set's job page, its queue, or the Busy
// page. The queue and Busy pages have no page per job, so the Details button covers those.
function jobLocation(job) {
    const text = stateName(job.state);
    switch (job.state) {
    case 'retry':
        return h('a', { href: url(`/retries/${job.id}`) }, text);
    case 'scheduled':
        return h('a', { href: url(`/scheduled/${job.id}`) }, text);
    case 'dead':
        return h('a', { href: url(`/morgue/${job.id}`) }, text);
    case 'working':
        return h('a', { href: url('/busy') }, text);
    default:
        return [h('a', { href: url(`/queues/${encodeURIComponent(job.queue)}`) }, text),
            h('span', { class: 'muted' }, ` in ${job.queue}`)];
    }
}

function detailsButton(job, focusKey) {
    return h('button', {
        type: 'button',
        class: 'button button-small',
        'aria-label': `Show job ${job.jid}`,
        dataset: { focusKey },
        onclick: () => showDialog(`Job ${job.jid}`, renderJobDetail(job)),
    }, 'Details');
}

const MEMBER_BADGES = { pending: '', failed: ' badge-warn', ended: ' badge-danger', succeeded: ' badge-ok' };

function memberRow(member) {
    const job = member.job;
    const where = job
        ? h('td', { class: 'where', dataset: { where: job.state } }, jobLocation(job))
        : h('td', { class: 'where muted', dataset: { where: GONE_WORDS[member.member_state] } },
            GONE_WORDS[member.member_state] || 'gone');
    return h('tr', null,
        h('td', null, h('span', { class: 'jid' }, member.jid)),
        h('td', null, job ? job.display_type || job.jobtype : h('span', { class: 'muted' }, '–')),
        h('td', null, h('span', { class: `badge${MEMBER_BADGES[member.member_state] ?? ''}` }, member.member_state),
            member.failed && member.member_state !== 'failed'
                ? h('span', { class: 'badge badge-warn' }, 'failed before') : null),
        where,
        h('td', { class: 'args' }, job ? formatArgs(job.args, 200) : ''),
        h('td', { class: 'actions' }, job ? detailsButton(job, `show-${member.jid}`) : null));
}

function callbackRow(batch, name) {
    const callback = batch.callbacks[name];
    const current = callback.current;
    let where;
    if (current) {
        where = [jobLocation(current), ' ', detailsButton(current, `show-callback-${name}`)];
    } else {
        where = h('span', { class: 'muted' }, { '': 'not enqueued yet', 1: 'gone', 2: 'succeeded' }[callback.state] ?? '–');
    }
    return h('tr', { dataset: { callback: name } },
        h('th', { scope: 'row' }, name),
        h('td', null, callbackBadge(batch, name)),
        h('td', null, callback.job?.jobtype ?? '–', ' ',
            h('span', { class: 'jid muted' }, callback.jid || '')),
        h('td', { class: 'where' }, where));
}

function stat(label, value, key) {
    return h('div', { class: 'stat' }, h('dt', null, label), h('dd', { dataset: { stat: key } }, value));
}

function summaryPanel(batch) {
    const stats = [
        stat('Total', formatNumber(batch.total), 'total'),
        stat('Pending', formatNumber(batch.pending), 'pending'),
        stat('Succeeded', formatNumber(batch.succeeded), 'succeeded'),
        stat('Failed', formatNumber(batch.failed), 'failed'),
        stat('Ended', formatNumber(batch.ended), 'ended'),
        stat('Child batches', formatNumber(batch.children), 'children'),
    ];
    const row = (label, ...value) => [h('dt', null, label), h('dd', null, ...value)];
    return h('section', { class: 'panel', 'aria-labelledby': 'batch-summary-title' },
        h('div', { class: 'chart-head' }, h('h2', { id: 'batch-summary-title' }, 'Progress'), progressBar(batch)),
        h('dl', { class: 'stat-grid', style: 'margin: 0 0 1rem' }, stats),
        h('dl', { class: 'detail' },
            row('Status', statusBadge(batch)),
            row('Description', description(batch)),
            row('Parent batch', batch.parent_bid
                ? h('a', { href: url(batchPath(batch.parent_bid)), class: 'jid', id: 'batch-parent' }, batch.parent_bid)
                : h('span', { class: 'muted' }, 'none')),
            row('Created', timeElement(batch.created_at)),
            row('Committed', batch.committed_at ? timeElement(batch.committed_at) : 'not yet'),
            row('Finished', batch.finished_at ? timeElement(batch.finished_at) : 'not yet'),
            row('Updated', timeElement(batch.updated_at))));
}

function callbacksPanel(batch) {
    const names = CALLBACK_NAMES.filter((name) => batch.callbacks && batch.callbacks[name]);
    const body = names.length === 0
        ? h('p', { class: 'muted' }, 'This batch has no callbacks.')
        : h('div', { class: 'table-wrap' }, h('table', { id: 'batch-callbacks' },
            h('caption', { class: 'visually-hidden' }, 'Callbacks'),
            h('thead', null, h('tr', null, ['Callback', 'State', 'Job', 'Where'].map((text) =>
                h('th', { scope: 'col' }, text)))),
            h('tbody', null, names.map((name) => callbackRow(batch, name)))));
    return h('section', { class: 'panel', 'aria-labelledby': 'batch-callbacks-title' },
        h('h2', { id: 'batch-callbacks-title' }, 'Callbacks'), body);
}

// The page /batches/<bid>.
export function createBatchView(bid) {
    let abort = new AbortController();
    let query = new URLSearchParams();
    let parts = null;
    let signature = null;

    function renderSummary(data) {
        const next = JSON.stringify(data.batch);
        if (next === signature) {
            return;
        }
        signature = next;
        parts.subtitle.textContent = data.batch.description || '';
        parts.summary.replaceChildren(summaryPanel(data.batch), callbacksPanel(data.batch));
    }

    function render(data) {
        parts.missing.hidden = true;
        parts.main.hidden = false;
        renderSummary(data);
        syncRows(parts.childrenBody, data.children || [], (batch) => batch.bid, batchRow,
            () => emptyTableRow(LIST_COLUMNS, 'No child batches.'));
        parts.childrenNote.textContent = data.batch.children > (data.children || []).length
            ? `Showing the ${formatNumber(data.children.length)} newest of ${formatNumber(data.batch.children)} child batches.`
            : '';
        parts.jobsCount.textContent = pluralize(data.total, 'job');
        syncRows(parts.jobsBody, data.jobs || [], (member) => member.jid, memberRow,
            () => emptyTableRow(MEMBER_COLUMNS, 'No jobs have joined this batch yet.'));
        parts.pager.replaceChildren(data.total > 0
            ? pager(batchPath(bid), query, { page: data.page, perPage: data.per_page, total: data.total })
            : '');
        if ((data.jobs || []).length === 0 && data.total > 0 && data.page > 1) {
            const params = new URLSearchParams(query);
            params.set('page', String(Math.ceil(data.total / data.per_page)));
            navigate(`${batchPath(bid)}?${params}`, { replace: true });
        }
    }

    function showMissing() {
        signature = null;
        parts.main.hidden = true;
        parts.subtitle.textContent = '';
        parts.missing.hidden = false;
        parts.missing.replaceChildren(
            `Batch ${bid} does not exist. It was never created, expired before it was committed, ` +
            'or finished long enough ago to be removed. ',
            h('a', { href: url(LIST_PATH) }, 'Back to all batches'));
    }

    function membersSection() {
        return h('section', { 'aria-labelledby': 'batch-jobs-title' },
            h('div', { class: 'chart-head' },
                h('h2', { id: 'batch-jobs-title' }, 'Jobs'),
                parts.jobsCount),
            h('div', { class: 'table-wrap' }, h('table', { id: 'batch-jobs' },
                h('caption', { class: 'visually-hidden' }, 'Member jobs of the batch, by JID'),
                h('thead', null, h('tr', null,
                    h('th', { scope: 'col' }, 'JID'),
                    h('th', { scope: 'col' }, 'Job type'),
                    h('th', { scope: 'col' }, 'Member state'),
                    h('th', { scope: 'col' }, 'Where'),
                    h('th', { scope: 'col' }, 'Arguments'),
                    h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
                parts.jobsBody)),
            parts.pager);
    }

    return {
        title: `Batch ${bid}`,
        tab: 'batches',

        mount(container, ctx) {
            query = ctx.query;
            parts = {
                subtitle: h('p', { class: 'subtitle' }, ''),
                summary: h('div'),
                childrenBody: h('tbody'),
                childrenNote: h('p', { class: 'muted' }, ''),
                jobsBody: h('tbody'),
                jobsCount: h('span', { class: 'muted' }, ''),
                pager: h('div'),
                missing: h('p', { class: 'notice', id: 'batch-missing', hidden: true }),
            };
            parts.main = h('div', null,
                parts.summary,
                h('section', { 'aria-labelledby': 'batch-children-title', style: 'margin-bottom: 1rem' },
                    h('h2', { id: 'batch-children-title' }, 'Child batches'),
                    batchTable('batch-children', 'Child batches, newest first', parts.childrenBody),
                    parts.childrenNote),
                membersSection());
            container.replaceChildren(
                h('p', null, h('a', { href: url(LIST_PATH) }, '← All batches')),
                h('div', { class: 'page-head' },
                    h('div', null, h('h1', { tabindex: '-1', class: 'batch-title' }, `Batch ${bid}`),
                        parts.subtitle)),
                parts.missing,
                parts.main);
        },

        queryChanged(ctx) {
            query = ctx.query;
            return refreshNow();
        },

        async refresh() {
            try {
                render(await apiGet(`/api/batches/${encodeURIComponent(bid)}`, {
                    page: pageFromQuery(query), per_page: perPageFromQuery(query),
                }, abort.signal));
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
