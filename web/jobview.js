// The job detail block: fields, arguments, custom fields, failure and the raw JSON, used by
// the job pages and by the job dialog of the queue and busy pages.

import { formatAbsolute, formatNumber, h, timeElement } from './dom.js';
import { url } from './api.js';

const STATE_NAMES = {
    queued: 'Queued',
    scheduled: 'Scheduled',
    retry: 'Waiting for retry',
    working: 'In progress',
    dead: 'Dead',
};

// Labels of the job's `at` in each state.
const AT_LABELS = {
    scheduled: 'Scheduled for',
    retry: 'Next retry',
    working: 'Reservation expires',
    dead: 'Died',
};

function timeValue(iso) {
    if (!iso) {
        return '–';
    }
    return [timeElement(iso), ' ', h('span', { class: 'muted' }, `(${formatAbsolute(iso)})`)];
}

function row(label, ...value) {
    return [h('dt', null, label), h('dd', null, ...value)];
}

function prettyJson(value) {
    return JSON.stringify(value, null, 2);
}

export function stateName(state) {
    return STATE_NAMES[state] || state;
}

// The progress a tracked job reported with TRACK SET, as a bar with its percent and
// description, or null for a job that is not tracked (job.progress is null).
export function progressView(progress) {
    if (!progress) {
        return null;
    }
    const hasPercent = Number.isInteger(progress.percent);
    const label = [hasPercent ? `${progress.percent}%` : null, progress.desc || null]
        .filter(Boolean).join(' – ') || 'No progress reported';
    return h('span', { class: 'job-progress' },
        hasPercent ? h('progress', { max: '100', value: String(progress.percent),
            'aria-label': `${progress.percent}% done` }) : null,
        h('span', { class: 'job-progress-text' }, label));
}

function fieldsList(job) {
    const typeText = job.display_type && job.display_type !== job.jobtype
        ? [job.display_type, ' ', h('span', { class: 'muted' }, `(${job.jobtype})`)]
        : job.jobtype;
    const retry = job.payload && 'retry' in job.payload ? String(job.payload.retry) : '–';
    return h('dl', { class: 'detail' },
        row('JID', h('span', { class: 'jid' }, job.jid)),
        row('State', stateName(job.state)),
        row('Job type', typeText),
        row('Queue', h('a', { href: url(`/queues/${encodeURIComponent(job.queue)}`) }, job.queue)),
        row('Arguments', h('pre', { class: 'code args-full' }, prettyJson(job.args ?? []))),
        row('Priority', String(job.priority ?? '–')),
        row('Retry setting', retry),
        row('Created', timeValue(job.created_at)),
        row('Enqueued', job.enqueued_at ? timeValue(job.enqueued_at) : 'Not yet enqueued'),
        job.at && AT_LABELS[job.state] ? row(AT_LABELS[job.state], timeValue(job.at)) : null,
        job.wid ? row('Worker', h('span', { class: 'jid' }, job.wid)) : null,
        job.progress ? row('Progress', progressView(job.progress)) : null);
}

// custom.bid names a member's batch and custom._bid a callback's batch. The link closes the
// job dialog it may sit in, because the page changes behind it.
function batchLink(bid) {
    return h('a', {
        href: url(`/batches/${encodeURIComponent(bid)}`),
        class: 'batch-link',
        onclick: (event) => event.currentTarget.closest('dialog')?.close(),
    }, bid);
}

function customValue(key, value) {
    if ((key === 'bid' || key === '_bid') && typeof value === 'string' && value) {
        return batchLink(value);
    }
    return typeof value === 'string' ? value : h('code', null, JSON.stringify(value));
}

function customSection(custom) {
    if (!custom || Object.keys(custom).length === 0) {
        return null;
    }
    const rows = Object.entries(custom).map(([key, value]) => row(key, customValue(key, value)));
    return h('section', { class: 'panel', 'aria-labelledby': 'job-custom-title' },
        h('h2', { id: 'job-custom-title' }, 'Custom fields'),
        h('dl', { class: 'detail' }, rows));
}

function failureSection(failure) {
    if (!failure) {
        return null;
    }
    const backtrace = Array.isArray(failure.backtrace) && failure.backtrace.length > 0
        ? h('pre', { class: 'code backtrace' }, failure.backtrace.join('\n'))
        : h('span', { class: 'muted' }, 'No backtrace');
    return h('section', { class: 'panel', 'aria-labelledby': 'job-failure-title' },
        h('h2', { id: 'job-failure-title' }, 'Failure'),
        h('dl', { class: 'detail' },
            row('Error class', h('span', { class: 'error-text' }, failure.errtype || '–')),
            row('Message', h('span', { class: 'error-text' }, failure.message || '–')),
            row('Retry count', formatNumber(failure.retry_count)),
            row('Retries remaining', formatNumber(failure.remaining)),
            row('First failed', timeValue(failure.failed_at)),
            failure.next_at ? row('Next retry', timeValue(failure.next_at)) : null,
            row('Backtrace', backtrace)));
}

function rawSection(job, state) {
    const pre = h('pre', { class: 'code', id: 'job-raw-json', hidden: !state.rawOpen },
        prettyJson(job.payload ?? job));
    const toggle = h('button', {
        type: 'button',
        class: 'button',
        'aria-expanded': state.rawOpen ? 'true' : 'false',
        'aria-controls': 'job-raw-json',
        dataset: { focusKey: 'raw-toggle' },
        onclick: () => {
            state.rawOpen = !state.rawOpen;
            pre.hidden = !state.rawOpen;
            toggle.setAttribute('aria-expanded', state.rawOpen ? 'true' : 'false');
            toggle.textContent = state.rawOpen ? 'Hide raw JSON' : 'Show raw JSON';
        },
    }, state.rawOpen ? 'Hide raw JSON' : 'Show raw JSON');
    return h('section', { class: 'panel', 'aria-labelledby': 'job-raw-title' },
        h('div', { class: 'chart-head' }, h('h2', { id: 'job-raw-title' }, 'Raw JSON'), toggle),
        pre);
}

// Builds the detail block of job. state.rawOpen, kept by the caller across polls, controls
// whether the raw JSON is shown.
export function renderJobDetail(job, state = { rawOpen: false }) {
    return h('div', { class: 'job-detail' },
        h('section', { class: 'panel', 'aria-labelledby': 'job-fields-title' },
            h('h2', { id: 'job-fields-title' }, 'Job'),
            fieldsList(job)),
        failureSection(job.failure),
        customSection(job.custom),
        rawSection(job, state));
}
