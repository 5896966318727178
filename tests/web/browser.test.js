'use strict';
// Drives the web UI in Debian's Chromium (playwright-core) against the real server. Every
// page must load with seeded data and without console errors, and every action must work
// through the UI. The tests also cover live updates, dark mode (prefers-color-scheme) and
// one action done by keyboard alone. A screenshot of each page is saved for people to see.
// The Throttles and Cron pages run against servers of their own, whose configuration has
// throttles or cron entries.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const { FabrikServer, FailureTracker, stopAll } = require('./lib/server');
const { SCREENSHOT_DIR, launchBrowser, openPage, screenshot, waitForSummary } = require('./lib/browser');
const { FwpClient, makeJob } = require('./lib/fwp');
const { client } = require('./lib/http');

// The UI polls every 2 s in these tests (the minimum), so live changes show within ~2 s.
const POLL_SECONDS = 2;
const LIVE_TIMEOUT_MS = 8000;
const LONG_BACKOFF_FAILURE = { retry_count: 10, remaining: 15 };
const HOUR_MS = 3600 * 1000;

let server;
let fwp;
let web;
let worker;
let heartbeat;
let browser;
let context;
const tracker = new FailureTracker();
const check = (fn) => tracker.check(fn);
const seeded = {};

async function seed() {
    for (let i = 0; i < 30; i++) {
        await fwp.push(makeJob({
            queue: 'default', jobtype: i % 2 ? 'SendEmail' : 'ResizeImage', args: [i, `user${i}@example.com`],
        }));
    }
    for (let i = 0; i < 5; i++) {
        await fwp.push(makeJob({ queue: 'critical', jobtype: 'ChargeCard', args: [100 + i], priority: 9 }));
    }
    seeded.retries = [];
    const errors = [['Net::Timeout', 'execution expired'], ['CardDeclined', 'card declined'], ['RuntimeError', 'boom']];
    for (let i = 0; i < 6; i++) {
        const [errtype, message] = errors[i % 3];
        seeded.retries.push(await fwp.pushAndFail(makeJob({
            queue: i % 2 ? 'billing' : 'mail', jobtype: i % 2 ? 'ChargeCard' : 'SendEmail',
            args: [{ order: 1000 + i }], custom: { tenant: 'acme' }, failure: LONG_BACKOFF_FAILURE,
        }), errtype, `${message} #${i}`, ['app/jobs/charge.rb:12', 'lib/worker.rb:40']));
    }
    seeded.scheduled = [];
    for (let i = 1; i <= 3; i++) {
        seeded.scheduled.push(await fwp.push(makeJob({
            queue: 'mail', jobtype: 'Reminder', args: [`reminder ${i}`],
            at: new Date(Date.now() + i * HOUR_MS).toISOString(),
        })));
    }
    seeded.dead = [];
    seeded.dead.push(await fwp.pushAndFail(makeJob({
        queue: 'billing', jobtype: 'ChargeCard', retry: -1, args: ['<img src=x onerror="window.pwned=1">'],
    }), 'Stripe::CardError', '<b>declined</b>'));
    seeded.dead.push(await fwp.pushAndFail(makeJob({ queue: 'billing', jobtype: 'Refund', retry: -1 }),
        'IOError', 'disk full'));

    worker = await FwpClient.connect(server.port, {
        hello: { wid: 'worker-7f3a', hostname: 'app-host-1', pid: 4242, labels: ['ruby', 'blue'] },
    });
    await fwp.push(makeJob({ queue: 'busy-q', jobtype: 'LongReport', args: ['2026-Q4'] }));
    seeded.working = await worker.fetch('busy-q');
    // Workers that send no BEAT for 60 s are dropped, and this run takes longer than that.
    heartbeat = setInterval(() => worker.beat('worker-7f3a').catch(() => {}), 10000);
}

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-web-browser' }).start();
    fwp = await FwpClient.connect(server.port);
    web = client(server.webPort);
    await seed();
    browser = await launchBrowser(server.webUrl, { pollSeconds: POLL_SECONDS });
    context = browser.context;
    console.log(`screenshots are saved in ${SCREENSHOT_DIR}`);
});

after(async () => {
    if (browser) {
        await browser.close();
    }
    clearInterval(heartbeat);
    if (worker) {
        worker.close();
    }
    if (fwp) {
        fwp.close();
    }
    if (server) {
        await stopAll([server], tracker.failed);
    }
});

function open(pagePath, { allowed } = {}) {
    return openPage(context, pagePath, { allowed, ready: waitForData });
}

// Waits until the summary bar and the page's table or content have data.
async function waitForData(page) {
    await waitForSummary(page);
    await page.waitForFunction(() => !document.querySelector('main table') ||
        document.querySelectorAll('main table tbody tr').length > 0);
}

async function apiJson(pathname) {
    const res = await web.get(pathname);
    assert.equal(res.status, 200, `GET ${pathname}: ${res.text.slice(0, 200)}`);
    return res.json;
}

async function jobIdOf(set, jid) {
    const list = await apiJson(`/api/sets/${set}?q=${encodeURIComponent(jid)}`);
    assert.equal(list.jobs.length, 1, `${jid} is in ${set}`);
    return list.jobs[0].id;
}

// Pushes count jobs of a new job type into the retry set, through a queue named after the
// job type, and returns them.
async function seedRetries(jobtype, count) {
    const jobs = [];
    for (let i = 0; i < count; i++) {
        jobs.push(await fwp.pushAndFail(makeJob({ jobtype, queue: `ui-${jobtype}`, failure: LONG_BACKOFF_FAILURE }),
            'UiError', `${jobtype} failed`));
    }
    return jobs;
}

async function confirmDialog(page) {
    const dialog = page.locator('#confirm-dialog');
    await dialog.waitFor({ state: 'visible' });
    await page.locator('#confirm-ok').click();
    await dialog.waitFor({ state: 'hidden' });
}

async function successMessage(page, pattern) {
    await page.locator('.message-success p', { hasText: pattern }).first().waitFor();
}

describe('pages', () => {
    test('every page loads with data and without console errors', check(async () => {
        const retryId = await jobIdOf('retries', seeded.retries[0].jid);
        const scheduledId = await jobIdOf('scheduled', seeded.scheduled[0].jid);
        const deadId = await jobIdOf('dead', seeded.dead[0].jid);
        const pages = [
            ['/', 'dashboard', 'Dashboard', 'dashboard'],
            ['/busy', 'busy', 'Busy', 'busy'],
            ['/queues', 'queues', 'Queues', 'queues'],
            ['/queues/default', 'queue-default', 'Queue default', 'queues'],
            ['/retries', 'retries', 'Retries', 'retries'],
            [`/retries/${retryId}`, 'retry-job', 'SendEmail', 'retries'],
            ['/scheduled', 'scheduled', 'Scheduled jobs', 'scheduled'],
            [`/scheduled/${scheduledId}`, 'scheduled-job', 'Reminder', 'scheduled'],
            ['/morgue', 'dead', 'Dead jobs', 'dead'],
            [`/morgue/${deadId}`, 'dead-job', 'ChargeCard', 'dead'],
        ];
        const saved = [];

        for (const [pagePath, name, heading, tab] of pages) {
            const { page, close } = await open(pagePath);
            await page.locator('main h1', { hasText: heading }).waitFor();
            const current = await page.locator('.tabs a[aria-current="page"]').getAttribute('data-tab');
            assert.equal(current, tab, `${pagePath}: active tab`);
            assert.match(await page.title(), /· fabrik$/, `${pagePath}: title`);
            if (name === 'dashboard') {
                // Two polls give the first live sample.
                // A flat line at zero has no height, so wait for it in the DOM, not for visibility.
                await page.locator('#live-chart path.series.series-processed')
                    .waitFor({ state: 'attached', timeout: LIVE_TIMEOUT_MS });
                await page.locator('#history-chart path.series.series-processed').waitFor({ state: 'attached' });
            }
            saved.push(await screenshot(page, name));
            await close();
        }

        for (const [pagePath, name] of [['/', 'dashboard-dark'], ['/retries', 'retries-dark'], ['/busy', 'busy-dark']]) {
            const { page, close } = await open(pagePath);
            await page.emulateMedia({ colorScheme: 'dark' });
            saved.push(await screenshot(page, name));
            await close();
        }

        const { page, close } = await open('/queues');
        await page.setViewportSize({ width: 390, height: 844 });
        saved.push(await screenshot(page, 'queues-narrow'));
        await close();
        console.log(`saved ${saved.length} screenshots:\n${saved.join('\n')}`);
    }));

    test('summary bar shows INFO counts and links to pages', check(async () => {
        const { page, close } = await open('/queues');
        const info = await apiJson('/api/info');
        const expected = {
            processed: info.faktory.total_processed,
            failed: info.faktory.total_failures,
            busy: info.faktory.sets.working,
            enqueued: info.faktory.total_enqueued,
            retries: info.faktory.sets.retries,
            scheduled: info.faktory.sets.scheduled,
            dead: info.faktory.sets.dead,
        };
        for (const [name, value] of Object.entries(expected)) {
            const text = await page.locator(`[data-summary="${name}"]`).textContent();
            assert.equal(text.replace(/,/g, ''), String(value), `summary ${name}`);
        }
        await page.locator('.summary a', { hasText: 'Retries' }).click();
        await page.waitForURL(/\/retries$/);
        await page.locator('main h1', { hasText: 'Retries' }).waitFor();
        await page.locator('.summary a', { hasText: 'Dead' }).click();
        await page.waitForURL(/\/morgue$/);
        await page.locator('main h1', { hasText: 'Dead jobs' }).waitFor();
        await close();
    }));

    test('navigation changes pages without a reload', check(async () => {
        const { page, close } = await open('/');
        await page.evaluate(() => {
            window.fabrikTestMarker = 'still here';
        });
        for (const [name, heading] of [['Busy', 'Busy'], ['Queues', 'Queues'], ['Scheduled', 'Scheduled jobs']]) {
            await page.locator('.tabs a', { hasText: name }).click();
            await page.locator('main h1', { hasText: heading }).waitFor();
        }
        await page.goBack();
        await page.locator('main h1', { hasText: 'Queues' }).waitFor();
        assert.equal(await page.evaluate(() => window.fabrikTestMarker), 'still here', 'no reload happened');
        const missing = await context.newPage();
        await missing.goto('/no/such/page');
        await missing.locator('main h1', { hasText: 'Page not found' }).waitFor();
        await missing.close();
        await close();
    }));

    test('job arguments and errors are shown as text', check(async () => {
        const { page, close } = await open('/morgue');
        await page.locator('td.args', { hasText: '<img src=x' }).first().waitFor();
        assert.equal(await page.locator('main img').count(), 0, 'no element from job data');
        assert.equal(await page.locator('main b').count(), 0);
        await page.locator('td.error-text', { hasText: 'Stripe::CardError: <b>declined</b>' }).waitFor();
        assert.equal(await page.evaluate(() => window.pwned), undefined);
        await close();
    }));
});

describe('set actions', () => {
    test('retry, delete and kill selected retries', check(async () => {
        const jobs = await seedRetries('UiSelected', 3);
        const { page, close } = await open('/retries?jobtype=UiSelected');
        await page.locator('#jobs-table tbody tr').nth(2).waitFor();
        assert.equal(await page.locator('#jobs-table tbody tr').count(), 3);
        const box = (job) => page.getByRole('checkbox', { name: `Select job UiSelected ${job.jid}` });

        await box(jobs[0]).check();
        assert.equal(await page.locator('.selection-count').textContent(), '1 selected');
        await page.locator('#selected-retry').click();
        await successMessage(page, 'Retried 1 job');
        assert.equal((await apiJson(`/api/jobs/${await idByJid(jobs[0].jid)}`)).job.state, 'queued');

        await box(jobs[1]).check();
        await page.locator('#selected-kill').click();
        await confirmDialog(page);
        await successMessage(page, 'Killed 1 job');
        assert.equal((await apiJson(`/api/sets/dead?jobtype=UiSelected`)).total, 1);

        await box(jobs[2]).check();
        await page.locator('#selected-delete').click();
        await confirmDialog(page);
        await successMessage(page, 'Deleted 1 job');
        assert.equal((await apiJson('/api/sets/retries?jobtype=UiSelected')).total, 0);
        await page.locator('td.empty', { hasText: 'No jobs match the filters.' }).waitFor();
        await close();
    }));

    test('cancel in the confirmation changes nothing', check(async () => {
        const [job] = await seedRetries('UiCancel', 1);
        const { page, close } = await open('/retries?jobtype=UiCancel');
        await page.getByRole('checkbox', { name: `Select job UiCancel ${job.jid}` }).check();
        await page.locator('#selected-delete').click();
        await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
        await page.locator('#confirm-cancel').click();
        await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
        assert.equal((await apiJson('/api/sets/retries?jobtype=UiCancel')).total, 1);
        await close();
    }));

    test('delete all and retry all act on matching jobs', check(async () => {
        await seedRetries('UiBulkA', 3);
        await seedRetries('UiBulkB', 2);
        const { page, close } = await open('/retries?jobtype=UiBulkA');
        await page.locator('#jobs-table tbody tr').nth(2).waitFor();
        await page.locator('#all-delete').click();
        await page.locator('#confirm-title', { hasText: 'all 3 jobs in Retries that match the filters' }).waitFor();
        await confirmDialog(page);
        await successMessage(page, 'Deleted 3 jobs');
        assert.equal((await apiJson('/api/sets/retries?jobtype=UiBulkA')).total, 0);
        assert.equal((await apiJson('/api/sets/retries?jobtype=UiBulkB')).total, 2, 'other jobs stay');

        await page.goto('/retries?jobtype=UiBulkB');
        await page.locator('#jobs-table tbody tr').nth(1).waitFor();
        await page.locator('#all-retry').click();
        await confirmDialog(page);
        await successMessage(page, 'Retried 2 jobs');
        assert.equal((await apiJson('/api/sets/retries?jobtype=UiBulkB')).total, 0);
        assert.equal((await apiJson('/api/queues/ui-UiBulkB')).total, 2);
        await close();
    }));

    test('scheduled: enqueue now; dead: retry and delete', check(async () => {
        const job = await fwp.push(makeJob({
            queue: 'ui-later', jobtype: 'UiScheduled', at: new Date(Date.now() + 5 * HOUR_MS).toISOString(),
        }));
        const { page, close } = await open('/scheduled?jobtype=UiScheduled');
        await page.getByRole('checkbox', { name: `Select job UiScheduled ${job.jid}` }).check();
        await page.locator('#selected-retry', { hasText: 'Enqueue now' }).click();
        await successMessage(page, 'Enqueued 1 job');
        assert.equal((await apiJson('/api/queues/ui-later')).total, 1);

        const dead = [];
        for (let i = 0; i < 2; i++) {
            dead.push(await fwp.pushAndFail(makeJob({ queue: 'ui-dead', jobtype: 'UiDead', retry: -1 }), 'E', 'dead'));
        }
        await page.goto('/morgue?jobtype=UiDead');
        await page.locator('#jobs-table tbody tr').nth(1).waitFor();
        assert.equal(await page.locator('#selected-kill').count(), 0, 'no Kill on the dead set');
        await page.getByRole('checkbox', { name: `Select job UiDead ${dead[0].jid}` }).check();
        await page.locator('#selected-retry').click();
        await successMessage(page, 'Retried 1 job');
        await page.getByRole('checkbox', { name: `Select job UiDead ${dead[1].jid}` }).check();
        await page.locator('#selected-delete').click();
        await confirmDialog(page);
        await successMessage(page, 'Deleted 1 job');
        assert.equal((await apiJson('/api/sets/dead?jobtype=UiDead')).total, 0);
        await close();
    }));

    test('job detail shows failure, raw JSON and actions', check(async () => {
        const [job] = await seedRetries('UiDetail', 1);
        const id = await idByJid(job.jid);
        const { page, close } = await open(`/retries/${id}`, { allowed: [/status of 404/] });
        await page.locator('main h1', { hasText: `UiDetail ${job.jid}` }).waitFor();
        await page.locator('.detail dd', { hasText: 'UiError' }).waitFor();
        await page.locator('.detail dd', { hasText: 'UiDetail failed' }).waitFor();
        assert.equal(await page.locator('#job-raw-json').isVisible(), false);
        const toggle = page.getByRole('button', { name: 'Show raw JSON' });
        await toggle.click();
        await page.locator('#job-raw-json').waitFor({ state: 'visible' });
        const raw = JSON.parse(await page.locator('#job-raw-json').textContent());
        assert.equal(raw.jid, job.jid);
        assert.equal(raw.failure.errtype, 'UiError');
        assert.equal(await page.getByRole('button', { name: 'Hide raw JSON' }).getAttribute('aria-expanded'), 'true');
        // The raw view stays open across polls.
        await page.waitForTimeout(POLL_SECONDS * 1000 + 500);
        assert.equal(await page.locator('#job-raw-json').isVisible(), true);

        await page.locator('#job-kill').click();
        await confirmDialog(page);
        await page.waitForURL(/\/retries$/);
        await successMessage(page, 'Killed 1 job');
        assert.equal((await apiJson(`/api/jobs/${id}`)).job.state, 'dead');

        await page.goto(`/retries/${id}`);
        await page.locator('.notice', { hasText: 'no longer in Retries' }).waitFor();
        await page.goto('/retries/99999999');
        await page.locator('.notice', { hasText: 'no longer exists' }).waitFor();
        await close();
    }));
});

describe('queues and busy', () => {
    test('pause, resume and clear a queue', check(async () => {
        for (let i = 0; i < 3; i++) {
            await fwp.push(makeJob({ queue: 'ui-pausable', jobtype: 'UiQueued' }));
        }
        const { page, close } = await open('/queues');
        await page.getByRole('button', { name: 'Pause queue ui-pausable' }).click();
        await page.getByRole('button', { name: 'Resume queue ui-pausable' }).waitFor();
        await successMessage(page, 'Paused queue ui-pausable');
        assert.equal((await apiJson('/api/queues/ui-pausable')).queue.paused, true);
        await page.locator('tr', { hasText: 'ui-pausable' }).locator('.badge', { hasText: 'paused' }).waitFor();

        await page.getByRole('button', { name: 'Resume queue ui-pausable' }).click();
        await page.getByRole('button', { name: 'Pause queue ui-pausable' }).waitFor();
        assert.equal((await apiJson('/api/queues/ui-pausable')).queue.paused, false);

        await page.getByRole('button', { name: 'Clear queue ui-pausable' }).click();
        await page.locator('#confirm-text', { hasText: '3 jobs' }).waitFor();
        await confirmDialog(page);
        await successMessage(page, 'Cleared queue ui-pausable: 3 jobs deleted');
        await page.locator('tr', { hasText: 'ui-pausable' }).waitFor({ state: 'detached' });
        assert.equal((await web.get('/api/queues/ui-pausable')).status, 404);
        await close();
    }));

    test('queue detail pages and deletes selected jobs', check(async () => {
        const pushed = [];
        for (let i = 0; i < 30; i++) {
            pushed.push(await fwp.push(makeJob({ queue: 'ui-paged', jobtype: 'UiPaged', args: [i] })));
        }
        const { page, close } = await open('/queues/ui-paged');
        const rows = page.locator('#queue-jobs tbody tr');
        await rows.nth(24).waitFor();
        assert.equal(await rows.count(), 25);
        assert.match(await page.locator('.pager .range').textContent(), /1–25 of 30/);
        await page.getByRole('link', { name: 'Next page' }).click();
        await page.waitForURL(/page=2/);
        await page.locator('.pager .range', { hasText: '26–30 of 30' }).waitFor();
        assert.equal(await rows.count(), 5);
        await page.getByRole('link', { name: 'Page 1' }).click();
        await page.locator('.pager .range', { hasText: '1–25 of 30' }).waitFor();

        await page.getByRole('checkbox', { name: `Select job ${pushed[0].jid}` }).check();
        await page.getByRole('checkbox', { name: `Select job ${pushed[1].jid}` }).check();
        await page.locator('#delete-selected').click();
        await confirmDialog(page);
        await successMessage(page, 'Deleted 2 jobs from ui-paged');
        await page.locator('.pager .range', { hasText: '1–25 of 28' }).waitFor();
        const remaining = (await apiJson('/api/queues/ui-paged?per_page=100')).jobs.map((j) => j.jid);
        assert.deepEqual(remaining, pushed.slice(2).map((j) => j.jid));

        await page.getByRole('button', { name: `Show job ${pushed[2].jid}` }).click();
        await page.locator('#job-dialog .detail dd', { hasText: pushed[2].jid }).waitFor();
        await page.locator('#job-dialog').getByRole('button', { name: 'Close' }).click();
        await page.locator('#job-dialog').waitFor({ state: 'hidden' });
        await close();
    }));

    test('quiet and stop workers', check(async () => {
        const { page, close } = await open('/busy');
        await page.locator('td', { hasText: 'app-host-1:4242' }).waitFor();
        await page.locator('td', { hasText: seeded.working.jid }).waitFor();
        await page.getByRole('button', { name: 'Quiet worker worker-7f3a' }).click();
        await successMessage(page, 'Quieted worker worker-7f3a');
        await page.locator('.badge', { hasText: 'quiet' }).waitFor();
        assert.equal(await worker.beat('worker-7f3a'), 'quiet');

        await page.locator('#stop-all').click();
        await confirmDialog(page);
        await successMessage(page, 'Stopped 1 worker process');
        await page.locator('.badge', { hasText: 'stopping' }).waitFor();
        assert.equal(await page.getByRole('button', { name: 'Stop worker worker-7f3a' }).count(), 0);
        assert.equal(await worker.beat('worker-7f3a'), 'terminate');
        await close();
    }));
});

describe('filters, live updates and preferences', () => {
    test('filter menus and search narrow the list', check(async () => {
        const { page, close } = await open('/retries');
        const rows = page.locator('#jobs-table tbody tr');
        await page.locator('#filter-jobtype option', { hasText: 'ChargeCard' }).waitFor({ state: 'attached' });
        const jobtypes = await page.locator('#filter-jobtype option').allTextContents();
        const listed = await apiJson('/api/sets/retries');
        assert.deepEqual(jobtypes, ['All', ...listed.jobtypes]);

        await page.selectOption('#filter-jobtype', 'ChargeCard');
        await page.waitForURL(/jobtype=ChargeCard/);
        await page.locator('.subtitle', { hasText: '3 jobs match the filters' }).waitFor();
        assert.equal(await rows.count(), 3);

        await page.selectOption('#filter-errtype', 'CardDeclined');
        await page.waitForURL(/errtype=CardDeclined/);
        await page.locator('.subtitle', { hasText: '1 job match the filters' }).waitFor();

        await page.getByRole('button', { name: 'Clear filters' }).click();
        await page.waitForURL((url) => url.search === '');
        await page.locator('#filter-q').fill('#4');
        await page.locator('#filter-q').press('Enter');
        await page.waitForURL(/q=%234/);
        await page.locator('.subtitle', { hasText: '1 job match the filters' }).waitFor();
        assert.match(await rows.first().textContent(), /boom #4|execution expired #4|card declined #4/);

        await page.selectOption('#filter-queue', 'mail');
        await page.waitForURL(/queue=mail/);
        await page.locator('.subtitle', { hasText: '1 job match the filters' }).waitFor();
        await page.locator('#filter-q').fill('');
        await page.locator('#filter-q').press('Enter');
        await page.locator('.subtitle', { hasText: '3 jobs match the filters' }).waitFor();

        await page.selectOption('#filter-per-page', '50');
        await page.waitForURL(/per_page=50/);
        await page.reload();
        await waitForData(page);
        assert.equal(await page.locator('#filter-queue').inputValue(), 'mail', 'filters survive a reload');
        assert.equal(await page.locator('#filter-per-page').inputValue(), '50');
        await close();
    }));

    test('retry list pages', check(async () => {
        await seedRetries('UiPagedRetry', 7);
        const { page, close } = await open('/retries?jobtype=UiPagedRetry&per_page=25');
        await page.locator('.pager .range', { hasText: '1–7 of 7' }).waitFor();
        await page.goto('/retries?jobtype=UiPagedRetry&per_page=25&page=3');
        // A page past the end moves to the last page.
        await page.waitForURL(/page=1/);
        await page.locator('.pager .range', { hasText: '1–7 of 7' }).waitFor();
        await close();
    }));

    test('a pushed job appears without reloading', check(async () => {
        const { page, close } = await open('/queues');
        await page.evaluate(() => {
            window.fabrikTestMarker = 'no reload';
        });
        const enqueuedBefore = Number((await page.locator('[data-summary="enqueued"]').textContent()).replace(/,/g, ''));
        await fwp.push(makeJob({ queue: 'ui-live', jobtype: 'UiLive' }));
        await page.locator('#queues-table a', { hasText: 'ui-live' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
        await page.waitForFunction((before) => {
            const text = document.querySelector('[data-summary="enqueued"]').textContent;
            return Number(text.replace(/,/g, '')) === before + 1;
        }, enqueuedBefore, { timeout: LIVE_TIMEOUT_MS });
        assert.equal(await page.evaluate(() => window.fabrikTestMarker), 'no reload');
        await close();
    }));

    test('selection and focus survive polling', check(async () => {
        const jobs = await seedRetries('UiKeep', 2);
        const { page, close } = await open('/retries?jobtype=UiKeep');
        const box = page.getByRole('checkbox', { name: `Select job UiKeep ${jobs[1].jid}` });
        await box.check();
        await box.focus();
        await seedRetries('UiKeep', 1);
        await page.locator('#jobs-table tbody tr').nth(2).waitFor({ timeout: LIVE_TIMEOUT_MS });
        await page.waitForTimeout(POLL_SECONDS * 1000 + 500);
        assert.equal(await box.isChecked(), true, 'still selected');
        assert.equal(await page.locator('.selection-count').textContent(), '1 selected');
        assert.equal(await box.evaluate((el) => el === document.activeElement), true, 'still focused');
        await close();
    }));

    test('dashboard interval, live graph and history range', check(async () => {
        const { page, close } = await open('/');
        const slider = page.getByRole('slider', { name: 'Polling interval' });
        assert.equal(await slider.inputValue(), String(POLL_SECONDS));
        await slider.focus();
        await page.keyboard.press('ArrowRight');
        await page.keyboard.press('ArrowRight');
        await page.locator('#poll-interval-value', { hasText: '4 s' }).waitFor();
        assert.equal(await page.evaluate(() => localStorage.getItem('fabrik.pollInterval')), '4');
        await page.locator('#footer-poll', { hasText: 'every 4 s' }).waitFor();
        await page.reload();
        await waitForData(page);
        assert.equal(await page.getByRole('slider', { name: 'Polling interval' }).inputValue(), '4', 'remembered across reloads');
        await page.evaluate((s) => localStorage.setItem('fabrik.pollInterval', String(s)), POLL_SECONDS);

        const week = page.getByRole('button', { name: '1 week' });
        await week.click();
        await page.waitForURL(/days=7/);
        assert.equal(await week.getAttribute('aria-pressed'), 'true');
        await page.waitForFunction(() => document.querySelector('#history-chart svg')
            ?.getAttribute('aria-label').includes('last 7 days'));
        await page.getByRole('button', { name: '6 months' }).click();
        await page.waitForFunction(() => document.querySelector('#history-chart svg')
            ?.getAttribute('aria-label').includes('last 180 days'));
        const info = await apiJson('/api/info');
        const label = await page.locator('#history-chart svg').getAttribute('aria-label');
        assert.match(label, new RegExp(`${info.faktory.total_processed.toLocaleString('en-US')} processed`));
        await close();
    }));

    test('dark mode follows prefers-color-scheme', check(async () => {
        const { page, close } = await open('/retries');
        const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
        const luminance = (rgb) => {
            const [r, g, b] = rgb.match(/\d+/g).map(Number);
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        await page.emulateMedia({ colorScheme: 'light' });
        assert.ok(luminance(await background()) > 200, `light background ${await background()}`);
        await page.emulateMedia({ colorScheme: 'dark' });
        assert.ok(luminance(await background()) < 50, `dark background ${await background()}`);
        const text = await page.evaluate(() => getComputedStyle(document.body).color);
        assert.ok(luminance(text) > 180, `light text on dark ${text}`);
        await page.emulateMedia({ colorScheme: 'light' });
        await close();
    }));

    test('API errors are shown in the message area', check(async () => {
        const { page, close } = await open('/retries', { allowed: [/status of 503/, /status of 404/] });
        await page.route('**/api/sets/retries?*', (route) => route.fulfill({
            status: 503, contentType: 'application/json',
            body: JSON.stringify({ error: 'storage failure, nothing was changed: disk I/O error' }),
        }));
        const alert = page.locator('#messages-alert .message-error');
        await alert.waitFor({ timeout: LIVE_TIMEOUT_MS });
        assert.match(await alert.textContent(), /status 503: storage failure, nothing was changed: disk I\/O error/);
        await page.unroute('**/api/sets/retries?*');
        await alert.waitFor({ state: 'detached', timeout: LIVE_TIMEOUT_MS });
        await page.goto('/queues/no-such-queue');
        await page.locator('.notice', { hasText: 'Queue no-such-queue does not exist' }).waitFor();
        await close();
    }));
});

describe('keyboard and proxy', () => {
    test('keyboard alone pauses a queue and selects a job', check(async () => {
        await fwp.push(makeJob({ queue: 'ui-keyboard', jobtype: 'UiKeyboard' }));
        const { page, close } = await open('/queues');
        await page.locator('#queues-table a', { hasText: 'ui-keyboard' }).waitFor();

        await page.keyboard.press('Tab');
        assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to main content');
        await page.keyboard.press('Enter');
        assert.equal(await page.evaluate(() => document.activeElement.id), 'main');

        const target = 'Pause queue ui-keyboard';
        let found = false;
        for (let i = 0; i < 60 && !found; i++) {
            await page.keyboard.press('Tab');
            found = await page.evaluate((name) => document.activeElement.getAttribute('aria-label') === name, target);
        }
        assert.ok(found, `${target} is reachable with Tab`);
        const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
        assert.notEqual(outline, 'none', 'the focused button shows a focus ring');
        await page.keyboard.press('Enter');
        await page.getByRole('button', { name: 'Resume queue ui-keyboard' }).waitFor();
        assert.equal((await apiJson('/api/queues/ui-keyboard')).queue.paused, true);

        const [job] = await seedRetries('UiKeyboardRetry', 1);
        await page.goto('/retries?jobtype=UiKeyboardRetry');
        await waitForData(page);
        const box = page.getByRole('checkbox', { name: `Select job UiKeyboardRetry ${job.jid}` });
        await box.waitFor();
        let onBox = false;
        for (let i = 0; i < 60 && !onBox; i++) {
            await page.keyboard.press('Tab');
            onBox = await box.evaluate((el) => el === document.activeElement);
        }
        assert.ok(onBox, 'the row checkbox is reachable with Tab');
        await page.keyboard.press('Enter');
        assert.equal(await box.isChecked(), true, 'Enter checks');
        await page.keyboard.press('Space');
        assert.equal(await box.isChecked(), false, 'Space unchecks');
        await page.keyboard.press('Space');
        assert.equal(await box.isChecked(), true);
        await page.keyboard.press('Shift+Tab');
        await page.keyboard.press('Shift+Tab');
        // From the header checkbox, Shift+Tab reaches the action buttons; find Delete.
        let onDelete = false;
        for (let i = 0; i < 20 && !onDelete; i++) {
            onDelete = await page.evaluate(() => document.activeElement.id === 'selected-delete');
            if (!onDelete) {
                await page.keyboard.press('Shift+Tab');
            }
        }
        assert.ok(onDelete, 'Delete is reachable with Shift+Tab');
        await page.keyboard.press('Enter');
        await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
        assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-cancel', 'Cancel has the focus');
        await page.keyboard.press('Tab');
        await page.keyboard.press('Enter');
        await successMessage(page, 'Deleted 1 job');
        assert.equal((await apiJson('/api/sets/retries?jobtype=UiKeyboardRetry')).total, 0);
        await close();
    }));

    test('X-Script-Name prefixes links and API calls', check(async () => {
        const page = await context.newPage();
        const errors = [];
        page.on('pageerror', (err) => errors.push(err.message));
        page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
        const requests = [];
        page.on('request', (req) => requests.push(new URL(req.url()).pathname));
        await page.setExtraHTTPHeaders({ 'X-Script-Name': '/fabrik' });
        await page.goto('/fabrik/retries');
        await waitForData(page);
        await page.locator('#jobs-table tbody tr').first().waitFor();
        const hrefs = await page.locator('a[href]').evaluateAll((links) => links.map((a) => a.getAttribute('href')));
        for (const href of hrefs) {
            if (!href.startsWith('#')) {
                assert.match(href, /^\/fabrik(\/|$)/, `link ${href} starts with the prefix`);
            }
        }
        await page.locator('.tabs a', { hasText: 'Queues' }).click();
        await page.waitForURL(/\/fabrik\/queues$/);
        await page.locator('main h1', { hasText: 'Queues' }).waitFor();
        // The heading shows before the page's first API call returns, so wait for the call.
        const deadline = Date.now() + 5000;
        while (!requests.includes('/fabrik/api/queues') && Date.now() < deadline) {
            await page.waitForTimeout(50);
        }
        const outside = requests.filter((p) => !p.startsWith('/fabrik/'));
        assert.deepEqual(outside, [], 'every request stays under the prefix');
        assert.ok(requests.includes('/fabrik/api/queues'), 'API calls use the prefix');
        assert.deepEqual(errors, []);
        await page.close();
    }));
});

describe('throttles', () => {
    const TOML = [
        '[throttles]',
        'images = { concurrency = 2, timeout = 300 }',
        'bulk = { worker = 1, timeout = 120 }',
        'api = { rate_limit = 100, rate_period = 60 }',
        '',
    ].join('\n');
    let throttled;
    let producer;
    const workers = {};
    const jobs = {};

    before(async () => {
        throttled = await new FabrikServer({ prefix: 'fabrik-web-throttles', toml: TOML }).start();
        producer = await FwpClient.connect(throttled.port);
        for (const wid of ['thr-worker-1', 'thr-worker-2']) {
            workers[wid] = await FwpClient.connect(throttled.port, {
                hello: { wid, hostname: 'render-host', pid: 77, labels: ['images'] },
            });
        }
        for (const name of ['i1', 'i2', 'i3']) {
            jobs[name] = await producer.push(makeJob({ queue: 'images', jobtype: 'ResizeImage' }));
        }
        jobs.b1 = await producer.push(makeJob({ queue: 'bulk', jobtype: 'ImportRows' }));
        jobs.a1 = await producer.push(makeJob({ queue: 'api', jobtype: 'CallPartnerApi' }));
        const first = workers['thr-worker-1'];
        for (const name of ['i1', 'i2', 'b1', 'a1']) {
            const queue = { i: 'images', b: 'bulk', a: 'api' }[name[0]];
            const job = await first.fetch(queue);
            assert.equal(job && job.jid, jobs[name].jid, `thr-worker-1 fetched ${name}`);
        }
    });

    after(async () => {
        for (const worker of Object.values(workers)) {
            worker.close();
        }
        if (producer) {
            producer.close();
        }
        if (throttled) {
            await stopAll([throttled], tracker.failed);
        }
    });

    function throttledUrl(pagePath) {
        return `${throttled.webUrl}${pagePath}`;
    }

    function row(page, queue) {
        return page.locator('#throttles-table tbody tr', { has: page.locator(`a:text-is("${queue}")`) });
    }

    test('tab and empty state without throttles', check(async () => {
        const { page, close } = await open('/');
        assert.equal(await page.locator('.tabs a[data-tab="batches"]').isVisible(), true, 'Batches always shows');
        assert.equal(await page.locator('.tabs a[data-tab="throttles"]').isVisible(), false);
        await page.goto('/throttles');
        await page.locator('main h1', { hasText: 'Throttles' }).waitFor();
        await page.locator('#throttles-empty', { hasText: 'No throttles are configured' }).waitFor();
        assert.equal(await page.locator('#throttles-table').isVisible(), false);
        assert.match(await page.locator('#throttles-empty pre').textContent(), /concurrency = 4, timeout = 30/);
        assert.equal(await page.locator('.tabs a[data-tab="throttles"]').isVisible(), false, 'still hidden on the page');
        await screenshot(page, 'throttles-empty');
        await close();
    }));

    test('page shows limits, slots and holders', check(async () => {
        const { page, close } = await open(throttledUrl('/throttles'));
        await row(page, 'images').waitFor();
        const current = await page.locator('.tabs a[aria-current="page"]').getAttribute('data-tab');
        assert.equal(current, 'throttles', 'active tab');
        assert.equal(await page.locator('#nav-enterprise').isVisible(), true, 'enterprise group shown');
        assert.equal(await page.locator('.tabs a[data-tab="cron"]').isVisible(), false, 'cron stays hidden');
        assert.equal(await page.locator('.tabs a[data-tab="batches"]').isVisible(), true, 'batches always shows');
        assert.deepEqual(await page.locator('#throttles-table tbody tr td:first-child').allTextContents(),
            ['api', 'bulk', 'images'], 'sorted by queue');

        const images = row(page, 'images');
        assert.match(await images.locator('.limits').textContent(), /^2 in total$/);
        assert.equal((await images.locator('td').nth(2).textContent()).trim(), '300 s');
        assert.equal(await images.locator('.slot-count').first().textContent(), '2 / 2');
        const meter = images.getByRole('meter', { name: 'Slots in use of queue images' });
        assert.equal(await meter.getAttribute('aria-valuenow'), '2');
        assert.equal(await meter.getAttribute('aria-valuemax'), '2');
        await images.locator('.badge', { hasText: 'full' }).waitFor();

        const bulk = row(page, 'bulk');
        assert.equal(await bulk.locator('.limits').textContent(), '1 per worker');
        await bulk.locator('td.usage', { hasText: 'busiest worker: thr-worker-1' }).waitFor();
        await bulk.locator('.badge', { hasText: 'full for a worker' }).waitFor();

        const api = row(page, 'api');
        assert.equal(await api.locator('.limits').textContent(), '100 per 60 s');
        assert.equal((await api.locator('td.usage').textContent()).trim(), '1 running');
        assert.equal((await api.locator('td').nth(2).textContent()).trim(), 'none');
        await api.locator('.badge', { hasText: 'open' }).waitFor();

        const holders = page.locator('#holders-table tbody tr');
        assert.equal(await holders.count(), 4);
        for (const name of ['i1', 'i2', 'b1', 'a1']) {
            const holder = page.locator('#holders-table tbody tr', { hasText: jobs[name].jid });
            assert.match(await holder.textContent(), /thr-worker-1/, `${name} is held by thr-worker-1`);
            assert.match(await holder.locator('time').first().textContent(), /ago|just now/, `${name}: taken`);
        }
        const imagesHolder = page.locator('#holders-table tbody tr', { hasText: jobs.i1.jid });
        assert.match(await imagesHolder.locator('time').nth(1).textContent(), /^in 4 min/, 'freed by the 300 s timeout');
        assert.match(await page.locator('main .subtitle').textContent(),
            /^3 throttled queues, 4 slots in use, 0 fetchers waiting$/);

        await screenshot(page, 'throttles');
        await page.emulateMedia({ colorScheme: 'dark' });
        const fill = await images.locator('.slot-bar-fill').evaluate((el) => getComputedStyle(el).backgroundColor);
        const track = await images.locator('.slot-bar').evaluate((el) => getComputedStyle(el).backgroundColor);
        assert.notEqual(fill, track, 'the bar stands out in dark mode');
        await screenshot(page, 'throttles-dark');
        await page.emulateMedia({ colorScheme: 'light' });

        await images.getByRole('link', { name: 'images' }).click();
        await page.locator('main h1', { hasText: 'Queue images' }).waitFor();
        await close();
    }));

    test('in_use and waiting update live', check(async () => {
        const { page, close } = await open(throttledUrl('/throttles'));
        await page.evaluate(() => {
            window.fabrikTestMarker = 'no reload';
        });
        const images = row(page, 'images');
        await images.locator('.slot-count', { hasText: '2 / 2' }).waitFor();

        // A FETCH on a full queue waits up to 2 s on the server; repeat it until the page shows
        // the waiting fetcher, then free a slot so the waiting FETCH takes i3.
        const second = workers['thr-worker-2'];
        let stop = false;
        const waiter = (async () => {
            while (!stop) {
                const job = await second.fetch('images');
                if (job) {
                    return job;
                }
            }
            return null;
        })();
        await images.locator('td[data-waiting="1"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
        await page.locator('main .subtitle', { hasText: '1 fetcher waiting' }).waitFor();
        await workers['thr-worker-1'].ack(jobs.i1.jid);
        const woken = await waiter;
        stop = true;
        assert.equal(woken && woken.jid, jobs.i3.jid, 'the waiting FETCH took the freed slot');
        await images.locator('td[data-waiting="0"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
        const holder = page.locator('#holders-table tbody tr', { hasText: jobs.i3.jid });
        await holder.waitFor({ timeout: LIVE_TIMEOUT_MS });
        assert.match(await holder.textContent(), /thr-worker-2/);
        await page.locator('#holders-table tbody tr', { hasText: jobs.i1.jid }).waitFor({ state: 'detached' });
        assert.equal(await images.locator('.slot-count').first().textContent(), '2 / 2');

        await workers['thr-worker-1'].ack(jobs.i2.jid);
        await images.locator('.slot-count', { hasText: '1 / 2' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
        assert.equal(await images.locator('td.usage').getAttribute('data-in-use'), '1');
        assert.equal(await images.getByRole('meter').getAttribute('aria-valuenow'), '1');
        await images.locator('.badge', { hasText: 'open' }).waitFor();
        const counters = await images.locator('td.num').allTextContents();
        assert.deepEqual(counters, ['0', '3', '2', '0'], 'waiting, taken, released, timed out');
        assert.equal(await page.evaluate(() => window.fabrikTestMarker), 'no reload');
        await close();
    }));

    test('keyboard reaches the Throttles tab', check(async () => {
        const { page, close } = await open(throttledUrl('/'));
        const tab = page.locator('.tabs a[data-tab="throttles"]');
        await tab.waitFor({ state: 'visible' });
        let onTab = false;
        for (let i = 0; i < 30 && !onTab; i++) {
            await page.keyboard.press('Tab');
            onTab = await tab.evaluate((el) => el === document.activeElement);
        }
        assert.ok(onTab, 'the Throttles tab is reachable with Tab');
        const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
        assert.notEqual(outline, 'none', 'the focused tab shows a focus ring');
        await page.keyboard.press('Enter');
        await page.locator('main h1', { hasText: 'Throttles' }).waitFor();
        assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the heading');
        let onLink = false;
        for (let i = 0; i < 20 && !onLink; i++) {
            await page.keyboard.press('Tab');
            onLink = await page.evaluate(() => document.activeElement.closest('#throttles-table') !== null);
        }
        assert.ok(onLink, 'the queue links are reachable with Tab');
        await close();
    }));
});

describe('cron', () => {
    // Daily and weekday schedules, so real time fires no entry while the tests run. The
    // live-update test moves the server clock with DEBUG CLOCK instead.
    const TOML = [
        '[[cron]]',
        'schedule = "15 4 * * *"',
        '  [cron.job]',
        '  type = "CleanupJob"',
        '  queue = "maintenance"',
        '',
        '[[cron]]',
        'schedule = "0 9 * * MON-FRI"',
        'timezone = "America/New_York"',
        'catch_up = "skip"',
        '  [cron.job]',
        '  type = "MorningReport"',
        '  queue = "reports"',
        '  args = ["daily", 3]',
        '  retry = 3',
        '  priority = 7',
        '',
        '[[cron]]',
        'schedule = "0 0 30 2 *"',
        '  [cron.job]',
        '  type = "NeverJob"',
        '  args = ["<img src=x onerror=\\"window.pwned=1\\">"]',
        '',
    ].join('\n');
    const DAY_MS = 24 * HOUR_MS;
    let scheduler;
    let schedulerFwp;
    let schedulerWeb;

    before(async () => {
        scheduler = await new FabrikServer({ prefix: 'fabrik-web-cron', toml: TOML }).start();
        schedulerFwp = await FwpClient.connect(scheduler.port);
        schedulerWeb = client(scheduler.webPort);
    });

    after(async () => {
        if (schedulerFwp) {
            schedulerFwp.close();
        }
        if (scheduler) {
            await stopAll([scheduler], tracker.failed);
        }
    });

    function cronUrl(pagePath) {
        return `${scheduler.webUrl}${pagePath}`;
    }

    async function schedulerJson(pathname) {
        const res = await schedulerWeb.get(pathname);
        assert.equal(res.status, 200, `GET ${pathname}: ${res.text.slice(0, 200)}`);
        return res.json;
    }

    async function entryOf(jobtype) {
        const found = (await schedulerJson('/api/cron')).entries.find((entry) => entry.job.jobtype === jobtype);
        assert.ok(found, `/api/cron lists ${jobtype}`);
        return found;
    }

    async function queueSize(name) {
        const queue = (await schedulerJson('/api/queues')).queues.find((q) => q.name === name);
        return queue ? queue.size : 0;
    }

    function row(page, jobtype) {
        return page.locator('#cron-table tbody tr', { has: page.locator(`strong.jobtype:text-is("${jobtype}")`) });
    }

    async function enqueuedCount(page) {
        return Number((await page.locator('[data-summary="enqueued"]').textContent()).replace(/,/g, ''));
    }

    test('tab and empty state without cron entries', check(async () => {
        const { page, close } = await open('/');
        assert.equal(await page.locator('.tabs a[data-tab="cron"]').isVisible(), false, 'Cron tab hidden');
        await page.goto('/cron');
        await page.locator('main h1', { hasText: 'Cron' }).waitFor();
        await page.locator('#cron-empty', { hasText: 'No cron entries are configured' }).waitFor();
        assert.equal(await page.locator('#cron-table').isVisible(), false);
        assert.match(await page.locator('#cron-empty pre').textContent(), /\[\[cron\]\]\nschedule = "\*\/5 \* \* \* \*"/);
        assert.equal(await page.locator('.tabs a[data-tab="cron"]').isVisible(), false, 'still hidden on the page');
        assert.equal(await page.locator('main .subtitle').textContent(), '');
        await screenshot(page, 'cron-empty');
        await close();
    }));

    test('page lists schedules, jobs and runs', check(async () => {
        const cleanup = await entryOf('CleanupJob');
        const report = await entryOf('MorningReport');
        const { page, close } = await open(cronUrl('/cron'));
        await row(page, 'CleanupJob').waitFor();
        assert.equal(await page.locator('#nav-enterprise').isVisible(), true, 'enterprise group shown');
        assert.equal(await page.locator('.tabs a[data-tab="cron"]').isVisible(), true, 'Cron tab shown');
        assert.equal(await page.locator('.tabs a[data-tab="throttles"]').isVisible(), false, 'no throttles');
        assert.equal(await page.locator('.tabs a[aria-current="page"]').getAttribute('data-tab'), 'cron');
        assert.equal(await page.title(), 'Cron · fabrik');
        assert.deepEqual(await page.locator('#cron-table strong.jobtype').allTextContents(),
            ['CleanupJob', 'MorningReport', 'NeverJob'], 'in the order of the file');
        assert.match(await page.locator('main .subtitle').textContent(), /^3 entries, next run in \d/);

        const first = row(page, 'CleanupJob');
        assert.equal(await first.locator('code.schedule').textContent(), '15 4 * * *');
        assert.match(await first.locator('td').first().textContent(), /UTC$/);
        assert.equal(await first.getByRole('link', { name: 'maintenance' }).getAttribute('href'), '/queues/maintenance');
        await first.locator('td.cron-job', { hasText: 'no arguments' }).waitFor();
        const next = first.locator('td.next-run');
        assert.equal(await next.getAttribute('data-time'), cleanup.next_run);
        assert.match(await next.locator('time').textContent(), /^in \d/, 'relative next run');
        assert.equal(await next.locator('time').getAttribute('datetime'), cleanup.next_run);
        assert.match(await next.textContent(), /\d{4}-\d\d-\d\d 04:15:00 UTC/, 'absolute next run');
        assert.equal((await first.locator('td.last-run').textContent()).trim(), 'never');
        assert.match(await first.locator('td.catch-up').textContent(), /^once/);
        assert.equal(await first.locator('.source-name').textContent(), 'fabrik.toml entry 1');
        assert.equal(await first.locator('td.source').getAttribute('title'),
            `${scheduler.configDir}/conf.d/fabrik.toml entry 1`);

        const second = row(page, 'MorningReport');
        assert.match(await second.locator('td').first().textContent(), /America\/New_York$/);
        assert.equal(await second.locator('.args').textContent(), '"daily", 3');
        assert.equal(await second.locator('.job-options').textContent(), 'retry 3 · priority 7');
        const local = await second.locator('td.next-run').textContent();
        assert.equal(await second.locator('td.next-run').getAttribute('data-time'), report.next_run);
        assert.match(local, /(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 09:00 E[SD]T/, 'wall time in New York');
        assert.match(await second.locator('td.catch-up').textContent(), /^skip/);

        const never = row(page, 'NeverJob');
        assert.match(await never.locator('td.next-run').textContent(), /^never\s*the schedule matches no date$/);
        assert.equal(await never.getByRole('link', { name: 'default' }).count(), 1, 'no queue means default');
        await never.locator('.args', { hasText: '"<img src=x onerror=\\"window.pwned=1\\">"' }).waitFor();
        assert.equal(await page.locator('main img').count(), 0, 'job arguments are inserted as text');
        assert.equal(await page.evaluate(() => window.pwned), undefined);

        await screenshot(page, 'cron');
        await page.emulateMedia({ colorScheme: 'dark' });
        await screenshot(page, 'cron-dark');
        await page.emulateMedia({ colorScheme: 'light' });
        await page.setViewportSize({ width: 390, height: 844 });
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 390, `the table scrolls inside the page, which is ${width} px wide`);
        await screenshot(page, 'cron-narrow');
        await close();
    }));

    test('Run now pushes a job', check(async () => {
        const before = await entryOf('CleanupJob');
        const { page, close } = await open(cronUrl('/cron'));
        const first = row(page, 'CleanupJob');
        await first.waitFor();
        const enqueued = await enqueuedCount(page);
        const queued = await queueSize('maintenance');

        await first.getByRole('button', { name: 'Run CleanupJob now (fabrik.toml entry 1)' }).click();
        await successMessage(page, 'Pushed 1 CleanupJob job to queue maintenance. The schedule is unchanged.');
        assert.equal(await queueSize('maintenance'), queued + 1, 'the job is in its queue');
        await page.waitForFunction((count) => Number(document.querySelector('[data-summary="enqueued"]')
            .textContent.replace(/,/g, '')) === count, enqueued + 1, { timeout: LIVE_TIMEOUT_MS });

        const after = await entryOf('CleanupJob');
        assert.equal(after.last_run, before.last_run, 'last_run unchanged');
        assert.equal(after.next_run, before.next_run, 'next_run unchanged');
        assert.equal((await first.locator('td.last-run').textContent()).trim(), 'never');
        await close();
    }));

    test('keyboard alone runs an entry', check(async () => {
        const { page, close } = await open(cronUrl('/cron'));
        const button = row(page, 'MorningReport').getByRole('button', { name: 'Run MorningReport now (fabrik.toml entry 2)' });
        await button.waitFor();
        const queued = await queueSize('reports');

        let onButton = false;
        for (let i = 0; i < 60 && !onButton; i++) {
            await page.keyboard.press('Tab');
            onButton = await button.evaluate((el) => el === document.activeElement);
        }
        assert.ok(onButton, 'the Run now button is reachable with Tab');
        const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
        assert.notEqual(outline, 'none', 'the focused button shows a focus ring');
        await page.keyboard.press('Enter');
        await successMessage(page, 'Pushed 1 MorningReport job to queue reports.');
        assert.equal(await queueSize('reports'), queued + 1);
        const job = await schedulerFwp.fetch('reports');
        assert.equal(job && job.jobtype, 'MorningReport');
        assert.deepEqual(job.args, ['daily', 3]);
        assert.equal(job.priority, 7);
        await schedulerFwp.ack(job.jid);
        await page.waitForFunction(() => !document.activeElement.disabled);
        assert.equal(await button.evaluate((el) => el === document.activeElement), true, 'focus stays on the button');
        await close();
    }));

    test('last run updates live after DEBUG CLOCK', check(async () => {
        const before = await entryOf('CleanupJob');
        const { page, close } = await open(cronUrl('/cron'));
        await page.evaluate(() => {
            window.fabrikTestMarker = 'no reload';
        });
        const first = row(page, 'CleanupJob');
        await first.locator(`td.next-run[data-time="${before.next_run}"]`).waitFor();
        const due = Date.parse(before.next_run);
        const now = Date.parse((await schedulerJson('/api/info')).now);
        await schedulerFwp.ok(`DEBUG CLOCK ${((due - now) / 1000 + 1).toFixed(3)}`);

        const lastRun = first.locator(`td.last-run[data-time="${before.next_run}"]`);
        await lastRun.waitFor({ timeout: LIVE_TIMEOUT_MS });
        assert.match(await lastRun.locator('time').textContent(), /^(just now|\d+(\.\d)? s ago)$/);
        assert.match(await lastRun.textContent(), /04:15:00 UTC/);
        const nextRun = new Date(due + DAY_MS).toISOString().replace(/\.000Z$/, 'Z');
        await first.locator(`td.next-run[data-time="${nextRun}"]`).waitFor();
        assert.match(await first.locator('td.next-run time').textContent(), /^in (23 h 59 min|1 d)/);
        assert.equal(await page.evaluate(() => window.fabrikTestMarker), 'no reload');
        await screenshot(page, 'cron-after-run');
        await close();
    }));
});

// Looks a job up by jid in every set and queue listing the tests use.
async function idByJid(jid) {
    for (const set of ['retries', 'scheduled', 'dead']) {
        const list = await apiJson(`/api/sets/${set}?q=${encodeURIComponent(jid)}`);
        if (list.jobs.length === 1) {
            return list.jobs[0].id;
        }
    }
    for (const queue of (await apiJson('/api/queues')).queues) {
        const list = await apiJson(`/api/queues/${encodeURIComponent(queue.name)}?per_page=500`);
        const job = list.jobs.find((j) => j.jid === jid);
        if (job) {
            return job.id;
        }
    }
    throw new Error(`job ${jid} not found`);
}
