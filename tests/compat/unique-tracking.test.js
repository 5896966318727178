'use strict';
// Unique jobs and job tracking with the real faktory-worker client, which sets both through
// Job#custom. A duplicate push must fail with the server's NOTUNIQUE reply and appear in
// pushBulk's rejections. The lock must be released once a Worker ran the job. A job that
// reports progress while it runs must read as success with that progress afterwards. The
// client has no TRACK command, so TRACK goes over a raw FWP connection.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { FabrikServer, stopAll } = require('../web/lib/server');
const { FwpClient } = require('../web/lib/fwp');
const { loadFaktory, waitUntil: waitUntilFor } = require('./lib/client');

const QUEUE = 'unique-tracking';
// A run that takes longer than this fails rather than hanging CTest.
const RUN_TIMEOUT_MS = 60000;

let server;
let faktory;
let client;
let raw;
let passed = 0;

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-compat-unique' }).start();
    faktory = loadFaktory(`tcp://127.0.0.1:${server.port}`);
    client = new faktory.Client();
    raw = await FwpClient.connect(server.port);
});

after(async () => {
    if (raw) {
        raw.close();
    }
    if (client) {
        await client.close();
    }
    await stopAll([server], passed !== 3);
});

async function trackGet(jid) {
    const reply = await raw.command(`TRACK GET ${jid}`);
    assert.equal(reply.kind, 'bulk', `TRACK GET ${jid}: ${JSON.stringify(reply)}`);
    return JSON.parse(reply.value);
}

function waitUntil(condition, description) {
    return waitUntilFor(condition, RUN_TIMEOUT_MS, description);
}

// Runs a Worker on QUEUE with the given handlers until `expected` jobs finished.
async function runWorker(handlers, expected) {
    let finished = 0;
    const workerErrors = [];
    const worker = new faktory.Worker({ concurrency: 2, queues: [QUEUE] });
    worker.use(async (ctx, next) => {
        await next();
        finished++;
    });
    for (const [jobtype, handler] of Object.entries(handlers)) {
        worker.register(jobtype, handler);
    }
    worker.on('error', (err) => workerErrors.push(err.message));
    await worker.work();
    try {
        await waitUntil(async () => finished >= expected && worker.working.size === 0,
            `${expected} jobs to finish`);
    } finally {
        await worker.stop();
    }
    assert.deepEqual(workerErrors, [], 'worker errors');
}

function uniqueJob(args, custom = { unique_for: 600 }) {
    const job = client.job('SyncAccount', ...args);
    job.queue = QUEUE;
    job.custom = custom;
    return job;
}

test('a duplicate push is rejected until the job ran', async () => {
    const first = uniqueJob([42]);
    await first.push();
    await assert.rejects(uniqueJob([42]).push(), /NOTUNIQUE Job not unique/);
    // Other arguments, or no unique_for, are not duplicates.
    await uniqueJob([43]).push();
    await uniqueJob([42], { note: 'no lock' }).push();
    await assert.rejects(uniqueJob([43]).push(), /NOTUNIQUE Job not unique/);

    const seen = [];
    await runWorker({ SyncAccount: async (id) => { seen.push(id); } }, 3);
    assert.deepEqual(seen.sort(), [42, 42, 43]);

    // Both locks were released by the ACKs.
    await uniqueJob([42]).push();
    await uniqueJob([43]).push();
    await runWorker({ SyncAccount: async () => {} }, 2);
    passed++;
});

test('pushBulk reports duplicates by jid', async () => {
    const a = uniqueJob([7]).toJSON();
    const b = uniqueJob([7]).toJSON();
    const c = uniqueJob([8], { unique_for: '600' }).toJSON();
    const rejected = await client.pushBulk([a, b, c]);
    assert.deepEqual(Object.keys(rejected).sort(), [b.jid, c.jid].sort());
    assert.equal(rejected[b.jid].reason, 'NOTUNIQUE Job not unique');
    assert.match(rejected[c.jid].reason, /invalid custom\.unique_for "600": .*not a string/);
    await runWorker({ SyncAccount: async () => {} }, 1);
    passed++;
});

test('a tracked job reports progress while it runs', async () => {
    const job = client.job('Export', 'report.csv');
    job.queue = QUEUE;
    job.custom = { track: 1 };
    const jid = await job.push();
    assert.equal((await trackGet(jid)).state, 'enqueued');

    const during = [];
    await runWorker({
        Export: (file) => async ({ job: running }) => {
            assert.equal(file, 'report.csv');
            await raw.ok(`TRACK SET ${JSON.stringify({ jid: running.jid, percent: 50, desc: 'halfway' })}`);
            during.push(await trackGet(running.jid));
        },
    }, 1);
    assert.equal(during.length, 1);
    assert.equal(during[0].state, 'working');
    assert.equal(during[0].percent, 50);

    const doc = await trackGet(jid);
    assert.equal(doc.state, 'success');
    assert.equal(doc.percent, 50);
    assert.equal(doc.desc, 'halfway');
    passed++;
});
