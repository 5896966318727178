'use strict';
// A faktory-worker pool keeps working while the server restarts (SIGTERM, then a new process
// on the same port and data directory) and after the server reaps its silent worker process.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { FabrikServer, sleep } = require('./lib/fabrik-server');
const { loadFaktory, infoSummary, waitForInfo, waitUntil } = require('./lib/client');

const JOB_COUNT = 3000;
const BULK_SIZE = 500;
const QUEUE = 'restart';

let server;
let faktory;
let client;
let passed = false;

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-compat-restart' }).start();
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

test('worker pool survives restart and reaping', async (t) => {
    for (let start = 0; start < JOB_COUNT; start += BULK_SIZE) {
        const jobs = [];
        for (let n = start; n < start + BULK_SIZE; n++) {
            jobs.push({ jobtype: 'Restart', queue: QUEUE, args: [n] });
        }
        assert.deepEqual(await client.pushBulk(jobs), {}, `pushBulk of jobs from ${start}`);
    }

    const runs = new Uint32Array(JOB_COUNT);
    const ran = () => runs.filter((count) => count > 0).length;
    const workerErrors = [];
    const worker = new faktory.Worker({ concurrency: 10, queues: [QUEUE] });
    worker.register('Restart', async (n) => {
        runs[n] += 1;
        await sleep(1);
    });
    worker.on('error', (err) => workerErrors.push(err.message));
    await worker.work();
    let settled;
    try {
        await waitUntil(() => ran() >= JOB_COUNT / 3, 30000, 'a third of the jobs to run');
        const exit = await server.stop();
        assert.deepEqual(exit, { code: 0, signal: null }, 'exit status of the first server');
        await server.start();
        t.diagnostic(`restarted after ${ran()} jobs had run`);

        const restarted = await infoSummary(client);
        t.diagnostic(`after the restart: ${restarted.queues[QUEUE]} queued, ` +
            `${restarted.working} reserved`);
        await waitForInfo(client, (s) => s.queues[QUEUE] === 0, 30000, 'an empty queue');
        await waitUntil(() => worker.working.size === 0, 10000, 'the worker to finish its jobs');
        t.diagnostic(`${JOB_COUNT - ran()} jobs had not run before the clock step`);

        // Jobs whose FETCH reply or ACK was lost in the restart are still reserved. Moving the
        // clock past the default reservation (1800 s) also reaps the worker, whose connections
        // are closed, so the pool has to reconnect before it gets the returning jobs.
        assert.equal(await client.send(['DEBUG', 'CLOCK', '1801']), 'OK');
        assert.equal(await client.send(['DEBUG', 'CLOCK', '60']), 'OK');
        settled = await waitForInfo(client, (s) => s.queues[QUEUE] === 0 && s.working === 0 &&
            s.retries === 0, 30000, 'queue, retries and working set to be empty');
        await waitUntil(() => worker.working.size === 0, 10000, 'the worker to finish its jobs');
    } finally {
        await worker.stop();
    }

    const rerun = runs.filter((count) => count > 1).length;
    t.diagnostic(`${rerun} jobs ran twice or more; ${workerErrors.length} worker errors, ` +
        `first: ${workerErrors.slice(0, 3).join(' | ')}`);
    const missing = [];
    runs.forEach((count, n) => {
        if (count === 0) {
            missing.push(n);
        }
    });
    assert.deepEqual(missing, [], 'jobs that never ran');
    assert.equal(settled.dead, 0, 'faktory.sets.dead');
    assert.equal(settled.scheduled, 0, 'faktory.sets.scheduled');
    assert.equal((await infoSummary(client)).working, 0, 'faktory.sets.working at the end');
    passed = true;
});
