// Cron: every [[cron]] entry with its schedule, the job it pushes, its next and last run,
// its catch-up rule and its source file, and a button that pushes one job of the entry now.

import { apiGet, apiPost, url } from './api.js';
import {
    formatAbsolute, formatArgs, formatNumber, h, pluralize, timeElement,
} from './dom.js';
import { runAction } from './shell.js';
import { emptyTableRow, syncRows } from './table.js';

const COLUMNS = 7;

const CONFIG_EXAMPLE = `[[cron]]
schedule = "*/5 * * * *"
  [cron.job]
  type = "CleanupJob"
  queue = "maintenance"`;

// Effect of each catch_up value on runs missed while the server was down.
const CATCH_UP_TEXT = {
    once: 'one job for missed runs',
    skip: 'missed runs are skipped',
};

// Job fields shown first, in this order, under the job's arguments.
const OPTION_ORDER = ['retry', 'priority', 'reserve_for'];

// Formatters of wall times per IANA time zone, built on first use because each one loads
// the zone's rules.
const zoneFormats = new Map();

function zoneFormat(timeZone) {
    if (!zoneFormats.has(timeZone)) {
        let format = null;
        try {
            format = new Intl.DateTimeFormat('en-US', {
                timeZone, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit',
                hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short',
            });
        } catch {
            // The browser's tz data lacks the zone (RangeError); the UTC time still shows.
        }
        zoneFormats.set(timeZone, format);
    }
    return zoneFormats.get(timeZone);
}

// Formats an RFC 3339 time as the wall time of an IANA time zone: "Mon 2026-12-07 09:00 EST".
// Returns null when the browser does not know the zone.
function formatInZone(iso, timeZone) {
    const format = zoneFormat(timeZone);
    const t = Date.parse(iso);
    if (!format || !Number.isFinite(t)) {
        return null;
    }
    const parts = {};
    for (const part of format.formatToParts(new Date(t))) {
        parts[part.type] = part.value;
    }
    return `${parts.weekday} ${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ` +
        `${parts.timeZoneName}`;
}

// Splits "<file> entry <n>" into the file's name, its directory and the entry number.
function splitSource(source) {
    const match = /^(.*\/)?([^/]*) entry (\d+)$/.exec(source || '');
    if (!match) {
        return { name: source || '', directory: '' };
    }
    return { name: `${match[2]} entry ${match[3]}`, directory: match[1] || '' };
}

function queueOf(job) {
    return job.queue || 'default';
}

function scheduleCell(entry) {
    return h('td', null,
        h('code', { class: 'schedule' }, entry.schedule),
        h('div', { class: 'muted small' }, entry.timezone || 'UTC'));
}

// Describes the job fields other than type, queue and arguments: "retry 3 · priority 7".
function jobOptions(job) {
    const keys = Object.keys(job).filter((key) => !['jobtype', 'queue', 'args'].includes(key));
    const rank = (key) => (OPTION_ORDER.includes(key) ? OPTION_ORDER.indexOf(key) : OPTION_ORDER.length);
    keys.sort((a, b) => rank(a) - rank(b));
    const options = [];
    for (const key of keys) {
        const value = job[key];
        const name = key.replace(/_/g, ' ');
        if (typeof value === 'number') {
            options.push(`${name} ${formatNumber(value)}${key === 'reserve_for' ? ' s' : ''}`);
        } else {
            options.push(`${name} ${JSON.stringify(value)}`);
        }
    }
    return options;
}

function jobCell(job) {
    const queue = queueOf(job);
    const args = formatArgs(job.args ?? [], 512);
    const options = jobOptions(job);
    return h('td', { class: 'cron-job' },
        h('div', null, h('strong', { class: 'jobtype' }, job.jobtype), ' in queue ',
            h('a', { href: url(`/queues/${encodeURIComponent(queue)}`) }, queue)),
        args ? h('div', { class: 'args' }, args) : h('div', { class: 'muted small' }, 'no arguments'),
        options.length > 0 ? h('div', { class: 'muted small job-options' }, options.join(' · ')) : null);
}

// Builds a cell with a run time relative to now, in UTC and, for an entry with a time zone,
// as the zone's wall time. A null time shows "never" and the reason, if given.
function runCell(iso, timeZone, className, reason) {
    if (!iso) {
        return h('td', { class: `run-time ${className}`, dataset: { time: '' } },
            h('div', { class: 'muted' }, 'never'),
            reason ? h('div', { class: 'muted small' }, reason) : null);
    }
    const local = timeZone && timeZone !== 'UTC' ? formatInZone(iso, timeZone) : null;
    return h('td', { class: `run-time ${className}`, dataset: { time: iso } },
        h('div', null, timeElement(iso)),
        h('div', { class: 'muted small' }, formatAbsolute(iso)),
        local ? h('div', { class: 'muted small' }, local) : null);
}

function catchUpCell(catchUp) {
    return h('td', { class: 'catch-up' },
        h('div', null, catchUp),
        CATCH_UP_TEXT[catchUp] ? h('div', { class: 'muted small' }, CATCH_UP_TEXT[catchUp]) : null);
}

function sourceCell(source) {
    const { name, directory } = splitSource(source);
    return h('td', { class: 'source', title: source },
        h('div', { class: 'mono source-name' }, name),
        directory ? h('div', { class: 'muted small mono' }, directory) : null);
}

function runEntry(button, entry) {
    const jobtype = entry.job.jobtype;
    const queue = queueOf(entry.job);
    return runAction(button,
        () => apiPost(`/api/cron/${encodeURIComponent(entry.key)}`, { action: 'run' }),
        (result) => `Pushed ${pluralize(result.affected, `${jobtype} job`)} to queue ${queue}. ` +
            'The schedule is unchanged.');
}

function entryRow(entry) {
    const { name } = splitSource(entry.source);
    return h('tr', null,
        scheduleCell(entry),
        jobCell(entry.job),
        runCell(entry.next_run, entry.timezone, 'next-run', 'the schedule matches no date'),
        runCell(entry.last_run, entry.timezone, 'last-run'),
        catchUpCell(entry.catch_up),
        sourceCell(entry.source),
        h('td', { class: 'actions' }, h('button', {
            type: 'button',
            class: 'button button-small',
            'aria-label': `Run ${entry.job.jobtype} now (${name})`,
            dataset: { focusKey: `run-${entry.source}`, action: 'run' },
            onclick: (event) => runEntry(event.currentTarget, entry),
        }, 'Run now')));
}

// Returns the earliest next run of the entries, or null when none will run.
function soonest(entries) {
    let best = null;
    for (const entry of entries) {
        if (entry.next_run && (best === null || Date.parse(entry.next_run) < Date.parse(best))) {
            best = entry.next_run;
        }
    }
    return best;
}

function emptyState() {
    return h('div', { class: 'panel', id: 'cron-empty' },
        h('h2', null, 'No cron entries are configured'),
        h('p', null, 'A cron entry pushes a job on a schedule of five fields (minute, hour, day ' +
            'of month, month, day of week), read in UTC or in the time zone the entry names. ' +
            'Add [[cron]] tables to a TOML file in the conf.d directory of the configuration ' +
            'directory, for example:'),
        h('pre', { class: 'code' }, CONFIG_EXAMPLE),
        h('p', null, 'Then restart the server or send it SIGHUP. This page and its tab show ' +
            'the entries once there is one.'));
}

export function createCronView() {
    let abort = new AbortController();
    let parts;

    function render(entries) {
        parts.empty.hidden = entries.length > 0;
        parts.list.hidden = entries.length === 0;
        const next = soonest(entries);
        if (entries.length === 0) {
            parts.count.replaceChildren();
        } else {
            parts.count.replaceChildren(pluralize(entries.length, 'entry', 'entries'),
                next ? ', next run ' : ', none will run again', next ? timeElement(next) : null);
        }
        // Two identical entries share a key, so the row key adds the source (file and entry number).
        syncRows(parts.body, entries, (entry) => `${entry.source}\n${entry.key}`, entryRow,
            () => emptyTableRow(COLUMNS, 'No cron entries are configured.'));
    }

    return {
        title: 'Cron',
        tab: 'cron',

        mount(container) {
            parts = {
                count: h('p', { class: 'subtitle' }),
                body: h('tbody'),
                empty: emptyState(),
            };
            parts.empty.hidden = true;
            parts.list = h('div', { class: 'table-wrap', hidden: true },
                h('table', { id: 'cron-table' },
                    h('caption', { class: 'visually-hidden' }, 'Cron entries in the order of the configuration files'),
                    h('thead', null, h('tr', null,
                        ['Schedule', 'Job', 'Next run', 'Last run', 'Catch-up', 'Source'].map((text) =>
                            h('th', { scope: 'col' }, text)),
                        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
                    parts.body));
            container.replaceChildren(
                h('div', { class: 'page-head' },
                    h('div', null, h('h1', { tabindex: '-1' }, 'Cron'), parts.count)),
                parts.empty,
                parts.list);
        },

        // polled.cron is the /api/cron document that app.js fetched in the same poll. It is
        // null when that request failed, and the page then requests it again to show the error.
        async refresh(info, polled) {
            const data = polled && polled.cron
                ? polled.cron
                : await apiGet('/api/cron', null, abort.signal);
            render(data.entries || []);
        },

        unmount() {
            abort.abort();
            abort = new AbortController();
        },
    };
}

// Whether a /api/cron document lists at least one entry; the Cron tab shows only then.
export function hasCronEntries(cron) {
    return Boolean(cron) && Array.isArray(cron.entries) && cron.entries.length > 0;
}
