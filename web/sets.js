// Retries, Scheduled and Dead: filtered, paged job lists with actions on selected jobs and
// on every matching job, and the job detail page of each set.

import { apiGet, apiPost, ApiError, url } from './api.js';
import {
    errorSummary, formatArgs, formatNumber, h, pluralize, timeElement, truncate,
} from './dom.js';
import { renderJobDetail, stateName } from './jobview.js';
import {
    confirmAction, navigate, notify, refreshNow, runAction,
} from './shell.js';
import {
    emptyTableRow, pageFromQuery, pager, PER_PAGE_CHOICES, perPageFromQuery, selectAllHeader,
    selectCell, Selection, syncCheckboxes, syncRows,
} from './table.js';

// The three sorted sets. `api` is the name in /api/sets/<set>, `path` the page path,
// `state` the job state of its members.
export const SETS = {
    retries: {
        api: 'retries', path: '/retries', state: 'retry', tab: 'retries',
        title: 'Retries', whenLabel: 'Next retry', retryLabel: 'Retry now',
        actions: ['retry', 'delete', 'kill'], showRetries: true, showError: true,
        empty: 'No jobs are waiting for a retry.',
    },
    scheduled: {
        api: 'scheduled', path: '/scheduled', state: 'scheduled', tab: 'scheduled',
        title: 'Scheduled jobs', whenLabel: 'Scheduled for', retryLabel: 'Enqueue now',
        actions: ['retry', 'delete', 'kill'], showRetries: false, showError: false,
        empty: 'No jobs are scheduled.',
    },
    dead: {
        api: 'dead', path: '/morgue', state: 'dead', tab: 'dead',
        title: 'Dead jobs', whenLabel: 'Died', retryLabel: 'Retry now',
        actions: ['retry', 'delete'], showRetries: true, showError: true,
        empty: 'No dead jobs.',
    },
};

const FILTER_KEYS = ['jobtype', 'queue', 'errtype', 'q'];
const SEARCH_DELAY_MS = 400;

function actionLabel(set, action) {
    return { retry: set.retryLabel, delete: 'Delete', kill: 'Kill' }[action];
}

function describeResult(set, action, affected) {
    const jobs = pluralize(affected, 'job');
    switch (action) {
    case 'retry':
        return set.api === 'scheduled' ? `Enqueued ${jobs}` : `Retried ${jobs}: moved to their queues`;
    case 'kill':
        return `Killed ${jobs}: moved to the dead set`;
    default:
        return `Deleted ${jobs}`;
    }
}

function filtersFromQuery(query) {
    const filters = {};
    for (const key of FILTER_KEYS) {
        const value = query.get(key);
        if (value) {
            filters[key] = value;
        }
    }
    return filters;
}

// Keeps a filter menu's options equal to ['' (all), ...values], plus the current value when
// the set no longer contains it. Rebuilding only on change keeps an open menu open.
function updateSelect(select, values, current) {
    const expected = ['', ...values];
    if (current && !expected.includes(current)) {
        expected.push(current);
    }
    const present = [...select.options].map((option) => option.value);
    if (present.length !== expected.length || present.some((v, i) => v !== expected[i])) {
        select.replaceChildren(...expected.map((value) =>
            h('option', { value }, value === '' ? 'All' : value)));
    }
    if (select.value !== (current || '')) {
        select.value = current || '';
    }
}

function filterField(id, label, control) {
    return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

function jobRow(set, selection, job) {
    const detail = url(`${set.path}/${job.id}`);
    return h('tr', null,
        selectCell(selection, job.id, `Select job ${job.display_type || job.jobtype} ${job.jid}`),
        h('td', null, timeElement(job.at)),
        h('td', null, h('a', { href: detail, dataset: { focusKey: `open-${job.id}` } },
            job.display_type || job.jobtype)),
        h('td', null, h('a', { href: url(`/queues/${encodeURIComponent(job.queue)}`) }, job.queue)),
        h('td', { class: 'args' }, formatArgs(job.args, 300)),
        set.showRetries ? h('td', { class: 'num' }, formatNumber(job.failure?.retry_count)) : null,
        set.showError ? h('td', { class: 'error-text' }, truncate(errorSummary(job.failure), 200)) : null);
}

export function createSetView(setName) {
    const set = SETS[setName];
    const selection = new Selection(() => updateSelection());
    let abort = new AbortController();
    let query = new URLSearchParams();
    let last = null;
    let parts = null;
    let searchTimer = null;

    function updateSelection() {
        if (!parts) {
            return;
        }
        syncCheckboxes(parts.table, selection);
        parts.selectedText.textContent = `${formatNumber(selection.size)} selected`;
        for (const button of parts.selectedButtons) {
            button.disabled = selection.size === 0;
        }
    }

    function applyFilters() {
        clearTimeout(searchTimer);
        const params = new URLSearchParams();
        const values = {
            jobtype: parts.jobtype.value, queue: parts.queue.value, errtype: parts.errtype.value,
            q: parts.search.value.trim(),
        };
        for (const [key, value] of Object.entries(values)) {
            if (value) {
                params.set(key, value);
            }
        }
        if (parts.perPage.value !== '25') {
            params.set('per_page', parts.perPage.value);
        }
        if (params.toString() === queryWithoutPage().toString()) {
            return;
        }
        selection.clear();
        const text = params.toString();
        navigate(text ? `${set.path}?${text}` : set.path, { replace: true });
    }

    function queryWithoutPage() {
        const params = new URLSearchParams(query);
        params.delete('page');
        return params;
    }

    function syncControls() {
        const filters = filtersFromQuery(query);
        if (document.activeElement !== parts.search) {
            parts.search.value = filters.q || '';
        }
        parts.perPage.value = String(perPageFromQuery(query));
        parts.clearFilters.hidden = Object.keys(filters).length === 0;
    }

    async function actOnSelected(button, action) {
        const ids = selection.list();
        if (ids.length === 0) {
            return;
        }
        if (action !== 'retry') {
            const confirmed = await confirmAction({
                title: `${actionLabel(set, action)} ${pluralize(ids.length, 'job')}?`,
                text: action === 'kill'
                    ? 'The selected jobs move to the dead set and are not retried again.'
                    : 'The selected jobs are deleted. This cannot be undone.',
                confirmLabel: actionLabel(set, action),
            });
            if (!confirmed) {
                return;
            }
        }
        const result = await runAction(button,
            () => apiPost(`/api/sets/${set.api}`, { action, ids }),
            (r) => describeResult(set, action, r.affected));
        if (result) {
            selection.clear();
        }
    }

    async function actOnAll(button, action) {
        const filters = filtersFromQuery(query);
        const filtered = Object.keys(filters).length > 0;
        const total = last ? last.total : 0;
        const scope = filtered
            ? `all ${pluralize(total, 'job')} in ${set.title} that match the filters`
            : `all ${pluralize(total, 'job')} in ${set.title}`;
        const effect = { retry: 'move to their queues', delete: 'are deleted', kill: 'move to the dead set' };
        const confirmed = await confirmAction({
            title: `${actionLabel(set, action)}: ${scope}?`,
            text: `Every matching job, including those on other pages, will be affected: they ${effect[action]}.` +
                (action === 'delete' ? ' This cannot be undone.' : ''),
            confirmLabel: `${actionLabel(set, action)} all`,
            danger: action !== 'retry',
        });
        if (!confirmed) {
            return;
        }
        const result = await runAction(button,
            () => apiPost(`/api/sets/${set.api}`, { action, all: true, ...filters }),
            (r) => describeResult(set, action, r.affected));
        if (result) {
            selection.clear();
        }
    }

    function buildFilters() {
        parts.jobtype = h('select', { id: 'filter-jobtype', onchange: applyFilters });
        parts.queue = h('select', { id: 'filter-queue', onchange: applyFilters });
        parts.errtype = h('select', { id: 'filter-errtype', onchange: applyFilters });
        parts.errtypeField = filterField('filter-errtype', 'Error class', parts.errtype);
        parts.perPage = h('select', { id: 'filter-per-page', onchange: applyFilters },
            PER_PAGE_CHOICES.map((n) => h('option', { value: String(n) }, String(n))));
        parts.search = h('input', {
            type: 'search', id: 'filter-q', placeholder: 'Text in the job JSON', autocomplete: 'off',
            oninput: () => {
                clearTimeout(searchTimer);
                searchTimer = setTimeout(applyFilters, SEARCH_DELAY_MS);
            },
        });
        parts.clearFilters = h('button', {
            type: 'button', class: 'button', id: 'clear-filters', hidden: true,
            onclick: () => {
                parts.jobtype.value = '';
                parts.queue.value = '';
                parts.errtype.value = '';
                parts.search.value = '';
                applyFilters();
            },
        }, 'Clear filters');
        return h('form', {
            class: 'filters', role: 'search', 'aria-label': `Filter ${set.title}`,
            onsubmit: (event) => {
                event.preventDefault();
                applyFilters();
            },
        },
        filterField('filter-jobtype', 'Job type', parts.jobtype),
        filterField('filter-queue', 'Queue', parts.queue),
        parts.errtypeField,
        h('div', { class: 'field field-grow' }, h('label', { for: 'filter-q' }, 'Search'), parts.search),
        filterField('filter-per-page', 'Per page', parts.perPage),
        h('button', { type: 'submit', class: 'button button-primary' }, 'Search'),
        parts.clearFilters);
    }

    function buildToolbar() {
        parts.selectedText = h('span', { class: 'selection-count', 'aria-live': 'polite' }, '0 selected');
        parts.selectedButtons = set.actions.map((action) => h('button', {
            type: 'button',
            class: `button${action === 'retry' ? ' button-primary' : ' button-danger'}`,
            id: `selected-${action}`,
            disabled: true,
            onclick: (event) => actOnSelected(event.currentTarget, action),
        }, actionLabel(set, action)));
        const allButtons = set.actions.map((action) => h('button', {
            type: 'button',
            class: `button${action === 'retry' ? '' : ' button-danger'}`,
            id: `all-${action}`,
            onclick: (event) => actOnAll(event.currentTarget, action),
        }, `${action === 'retry' && set.api === 'scheduled' ? 'Enqueue' : actionLabel(set, action).replace(' now', '')} all`));
        parts.allButtons = allButtons;
        return h('div', { class: 'toolbar', style: 'margin-bottom: 0.75rem' },
            h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Actions on the selected jobs' },
                parts.selectedText, parts.selectedButtons),
            h('span', { class: 'spacer' }),
            h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Actions on every matching job' },
                allButtons));
    }

    function buildTable() {
        parts.table = h('table', { id: 'jobs-table' });
        parts.tbody = h('tbody');
        parts.table.append(
            h('caption', { class: 'visually-hidden' }, set.title),
            h('thead', null, h('tr', null,
                selectAllHeader(selection, parts.table),
                h('th', { scope: 'col' }, set.whenLabel),
                h('th', { scope: 'col' }, 'Job type'),
                h('th', { scope: 'col' }, 'Queue'),
                h('th', { scope: 'col' }, 'Arguments'),
                set.showRetries ? h('th', { scope: 'col', class: 'num' }, 'Retries') : null,
                set.showError ? h('th', { scope: 'col' }, 'Error') : null)),
            parts.tbody);
        return h('div', { class: 'table-wrap' }, parts.table);
    }

    function columnCount() {
        return 5 + (set.showRetries ? 1 : 0) + (set.showError ? 1 : 0);
    }

    function render(data) {
        last = data;
        const filters = filtersFromQuery(query);
        updateSelect(parts.jobtype, data.jobtypes || [], filters.jobtype);
        updateSelect(parts.queue, data.queues || [], filters.queue);
        updateSelect(parts.errtype, data.errtypes || [], filters.errtype);
        // Scheduled jobs rarely carry a failure, so an empty error menu is hidden.
        parts.errtypeField.hidden = (data.errtypes || []).length === 0 && !filters.errtype;
        syncControls();
        const filtered = Object.keys(filters).length > 0;
        parts.count.textContent = filtered
            ? `${pluralize(data.total, 'job')} match the filters`
            : pluralize(data.total, 'job');
        for (const button of parts.allButtons) {
            button.disabled = data.total === 0;
        }
        syncRows(parts.tbody, data.jobs || [], (job) => job.id,
            (job) => jobRow(set, selection, job),
            () => emptyTableRow(columnCount(), filtered ? 'No jobs match the filters.' : set.empty));
        parts.pager.replaceChildren(pager(set.path, query,
            { page: data.page, perPage: data.per_page, total: data.total }));
        updateSelection();
        if ((data.jobs || []).length === 0 && data.total > 0 && data.page > 1) {
            const params = new URLSearchParams(query);
            params.set('page', String(Math.ceil(data.total / data.per_page)));
            navigate(`${set.path}?${params}`, { replace: true });
        }
    }

    return {
        title: set.title,
        tab: set.tab,

        mount(container, ctx) {
            query = ctx.query;
            parts = { count: h('p', { class: 'subtitle' }, ''), pager: h('div') };
            container.replaceChildren(
                h('div', { class: 'page-head' },
                    h('div', null, h('h1', { tabindex: '-1' }, set.title), parts.count)),
                buildFilters(),
                buildToolbar(),
                buildTable(),
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
                page: pageFromQuery(query), per_page: perPageFromQuery(query), ...filtersFromQuery(query),
            };
            render(await apiGet(`/api/sets/${set.api}`, params, abort.signal));
        },

        unmount() {
            clearTimeout(searchTimer);
            abort.abort();
            abort = new AbortController();
        },
    };
}

// The detail page of one job of a set: /retries/<id>, /scheduled/<id>, /morgue/<id>.
export function createJobView(setName, id) {
    const set = SETS[setName];
    const state = { rawOpen: false };
    let abort = new AbortController();
    let body;
    let signature = null;

    async function act(button, action) {
        if (action !== 'retry') {
            const confirmed = await confirmAction({
                title: `${actionLabel(set, action)} this job?`,
                text: action === 'kill' ? 'The job moves to the dead set and is not retried again.'
                    : 'The job is deleted. This cannot be undone.',
                confirmLabel: actionLabel(set, action),
            });
            if (!confirmed) {
                return;
            }
        }
        const result = await runAction(button,
            () => apiPost(`/api/sets/${set.api}`, { action, ids: [id] }), null);
        if (!result) {
            return;
        }
        if (result.affected === 0) {
            notify(`The job is no longer in ${set.title}, so nothing was changed.`, 'error', 'action');
            return;
        }
        notify(describeResult(set, action, result.affected), 'success', 'action');
        navigate(set.path);
    }

    function actionsFor(job) {
        if (job.state !== set.state) {
            return h('p', { class: 'notice job-actions' },
                `This job is no longer in ${set.title}: it is now ${stateName(job.state).toLowerCase()}.`);
        }
        return h('div', { class: 'toolbar job-actions', role: 'group', 'aria-label': 'Job actions' },
            set.actions.map((action) => h('button', {
                type: 'button',
                class: `button${action === 'retry' ? ' button-primary' : ' button-danger'}`,
                id: `job-${action}`,
                dataset: { focusKey: `job-${action}` },
                onclick: (event) => act(event.currentTarget, action),
            }, actionLabel(set, action))));
    }

    function render(job) {
        const next = JSON.stringify(job);
        if (next === signature) {
            return;
        }
        signature = next;
        const focusKey = body.contains(document.activeElement)
            ? document.activeElement.dataset.focusKey : undefined;
        body.replaceChildren(actionsFor(job), renderJobDetail(job, state));
        if (focusKey) {
            body.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
        }
    }

    return {
        title: `${set.title}: job ${id}`,
        tab: set.tab,

        mount(container) {
            body = h('div');
            container.replaceChildren(
                h('p', null, h('a', { href: url(set.path) }, `← ${set.title}`)),
                h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, `Job ${id}`)),
                body);
        },

        async refresh() {
            try {
                const data = await apiGet(`/api/jobs/${id}`, null, abort.signal);
                document.querySelector('main h1').textContent =
                    `${data.job.display_type || data.job.jobtype} ${data.job.jid}`;
                render(data.job);
            } catch (err) {
                if (err instanceof ApiError && err.status === 404) {
                    signature = null;
                    body.replaceChildren(h('p', { class: 'notice' },
                        `Job ${id} no longer exists: it was deleted, or it ran and finished. `,
                        h('a', { href: url(set.path) }, `Back to ${set.title}`)));
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
