// Entry point of the web UI: routes page paths to views, polls the API on the dashboard's
// interval, and keeps the summary bar and footer current. Pages change without a reload
// (History API); the server serves index.html for every page path, so reloads work too.

import { apiGet, root, url } from './api.js';
import { createBatchesView, createBatchView } from './batches.js';
import { createBusyView } from './busy.js';
import { createCronView, hasCronEntries } from './cron.js';
import { createDashboardView } from './dashboard.js';
import { formatNumber, h, setServerNow, updateRelativeTimes } from './dom.js';
import { createQueuesView, createQueueView } from './queues.js';
import { createJobView, createSetView } from './sets.js';
import {
    connectShell, dismissMessage, notify, notifyError, onPollIntervalChange, pollInterval,
} from './shell.js';
import { createThrottlesView, hasThrottles } from './throttles.js';

const SET_PATHS = { retries: 'retries', scheduled: 'scheduled', morgue: 'dead' };
// Paths under the prefix that are not pages of this UI, so links to them load normally.
const NON_PAGE_PREFIXES = ['/api/', '/static/', '/stats', '/health', '/metrics'];

function notFoundView(path) {
    return {
        title: 'Not found',
        tab: null,
        mount(container) {
            container.replaceChildren(
                h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Page not found')),
                h('p', null, `There is no page at ${path}. `, h('a', { href: url('/') }, 'Go to the dashboard')));
        },
        refresh() {
            return Promise.resolve();
        },
        unmount() {},
    };
}

// Returns { key, create } for a page path (without the prefix): key identifies the page
// apart from its query string.
function route(path) {
    const parts = path.split('/').filter(Boolean).map((p) => {
        try {
            return decodeURIComponent(p);
        } catch {
            return p;
        }
    });
    const key = parts.join('/');
    if (parts.length === 0) {
        return { key, create: createDashboardView };
    }
    const [first, second] = parts;
    if (first === 'busy' && parts.length === 1) {
        return { key, create: createBusyView };
    }
    if (first === 'queues' && parts.length === 1) {
        return { key, create: createQueuesView };
    }
    if (first === 'queues' && parts.length === 2) {
        return { key, create: () => createQueueView(second) };
    }
    if (first === 'throttles' && parts.length === 1) {
        return { key, create: createThrottlesView };
    }
    if (first === 'batches' && parts.length === 1) {
        return { key, create: createBatchesView };
    }
    if (first === 'batches' && parts.length === 2) {
        return { key, create: () => createBatchView(second) };
    }
    if (first === 'cron' && parts.length === 1) {
        return { key, create: createCronView };
    }
    if (first in SET_PATHS && parts.length === 1) {
        return { key, create: () => createSetView(SET_PATHS[first]) };
    }
    if (first in SET_PATHS && parts.length === 2 && /^[1-9][0-9]*$/.test(second)) {
        return { key, create: () => createJobView(SET_PATHS[first], Number(second)) };
    }
    return { key: `404:${key}`, create: () => notFoundView(path) };
}

// The page path (without the prefix) of the current location.
function currentPath() {
    let path = window.location.pathname;
    if (root && (path === root || path.startsWith(`${root}/`))) {
        path = path.slice(root.length);
    }
    return path || '/';
}

const app = {
    view: null,
    routeKey: null,
    timer: null,
    polling: null,
    info: null,
};

function updateTabs(tab) {
    for (const link of document.querySelectorAll('.tabs a[data-tab]')) {
        if (link.dataset.tab === tab) {
            link.setAttribute('aria-current', 'page');
        } else {
            link.removeAttribute('aria-current');
        }
    }
}

function setSummary(name, value) {
    const el = document.querySelector(`[data-summary="${name}"]`);
    const text = formatNumber(value);
    if (el && el.textContent !== text) {
        el.textContent = text;
    }
    return el;
}

function updateSummary(info) {
    const faktory = info.faktory || {};
    const sets = faktory.sets || {};
    const tasks = faktory.tasks || {};
    setSummary('processed', faktory.total_processed);
    const failed = setSummary('failed', faktory.total_failures);
    failed.classList.toggle('nonzero', faktory.total_failures > 0);
    setSummary('busy', sets.working ?? tasks.Busy?.size);
    setSummary('enqueued', faktory.total_enqueued);
    setSummary('retries', sets.retries ?? tasks.Retries?.size);
    setSummary('scheduled', sets.scheduled ?? tasks.Scheduled?.size);
    setSummary('dead', sets.dead ?? tasks.Dead?.size);
}

function showTab(group, tab, visible) {
    group.querySelector(`a[data-tab="${tab}"]`).closest('li').hidden = !visible;
}

// Shows each enterprise tab whose feature is configured, and the group when any tab shows.
// cron is null when /api/cron failed, and the Cron tab then keeps its state.
function updateEnterpriseTabs(info, cron) {
    const group = document.getElementById('nav-enterprise');
    showTab(group, 'throttles', hasThrottles(info));
    if (cron) {
        showTab(group, 'cron', hasCronEntries(cron));
    }
    group.hidden = [...group.querySelectorAll('li')].every((item) => item.hidden);
}

// Fetches /api/cron for the Cron tab, because INFO does not describe cron. Resolves with
// null on failure, so the other pages still update. The Cron page then requests the list
// again and shows the error.
function fetchCron() {
    return apiGet('/api/cron').catch(() => null);
}

function updateFooter(info) {
    const server = info.server || {};
    document.getElementById('footer-version').textContent =
        `${server.description || 'fabrik'} ${server.fabrik_version || ''}`.trim() +
        ` · Faktory protocol ${server.faktory_version || '?'}`;
    document.getElementById('footer-time').textContent = `Server time ${info.server_utc_time || ''}`;
}

function updatePollText() {
    document.getElementById('footer-poll').textContent = `Updates every ${pollInterval()} s`;
}

// Fetches /api/info, /api/cron and the current view's data once. The view's refresh gets
// INFO and { cron }, so the Cron page needs no request of its own. Concurrent calls share
// one run.
function poll() {
    if (app.polling) {
        return app.polling;
    }
    const view = app.view;
    app.polling = (async () => {
        try {
            const [info, cron] = await Promise.all([apiGet('/api/info'), fetchCron()]);
            app.info = info;
            setServerNow(info.now);
            updateSummary(info);
            updateEnterpriseTabs(info, cron);
            updateFooter(info);
            if (view === app.view) {
                await view.refresh(info, { cron });
                updateRelativeTimes(document.getElementById('main'));
            }
            dismissMessage('poll');
        } catch (err) {
            if (err.name !== 'AbortError') {
                notify(err.describe ? err.describe() : String(err.message || err), 'error', 'poll');
            }
        } finally {
            app.polling = null;
        }
    })();
    return app.polling;
}

function schedulePoll() {
    clearTimeout(app.timer);
    app.timer = setTimeout(async () => {
        if (!document.hidden) {
            await poll();
        }
        schedulePoll();
    }, pollInterval() * 1000);
}

// Refresh after an action: poll now, then restart the interval.
async function refreshNow() {
    if (app.polling) {
        await app.polling;
    }
    await poll();
    schedulePoll();
}

function render({ focus }) {
    const path = currentPath();
    const query = new URLSearchParams(window.location.search);
    const target = route(path);
    const main = document.getElementById('main');

    if (app.view && target.key === app.routeKey && app.view.queryChanged) {
        app.view.queryChanged({ query });
        return;
    }
    if (app.view) {
        app.view.unmount();
    }
    app.view = target.create();
    app.routeKey = target.key;
    app.view.mount(main, { query, path });
    document.title = `${app.view.title} · fabrik`;
    updateTabs(app.view.tab);
    if (focus) {
        const heading = main.querySelector('h1');
        (heading || main).focus();
    }
    refreshNow().catch(notifyError);
}

function go(path, { replace = false } = {}) {
    const target = url(path);
    if (replace) {
        history.replaceState(null, '', target);
    } else {
        history.pushState(null, '', target);
        dismissMessage('poll');
    }
    render({ focus: !replace });
}

function isPageLink(link, event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
        event.shiftKey || event.altKey) {
        return false;
    }
    if (link.target && link.target !== '_self') {
        return false;
    }
    if (link.hasAttribute('download') || link.origin !== window.location.origin) {
        return false;
    }
    const path = link.pathname;
    if (root && path !== root && !path.startsWith(`${root}/`)) {
        return false;
    }
    const local = root ? path.slice(root.length) || '/' : path;
    return !NON_PAGE_PREFIXES.some((prefix) => local.startsWith(prefix));
}

function onDocumentClick(event) {
    const link = event.target.closest('a[href]');
    if (!link || !isPageLink(link, event)) {
        return;
    }
    if (link.getAttribute('href').startsWith('#')) {
        return;
    }
    event.preventDefault();
    const local = (root ? link.pathname.slice(root.length) : link.pathname) || '/';
    const same = local === currentPath() && link.search === window.location.search;
    if (!same) {
        go(`${local}${link.search}`);
    }
}

// Checkboxes toggle with Space natively; Enter toggles them too, as in many data grids.
function onDocumentKeydown(event) {
    const target = event.target;
    if (event.key === 'Enter' && target instanceof HTMLInputElement && target.type === 'checkbox' &&
        !event.repeat) {
        event.preventDefault();
        target.click();
    }
}

function start() {
    connectShell(go, refreshNow);
    document.addEventListener('click', onDocumentClick);
    document.addEventListener('keydown', onDocumentKeydown);
    window.addEventListener('popstate', () => render({ focus: false }));
    document.addEventListener('visibilitychange', () => {
        if (!document.hidden) {
            refreshNow();
        }
    });
    onPollIntervalChange(() => {
        updatePollText();
        schedulePoll();
    });
    updatePollText();
    render({ focus: false });
}

start();
