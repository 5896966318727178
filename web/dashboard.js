// Dashboard: live processed/failed graph per polling interval, history graph per day, and
// server statistics.

import { apiGet } from './api.js';
import { drawLineChart } from './chart.js';
import { formatDuration, formatNumber, h } from './dom.js';
import {
    clampPollInterval, navigate, notifyError, POLL_MAX_SECONDS, POLL_MIN_SECONDS,
    pollInterval, setPollInterval,
} from './shell.js';

const LIVE_POINTS = 100;
const HISTORY_RANGES = [
    { days: 7, label: '1 week' },
    { days: 30, label: '1 month' },
    { days: 90, label: '3 months' },
    { days: 180, label: '6 months' },
];
const HISTORY_DEFAULT_DAYS = 30;
// Daily numbers change slowly, so the history is fetched at most this often while polling.
const HISTORY_REFRESH_MS = 30000;

// Live samples survive leaving and re-entering the dashboard during one page visit.
const live = { labels: [], processed: [], failed: [], last: null };

function recordSample(info) {
    const totals = {
        processed: info.faktory.total_processed,
        failed: info.faktory.total_failures,
    };
    const previous = live.last;
    live.last = totals;
    // A drop means the counters were reset (FLUSH); that sample is no delta.
    if (!previous || totals.processed < previous.processed || totals.failed < previous.failed) {
        return;
    }
    const time = new Date(info.now || Date.now()).toISOString().slice(11, 19);
    live.labels.push(time);
    live.processed.push(totals.processed - previous.processed);
    live.failed.push(totals.failed - previous.failed);
    if (live.labels.length > LIVE_POINTS) {
        live.labels.shift();
        live.processed.shift();
        live.failed.shift();
    }
}

function historyDaysFromQuery(query) {
    const days = Number.parseInt(query.get('days') || '', 10);
    return HISTORY_RANGES.some((r) => r.days === days) ? days : HISTORY_DEFAULT_DAYS;
}

function statBox(label, key) {
    return h('div', { class: 'stat' },
        h('dt', null, label),
        h('dd', { dataset: { stat: key } }, '–'));
}

export function createDashboardView() {
    let root;
    let liveChart;
    let historyChart;
    let history = null;
    let historyFetchedAt = 0;
    let historyDays = HISTORY_DEFAULT_DAYS;
    let resizeObserver;
    let abort = new AbortController();

    function drawLive() {
        const seconds = pollInterval();
        const last = live.labels.length - 1;
        const description = last < 0
            ? 'Processed and failed jobs per polling interval: waiting for the second sample'
            : `Processed and failed jobs per ${seconds} s interval; latest ${live.labels[last]}: ` +
              `${live.processed[last]} processed, ${live.failed[last]} failed`;
        drawLineChart(liveChart, {
            labels: live.labels,
            series: [
                { name: 'Processed', className: 'series-processed', values: live.processed },
                { name: 'Failed', className: 'series-failed', values: live.failed },
            ],
            description,
            emptyText: 'Collecting samples…',
        });
    }

    function drawHistory() {
        const days = history ? history.days : [];
        const sum = (key) => days.reduce((total, d) => total + (d[key] || 0), 0);
        drawLineChart(historyChart, {
            labels: days.map((d) => d.day),
            series: [
                { name: 'Processed', className: 'series-processed', values: days.map((d) => d.processed) },
                { name: 'Failed', className: 'series-failed', values: days.map((d) => d.failures) },
            ],
            description: `Jobs per day over the last ${historyDays} days: ` +
                `${formatNumber(sum('processed'))} processed, ${formatNumber(sum('failures'))} failed`,
            emptyText: history ? 'No days in range' : 'Loading…',
        });
    }

    async function loadHistory(force) {
        if (!force && Date.now() - historyFetchedAt < HISTORY_REFRESH_MS) {
            return;
        }
        historyFetchedAt = Date.now();
        try {
            history = await apiGet('/api/history', { days: historyDays }, abort.signal);
            drawHistory();
        } catch (err) {
            historyFetchedAt = 0;
            notifyError(err);
        }
    }

    function rangeButtons() {
        return h('div', { class: 'segmented', role: 'group', 'aria-label': 'History range' },
            HISTORY_RANGES.map((range) => h('button', {
                type: 'button',
                'aria-pressed': range.days === historyDays ? 'true' : 'false',
                dataset: { days: String(range.days) },
                onclick: () => {
                    navigate(range.days === HISTORY_DEFAULT_DAYS ? '/' : `/?days=${range.days}`,
                        { replace: true });
                },
            }, range.label)));
    }

    function intervalControl() {
        const input = h('input', {
            type: 'range', id: 'poll-interval', min: POLL_MIN_SECONDS, max: POLL_MAX_SECONDS,
            step: 1, value: String(pollInterval()),
        });
        const output = h('output', { for: 'poll-interval', id: 'poll-interval-value' },
            `${pollInterval()} s`);
        input.addEventListener('input', () => {
            output.textContent = `${clampPollInterval(input.value)} s`;
        });
        input.addEventListener('change', () => setPollInterval(input.value));
        return h('div', { class: 'interval' },
            h('label', { for: 'poll-interval' }, 'Polling interval'), input, output);
    }

    function updateStats(info) {
        const server = info.server || {};
        const faktory = info.faktory || {};
        const values = {
            version: server.fabrik_version ? `fabrik ${server.fabrik_version}` : server.description,
            protocol: server.faktory_version,
            uptime: formatDuration(server.uptime),
            connections: formatNumber(server.connections),
            workers: formatNumber(faktory.tasks?.Workers?.size),
            queues: formatNumber(faktory.total_queues),
            memory: `${formatNumber(server.used_memory_mb)} MB`,
            commands: formatNumber(server.command_count),
        };
        for (const [key, text] of Object.entries(values)) {
            const el = root.querySelector(`[data-stat="${key}"]`);
            if (el && el.textContent !== String(text ?? '–')) {
                el.textContent = text ?? '–';
            }
        }
    }

    return {
        title: 'Dashboard',
        tab: 'dashboard',

        mount(container, { query }) {
            historyDays = historyDaysFromQuery(query);
            liveChart = h('div', { class: 'chart', id: 'live-chart' });
            historyChart = h('div', { class: 'chart', id: 'history-chart' });
            root = h('div', null,
                h('div', { class: 'page-head' },
                    h('h1', { tabindex: '-1' }, 'Dashboard',
                        h('span', { class: 'beacon', id: 'beacon', title: 'Updates live' })),
                    intervalControl()),
                h('section', { class: 'panel', 'aria-labelledby': 'live-title' },
                    h('div', { class: 'chart-head' },
                        h('h2', { id: 'live-title' }, 'Live: jobs per polling interval'),
                        h('ul', { class: 'legend' },
                            h('li', { class: 'legend-processed' }, 'Processed'),
                            h('li', { class: 'legend-failed' }, 'Failed'))),
                    liveChart),
                h('section', { class: 'panel', 'aria-labelledby': 'history-title' },
                    h('div', { class: 'chart-head' },
                        h('h2', { id: 'history-title' }, 'History: jobs per day'),
                        rangeButtons()),
                    historyChart),
                h('section', { 'aria-labelledby': 'server-title' },
                    h('h2', { id: 'server-title' }, 'Server'),
                    h('dl', { class: 'stat-grid' },
                        statBox('Version', 'version'),
                        statBox('Faktory protocol', 'protocol'),
                        statBox('Uptime', 'uptime'),
                        statBox('Connections', 'connections'),
                        statBox('Worker processes', 'workers'),
                        statBox('Queues', 'queues'),
                        statBox('Memory', 'memory'),
                        statBox('Commands', 'commands'))));
            container.replaceChildren(root);
            drawLive();
            drawHistory();
            resizeObserver = new ResizeObserver(() => {
                drawLive();
                drawHistory();
            });
            resizeObserver.observe(liveChart);
            loadHistory(true);
        },

        queryChanged({ query }) {
            historyDays = historyDaysFromQuery(query);
            for (const button of root.querySelectorAll('.segmented button')) {
                button.setAttribute('aria-pressed',
                    button.dataset.days === String(historyDays) ? 'true' : 'false');
            }
            loadHistory(true);
        },

        async refresh(info) {
            if (!info) {
                return;
            }
            recordSample(info);
            drawLive();
            updateStats(info);
            const beacon = root.querySelector('#beacon');
            beacon.classList.remove('pulse');
            // Reading offsetWidth restarts the CSS animation.
            void beacon.offsetWidth;
            beacon.classList.add('pulse');
            await loadHistory(false);
        },

        unmount() {
            abort.abort();
            abort = new AbortController();
            if (resizeObserver) {
                resizeObserver.disconnect();
            }
        },
    };
}
