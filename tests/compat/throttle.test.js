'use strict';
// Queue throttles with the real faktory-worker client: `bulk = { worker = 5, timeout = 60 }`
// and one Worker (one wid) with concurrency 15 over the queues [bulk, other], in that strict
// order. While it runs, at most 5 bulk jobs run at once (in the handler, in INFO's slots and in
// the working set of /api/busy), and the other 10 processors run `other` jobs.
//
// FABRIK_THROTTLE_BULK_JOBS sets the number of bulk jobs (default 20,000) and
// FABRIK_THROTTLE_BULK_MS how long each runs in the handler (default 1 ms). The web lib of
// tests/web starts the server, because the test reads /api/busy on the web port.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { FabrikServer, sleep, stopAll } = require('../web/lib/server');
const { client: httpClient } = require('../web/lib/http');
const { loadFaktory } = require('./lib/client');

const BULK_JOBS = Number.parseInt(process.env.FABRIK_THROTTLE_BULK_JOBS || '20000', 10);
// Bulk jobs take a moment so that the 5 slots fill; other jobs run long enough to be seen.
const BULK_JOB_MS = Number.parseInt(process.env.FABRIK_THROTTLE_BULK_MS || '1', 10);
const PER_WORKER = 5;
const CONCURRENCY = 15;
// Each FETCH of a processor back from an other job takes a bulk job when a slot is free just
// then, so long other jobs keep the processors on the other queue between samples.
const OTHER_JOB_MS = 1000;
const WID = 'compat-throttle';
const PUSH_BATCH = 1000;
// A run that takes longer than this fails rather than hanging CTest.
const RUN_TIMEOUT_MS = 150000;

let server;
let faktory;
let client;
let web;
let passed = false;

before(async () => {
    server = await new FabrikServer({
        prefix: 'fabrik-compat-throttle',
        toml: `[throttles]\nbulk = { worker = ${PER_WORKER}, timeout = 60 }\n` +
            '[fabrik]\ndurability = "os"\n',
    }).start();
    faktory = loadFaktory(`tcp://127.0.0.1:${server.port}`);
    client = new faktory.Client();
    web = httpClient(server.webPort);
});

after(async () => {
    if (client) {
        await client.close();
    }
    await stopAll([server], !passed);
});

async function pushJobs(queue, count, jobtype) {
    for (let start = 0; start < count; start += PUSH_BATCH) {
        const jobs = [];
        for (let n = start; n < Math.min(count, start + PUSH_BATCH); n++) {
            jobs.push({ jobtype, queue, args: [n] });
        }
        assert.deepEqual(await client.pushBulk(jobs), {}, `pushBulk into ${queue} from ${start}`);
    }
}

// One look at the server while the worker runs: bulk slots from INFO and the working set
// by queue from /api/busy.
async function sample() {
    const info = await client.info();
    const bulk = info.faktory.throttles.bulk;
    const busy = await web.get('/api/busy');
    assert.equal(busy.status, 200, `GET /api/busy status, body ${busy.text}`);
    const byQueue = {};
    for (const job of busy.json.jobs) {
        byQueue[job.queue] = (byQueue[job.queue] || 0) + 1;
    }
    return {
        inUse: bulk.in_use,
        holderWids: [...new Set(bulk.holders.map((h) => h.wid))],
        bulkQueued: info.faktory.queues.bulk || 0,
        busyBulk: byQueue.bulk || 0,
        busyOther: byQueue.other || 0,
    };
}

test(`worker limit ${PER_WORKER} keeps the other processors on other queues`, async (t) => {
    const started = Date.now();
    await pushJobs('bulk', BULK_JOBS, 'Bulk');
    // Enough `other` jobs to keep 10 processors busy for the whole run.
    const otherJobs = Math.ceil((RUN_TIMEOUT_MS / OTHER_JOB_MS) * (CONCURRENCY - PER_WORKER));
    await pushJobs('other', otherJobs, 'Other');
    const pushedMs = Date.now() - started;

    const bulkRuns = new Uint8Array(BULK_JOBS);
    const running = { Bulk: 0, Other: 0 };
    const maxRunning = { Bulk: 0, Other: 0 };
    const enter = (type) => {
        running[type] += 1;
        maxRunning[type] = Math.max(maxRunning[type], running[type]);
    };
    const workerErrors = [];
    const worker = new faktory.Worker({ wid: WID, concurrency: CONCURRENCY, queues: ['bulk', 'other'] });
    worker.register('Bulk', async (n) => {
        enter('Bulk');
        bulkRuns[n] += 1;
        await sleep(BULK_JOB_MS);
        running.Bulk -= 1;
    });
    worker.register('Other', async () => {
        enter('Other');
        await sleep(OTHER_JOB_MS);
        running.Other -= 1;
    });
    worker.on('error', (err) => workerErrors.push(err));
    await worker.work();

    const samples = [];
    const deadline = Date.now() + RUN_TIMEOUT_MS;
    for (;;) {
        const s = await sample();
        samples.push(s);
        assert.ok(s.inUse <= PER_WORKER, `bulk slots in use: ${JSON.stringify(s)}`);
        assert.ok(s.holderWids.every((wid) => wid === WID), `bulk slot holders: ${JSON.stringify(s)}`);
        assert.ok(s.busyBulk <= PER_WORKER, `bulk jobs working: ${JSON.stringify(s)}`);
        assert.ok(s.busyBulk + s.busyOther <= CONCURRENCY, `jobs working: ${JSON.stringify(s)}`);
        // The worker takes an other job only when its 5 bulk slots are taken, so while bulk
        // jobs wait it never runs more than 10 other jobs. The margin of 100 queued jobs
        // covers the bulk jobs finished between the INFO and the /api/busy request.
        if (s.bulkQueued > 100) {
            assert.ok(s.busyOther <= CONCURRENCY - PER_WORKER, `other jobs working: ${JSON.stringify(s)}`);
        }
        if (s.bulkQueued === 0 && s.inUse === 0) {
            break;
        }
        assert.ok(Date.now() < deadline, `the bulk jobs were not done after ${RUN_TIMEOUT_MS} ms; ` +
            `last sample ${JSON.stringify(s)}`);
        await sleep(100);
    }
    const processedMs = Date.now() - started;
    // Errors from here on are the client's own shutdown race (a fetch loop that passed its
    // quiet check before stop() drained the connection pool), so only earlier ones count.
    const errorsWhileRunning = workerErrors.map((err) => err.message);
    await worker.stop();

    t.diagnostic(`${BULK_JOBS} bulk jobs: pushed with ${otherJobs} other jobs in ${pushedMs} ms, ` +
        `bulk done after ${processedMs} ms (${BULK_JOB_MS} ms each); ${samples.length} samples; ` +
        `max running bulk ${maxRunning.Bulk}, other ${maxRunning.Other}`);
    assert.deepEqual(errorsWhileRunning, [], 'worker errors');

    // Every bulk job ran exactly once, never more than 5 at a time.
    const notOnce = [];
    bulkRuns.forEach((count, n) => {
        if (count !== 1) {
            notOnce.push(n);
        }
    });
    assert.deepEqual(notOnce.slice(0, 20), [], 'bulk jobs that did not run exactly once');
    assert.equal(maxRunning.Bulk, PER_WORKER, 'most bulk jobs running at once in the worker');
    assert.ok(maxRunning.Other >= CONCURRENCY - PER_WORKER,
        `most other jobs running at once: ${maxRunning.Other}`);

    // While bulk jobs waited, the other 10 processors ran other jobs while INFO showed 4 or 5
    // bulk slots in use: a bulk processor between its ACK and its next FETCH has no slot.
    const busyPhase = samples.filter((s) => s.bulkQueued > 100);
    const otherFull = busyPhase.filter((s) => s.busyOther === CONCURRENCY - PER_WORKER);
    const split = otherFull.filter((s) => s.inUse >= PER_WORKER - 1);
    t.diagnostic(`other jobs filled ${CONCURRENCY - PER_WORKER} processors in ${otherFull.length} ` +
        `of ${busyPhase.length} samples while bulk jobs waited, ${split.length} of them with ` +
        `${PER_WORKER - 1} or ${PER_WORKER} bulk slots in use`);
    assert.ok(busyPhase.length >= 5, `samples while bulk jobs waited: ${busyPhase.length}`);
    // Bulk comes first, so a processor takes a bulk job whenever a slot is free at its FETCH and
    // a slow client leaves few samples full. A throttle that blocked the other queue or the
    // whole worker would leave none.
    assert.ok(otherFull.length >= 1,
        `other jobs filled 10 processors in ${otherFull.length} of ${busyPhase.length} samples`);
    assert.ok(split.length >= 1, 'no sample showed 4 or 5 bulk slots in use and 10 other jobs ' +
        `working; samples: ${JSON.stringify(busyPhase.slice(0, 20))}`);

    // Every bulk slot was taken once and freed by its ACK.
    const info = await client.info();
    const bulk = info.faktory.throttles.bulk;
    assert.equal(bulk.in_use, 0, 'bulk slots in use at the end');
    assert.equal(bulk.taken, BULK_JOBS, 'bulk slots taken');
    assert.equal(bulk.released, BULK_JOBS, 'bulk slots released');
    assert.equal(bulk.timed_out, 0, 'bulk slots timed out');
    assert.equal(info.faktory.queues.bulk || 0, 0, 'bulk jobs left');
    passed = true;
});
