// Busy: the worker processes with quiet and stop buttons, and the jobs in progress.

import { apiGet, apiPost, url } from './api.js';
import {
    formatArgs, formatKilobytes, formatNumber, h, pluralize, timeElement,
} from './dom.js';
import { progressView, renderJobDetail } from './jobview.js';
import { confirmAction, runAction, showDialog } from './shell.js';
import { emptyTableRow, syncRows } from './table.js';

const STATE_BADGES = {
    running: null,
    quiet: h.bind(null, 'span', { class: 'badge badge-warn' }, 'quiet'),
    terminate: h.bind(null, 'span', { class: 'badge badge-danger' }, 'stopping'),
};

function signalWorker(button, wid, signal) {
    const verb = signal === 'quiet' ? 'Quieted' : 'Stopped';
    return runAction(button, () => apiPost('/api/busy', { wid, signal }),
        (result) => (wid === '*'
            ? `${verb} ${pluralize(result.affected, 'worker process', 'worker processes')}`
            : `${verb} worker ${wid}`));
}

function workerRow(worker) {
    const badge = STATE_BADGES[worker.state];
    const labels = (worker.labels || []).map((label) => h('span', { class: 'badge' }, label));
    const quiet = worker.state === 'running'
        ? h('button', {
            type: 'button',
            class: 'button button-small',
            'aria-label': `Quiet worker ${worker.wid}`,
            dataset: { focusKey: `quiet-${worker.wid}`, action: 'quiet' },
            onclick: (event) => signalWorker(event.currentTarget, worker.wid, 'quiet'),
        }, 'Quiet')
        : null;
    const stop = worker.state !== 'terminate'
        ? h('button', {
            type: 'button',
            class: 'button button-small button-danger',
            'aria-label': `Stop worker ${worker.wid}`,
            dataset: { focusKey: `stop-${worker.wid}`, action: 'stop' },
            onclick: (event) => signalWorker(event.currentTarget, worker.wid, 'terminate'),
        }, 'Stop')
        : null;
    return h('tr', null,
        h('td', null, h('span', { class: 'jid' }, worker.wid)),
        h('td', null, h('div', null, `${worker.hostname}:${worker.pid}`),
            labels, badge ? badge() : null),
        h('td', null, timeElement(worker.started_at)),
        h('td', null, timeElement(worker.last_beat_at)),
        h('td', { class: 'num' }, formatNumber(worker.connections)),
        h('td', { class: 'num' }, formatKilobytes(worker.rss_kb)),
        h('td', { class: 'num' }, formatNumber(worker.busy)),
        h('td', { class: 'actions' }, quiet, stop));
}

function jobRow(job) {
    return h('tr', null,
        h('td', null, h('span', { class: 'jid' }, job.wid || '–')),
        h('td', null, h('span', { class: 'jid' }, job.jid)),
        h('td', null, h('a', { href: url(`/queues/${encodeURIComponent(job.queue)}`) }, job.queue)),
        h('td', null, job.display_type || job.jobtype),
        h('td', { class: 'args' }, formatArgs(job.args)),
        h('td', null, progressView(job.progress) || '–'),
        h('td', null, timeElement(job.at)),
        h('td', { class: 'actions' }, h('button', {
            type: 'button',
            class: 'button button-small',
            'aria-label': `Show job ${job.jid}`,
            dataset: { focusKey: `show-${job.id}` },
            onclick: () => showDialog(`Job ${job.jid}`, renderJobDetail(job)),
        }, 'Details')));
}

function tableOf(caption, headers, tbody) {
    return h('div', { class: 'table-wrap' },
        h('table', null,
            h('caption', { class: 'visually-hidden' }, caption),
            h('thead', null, h('tr', null, headers.map(([text, cls]) =>
                h('th', { scope: 'col', class: cls }, text)))),
            tbody));
}

export function createBusyView() {
    let abort = new AbortController();
    let workersBody;
    let jobsBody;
    let countText;

    async function signalAll(button, signal) {
        if (signal === 'terminate') {
            const confirmed = await confirmAction({
                title: 'Stop every worker process?',
                text: 'Each worker finishes or fails its current jobs and exits.',
                confirmLabel: 'Stop all',
            });
            if (!confirmed) {
                return;
            }
        }
        await signalWorker(button, '*', signal);
    }

    return {
        title: 'Busy',
        tab: 'busy',

        mount(container) {
            workersBody = h('tbody');
            jobsBody = h('tbody');
            countText = h('p', { class: 'subtitle' }, '');
            container.replaceChildren(
                h('div', { class: 'page-head' },
                    h('div', null, h('h1', { tabindex: '-1' }, 'Busy'), countText),
                    h('div', { class: 'toolbar' },
                        h('button', {
                            type: 'button', class: 'button', id: 'quiet-all',
                            onclick: (event) => signalAll(event.currentTarget, 'quiet'),
                        }, 'Quiet all'),
                        h('button', {
                            type: 'button', class: 'button button-danger', id: 'stop-all',
                            onclick: (event) => signalAll(event.currentTarget, 'terminate'),
                        }, 'Stop all'))),
                h('section', { 'aria-labelledby': 'workers-title' },
                    h('h2', { id: 'workers-title' }, 'Worker processes'),
                    tableOf('Worker processes', [['Worker ID'], ['Host and process'], ['Started'],
                        ['Last heartbeat'], ['Connections', 'num'], ['Memory (RSS)', 'num'],
                        ['Busy', 'num'], [h('span', { class: 'visually-hidden' }, 'Actions')]],
                    workersBody)),
                h('section', { 'aria-labelledby': 'jobs-title' },
                    h('h2', { id: 'jobs-title' }, 'Jobs in progress'),
                    tableOf('Jobs in progress', [['Worker ID'], ['JID'], ['Queue'], ['Job type'],
                        ['Arguments'], ['Progress'], ['Reservation expires'],
                        [h('span', { class: 'visually-hidden' }, 'Actions')]],
                    jobsBody)));
        },

        async refresh() {
            const data = await apiGet('/api/busy', null, abort.signal);
            const workers = data.workers || [];
            const jobs = data.jobs || [];
            countText.textContent = `${pluralize(workers.length, 'worker process', 'worker processes')}, ` +
                `${pluralize(jobs.length, 'job')} in progress`;
            syncRows(workersBody, workers, (w) => w.wid, workerRow,
                () => emptyTableRow(8, 'No worker processes are connected.'));
            syncRows(jobsBody, jobs, (j) => j.id, jobRow,
                () => emptyTableRow(8, 'No jobs are in progress.'));
        },

        unmount() {
            abort.abort();
            abort = new AbortController();
        },
    };
}
