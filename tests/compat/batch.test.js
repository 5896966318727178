'use strict';
// A batch of 1,000 jobs through the real faktory-worker client: BATCH NEW and COMMIT go out
// with client.send (the client has no batch API, as most Faktory clients outside Go, Ruby,
// Rust and Elixir), the jobs carry custom.bid, and a worker pool fails every tenth job on its
// first try. The server is killed with SIGKILL halfway and restarted on the same data. The
// complete and success callbacks must each be enqueued exactly once.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { FabrikServer } = require('./lib/fabrik-server');
const { loadFaktory, waitForInfo, waitUntil } = require('./lib/client');

const JOB_COUNT = 1000;
const BULK_SIZE = 250;

let server;
let faktory;
let client;
let passed = false;

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-compat-batch' }).start();
    server.fixedPort = server.port;
    faktory = loadFaktory(server.url);
    client = new faktory.Client();
});

after(async () => {
    if (client) {
        await client.close();
    }
    await server.stopAndClean(!passed);
});

async function status(bid) {
    return JSON.parse(await client.send(['BATCH', 'STATUS', bid]));
}

test('1,000-job batch fires each callback once across a SIGKILL', async (t) => {
    const bid = await client.send(['BATCH', 'NEW', JSON.stringify({
        description: 'compat batch',
        complete: { jobtype: 'BatchComplete', args: [], queue: 'callbacks' },
        success: { jobtype: 'BatchSuccess', args: [], queue: 'callbacks' },
    })]);
    assert.match(bid, /^b-[0-9A-Za-z]{22}$/);
    for (let start = 0; start < JOB_COUNT; start += BULK_SIZE) {
        const jobs = [];
        for (let n = start; n < start + BULK_SIZE; n++) {
            jobs.push({ jobtype: 'Item', queue: 'items', args: [n], custom: { bid } });
        }
        assert.deepEqual(await client.pushBulk(jobs), {}, `pushBulk from ${start}`);
    }
    assert.equal(await client.send(['BATCH', 'COMMIT', bid]), 'OK');

    const runs = new Uint32Array(JOB_COUNT);
    const ran = () => runs.filter((count) => count > 0).length;
    const callbacks = { BatchComplete: [], BatchSuccess: [] };
    const worker = new faktory.Worker({ concurrency: 10, queues: ['items', 'callbacks'] });
    worker.register('Item', async (n) => {
        runs[n] += 1;
        if (n % 10 === 0 && runs[n] === 1) {
            throw new Error(`planned first failure of job ${n}`);
        }
    });
    for (const name of Object.keys(callbacks)) {
        worker.register(name, async function callback() {
            // The job context carries the callback's jid and custom fields.
            callbacks[name].push(this && this.job ? this.job : null);
        });
    }
    const workerErrors = [];
    worker.on('error', (err) => workerErrors.push(err.message));
    await worker.work();
    try {
        await waitUntil(() => ran() >= JOB_COUNT / 2, 30000, 'half of the jobs to run');
        await server.kill();
        await server.start();
        const middle = await status(bid);
        t.diagnostic(`after the SIGKILL: ${JSON.stringify(middle)}`);
        assert.equal(middle.total, JOB_COUNT);
        assert.equal(middle.complete_st, '');

        // Failed jobs wait in the retry set (15 to 44 s) and jobs whose ACK was lost stay
        // reserved (1800 s): move the clock past both. The clock step also reaps the silent
        // worker, whose pool then reconnects.
        await waitForInfo(client, (s) => (s.queues.items || 0) === 0, 30000, 'items drained');
        assert.equal(await client.send(['DEBUG', 'CLOCK', '1801']), 'OK');
        assert.equal(await client.send(['DEBUG', 'CLOCK', '60']), 'OK');
        await waitForInfo(client, (s) => s.retries === 0 && s.working === 0 &&
            (s.queues.items || 0) === 0 && (s.queues.callbacks || 0) === 0, 60000,
        'every job and callback to finish');
        await waitUntil(() => callbacks.BatchSuccess.length > 0, 30000, 'the success callback');
        await waitUntil(() => worker.working.size === 0, 10000, 'the worker to go idle');
    } finally {
        await worker.stop();
    }

    const final = await status(bid);
    t.diagnostic(`final: ${JSON.stringify(final)}; ${workerErrors.length} worker errors`);
    assert.deepEqual(runs.filter((count) => count === 0).length, 0, 'jobs that never ran');
    assert.equal(final.total, JOB_COUNT);
    assert.equal(final.pending, 0);
    assert.ok(final.failed >= JOB_COUNT / 10, `failed ${final.failed} counts the planned failures`);
    assert.equal(final.complete_st, '2');
    assert.equal(final.success_st, '2');
    assert.equal(callbacks.BatchComplete.length, 1, 'complete callback runs');
    assert.equal(callbacks.BatchSuccess.length, 1, 'success callback runs');
    passed = true;
});
