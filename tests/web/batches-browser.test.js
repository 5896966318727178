'use strict';
// Drives the Batches pages of the web UI in Debian's Chromium (playwright-core) against the
// real server. It covers the tab, the list with its status filter, search and pager, and a
// batch's page with counts, callbacks, parent, children and member jobs. It follows the links
// to the jobs and back, and checks a live update, dark mode and keyboard use. Every page must
// load without console errors, and a screenshot of each is saved for people to see.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const { FabrikServer, FailureTracker, stopAll } = require('./lib/server');
const { launchBrowser, openPage, screenshot } = require('./lib/browser');
const { FwpClient } = require('./lib/fwp');
const { client } = require('./lib/http');
const { batchCommit, batchNew, seedBatchScenario } = require('./lib/batches');

// The UI polls every 2 s in these tests (the minimum), so live changes show within ~2 s.
const POLL_SECONDS = 2;
const LIVE_TIMEOUT_MS = 8000;
// Committed empty batches, so the list has two pages of 25.
const FILLER_COUNT = 30;

let server;
let fwp;
let web;
let browser;
let context;
let seeded;
const tracker = new FailureTracker();
const check = (fn) => tracker.check(fn);

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-web-batches-browser' }).start();
    fwp = await FwpClient.connect(server.port);
    web = client(server.webPort);
    for (let i = 0; i < FILLER_COUNT; i++) {
        await batchCommit(fwp, await batchNew(fwp, { description: `Filler ${i}` }));
    }
    seeded = await seedBatchScenario(fwp, 'ui');
    browser = await launchBrowser(server.webUrl, { pollSeconds: POLL_SECONDS });
    context = browser.context;
});

after(async () => {
    if (browser) {
        await browser.close();
    }
    if (fwp) {
        fwp.close();
    }
    if (server) {
        await stopAll([server], tracker.failed);
    }
});

function open(pagePath, options) {
    return openPage(context, pagePath, options);
}

async function apiJson(pathname) {
    const res = await web.get(pathname);
    assert.equal(res.status, 200, `GET ${pathname}: ${res.text.slice(0, 200)}`);
    return res.json;
}

function listRow(page, bid) {
    return page.locator('#batches-table tbody tr', { has: page.locator(`a:text-is("${bid}")`) });
}

function memberRow(page, jid) {
    return page.locator('#batch-jobs tbody tr', { has: page.locator(`span.jid:text-is("${jid}")`) });
}

// The bids listed in the table, top to bottom, once the table shows `count` rows.
async function listedBids(page, count) {
    await page.waitForFunction((n) => document.querySelectorAll('#batches-table tbody tr a.jid').length === n,
        count, { timeout: LIVE_TIMEOUT_MS });
    return page.locator('#batches-table tbody tr a.jid').allTextContents();
}

async function tabUntil(page, predicate, max) {
    for (let i = 0; i < max; i++) {
        await page.keyboard.press('Tab');
        if (await page.evaluate(predicate)) {
            return true;
        }
    }
    return false;
}

describe('batches list', () => {
    test('tab shows and lists batches', check(async () => {
        const { bids } = seeded;
        const { page, close } = await open('/');
        const tab = page.locator('.tabs a[data-tab="batches"]');
        assert.equal(await tab.isVisible(), true, 'the Batches tab shows without configuration');
        await tab.click();
        await page.locator('main h1', { hasText: 'Batches' }).waitFor();
        assert.equal(await page.title(), 'Batches · fabrik');
        assert.equal(await page.locator('.tabs a[aria-current="page"]').getAttribute('data-tab'), 'batches');
        assert.equal(new URL(page.url()).pathname, '/batches');
        await listRow(page, bids.nightly).waitFor();
        assert.equal(await page.locator('main .subtitle').textContent(), `${FILLER_COUNT + 5} batches`);

        const nightly = listRow(page, bids.nightly);
        const cells = await nightly.locator('td').allTextContents();
        assert.equal(cells[1], 'Nightly import');
        assert.equal(cells[2], 'pending');
        assert.match(cells[3], /ago|just now/);
        assert.deepEqual(cells.slice(4, 7), ['6', '4', '2'], 'total, pending, failed');
        assert.equal(cells[7], 'waiting', 'complete callback');
        assert.equal(cells[8], 'waiting', 'success callback');
        const meter = nightly.getByRole('meter');
        assert.equal(await meter.getAttribute('aria-valuenow'), '2', 'done = total - pending');
        assert.equal(await meter.getAttribute('aria-valuemax'), '6');
        assert.equal(await nightly.locator('.slot-count').textContent(), '2 / 6');

        const thumbnails = listRow(page, bids.thumbnails);
        assert.equal(await thumbnails.locator('[data-callback="complete"]').textContent(), 'enqueued');
        assert.equal(await thumbnails.locator('[data-callback="success"]').textContent(), 'none');
        assert.equal(await thumbnails.getByRole('meter').getAttribute('aria-valuenow'), '2');
        assert.equal(await listRow(page, bids.draft).locator('[data-status]').textContent(), 'open');
        assert.equal(await listRow(page, bids.doneChild).locator('[data-status]').textContent(), 'finished');

        await screenshot(page, 'batches');
        await page.emulateMedia({ colorScheme: 'dark' });
        const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
        assert.equal(background, 'rgb(16, 20, 27)', 'dark background');
        await screenshot(page, 'batches-dark');
        await page.emulateMedia({ colorScheme: 'light' });
        await page.setViewportSize({ width: 390, height: 844 });
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 390, `the table scrolls inside the page, which is ${width} px wide`);
        await close();
    }));

    test('status filter and search', check(async () => {
        const { bids } = seeded;
        const { page, close } = await open('/batches');
        await listRow(page, bids.nightly).waitFor();

        await page.locator('#filter-status').selectOption('open');
        await page.waitForURL(/\/batches\?status=open$/);
        assert.deepEqual(await listedBids(page, 2), [bids.draft, bids.openChild]);
        assert.equal(await page.locator('main .subtitle').textContent(), '2 batches match the filters');
        assert.equal(await page.locator('#clear-filters').isVisible(), true);

        await page.locator('#filter-status').selectOption('');
        await page.locator('#filter-q').fill('nightly IMPORT');
        await page.locator('#filter-q').press('Enter');
        await page.waitForURL(/\/batches\?q=nightly\+IMPORT$/);
        assert.deepEqual(await listedBids(page, 3), [bids.openChild, bids.doneChild, bids.nightly]);

        await page.locator('#filter-status').selectOption('finished');
        await page.waitForURL(/status=finished/);
        assert.deepEqual(await listedBids(page, 1), [bids.doneChild]);

        await page.locator('#filter-q').fill('no such batch');
        await page.locator('#filter-q').press('Enter');
        await page.locator('#batches-table td.empty', { hasText: 'No batches match the filters.' }).waitFor();

        await page.locator('#clear-filters').click();
        await page.waitForURL(/\/batches$/);
        assert.equal((await listedBids(page, 25)).length, 25);
        assert.equal(await page.locator('#filter-status').inputValue(), '');
        assert.equal(await page.locator('#filter-q').inputValue(), '');
        await close();
    }));

    test('pager moves between pages', check(async () => {
        const all = await apiJson('/api/batches?per_page=500');
        const { page, close } = await open('/batches');
        assert.deepEqual(await listedBids(page, 25), all.batches.slice(0, 25).map((b) => b.bid));
        assert.match(await page.locator('.pager .range').textContent(), /^1–25 of 35$/);
        await page.getByRole('link', { name: 'Next page' }).click();
        await page.waitForURL(/\/batches\?page=2$/);
        assert.deepEqual(await listedBids(page, 10), all.batches.slice(25).map((b) => b.bid));
        await page.locator('#filter-per-page').selectOption('50');
        await page.waitForURL(/\/batches\?per_page=50$/);
        assert.equal((await listedBids(page, 35)).length, 35);
        await close();
    }));
});

describe('batch page', () => {
    test('shows counts, callbacks, children and jobs', check(async () => {
        const { bids, jobs } = seeded;
        const { page, close } = await open('/batches');
        await listRow(page, bids.nightly).getByRole('link', { name: bids.nightly }).click();
        await page.locator('main h1', { hasText: `Batch ${bids.nightly}` }).waitFor();
        assert.equal(new URL(page.url()).pathname, `/batches/${bids.nightly}`);
        assert.equal(await page.locator('.tabs a[aria-current="page"]').getAttribute('data-tab'), 'batches');
        await memberRow(page, jobs.queued.jid).waitFor();
        assert.equal(await page.locator('main .subtitle').textContent(), 'Nightly import');

        const stats = {};
        for (const key of ['total', 'pending', 'succeeded', 'failed', 'ended', 'children']) {
            stats[key] = await page.locator(`[data-stat="${key}"]`).textContent();
        }
        assert.deepEqual(stats, { total: '6', pending: '4', succeeded: '1', failed: '2', ended: '1', children: '2' });
        assert.equal(await page.locator('main .slot-count').first().textContent(), '2 / 6');

        const callbacks = page.locator('#batch-callbacks tbody tr');
        assert.equal(await callbacks.count(), 2, 'complete and success');
        const complete = page.locator('#batch-callbacks tr[data-callback="complete"]');
        assert.equal(await complete.locator('[data-state]').textContent(), 'waiting');
        assert.match(await complete.textContent(), /ImportDone/);
        assert.match(await complete.locator('td.where').textContent(), /not enqueued yet/);

        const children = await page.locator('#batch-children tbody tr a.jid').allTextContents();
        assert.deepEqual(children, [bids.openChild, bids.doneChild]);

        const where = {};
        for (const [place, job] of Object.entries(jobs)) {
            where[place] = (await memberRow(page, job.jid).locator('td.where').textContent()).trim();
        }
        assert.deepEqual(where, {
            succeeded: 'succeeded',
            retry: 'Waiting for retry',
            queued: `Queued in ${jobs.queued.queue}`,
            dead: 'Dead',
            scheduled: 'Scheduled',
            working: 'In progress',
        });
        const hrefOf = (place) => memberRow(page, jobs[place].jid).locator('td.where a').getAttribute('href');
        const detail = await apiJson(`/api/batches/${bids.nightly}`);
        const idOf = (place) => detail.jobs.find((m) => m.jid === jobs[place].jid).job.id;
        assert.equal(await hrefOf('retry'), `/retries/${idOf('retry')}`);
        assert.equal(await hrefOf('dead'), `/morgue/${idOf('dead')}`);
        assert.equal(await hrefOf('scheduled'), `/scheduled/${idOf('scheduled')}`);
        assert.equal(await hrefOf('working'), '/busy');
        assert.equal(await hrefOf('queued'), `/queues/${jobs.queued.queue}`);
        assert.equal(await memberRow(page, jobs.succeeded.jid).locator('a, button').count(), 0,
            'a job that is gone has no link');
        assert.equal(await memberRow(page, jobs.dead.jid).locator('.badge').first().textContent(), 'ended');

        await screenshot(page, 'batch');
        await page.emulateMedia({ colorScheme: 'dark' });
        await screenshot(page, 'batch-dark');
        await close();
    }));

    test('member link leads to the job and back', check(async () => {
        const { bids, jobs } = seeded;
        const { page, close } = await open(`/batches/${bids.nightly}`);
        await page.evaluate(() => {
            window.fabrikTestMarker = 'no reload';
        });
        await memberRow(page, jobs.retry.jid).getByRole('link', { name: 'Waiting for retry' }).click();
        await page.locator('main h1', { hasText: jobs.retry.jid }).waitFor();
        assert.match(new URL(page.url()).pathname, /^\/retries\/\d+$/);
        const batchLink = page.locator('main a.batch-link');
        assert.equal(await batchLink.textContent(), bids.nightly, 'custom.bid links to its batch');
        await screenshot(page, 'batch-member-job');
        await batchLink.click();
        await page.locator('main h1', { hasText: `Batch ${bids.nightly}` }).waitFor();
        assert.equal(await page.evaluate(() => window.fabrikTestMarker), 'no reload');
        await close();
    }));

    test('details dialog links back to the batch', check(async () => {
        const { bids, jobs } = seeded;
        const { page, close } = await open(`/batches/${bids.nightly}`);
        await memberRow(page, jobs.queued.jid).getByRole('button', { name: `Show job ${jobs.queued.jid}` }).click();
        const dialog = page.locator('#job-dialog');
        await dialog.waitFor();
        assert.match(await dialog.locator('#job-fields-title').textContent(), /Job/);
        const link = dialog.locator('a.batch-link');
        assert.equal(await link.textContent(), bids.nightly);
        await page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'hidden' });

        await page.locator('#batch-children a', { hasText: bids.doneChild }).click();
        await page.locator('main h1', { hasText: `Batch ${bids.doneChild}` }).waitFor();
        await page.locator('#batch-jobs td.empty', { hasText: 'No jobs have joined this batch yet.' }).waitFor();
        assert.equal(await page.locator('#batch-callbacks-title + p').textContent(), 'This batch has no callbacks.');
        await page.locator('#batch-parent').click();
        await page.locator('main h1', { hasText: `Batch ${bids.nightly}` }).waitFor();
        await close();
    }));

    test('callback job shows and updates live', check(async () => {
        const { bids, queues } = seeded;
        const { page, close } = await open(`/batches/${bids.thumbnails}`);
        await page.evaluate(() => {
            window.fabrikTestMarker = 'no reload';
        });
        const complete = page.locator('#batch-callbacks tr[data-callback="complete"]');
        await complete.locator('[data-state="1"]', { hasText: 'enqueued' }).waitFor();
        const link = complete.locator('td.where a');
        assert.equal(await link.textContent(), 'Queued');
        assert.equal(await link.getAttribute('href'), `/queues/${queues.thumbsCallback}`);
        await complete.getByRole('button', { name: /^Show job / }).click();
        const dialogLink = page.locator('#job-dialog a.batch-link');
        assert.equal(await dialogLink.textContent(), bids.thumbnails, 'custom._bid links to the batch');
        await page.keyboard.press('Escape');

        const job = await fwp.fetch(queues.thumbsCallback);
        assert.equal(job.jobtype, 'ThumbnailsDone');
        await complete.locator('td.where a', { hasText: 'In progress' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
        await fwp.ack(job.jid);
        await complete.locator('[data-state="2"]', { hasText: 'succeeded' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
        assert.equal((await complete.locator('td.where').textContent()).trim(), 'succeeded');
        await page.locator('[data-status="finished"]').first().waitFor();
        assert.equal(await page.evaluate(() => window.fabrikTestMarker), 'no reload');
        await screenshot(page, 'batch-callback-done');
        await close();
    }));

    test('unknown batch shows a notice', check(async () => {
        const { page, close } = await open('/batches/b-nosuchbatch', { allowed: [/404/] });
        await page.locator('#batch-missing', { hasText: 'Batch b-nosuchbatch does not exist' }).waitFor();
        assert.equal(await page.locator('#batch-jobs').isVisible(), false);
        await page.locator('#batch-missing a').click();
        await page.locator('main h1', { hasText: 'Batches' }).waitFor();
        await close();
    }));

    test('keyboard alone opens a batch', check(async () => {
        const { bids } = seeded;
        const { page, close } = await open('/');
        const onTab = await tabUntil(page, () => document.activeElement.dataset.tab === 'batches', 30);
        assert.ok(onTab, 'the Batches tab is reachable with Tab');
        const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
        assert.notEqual(outline, 'none', 'the focused tab shows a focus ring');
        await page.keyboard.press('Enter');
        await page.locator('main h1', { hasText: 'Batches' }).waitFor();
        await listRow(page, bids.draft).waitFor();
        assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the heading');
        const onLink = await tabUntil(page, () => document.activeElement.closest('#batches-table a.jid') !== null, 20);
        assert.ok(onLink, 'the batch links are reachable with Tab');
        const bid = await page.evaluate(() => document.activeElement.textContent);
        assert.equal(bid, bids.draft, 'the newest batch comes first');
        await page.keyboard.press('Enter');
        await page.locator('main h1', { hasText: `Batch ${bids.draft}` }).waitFor();
        await page.locator('#batch-jobs tbody tr .where', { hasText: 'Queued' }).waitFor();
        await close();
    }));
});
