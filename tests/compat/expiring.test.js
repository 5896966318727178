'use strict';
// Expiring jobs with the real faktory-worker client. Jobs carry custom.expires_in or
// custom.expires_at, set through Job#custom and in plain payloads. DEBUG CLOCK, sent over a
// raw FWP connection because the client has no such command, moves the server clock past some
// expiries. A Worker then runs exactly the jobs that had not expired. /metrics on the web port
// counts the expired jobs, so the web lib of tests/web starts the server.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { FabrikServer, sleep, stopAll } = require('../web/lib/server');
const { client: httpClient } = require('../web/lib/http');
const { FwpClient } = require('../web/lib/fwp');
const { loadFaktory, waitUntil } = require('./lib/client');

const QUEUE = 'expiring';
const JOBTYPE = 'ExpiringJob';
// A run that takes longer than this fails rather than hanging CTest.
const RUN_TIMEOUT_MS = 60000;

let server;
let faktory;
let client;
let raw;
let web;
let passed = 0;

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-compat-expiring' }).start();
    faktory = loadFaktory(`tcp://127.0.0.1:${server.port}`);
    client = new faktory.Client();
    raw = await FwpClient.connect(server.port);
    web = httpClient(server.webPort);
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

// Moves the server clock forward and runs every timer that became due.
async function moveClock(seconds) {
    await raw.ok(`DEBUG CLOCK ${seconds}`);
}

// The server's clock in milliseconds since the epoch, from INFO "now".
async function serverNow() {
    const info = await client.info();
    // The server writes up to nine fraction digits, and Date.parse needs at most three.
    const now = Date.parse(String(info.now).replace(/(\.\d{3})\d+/, '$1'));
    assert.ok(Number.isFinite(now), `INFO now: ${JSON.stringify(info.now)}`);
    return now;
}

// Formats ms since the epoch as RFC 3339 local time at a UTC offset of offsetMinutes.
function rfc3339(ms, offsetMinutes = 0) {
    const local = new Date(ms + offsetMinutes * 60000).toISOString().slice(0, -1);
    if (offsetMinutes === 0) {
        return `${local}Z`;
    }
    const sign = offsetMinutes < 0 ? '-' : '+';
    const minutes = Math.abs(offsetMinutes);
    const hh = String(Math.floor(minutes / 60)).padStart(2, '0');
    const mm = String(minutes % 60).padStart(2, '0');
    return `${local}${sign}${hh}:${mm}`;
}

async function expiredTotal() {
    const res = await web.get('/metrics');
    assert.equal(res.status, 200, `GET /metrics status, body ${res.text.slice(0, 200)}`);
    const line = res.text.split('\n').find((l) => l.startsWith('fabrik_jobs_expired_total '));
    assert.ok(line, 'fabrik_jobs_expired_total in /metrics');
    return Number(line.split(' ')[1]);
}

async function queueSize(queue) {
    const info = await client.info();
    return info.faktory.queues[queue] || 0;
}

// Runs a Worker on queue until `expected` jobs have run and the queue is empty, then stops it.
// Returns the labels (first argument) of the jobs run, in order, and the jobs themselves.
async function runWorker(queue, expected, handler = async () => {}) {
    const ran = [];
    const jobs = [];
    const workerErrors = [];
    const worker = new faktory.Worker({ concurrency: 5, queues: [queue] });
    worker.use(async (ctx, next) => {
        jobs.push(ctx.job);
        await next();
    });
    worker.register(JOBTYPE, async (label) => {
        ran.push(label);
        await handler(label);
    });
    worker.on('error', (err) => workerErrors.push(err.message));
    await worker.work();
    try {
        await waitUntil(async () => ran.length >= expected && worker.working.size === 0 &&
            await queueSize(queue) === 0, RUN_TIMEOUT_MS, `${expected} jobs to run`);
        // A moment more, so a job handed out wrongly after the last expected one shows up.
        await sleep(300);
    } finally {
        await worker.stop();
    }
    assert.deepEqual(workerErrors, [], 'worker errors');
    return { ran, jobs };
}

// Pushes count jobs labelled `${group}-${i}` with the given custom object and scheduled time.
async function pushGroup(group, count, { custom, at } = {}) {
    const labels = [];
    for (let i = 0; i < count; i++) {
        const label = `${group}-${i}`;
        const job = client.job(JOBTYPE, label);
        job.queue = QUEUE;
        if (custom !== undefined) {
            job.custom = custom;
        }
        if (at !== undefined) {
            job.at = at;
        }
        await job.push();
        labels.push(label);
    }
    return labels;
}

test('only jobs that have not expired run', async (t) => {
    const now = await serverNow();
    const runs = [];
    const expires = [];
    // Expire at the first clock step (40 s).
    expires.push(...await pushGroup('in-30', 10, { custom: { expires_in: 30 } }));
    expires.push(...await pushGroup('in-29.5', 5, { custom: { expires_in: 29.5 } }));
    expires.push(...await pushGroup('at-30', 5, { custom: { expires_at: rfc3339(now + 30000, 120) } }));
    expires.push(...await pushGroup('at-first', 5, {
        custom: { expires_at: rfc3339(now + 10000), expires_in: 3600 },
    }));
    // Scheduled for 60 s from now, expiring before they are due.
    expires.push(...await pushGroup('sched-gone', 5, {
        custom: { expires_in: 30 }, at: new Date(now + 60000),
    }));
    // Still valid after both clock steps (70 s in all).
    runs.push(...await pushGroup('in-3600', 10, { custom: { expires_in: 3600, note: 'other data' } }));
    runs.push(...await pushGroup('at-3600', 5, { custom: { expires_at: rfc3339(now + 3600000, -300) } }));
    runs.push(...await pushGroup('at-wins', 5, {
        custom: { expires_at: rfc3339(now + 3600000), expires_in: 10 },
    }));
    runs.push(...await pushGroup('plain', 10));
    runs.push(...await pushGroup('sched-live', 5, {
        custom: { expires_in: 3600 }, at: new Date(now + 60000),
    }));
    // pushBulk with plain payloads, one of each kind.
    const bulk = [
        { jobtype: JOBTYPE, queue: QUEUE, args: ['bulk-gone'], custom: { expires_in: 20 } },
        { jobtype: JOBTYPE, queue: QUEUE, args: ['bulk-live'], custom: { expires_in: 600 } },
    ];
    assert.deepEqual(await client.pushBulk(bulk), {}, 'pushBulk rejections');
    expires.push('bulk-gone');
    runs.push('bulk-live');

    let info = await client.info();
    assert.equal(info.faktory.queues[QUEUE], expires.length + runs.length - 10,
        'queued jobs before the clock moves');
    assert.equal(info.faktory.tasks.Scheduled.size, 10, 'scheduled jobs before the clock moves');
    assert.equal(await expiredTotal(), 0, 'fabrik_jobs_expired_total before the clock moves');

    await moveClock(40);
    info = await client.info();
    assert.equal(info.faktory.queues[QUEUE], runs.length - 5, 'queued jobs after 40 s');
    assert.equal(info.faktory.tasks.Scheduled.size, 5, 'scheduled jobs after 40 s');
    assert.equal(await expiredTotal(), expires.length, 'fabrik_jobs_expired_total after 40 s');

    await moveClock(30);
    info = await client.info();
    assert.equal(info.faktory.queues[QUEUE], runs.length, 'queued jobs after 70 s');
    assert.equal(info.faktory.tasks.Scheduled.size, 0, 'scheduled jobs after 70 s');

    const { ran, jobs } = await runWorker(QUEUE, runs.length);
    assert.deepEqual([...ran].sort(), [...runs].sort(), 'jobs run by the worker');
    const fetched = jobs.find((job) => job.args[0] === 'in-3600-0');
    assert.deepEqual(fetched.custom, { expires_in: 3600, note: 'other data' },
        'custom of a job as fetched');

    info = await client.info();
    assert.equal(info.faktory.total_processed, runs.length, 'total_processed');
    assert.equal(info.faktory.total_failures, 0, 'total_failures');
    assert.equal(await expiredTotal(), expires.length, 'fabrik_jobs_expired_total at the end');
    t.diagnostic(`${runs.length} jobs ran, ${expires.length} expired`);
    passed += 1;
});

test('invalid expiry values are rejected', async () => {
    const before = await queueSize(QUEUE);
    await assert.rejects(client.push({
        jobtype: JOBTYPE, queue: QUEUE, args: ['bad-in'], custom: { expires_in: '60' },
    }), /expires_in/, 'push with expires_in "60"');
    await assert.rejects(client.push({
        jobtype: JOBTYPE, queue: QUEUE, args: ['bad-in'], custom: { expires_in: 0 },
    }), /expires_in/, 'push with expires_in 0');
    await assert.rejects(client.push({
        jobtype: JOBTYPE, queue: QUEUE, args: ['bad-at'], custom: { expires_at: 'tomorrow' },
    }), /expires_at/, 'push with expires_at "tomorrow"');

    const rejected = await client.pushBulk([
        { jid: 'bulk-bad-expires-at', jobtype: JOBTYPE, queue: QUEUE, args: ['bad-at'],
            custom: { expires_at: 1893456000 } },
        { jid: 'bulk-bad-expires-in', jobtype: JOBTYPE, queue: QUEUE, args: ['bad-in'],
            custom: { expires_in: -1 } },
    ]);
    assert.deepEqual(Object.keys(rejected).sort(), ['bulk-bad-expires-at', 'bulk-bad-expires-in']);
    assert.match(rejected['bulk-bad-expires-at'].reason, /expires_at/);
    assert.match(rejected['bulk-bad-expires-in'].reason, /expires_in/);
    assert.equal(await queueSize(QUEUE), before, 'queued jobs after the rejected pushes');
    passed += 1;
});

// In real time: while the only processor is busy, a queued job expires. When the processor
// is free again it gets the job behind the expired one, which never runs.
test('a job that expires while the worker is busy never runs', async () => {
    const queue = 'expiring-busy';
    const expiredBefore = await expiredTotal();
    let release;
    const blocker = new Promise((resolve) => {
        release = resolve;
    });
    const ran = [];
    const worker = new faktory.Worker({ concurrency: 1, queues: [queue] });
    worker.register(JOBTYPE, async (label) => {
        ran.push(label);
        if (label === 'blocker') {
            await blocker;
        }
    });
    await worker.work();
    try {
        await client.push({ jobtype: JOBTYPE, queue, args: ['blocker'] });
        await waitUntil(() => ran.includes('blocker'), 10000, 'the blocking job to start');
        await client.push({ jobtype: JOBTYPE, queue, args: ['short-lived'], custom: { expires_in: 1 } });
        await client.push({ jobtype: JOBTYPE, queue, args: ['after'] });
        await sleep(1500);
        release();
        await waitUntil(() => ran.includes('after'), 10000, 'the job after the expired one');
        await sleep(300);
    } finally {
        release();
        await worker.stop();
    }
    assert.deepEqual(ran, ['blocker', 'after'], 'jobs run by the worker, in order');
    assert.equal(await queueSize(queue), 0, `size of ${queue}`);
    assert.equal(await expiredTotal(), expiredBefore + 1, 'fabrik_jobs_expired_total');
    passed += 1;
});
