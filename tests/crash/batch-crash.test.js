'use strict';
// Crash test for batches: a controller creates batches (some nested), pushes their jobs and
// commits them while workers run the jobs, failing some on their first delivery, and the
// server is killed with SIGKILL at random moments and restarted on the same data directory.
// Pushes and commits whose reply was lost are sent again (same jid, so membership is
// unchanged). Afterwards every committed batch must show complete and success as done, and
// each of its two callbacks must have been enqueued exactly once: every delivery of a
// callback carries the same jid (a lost ACK may deliver that job again, which is allowed).
//
// Environment: CRASH_DURABILITY ("fsync" or "os", default "fsync"), CRASH_ROUNDS (default 12),
// CRASH_SEED (default: the current time, printed).

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { FabrikServer, freePort, sleep } = require('../compat/lib/fabrik-server');
const { FwpConnection } = require('./fwp');
const { makeRandom, isClosed, control, leftovers } = require('./common');

const DURABILITY = process.env.CRASH_DURABILITY || 'fsync';
const ROUNDS = Math.max(5, Number(process.env.CRASH_ROUNDS || 12));
const SEED = Number(process.env.CRASH_SEED || Date.now() % 1000000);
// Each round starts this many pairs of batches: a parent and a child created inside it.
const PAIRS_PER_ROUND = 3;
const JOBS_PER_BATCH = 40;
const PUSHB_SIZE = 5;
const WORKERS = 3;
const FAIL_SHARE = 0.1;
const WORK_QUEUE = 'work';
const CALLBACK_QUEUE = 'cb';
// The drain moves the server clock past reservations (1800 s) and retry delays in steps.
const CLOCK_STEP_S = 900;
const MAX_CLOCK_STEPS = 10;

const random = makeRandom(SEED);

function callbackJob(name) {
    return { jobtype: name, args: [], queue: CALLBACK_QUEUE };
}

// What the clients know about every batch whose BATCH NEW got a bid back.
class Plan {
    constructor() {
        this.batches = [];          // in creation order
        this.byBid = new Map();
        this.callbackJids = new Map();   // "<bid>/<complete|success>" -> Set of jids delivered
        this.unexpected = [];
        this.nextJob = 0;
    }

    add(bid, parent) {
        const jids = [];
        for (let n = 0; n < JOBS_PER_BATCH; n++) {
            jids.push(`crash-batch-job-${String(this.nextJob++).padStart(6, '0')}`);
        }
        const batch = { bid, parent, jids, pushed: new Set(), committed: false, children: [] };
        this.batches.push(batch);
        this.byBid.set(bid, batch);
        if (parent) {
            parent.children.push(batch);
        }
        return batch;
    }

    // The next batch that still needs pushes or a commit, children before their parent.
    unfinished() {
        return this.batches.find((b) => !b.committed &&
            b.children.every((child) => child.committed));
    }

    recordCallback(job) {
        const key = `${job.custom._bid}/${job.custom._cb}`;
        if (!this.byBid.has(job.custom._bid)) {
            this.unexpected.push(`callback for a batch never created here: ${key}`);
        }
        if (!this.callbackJids.has(key)) {
            this.callbackJids.set(key, new Set());
        }
        this.callbackJids.get(key).add(job.jid);
    }
}

async function expectOk(conn, line) {
    const reply = await conn.command(line);
    if (!(reply.kind === 'simple' && reply.value === 'OK')) {
        throw new Error(`${line.slice(0, 80)} answered ${JSON.stringify(reply)}`);
    }
}

async function newBatch(conn, plan, parent) {
    const body = { complete: callbackJob('Complete'), success: callbackJob('Success') };
    if (parent) {
        body.parent_bid = parent.bid;
    }
    const reply = await conn.command(`BATCH NEW ${JSON.stringify(body)}`);
    if (reply.kind !== 'bulk') {
        throw new Error(`BATCH NEW answered ${JSON.stringify(reply)}`);
    }
    return plan.add(reply.value, parent);
}

// Pushes what the batch still lacks, then commits it.
async function finishBatch(conn, batch) {
    const missing = batch.jids.filter((jid) => !batch.pushed.has(jid));
    for (let i = 0; i < missing.length; i += PUSHB_SIZE) {
        const jids = missing.slice(i, i + PUSHB_SIZE);
        const jobs = jids.map((jid) => ({
            jid, jobtype: 'Item', queue: WORK_QUEUE, args: [jid], custom: { bid: batch.bid },
        }));
        const reply = await conn.command(`PUSHB ${JSON.stringify(jobs)}`);
        if (reply.kind !== 'bulk' || reply.value !== '{}') {
            throw new Error(`PUSHB answered ${JSON.stringify(reply)}`);
        }
        jids.forEach((jid) => batch.pushed.add(jid));
    }
    await expectOk(conn, `BATCH COMMIT ${batch.bid}`);
    batch.committed = true;
}

// Creates this round's batches (when newPairs) and finishes every unfinished one, until the
// server dies or nothing is left.
async function runController(port, plan, newPairs) {
    let conn;
    try {
        conn = await FwpConnection.open(port, { hostname: 'crash-batch-controller' });
        for (let p = 0; p < newPairs; p++) {
            const parent = await newBatch(conn, plan, null);
            await newBatch(conn, plan, parent);
        }
        for (let batch = plan.unfinished(); batch; batch = plan.unfinished()) {
            await finishBatch(conn, batch);
        }
    } catch (err) {
        if (!isClosed(err)) {
            throw err;
        }
    } finally {
        if (conn) {
            conn.destroy();
        }
    }
}

async function runWorker(port, wid, plan, stop, drain) {
    let conn;
    let handled = 0;
    try {
        conn = await FwpConnection.open(port, { hostname: 'crash-batch-worker', wid });
        while (!stop.flag) {
            const reply = await conn.command(`FETCH ${WORK_QUEUE} ${CALLBACK_QUEUE}`);
            if (reply.kind !== 'bulk') {
                plan.unexpected.push(`FETCH: ${JSON.stringify(reply)}`);
                await sleep(50);
                continue;
            }
            if (reply.value === null) {
                if (drain) {
                    break;
                }
                continue;
            }
            const job = JSON.parse(reply.value);
            if (job.custom && job.custom._bid) {
                plan.recordCallback(job);
            }
            if (random() < 0.1) {
                await sleep(Math.floor(random() * 5));
            }
            if (!drain && !job.failure && job.jobtype === 'Item' && random() < FAIL_SHARE) {
                const body = { jid: job.jid, errtype: 'CrashTestError', message: 'planned' };
                await expectOk(conn, `FAIL ${JSON.stringify(body)}`);
            } else {
                await expectOk(conn, `ACK ${JSON.stringify({ jid: job.jid })}`);
            }
            handled += 1;
        }
    } catch (err) {
        if (!isClosed(err)) {
            throw err;
        }
    } finally {
        if (conn) {
            conn.destroy();
        }
    }
    return handled;
}

async function busyRound(server, plan) {
    await server.start();
    const stop = { flag: false };
    const clients = [runController(server.port, plan, PAIRS_PER_ROUND)];
    for (let w = 0; w < WORKERS; w++) {
        clients.push(runWorker(server.port, `crash-batch-w${w}`, plan, stop, false));
    }
    const runMs = 50 + Math.floor(random() * 600);
    await sleep(runMs);
    await server.kill();
    stop.flag = true;
    await Promise.all(clients);
    return runMs;
}

// Finishes every batch, then runs every job and callback, moving the clock past
// reservations and retries, until INFO shows nothing left.
async function drain(server, plan, log) {
    await server.start();
    await runController(server.port, plan, 0);
    assert.equal(plan.unfinished(), undefined, 'every batch is committed after the restart');
    const conn = await FwpConnection.open(server.port, { hostname: 'crash-batch-control' });
    try {
        for (let step = 1; ; step++) {
            const stop = { flag: false };
            const workers = [];
            for (let w = 0; w < WORKERS; w++) {
                workers.push(runWorker(server.port, `crash-drain-${step}-${w}`, plan, stop, true));
            }
            const handled = (await Promise.all(workers)).reduce((sum, n) => sum + n, 0);
            const left = leftovers(await control(conn, 'INFO'));
            log(`drain pass ${step}: ${handled} jobs, left ${JSON.stringify(left)}`);
            if (Object.values(left).every((count) => count === 0)) {
                return conn;
            }
            if (step >= MAX_CLOCK_STEPS) {
                throw new Error(`jobs still left after ${MAX_CLOCK_STEPS} steps: ` +
                    JSON.stringify(left));
            }
            assert.equal(await control(conn, `DEBUG CLOCK ${CLOCK_STEP_S}`), 'OK');
        }
    } catch (err) {
        conn.destroy();
        throw err;
    }
}

test(`batch callbacks run exactly once across ${ROUNDS} SIGKILLs (${DURABILITY})`,
    { timeout: 240000 }, async (t) => {
        t.diagnostic(`seed ${SEED}`);
        const toml = `[fabrik]\ndurability = "${DURABILITY}"\n`;
        const server = new FabrikServer({ prefix: 'fabrik-batch-crash', toml });
        server.fixedPort = await freePort();
        const plan = new Plan();
        let passed = false;
        try {
            for (let round = 1; round <= ROUNDS; round++) {
                const ms = await busyRound(server, plan);
                t.diagnostic(`round ${round}: killed after ${ms} ms; ${plan.batches.length} ` +
                    `batches, ${plan.batches.filter((b) => b.committed).length} committed`);
            }
            const conn = await drain(server, plan, (line) => t.diagnostic(line));
            try {
                const wrong = [];
                for (const batch of plan.batches) {
                    const status = await control(conn, `BATCH STATUS ${batch.bid}`);
                    const got = [status.total, status.pending, status.complete_st,
                        status.success_st].join(' ');
                    const want = [JOBS_PER_BATCH, 0, '2', '2'].join(' ');
                    if (got !== want) {
                        wrong.push(`${batch.bid}: total pending complete success = ${got}`);
                    }
                    for (const cb of ['complete', 'success']) {
                        const jids = plan.callbackJids.get(`${batch.bid}/${cb}`);
                        if (!jids || jids.size !== 1) {
                            wrong.push(`${batch.bid}: ${cb} enqueued ${jids ? jids.size : 0} ` +
                                'times');
                        }
                    }
                }
                assert.deepEqual(wrong.slice(0, 10), [], `batches out of ${plan.batches.length}`);
                assert.deepEqual(plan.unexpected.slice(0, 10), [], 'unexpected replies');
                assert.equal(plan.callbackJids.size, plan.batches.length * 2,
                    'callback kinds delivered');
            } finally {
                conn.destroy();
            }
            passed = true;
        } finally {
            const exit = await server.stop();
            if (passed && exit.code === 0) {
                server.removeFiles();
            } else {
                console.log(`server files kept in ${server.root}; log tail:\n${server.logTail()}`);
            }
        }
    });
