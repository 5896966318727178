'use strict';
// The faktory-worker client's other calls against fabrik: INFO, PUSH/FETCH/ACK/FAIL by hand,
// pushBulk, beat, flush and the MUTATE helpers. Every test starts from a FLUSHed server.

const assert = require('node:assert/strict');
const { after, before, beforeEach, test } = require('node:test');
const { FabrikServer } = require('./lib/fabrik-server');
const { loadFaktory, infoSummary } = require('./lib/client');

const RFC3339_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

let server;
let faktory;
let client;
let failed = false;

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-compat-calls' }).start();
    faktory = loadFaktory(server.url);
    client = new faktory.Client();
});

beforeEach(async () => {
    assert.equal(await client.flush(), 'OK');
});

after(async () => {
    if (client) {
        await client.close();
    }
    await server.stopAndClean(failed);
});

// Registers a test that marks the run as failed when it throws, so the server files stay.
function check(name, fn) {
    test(name, async (t) => {
        try {
            await fn(t);
        } catch (err) {
            failed = true;
            throw err;
        }
    });
}

// Pushes a job to `queue`, fetches it and FAILs it, so it lands in the retry set.
async function makeRetry(job, message) {
    const jid = await client.push(job);
    const fetched = await client.fetch(job.queue);
    assert.equal(fetched.jid, jid, 'fetched jid while preparing a retry');
    assert.equal(await client.fail(jid, new Error(message)), 'OK');
    return jid;
}

check('info reports the fabrik identity', async () => {
    const info = await client.info();
    assert.deepEqual(Object.keys(info).sort(), ['faktory', 'now', 'server', 'server_utc_time']);
    assert.equal(info.server.description, 'fabrik');
    assert.equal(info.server.faktory_version, '1.10.0');
    assert.equal(typeof info.server.fabrik_version, 'string');
    assert.match(info.server_utc_time, /^\d\d:\d\d:\d\d UTC$/);
    assert.match(info.now, RFC3339_UTC);
    assert.equal(typeof info.faktory.tasks.Retries.size, 'number');
    assert.equal(typeof info.faktory.tasks.Dead.size, 'number');
    assert.equal(typeof info.faktory.tasks.Scheduled.size, 'number');
});

check('push, fetch and ack by hand', async () => {
    const jid = await client.push({
        jobtype: 'Manual', queue: 'manual', args: [1, 'two', { three: 3 }],
        custom: { trace: 'abc' }, extra_field: { kept: true },
    });
    let info = await infoSummary(client);
    assert.equal(info.queues.manual, 1, 'queue size after PUSH');

    const job = await client.fetch('manual');
    assert.equal(job.jid, jid);
    assert.equal(job.jobtype, 'Manual');
    assert.equal(job.queue, 'manual');
    assert.deepEqual(job.args, [1, 'two', { three: 3 }]);
    assert.deepEqual(job.custom, { trace: 'abc' });
    assert.deepEqual(job.extra_field, { kept: true }, 'unknown top-level field is kept');
    assert.equal(job.retry, 25);
    assert.match(job.created_at, RFC3339_UTC);
    assert.match(job.enqueued_at, RFC3339_UTC);
    info = await infoSummary(client);
    assert.equal(info.queues.manual, 0, 'queue size after FETCH');
    assert.equal(info.working, 1, 'working set size after FETCH');

    assert.equal(await client.ack(jid), 'OK');
    info = await infoSummary(client);
    assert.equal(info.working, 0, 'working set size after ACK');
    assert.equal(info.processed, 1, 'total_processed after ACK');
    assert.equal(info.failures, 0, 'total_failures after ACK');
});

check('fetch on an empty queue returns null after the wait', async () => {
    const started = Date.now();
    const job = await client.fetch('nothing-here');
    const waited = Date.now() - started;
    assert.equal(job, null);
    assert.ok(waited >= 1500, `FETCH returned after ${waited} ms, expected about 2 s`);
    assert.ok(waited < 4500, `FETCH returned after ${waited} ms, expected about 2 s`);
});

check('fetch takes queues in the given order and priority within a queue', async () => {
    const low = await client.push({ jobtype: 'Order', queue: 'second', priority: 1 });
    const high = await client.push({ jobtype: 'Order', queue: 'second', priority: 9 });
    const middle = await client.push({ jobtype: 'Order', queue: 'second', priority: 5 });
    const first = await client.push({ jobtype: 'Order', queue: 'first', priority: 1 });

    const order = [];
    for (let i = 0; i < 4; i++) {
        const job = await client.fetch('first', 'second');
        order.push(job.jid);
        await client.ack(job.jid);
    }
    assert.deepEqual(order, [first, high, middle, low]);
});

check('fail by hand records the failure and requeue brings it back', async () => {
    const jid = await client.push({ jobtype: 'Failing', queue: 'failing', args: [] });
    await client.fetch('failing');
    const error = new Error('boom');
    error.code = 'E_BOOM';
    assert.equal(await client.fail(jid, error), 'OK');

    let info = await infoSummary(client);
    assert.equal(info.retries, 1, 'retry set size after FAIL');
    assert.equal(info.failures, 1, 'total_failures after FAIL');
    assert.equal(info.processed, 1, 'total_processed counts the failure');
    assert.equal(info.working, 0, 'working set size after FAIL');

    assert.equal(await client.retries.withJids(jid).requeue(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.retries, 0, 'retry set size after requeue');
    assert.equal(info.queues.failing, 1, 'queue size after requeue');

    const job = await client.fetch('failing');
    assert.equal(job.jid, jid);
    assert.equal(job.failure.message, 'boom');
    assert.equal(job.failure.errtype, 'E_BOOM');
    assert.equal(job.failure.retry_count, 0);
    assert.equal(await client.ack(jid), 'OK');
});

check('ack of an unknown jid is OK, fail of one is an error', async () => {
    assert.equal(await client.ack('never-pushed-0001'), 'OK');
    await assert.rejects(client.fail('never-pushed-0002', new Error('x')), /ERR/);
});

check('pushBulk returns only the rejected jobs', async () => {
    const good = [];
    for (let i = 0; i < 5; i++) {
        good.push({ jid: `bulk-good-${i}-000`, jobtype: 'Bulk', queue: 'bulk', args: [i] });
    }
    const badQueue = { jid: 'bulk-bad-queue-000', jobtype: 'Bulk', queue: 'no spaces!' };
    const rejected = await client.pushBulk([...good, badQueue]);

    assert.deepEqual(Object.keys(rejected), [badQueue.jid]);
    assert.equal(typeof rejected[badQueue.jid].reason, 'string');
    assert.ok(rejected[badQueue.jid].reason.length > 0, 'rejection reason is not empty');
    const info = await infoSummary(client);
    assert.equal(info.queues.bulk, 5, 'queue size after pushBulk');

    const all = await client.pushBulk([{ jobtype: 'Bulk', queue: 'bulk' }]);
    assert.deepEqual(all, {}, 'pushBulk of valid jobs rejects none');
});

check('beat of a worker client returns OK and registers it', async () => {
    const workerClient = new faktory.Client({ wid: 'compat-beat-1', labels: ['compat'] });
    try {
        assert.equal(await workerClient.beat(), 'OK');
        const info = await infoSummary(client);
        assert.ok(info.workers >= 1, `faktory.tasks.Workers.size is ${info.workers}`);
    } finally {
        await workerClient.close();
    }
    // A client without a wid sends BEAT {} and the server has no worker to match.
    await assert.rejects(client.beat(), /ERR/);
});

check('flush removes jobs, sets and counters', async () => {
    await client.push({ jobtype: 'Flush', queue: 'flush-a' });
    await client.push({ jobtype: 'Flush', queue: 'flush-b', at: new Date(Date.now() + 3600e3) });
    await makeRetry({ jobtype: 'Flush', queue: 'flush-c' }, 'flush me');
    let info = await infoSummary(client);
    assert.equal(info.queues['flush-a'], 1);
    assert.equal(info.scheduled, 1);
    assert.equal(info.retries, 1);

    assert.equal(await client.flush(), 'OK');
    info = await infoSummary(client);
    const queued = Object.values(info.queues).reduce((sum, size) => sum + size, 0);
    assert.equal(queued, 0, 'jobs left in queues after FLUSH');
    assert.equal(info.enqueued, 0, 'total_enqueued after FLUSH');
    assert.equal(info.scheduled, 0, 'scheduled set after FLUSH');
    assert.equal(info.retries, 0, 'retry set after FLUSH');
    assert.equal(info.dead, 0, 'dead set after FLUSH');
    assert.equal(info.processed, 0, 'total_processed after FLUSH');
    assert.equal(info.failures, 0, 'total_failures after FLUSH');
});

check('mutations on the retry and dead sets', async () => {
    const a1 = await makeRetry({ jobtype: 'TypeA', queue: 'mut', args: ['plain'] }, 'a1');
    const a2 = await makeRetry({ jobtype: 'TypeA', queue: 'mut', args: ['has a needle'] }, 'a2');
    const b1 = await makeRetry({ jobtype: 'TypeB', queue: 'mut', args: ['plain'] }, 'b1');
    let info = await infoSummary(client);
    assert.equal(info.retries, 3, 'retry set after three failures');

    assert.equal(await client.retries.withJids('not-a-real-jid-1').kill(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.retries, 3, 'kill of an unknown jid changes nothing');

    assert.equal(await client.retries.ofType('TypeB').kill(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.retries, 2, 'retries after killing TypeB');
    assert.equal(info.dead, 1, 'dead set after killing TypeB');

    assert.equal(await client.retries.matching('*needle*').discard(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.retries, 1, 'retries after discarding *needle*');

    assert.equal(await client.dead.withJids(b1).requeue(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.dead, 0, 'dead set after requeue');
    assert.equal(info.queues.mut, 1, 'queue after requeue from dead');
    const back = await client.fetch('mut');
    assert.equal(back.jid, b1);
    assert.equal(back.failure.message, 'b1');
    await client.ack(b1);

    assert.equal(await client.retries.kill(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.retries, 0, 'retries after an unfiltered kill');
    assert.equal(info.dead, 1, 'dead set after an unfiltered kill');

    assert.equal(await client.dead.clear(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.dead, 0, 'dead set after clear');
    assert.equal(info.queues.mut, 0, 'queue untouched by clear');
    assert.notEqual(a1, a2);
});

check('mutations on the scheduled set', async () => {
    const later = new Date(Date.now() + 3600e3);
    const s1 = await client.push({ jobtype: 'Later', queue: 'sched', at: later });
    await client.push({ jobtype: 'Later', queue: 'sched', at: later });
    await client.push({ jobtype: 'Other', queue: 'sched', at: later });
    let info = await infoSummary(client);
    assert.equal(info.scheduled, 3);
    assert.equal(info.scheduledTask, 3);

    const beforeRequeue = Date.now();
    assert.equal(await client.scheduled.ofType('Later').withJids(s1).requeue(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.scheduled, 2, 'scheduled set after requeue');
    assert.equal(info.queues.sched, 1, 'queue after requeue');
    const job = await client.fetch('sched');
    assert.equal(job.jid, s1);
    assert.ok(Date.parse(job.enqueued_at) >= beforeRequeue - 1000,
        `requeue gives a fresh enqueued_at, got ${job.enqueued_at}`);
    await client.ack(s1);

    assert.equal(await client.scheduled.ofType('Other').discard(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.scheduled, 1, 'scheduled set after discarding Other');

    assert.equal(await client.scheduled.clear(), 'OK');
    info = await infoSummary(client);
    assert.equal(info.scheduled, 0, 'scheduled set after clear');
});

check('debug clock makes a scheduled job due', async () => {
    const later = new Date(Date.now() + 3600e3);
    const jid = await client.push({ jobtype: 'Clock', queue: 'clock', at: later });
    let info = await infoSummary(client);
    assert.equal(info.scheduled, 1);

    assert.equal(await client.send(['DEBUG', 'CLOCK', '3601']), 'OK');
    info = await infoSummary(client);
    assert.equal(info.scheduled, 0, 'scheduled set after the clock step');
    assert.equal(info.queues.clock, 1, 'queue after the clock step');
    const job = await client.fetch('clock');
    assert.equal(job.jid, jid);
    await client.ack(jid);
});

// Runs after every test that expects the server clock to match real time.
check('expired reservation becomes a retry', async () => {
    const jid = await client.push({ jobtype: 'Slow', queue: 'slow', reserve_for: 60 });
    const job = await client.fetch('slow');
    assert.equal(job.jid, jid);

    assert.equal(await client.send(['DEBUG', 'CLOCK', '61']), 'OK');
    let info = await infoSummary(client);
    assert.equal(info.working, 0, 'working set after the reservation expired');
    assert.equal(info.retries, 1, 'retry set after the reservation expired');
    assert.equal(info.failures, 1, 'total_failures counts the expiry');

    // A late FAIL finds no reservation, a late ACK is a no-op, and the retry stays.
    await assert.rejects(client.fail(jid, new Error('too late')), /ERR/);
    assert.equal(await client.ack(jid), 'OK');
    info = await infoSummary(client);
    assert.equal(info.retries, 1, 'retry set after the late ACK');

    assert.equal(await client.retries.withJids(jid).requeue(), 'OK');
    const again = await client.fetch('slow');
    assert.equal(again.jid, jid);
    assert.equal(again.failure.retry_count, 0);
    assert.equal(again.failure.remaining, 25);
    assert.equal(again.failure.errtype, 'ReservationExpired');
    assert.equal(await client.ack(jid), 'OK');
});
