// Throttles: every throttled queue with its limits in words, the slots in use against the
// limit, the fetchers waiting and the counters, then the jobs that hold the slots.

import { apiGet, url } from './api.js';
import {
    formatDuration, formatNumber, h, pluralize, timeElement,
} from './dom.js';
import { emptyTableRow, syncRows } from './table.js';

// The slots table lists at most this many holders, oldest first, because a throttle may
// allow thousands of slots and the page would become too long to read.
const MAX_HOLDERS_SHOWN = 500;

const CONFIG_EXAMPLE = `[throttles]
images = { concurrency = 4, timeout = 30 }
bulk = { worker = 5, timeout = 60 }
api = { rate_limit = 100, rate_period = 60 }`;

// Formats a period in seconds as configured ("60 s", "0.5 s"), switching to minutes and hours
// only for long periods, where "1 h" reads better than "3600 s".
function formatPeriod(seconds) {
    if (seconds < 600) {
        return `${formatNumber(Math.round(seconds * 1000) / 1000)} s`;
    }
    return formatDuration(seconds);
}

// Describes the throttle's limits as short phrases: "4 in total", "5 per worker", "100 per 60 s".
function describeLimits(throttle) {
    const limits = [];
    if (throttle.concurrency > 0) {
        limits.push(`${formatNumber(throttle.concurrency)} in total`);
    }
    if (throttle.worker > 0) {
        limits.push(`${formatNumber(throttle.worker)} per worker`);
    }
    if (throttle.rate_limit > 0) {
        limits.push(`${formatNumber(throttle.rate_limit)} per ${formatPeriod(throttle.rate_period)}`);
    }
    return limits;
}

// Finds the worker process holding the most slots of the throttle: { wid, count }, or null.
function busiestWorker(throttle) {
    const counts = new Map();
    for (const holder of throttle.holders || []) {
        counts.set(holder.wid, (counts.get(holder.wid) || 0) + 1);
    }
    let busiest = null;
    for (const [wid, count] of counts) {
        if (!busiest || count > busiest.count || (count === busiest.count && wid < busiest.wid)) {
            busiest = { wid, count };
        }
    }
    return busiest;
}

function workerName(wid) {
    return wid || 'connections without a worker ID';
}

// Builds a bar showing value against limit, with the numbers as visible text. It is a meter
// for assistive technology, named by label.
function slotBar(value, limit, label) {
    const full = value >= limit;
    const percent = Math.min(100, (100 * value) / limit);
    return h('div', { class: 'slots' },
        h('div', {
            class: `slot-bar${full ? ' full' : ''}`,
            role: 'meter',
            'aria-label': label,
            'aria-valuemin': '0',
            'aria-valuemax': String(limit),
            'aria-valuenow': String(Math.min(value, limit)),
            'aria-valuetext': `${formatNumber(value)} of ${formatNumber(limit)}`,
        }, h('div', { class: 'slot-bar-fill', style: `width: ${percent}%` })),
        h('span', { class: 'slot-count' }, `${formatNumber(value)} / ${formatNumber(limit)}`));
}

// Builds the "In use" cell: the slots against the total limit, the busiest worker against the
// per-worker limit, or only the count when the throttle limits starts per period alone.
function usageCell(throttle) {
    const parts = [];
    if (throttle.concurrency > 0) {
        parts.push(slotBar(throttle.in_use, throttle.concurrency, `Slots in use of queue ${throttle.queue}`));
    }
    if (throttle.worker > 0) {
        const busiest = throttle.busiest;
        parts.push(slotBar(busiest ? busiest.count : 0, throttle.worker,
            `Slots in use by the busiest worker of queue ${throttle.queue}`));
        parts.push(h('div', { class: 'muted small' }, busiest
            ? `busiest worker: ${workerName(busiest.wid)}`
            : 'no worker holds a slot'));
        if (throttle.concurrency === 0) {
            parts.push(h('div', { class: 'small' }, `${formatNumber(throttle.in_use)} in use across workers`));
        }
    }
    if (parts.length === 0) {
        parts.push(h('span', { class: 'slot-count' }, `${formatNumber(throttle.in_use)} running`));
    }
    return h('td', { class: 'usage', dataset: { inUse: String(throttle.in_use) } }, parts);
}

function stateBadge(throttle) {
    if (throttle.concurrency > 0 && throttle.in_use >= throttle.concurrency) {
        return h('span', { class: 'badge badge-warn' }, 'full');
    }
    if (throttle.worker > 0 && throttle.busiest && throttle.busiest.count >= throttle.worker) {
        return h('span', { class: 'badge badge-warn' }, 'full for a worker');
    }
    return h('span', { class: 'badge badge-ok' }, 'open');
}

function throttleRow(throttle) {
    const limits = describeLimits(throttle);
    return h('tr', null,
        h('td', null, h('a', { href: url(`/queues/${encodeURIComponent(throttle.queue)}`) }, throttle.queue)),
        h('td', null, h('ul', { class: 'limits' }, limits.map((text) => h('li', null, text)))),
        h('td', null, throttle.timeout > 0 ? formatPeriod(throttle.timeout) : h('span', { class: 'muted' }, 'none')),
        usageCell(throttle),
        h('td', null, stateBadge(throttle)),
        h('td', { class: 'num', dataset: { waiting: String(throttle.waiting) } }, formatNumber(throttle.waiting)),
        h('td', { class: 'num' }, formatNumber(throttle.taken)),
        h('td', { class: 'num' }, formatNumber(throttle.released)),
        h('td', { class: `num${throttle.timed_out > 0 ? ' warn-text' : ''}` }, formatNumber(throttle.timed_out)));
}

// Returns the time at which the slot is freed by the throttle's timeout, or null.
function timeoutAt(holder, timeout) {
    const since = Date.parse(holder.since);
    if (!(timeout > 0) || !Number.isFinite(since)) {
        return null;
    }
    return new Date(since + timeout * 1000).toISOString();
}

function holderRow(holder) {
    return h('tr', null,
        h('td', null, h('a', { href: url(`/queues/${encodeURIComponent(holder.queue)}`) }, holder.queue)),
        h('td', null, h('span', { class: 'jid' }, holder.jid)),
        h('td', null, holder.wid ? h('span', { class: 'jid' }, holder.wid) : h('span', { class: 'muted' }, 'none')),
        h('td', null, timeElement(holder.since)),
        h('td', null, timeElement(holder.expires)));
}

// Returns an RFC 3339 time in seconds with its microseconds, which Date.parse would cut to
// milliseconds: slots taken in one burst differ only there.
function preciseSeconds(iso) {
    const fraction = /\.(\d+)Z$/.exec(iso);
    const whole = Date.parse(iso.replace(/\.\d+Z$/, 'Z')) / 1000;
    return fraction ? whole + Number(`0.${fraction[1]}`) : whole;
}

function compare(a, b) {
    if (a < b) {
        return -1;
    }
    return a > b ? 1 : 0;
}

function holdersOf(throttles) {
    const holders = [];
    for (const throttle of throttles) {
        for (const holder of throttle.holders || []) {
            holders.push({ ...holder, queue: throttle.queue, expires: timeoutAt(holder, throttle.timeout) });
        }
    }
    holders.sort((a, b) => compare(preciseSeconds(a.since), preciseSeconds(b.since)) ||
        compare(a.queue, b.queue) || compare(a.jid, b.jid));
    return holders;
}

function tableOf(id, caption, headers, tbody) {
    return h('div', { class: 'table-wrap' },
        h('table', { id },
            h('caption', { class: 'visually-hidden' }, caption),
            h('thead', null, h('tr', null, headers.map(([text, cls]) =>
                h('th', { scope: 'col', class: cls }, text)))),
            tbody));
}

function emptyState() {
    return h('div', { class: 'panel', id: 'throttles-empty' },
        h('h2', null, 'No throttles are configured'),
        h('p', null, 'A throttle limits how many jobs of a queue run at once, in total or per ' +
            'worker process, or how many start per period. FETCH skips a queue whose limit is ' +
            'reached. Add a [throttles] table to a TOML file in the conf.d directory of the ' +
            'configuration directory, for example:'),
        h('pre', { class: 'code' }, CONFIG_EXAMPLE),
        h('p', null, 'Then restart the server or send it SIGHUP. This page and its tab show ' +
            'the throttles once there is one.'));
}

export function createThrottlesView() {
    let abort = new AbortController();
    let parts;

    function summary(throttles) {
        const inUse = throttles.reduce((sum, t) => sum + t.in_use, 0);
        const waiting = throttles.reduce((sum, t) => sum + t.waiting, 0);
        return `${pluralize(throttles.length, 'throttled queue')}, ` +
            `${pluralize(inUse, 'slot')} in use, ` +
            `${pluralize(waiting, 'fetcher')} waiting`;
    }

    function render(throttles) {
        parts.empty.hidden = throttles.length > 0;
        parts.lists.hidden = throttles.length === 0;
        parts.count.textContent = throttles.length > 0 ? summary(throttles) : '';
        // The holders change every poll under load; each row shows only what it needs, so an
        // unchanged throttle keeps its row.
        const rows = throttles.map(({ holders, ...rest }) => ({
            ...rest,
            busiest: rest.worker > 0 ? busiestWorker({ holders }) : null,
        }));
        syncRows(parts.throttlesBody, rows, (t) => t.queue, throttleRow, null);

        const holders = holdersOf(throttles);
        const shown = holders.slice(0, MAX_HOLDERS_SHOWN);
        syncRows(parts.holdersBody, shown, (holder) => `${holder.queue}\n${holder.jid}\n${holder.since}`,
            holderRow, () => emptyTableRow(5, 'No job holds a slot.'));
        parts.holdersNote.textContent = holders.length > shown.length
            ? `Showing the ${formatNumber(shown.length)} oldest of ${formatNumber(holders.length)} slots in use.`
            : '';
    }

    return {
        title: 'Throttles',
        tab: 'throttles',

        mount(container) {
            parts = {
                count: h('p', { class: 'subtitle' }, ''),
                throttlesBody: h('tbody'),
                holdersBody: h('tbody'),
                holdersNote: h('p', { class: 'muted', 'aria-live': 'polite' }, ''),
                empty: emptyState(),
            };
            parts.empty.hidden = true;
            parts.lists = h('div', { hidden: true },
                tableOf('throttles-table', 'Throttled queues', [['Queue'], ['Limits'], ['Timeout'],
                    ['In use'], ['State'], ['Waiting', 'num'], ['Taken', 'num'], ['Released', 'num'],
                    ['Timed out', 'num']], parts.throttlesBody),
                h('section', { 'aria-labelledby': 'holders-title' },
                    h('h2', { id: 'holders-title' }, 'Slots in use'),
                    tableOf('holders-table', 'Jobs holding a throttle slot, oldest first',
                        [['Queue'], ['JID'], ['Worker ID'], ['Taken'], ['Freed by timeout']],
                        parts.holdersBody),
                    parts.holdersNote));
            container.replaceChildren(
                h('div', { class: 'page-head' },
                    h('div', null, h('h1', { tabindex: '-1' }, 'Throttles'), parts.count)),
                parts.empty,
                parts.lists);
        },

        async refresh() {
            const data = await apiGet('/api/throttles', null, abort.signal);
            render(data.throttles || []);
        },

        unmount() {
            abort.abort();
            abort = new AbortController();
        },
    };
}

// Whether the INFO document lists at least one throttle; the Throttles tab shows only then.
// INFO's faktory.throttles contains the same entries as /api/throttles (with at most 100 holders
// each) and is present only when throttles are configured, so no extra request is needed.
export function hasThrottles(info) {
    const throttles = info && info.faktory ? info.faktory.throttles : null;
    return Boolean(throttles) && typeof throttles === 'object' && Object.keys(throttles).length > 0;
}
