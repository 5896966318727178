'use strict';
// Progress of tracked jobs (custom.track = 1, TRACK SET) in the HTTP API and the web UI: the
// "progress" member of job objects (/api/busy, the set listings, /api/jobs/<id>), the Progress column of the
// Busy page and the Progress row of the job detail block. Uses its own server, seeded over
// FWP, and Debian's Chromium through playwright-core.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const { FabrikServer, FailureTracker, stopAll } = require('./lib/server');
const { launchBrowser, openPage, screenshot } = require('./lib/browser');
const { FwpClient, makeJob } = require('./lib/fwp');
const { client } = require('./lib/http');


let server;
let fwp;
let worker;
let web;
let browser;
let context;
const tracker = new FailureTracker();
const check = (fn) => tracker.check(fn);
const seeded = {};

async function getJson(pathname) {
    const res = await web.get(pathname);
    assert.equal(res.status, 200, `GET ${pathname}: ${res.text.slice(0, 300)}`);
    return res.json;
}

// Pushes a job, has the worker fetch it, and returns the fetched job.
async function startJob(fields) {
    const job = makeJob(fields);
    await fwp.push(job);
    const fetched = await worker.fetch(fields.queue);
    assert.equal(fetched.jid, job.jid, `fetched ${job.jid}`);
    return fetched;
}

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-web-progress' }).start();
    fwp = await FwpClient.connect(server.port);
    worker = await FwpClient.connect(server.port, { hello: { wid: 'worker-progress' } });
    web = client(server.webPort);

    seeded.tracked = await startJob({ queue: 'reports', jobtype: 'Export', custom: { track: 1 } });
    await worker.ok(`TRACK SET ${JSON.stringify({ jid: seeded.tracked.jid, percent: 40, desc: 'Copying files' })}`);
    seeded.silent = await startJob({ queue: 'reports', jobtype: 'Export', custom: { track: 1 } });
    seeded.plain = await startJob({ queue: 'reports', jobtype: 'Export' });
    // A tracked job that failed: it waits in the retry set for hours with its last progress.
    seeded.retry = await startJob({
        queue: 'reports', jobtype: 'Import', custom: { track: 1 },
        failure: { retry_count: 10, remaining: 15 },
    });
    await worker.ok(`TRACK SET ${JSON.stringify({ jid: seeded.retry.jid, percent: 70, desc: '<b>rows</b>' })}`);
    await worker.fail(seeded.retry.jid, 'IOError', 'disk full');
});

after(async () => {
    if (browser) {
        await browser.close();
    }
    for (const conn of [worker, fwp]) {
        if (conn) {
            conn.close();
        }
    }
    if (server) {
        await stopAll([server], tracker.failed);
    }
});

describe('progress in the HTTP API', () => {
    test('busy jobs carry progress or null', check(async () => {
        const busy = await getJson('/api/busy');
        const byJid = Object.fromEntries(busy.jobs.map((job) => [job.jid, job]));
        const tracked = byJid[seeded.tracked.jid].progress;
        assert.equal(tracked.state, 'working');
        assert.equal(tracked.percent, 40);
        assert.equal(tracked.desc, 'Copying files');
        assert.match(tracked.updated_at, /^\d{4}-\d\d-\d\dT/);
        assert.equal('jid' in tracked, false);

        // Tracked but no TRACK SET yet: the state without percent or desc.
        const silent = byJid[seeded.silent.jid].progress;
        assert.equal(silent.state, 'working');
        assert.equal('percent' in silent, false);
        assert.equal('desc' in silent, false);

        assert.equal(byJid[seeded.plain.jid].progress, null);
    }));

    test('job detail carries progress', check(async () => {
        const retries = await getJson('/api/sets/retries');
        const row = retries.jobs.find((job) => job.jid === seeded.retry.jid);
        assert.ok(row, 'the failed tracked job is in the retry set');
        assert.equal(row.progress.percent, 70, 'listings carry progress too');
        const { job } = await getJson(`/api/jobs/${row.id}`);
        assert.equal(job.progress.state, 'failed');
        assert.equal(job.progress.percent, 70);
        assert.equal(job.progress.desc, '<b>rows</b>');
    }));
});

describe('progress in the web UI', () => {
    before(async () => {
        browser = await launchBrowser(server.webUrl, { profilePrefix: 'fabrik-web-progress-' });
        context = browser.context;
    });

    // Opens pagePath in a new tab that fails the test on console errors when closed. The
    // tests wait for their own elements.
    function open(pagePath) {
        return openPage(context, pagePath, { ready: async () => {} });
    }

    test('Busy page shows a progress bar and text', check(async () => {
        const { page, close } = await open('/busy');
        const row = page.locator('tr', { hasText: seeded.tracked.jid });
        await row.waitFor();
        const bar = row.locator('progress');
        assert.equal(await bar.getAttribute('value'), '40');
        assert.equal(await bar.getAttribute('max'), '100');
        assert.equal(await row.locator('.job-progress-text').textContent(), '40% – Copying files');

        const silentRow = page.locator('tr', { hasText: seeded.silent.jid });
        assert.equal(await silentRow.locator('.job-progress-text').textContent(), 'No progress reported');
        assert.equal(await silentRow.locator('progress').count(), 0);
        const plainRow = page.locator('tr', { hasText: seeded.plain.jid });
        assert.equal(await plainRow.locator('.job-progress').count(), 0);

        // The job dialog repeats it.
        await row.getByRole('button', { name: `Show job ${seeded.tracked.jid}` }).click();
        const dialog = page.locator('dialog[open]');
        await dialog.waitFor();
        const detail = dialog.locator('dt', { hasText: 'Progress' }).locator('xpath=following-sibling::dd[1]');
        assert.equal(await detail.locator('.job-progress-text').textContent(), '40% – Copying files');
        await screenshot(page, 'busy-progress');
        await close();
    }));

    test('job page shows progress as text', check(async () => {
        const retries = await getJson('/api/sets/retries');
        const row = retries.jobs.find((job) => job.jid === seeded.retry.jid);
        const { page, close } = await open(`/retries/${row.id}`);
        const detail = page.locator('dt', { hasText: 'Progress' }).locator('xpath=following-sibling::dd[1]');
        await detail.waitFor();
        // The description is shown as text, never as HTML.
        assert.equal(await detail.locator('.job-progress-text').textContent(), '70% – <b>rows</b>');
        assert.equal(await detail.locator('b').count(), 0);
        await close();
    }));
});
