// Table helpers: rows that survive polling (so focus, hover and checkboxes stay put),
// job selection across polls and pages, and the pager.

import { formatNumber, h } from './dom.js';
import { url } from './api.js';

// Brings tbody's rows in line with items. A row whose item is unchanged (same JSON) is
// kept as it is; a changed row is rebuilt with renderRow(item). Focus inside a rebuilt row
// moves to the element with the same data-focus-key in the new row. emptyRow() builds the
// single row shown when there are no items.
export function syncRows(tbody, items, keyOf, renderRow, emptyRow) {
    const focusKey = tbody.contains(document.activeElement)
        ? document.activeElement.dataset.focusKey : undefined;
    const existing = new Map();
    for (const row of tbody.rows) {
        if (row.dataset.key !== undefined) {
            existing.set(row.dataset.key, row);
        }
    }

    const rows = items.map((item) => {
        const key = String(keyOf(item));
        const signature = JSON.stringify(item);
        const old = existing.get(key);
        if (old && old.dataset.signature === signature) {
            return old;
        }
        const row = renderRow(item);
        row.dataset.key = key;
        row.dataset.signature = signature;
        return row;
    });
    if (rows.length === 0 && emptyRow) {
        rows.push(emptyRow());
    }

    // Move only rows that are out of place: moving a node takes the focus from it.
    rows.forEach((row, index) => {
        if (tbody.rows[index] !== row) {
            tbody.insertBefore(row, tbody.rows[index] || null);
        }
    });
    while (tbody.rows.length > rows.length) {
        tbody.rows[rows.length].remove();
    }

    if (focusKey && !tbody.contains(document.activeElement)) {
        const target = tbody.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
        if (target) {
            target.focus();
        }
    }
}

export function emptyTableRow(columns, text) {
    return h('tr', { class: 'empty-row' }, h('td', { colspan: columns, class: 'empty' }, text));
}

// The set of selected job ids of one list. It survives polling and paging, and is cleared
// after an action or a filter change. onChange runs after every change.
export class Selection {
    constructor(onChange) {
        this.ids = new Set();
        this.onChange = onChange;
    }

    get size() {
        return this.ids.size;
    }

    has(id) {
        return this.ids.has(id);
    }

    set(id, selected) {
        if (selected) {
            this.ids.add(id);
        } else {
            this.ids.delete(id);
        }
        this.onChange();
    }

    setMany(ids, selected) {
        for (const id of ids) {
            if (selected) {
                this.ids.add(id);
            } else {
                this.ids.delete(id);
            }
        }
        this.onChange();
    }

    clear() {
        this.ids.clear();
        this.onChange();
    }

    list() {
        return [...this.ids];
    }
}

// A checkbox cell for the job with the given id; label names the job for screen readers.
export function selectCell(selection, id, label) {
    const box = h('input', {
        type: 'checkbox',
        checked: selection.has(id),
        'aria-label': label,
        dataset: { focusKey: `select-${id}`, id: String(id) },
        onchange: (event) => selection.set(id, event.target.checked),
    });
    return h('td', { class: 'check' }, box);
}

// Sets every row checkbox and the header checkbox from the selection.
export function syncCheckboxes(table, selection) {
    const boxes = [...table.querySelectorAll('tbody input[type="checkbox"][data-id]')];
    for (const box of boxes) {
        const selected = selection.has(Number(box.dataset.id));
        box.checked = selected;
        box.closest('tr').classList.toggle('selected', selected);
    }
    const header = table.querySelector('thead input[type="checkbox"]');
    if (header) {
        const selectedCount = boxes.filter((box) => box.checked).length;
        header.checked = boxes.length > 0 && selectedCount === boxes.length;
        header.indeterminate = selectedCount > 0 && selectedCount < boxes.length;
        header.disabled = boxes.length === 0;
    }
}

// The header checkbox that selects or clears every job shown on the page.
export function selectAllHeader(selection, table) {
    const box = h('input', {
        type: 'checkbox',
        'aria-label': 'Select all jobs on this page',
        onchange: (event) => {
            const ids = [...table.querySelectorAll('tbody input[type="checkbox"][data-id]')]
                .map((el) => Number(el.dataset.id));
            selection.setMany(ids, event.target.checked);
        },
    });
    return h('th', { class: 'check', scope: 'col' }, box);
}

function pageLink(basePath, query, page, text, label, current) {
    if (current) {
        return h('li', null, h('span', { class: 'current', 'aria-current': 'page' }, text));
    }
    const params = new URLSearchParams(query);
    params.set('page', String(page));
    return h('li', null, h('a', { href: url(`${basePath}?${params}`), 'aria-label': label }, text));
}

// Builds the pager under a job list: the range shown, then First, Previous, nearby pages,
// Next and Last as links that keep the other query parameters.
export function pager(basePath, query, { page, perPage, total }) {
    const lastPage = Math.max(1, Math.ceil(total / perPage));
    const first = total === 0 ? 0 : (page - 1) * perPage + 1;
    const last = Math.min(total, page * perPage);
    const range = h('span', { class: 'range' },
        total === 0 ? 'No jobs' : `${formatNumber(first)}–${formatNumber(last)} of ${formatNumber(total)}`);
    if (lastPage <= 1) {
        return h('div', { class: 'pager' }, range);
    }
    const items = [];
    if (page > 1) {
        items.push(pageLink(basePath, query, 1, 'First', 'First page'));
        items.push(pageLink(basePath, query, page - 1, 'Previous', 'Previous page'));
    }
    const from = Math.max(1, page - 2);
    const to = Math.min(lastPage, page + 2);
    for (let p = from; p <= to; p++) {
        items.push(pageLink(basePath, query, p, formatNumber(p), `Page ${p}`, p === page));
    }
    if (page < lastPage) {
        items.push(pageLink(basePath, query, page + 1, 'Next', 'Next page'));
        items.push(pageLink(basePath, query, lastPage, 'Last', `Last page, ${lastPage}`));
    }
    return h('div', { class: 'pager' }, range,
        h('nav', { 'aria-label': 'Pages' }, h('ul', null, items)));
}

// Reads a positive page number from the query string; anything else means page 1.
export function pageFromQuery(query) {
    const page = Number.parseInt(query.get('page') || '1', 10);
    return Number.isSafeInteger(page) && page >= 1 ? page : 1;
}

export const PER_PAGE_CHOICES = [25, 50, 100, 250, 500];

export function perPageFromQuery(query) {
    const perPage = Number.parseInt(query.get('per_page') || '25', 10);
    return PER_PAGE_CHOICES.includes(perPage) ? perPage : 25;
}
