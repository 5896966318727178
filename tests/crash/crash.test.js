'use strict';
// Crash test: producers and workers run against the real server while it is killed with
// SIGKILL at random moments and restarted on the same data directory. Workers ACK most jobs
// and FAIL a few. Afterwards every job whose PUSH got +OK must have been ACKed, no job may be
// handed out again after its ACK got +OK, and every job whose FAIL got +OK must have come
// back from the retry set.
//
// Environment: CRASH_DURABILITY ("fsync" or "os", default "fsync") selects the server's
// durability setting. CRASH_ROUNDS sets the number of kill rounds (default 24, at least 20).
// CRASH_SEED sets the random seed, which defaults to the current time and is printed.

const assert = require('node:assert/strict');
const { performance } = require('node:perf_hooks');
const { test } = require('node:test');
const { FabrikServer, freePort, sleep } = require('../compat/lib/fabrik-server');
const { FwpConnection, ConnectionClosedError } = require('./fwp');
const { makeRandom, isClosed, control, leftovers } = require('./common');

const DURABILITY = process.env.CRASH_DURABILITY || 'fsync';
const ROUNDS = Math.max(20, Number(process.env.CRASH_ROUNDS || 24));
const SEED = Number(process.env.CRASH_SEED || Date.now() % 1000000);
const PRODUCERS = 2;
const WORKERS = 4;
// Producers pause while more than MAX_BACKLOG acknowledged pushes wait in the queue (pushed,
// neither ACKed nor FAILed), so the final drain stays short.
const MAX_BACKLOG = 2000;
const PUSHB_SIZE = 5;
// Share of first deliveries that workers FAIL instead of ACK during the kill rounds, so the
// retry set also lives through the crashes.
const FAIL_SHARE = 0.05;
const QUEUE = 'crash';
// Every EARLY_KILL_EVERY-th round kills the server while it is still starting up.
const EARLY_KILL_EVERY = 5;
// The drain moves the server clock by CLOCK_STEP_S at a time, past the default reservation
// of 1800 s and the first retry delay of at most 44 s, within MAX_CLOCK_STEPS steps.
const CLOCK_STEP_S = 900;
const MAX_CLOCK_STEPS = 10;
const DRAIN_WORKERS = 4;

const random = makeRandom(SEED);

// Everything the clients observed, with performance.now() timestamps taken when the reply
// arrived.
class Ledger {
    constructor() {
        this.pushOk = new Map();
        this.pushUnknown = new Set();
        this.pushRejected = [];
        this.fetches = [];
        this.ackOk = new Map();
        this.ackUnknown = new Set();
        this.failOk = new Map();
        this.unexpected = [];
        this.emptyFetches = 0;
    }

    // Estimates the queue length. A FAILed job that was ACKed later is subtracted twice, which
    // only lets producers run a little ahead.
    backlog() {
        return this.pushOk.size - this.ackOk.size - this.failOk.size;
    }

    roundCounts() {
        return {
            pushOk: this.pushOk.size, fetched: this.fetches.length, ackOk: this.ackOk.size,
            failOk: this.failOk.size, pushUnknown: this.pushUnknown.size,
            ackUnknown: this.ackUnknown.size, emptyFetches: this.emptyFetches,
        };
    }
}

function makeJob(jid, round) {
    return { jid, jobtype: 'CrashJob', queue: QUEUE, args: [round, jid] };
}

// Pushes jobs one at a time, every fourth command a PUSHB, until the connection ends.
async function runProducer(port, round, index, ledger, stop) {
    let conn;
    try {
        conn = await FwpConnection.open(port, { hostname: `crash-producer-${index}` });
    } catch (err) {
        if (isClosed(err)) {
            return;
        }
        throw err;
    }
    for (let seq = 0; !stop.flag; seq++) {
        if (ledger.backlog() > MAX_BACKLOG) {
            await sleep(5);
            continue;
        }
        const size = seq % 4 === 3 ? PUSHB_SIZE : 1;
        const jobs = [];
        for (let k = 0; k < size; k++) {
            jobs.push(makeJob(`r${round}-p${index}-${seq}-${k}`, round));
        }
        const line = size === 1
            ? `PUSH ${JSON.stringify(jobs[0])}`
            : `PUSHB ${JSON.stringify(jobs)}`;
        let reply;
        try {
            reply = await conn.command(line);
        } catch (err) {
            if (!isClosed(err)) {
                throw err;
            }
            jobs.forEach((job) => ledger.pushUnknown.add(job.jid));
            break;
        }
        recordPush(ledger, jobs, size === 1, reply);
    }
    conn.destroy();
}

function recordPush(ledger, jobs, single, reply) {
    const t = performance.now();
    if (single && reply.kind === 'simple' && reply.value === 'OK') {
        ledger.pushOk.set(jobs[0].jid, t);
        return;
    }
    if (!single && reply.kind === 'bulk' && reply.value !== null) {
        const rejected = JSON.parse(reply.value);
        for (const job of jobs) {
            if (job.jid in rejected) {
                ledger.pushRejected.push(`${job.jid}: ${rejected[job.jid]}`);
            } else {
                ledger.pushOk.set(job.jid, t);
            }
        }
        return;
    }
    ledger.pushRejected.push(`${jobs.map((job) => job.jid).join(',')}: ${JSON.stringify(reply)}`);
}

// FETCHes and ACKs jobs until the connection ends or stop.flag is set, or until the first
// empty FETCH in drain mode. Outside drain mode it FAILs a share of first deliveries.
// Returns the number of jobs it ACKed or FAILed.
async function runWorker(port, wid, ledger, stop, drain) {
    let conn;
    try {
        conn = await FwpConnection.open(port, {
            hostname: 'crash-worker', wid, pid: process.pid, labels: ['crash'],
        });
    } catch (err) {
        if (isClosed(err)) {
            return 0;
        }
        throw err;
    }
    let handled = 0;
    try {
        while (!stop.flag) {
            const job = await fetchOne(conn, ledger);
            if (job === undefined) {
                continue;
            }
            if (job === null) {
                if (drain) {
                    break;
                }
                continue;
            }
            // Some jobs are held a little, so that kills also land between FETCH and ACK.
            if (random() < 0.1) {
                await sleep(Math.floor(random() * 10));
            }
            if (!drain && !job.failure && random() < FAIL_SHARE) {
                await failOne(conn, ledger, job.jid);
            } else {
                await ackOne(conn, ledger, job.jid);
            }
            handled += 1;
        }
    } catch (err) {
        if (!isClosed(err)) {
            throw err;
        }
    }
    conn.destroy();
    return handled;
}

// Returns the fetched job, null for an empty FETCH, or undefined after an error reply.
async function fetchOne(conn, ledger) {
    const reply = await conn.command(`FETCH ${QUEUE}`);
    if (reply.kind !== 'bulk') {
        ledger.unexpected.push(`FETCH: ${JSON.stringify(reply)}`);
        await sleep(50);
        return undefined;
    }
    if (reply.value === null) {
        ledger.emptyFetches += 1;
        return null;
    }
    const job = JSON.parse(reply.value);
    ledger.fetches.push({ jid: job.jid, t: performance.now(), failure: job.failure });
    return job;
}

async function ackOne(conn, ledger, jid) {
    // An ACK that was never written is not in doubt: the job is still reserved.
    if (conn.closed) {
        throw new ConnectionClosedError(conn.closeReason);
    }
    let reply;
    try {
        reply = await conn.command(`ACK ${JSON.stringify({ jid })}`);
    } catch (err) {
        if (isClosed(err)) {
            ledger.ackUnknown.add(jid);
        }
        throw err;
    }
    if (reply.kind === 'simple' && reply.value === 'OK') {
        if (!ledger.ackOk.has(jid)) {
            ledger.ackOk.set(jid, performance.now());
        }
    } else {
        ledger.unexpected.push(`ACK ${jid}: ${JSON.stringify(reply)}`);
    }
}

async function failOne(conn, ledger, jid) {
    // As with ACK, a FAIL that was never written leaves the job reserved.
    if (conn.closed) {
        throw new ConnectionClosedError(conn.closeReason);
    }
    const body = { jid, errtype: 'CrashTestError', message: 'planned failure' };
    const reply = await conn.command(`FAIL ${JSON.stringify(body)}`);
    if (reply.kind === 'simple' && reply.value === 'OK') {
        ledger.failOk.set(jid, performance.now());
    } else {
        ledger.unexpected.push(`FAIL ${jid}: ${JSON.stringify(reply)}`);
    }
}

// Starts the server and lets it die by SIGKILL while it is still opening its data.
async function earlyKillRound(server, port) {
    server.spawn(port);
    await sleep(Math.floor(random() * 40));
    const exit = await server.kill();
    if (!exit.signal) {
        server.startFailures.push({ port, exit });
        return `fabrik exited on its own with status ${exit.code} during start-up`;
    }
    return 'killed during start-up';
}

async function busyRound(server, round, ledger) {
    await server.start();
    const stop = { flag: false };
    const clients = [];
    for (let p = 0; p < PRODUCERS; p++) {
        clients.push(runProducer(server.port, round, p, ledger, stop));
    }
    for (let w = 0; w < WORKERS; w++) {
        clients.push(runWorker(server.port, `crash-w${w}`, ledger, stop, false));
    }
    const runMs = 100 + Math.floor(random() * 1100);
    await sleep(runMs);
    await server.kill();
    stop.flag = true;
    await Promise.all(clients);
    return `killed after ${runMs} ms of traffic`;
}

// Moves the server clock forward and drains the queue with FETCH+ACK, in passes, until INFO
// shows no job anywhere.
async function drainEverything(server, ledger, log) {
    await server.start();
    const conn = await FwpConnection.open(server.port, { hostname: 'crash-control' });
    try {
        for (let step = 1; ; step++) {
            assert.equal(await control(conn, `DEBUG CLOCK ${CLOCK_STEP_S}`), 'OK');
            const stop = { flag: false };
            const workers = [];
            for (let w = 0; w < DRAIN_WORKERS; w++) {
                const wid = `crash-drain-${step}-${w}`;
                workers.push(runWorker(server.port, wid, ledger, stop, true));
            }
            const handled = (await Promise.all(workers)).reduce((sum, count) => sum + count, 0);
            const left = leftovers(await control(conn, 'INFO'));
            log(`drain pass ${step} after moving the clock ${step * CLOCK_STEP_S} s: ` +
                `acked ${handled} jobs, left ${JSON.stringify(left)}`);
            if (Object.values(left).every((count) => count === 0)) {
                return;
            }
            if (step >= MAX_CLOCK_STEPS) {
                throw new Error(`jobs still left after ${MAX_CLOCK_STEPS} clock steps: ` +
                    JSON.stringify(left));
            }
        }
    } finally {
        conn.destroy();
    }
}

function sample(list) {
    return list.length <= 10 ? list : [...list.slice(0, 10), `... ${list.length - 10} more`];
}

function checkLedger(ledger) {
    assert.deepEqual(sample(FwpConnection.protocolErrors), [], 'malformed or unsolicited replies');
    assert.deepEqual(sample(ledger.pushRejected), [], 'PUSH or PUSHB rejections');
    assert.deepEqual(sample(ledger.unexpected), [], 'unexpected FETCH or ACK replies');

    const lost = [...ledger.pushOk.keys()].filter(
        (jid) => !ledger.ackOk.has(jid) && !ledger.ackUnknown.has(jid));
    assert.deepEqual(sample(lost), [], 'jobs whose PUSH got +OK but that were never ACKed');

    const refetched = ledger.fetches
        .filter(({ jid, t }) => ledger.ackOk.has(jid) && t > ledger.ackOk.get(jid))
        .map(({ jid }) => jid);
    assert.deepEqual(sample(refetched), [], 'jobs fetched again after their ACK got +OK');

    const phantoms = ledger.fetches
        .filter(({ jid }) => !ledger.pushOk.has(jid) && !ledger.pushUnknown.has(jid))
        .map(({ jid }) => jid);
    assert.deepEqual(sample(phantoms), [], 'fetched jobs that no producer pushed');

    const failedLater = ledger.fetches.filter(
        ({ jid, t }) => ledger.failOk.has(jid) && t > ledger.failOk.get(jid));
    const withoutFailure = failedLater.filter(({ failure }) => !failure).map(({ jid }) => jid);
    assert.deepEqual(sample(withoutFailure), [],
        'jobs fetched after their FAIL got +OK that carry no failure block');
    const retried = new Set(failedLater.map(({ jid }) => jid));
    const notRetried = [...ledger.failOk.keys()].filter((jid) => !retried.has(jid));
    assert.deepEqual(sample(notRetried), [], 'jobs whose FAIL got +OK that never came back');
}

test(`jobs survive ${ROUNDS} SIGKILLs with durability ${DURABILITY}`, async (t) => {
    const log = (line) => console.log(`[crash ${DURABILITY}] ${line}`);
    const server = new FabrikServer({
        prefix: `fabrik-crash-${DURABILITY}`,
        toml: `[fabrik]\ndurability = "${DURABILITY}"\n`,
    });
    const ledger = new Ledger();
    let passed = false;
    log(`seed ${SEED}, ${ROUNDS} rounds, data in ${server.dataDir}`);
    try {
        const port = await freePort();
        server.fixedPort = port;
        for (let round = 1; round <= ROUNDS; round++) {
            const started = Date.now();
            const outcome = round % EARLY_KILL_EVERY === 0
                ? await earlyKillRound(server, port)
                : await busyRound(server, round, ledger);
            log(`round ${round}/${ROUNDS}: ${outcome}; ${Date.now() - started} ms; ` +
                `totals ${JSON.stringify(ledger.roundCounts())}`);
        }

        await drainEverything(server, ledger, log);
        const exit = await server.stop();
        assert.deepEqual(exit, { code: 0, signal: null }, 'fabrik exit status after SIGTERM');
        assert.deepEqual(server.startFailures, [], 'restarts where fabrik exited on its own');

        checkLedger(ledger);
        const fetchedTwice = ledger.fetches.length - new Set(ledger.fetches.map((f) => f.jid)).size;
        t.diagnostic(`pushed ${ledger.pushOk.size} jobs with +OK (${ledger.pushUnknown.size} ` +
            `unanswered), acked ${ledger.ackOk.size} (${ledger.ackUnknown.size} unanswered), ` +
            `failed ${ledger.failOk.size}, ${fetchedTwice} deliveries of already fetched jobs`);
        passed = true;
    } finally {
        await server.kill();
        if (passed) {
            server.removeFiles();
        } else {
            log(`server files kept in ${server.root}; log tail:\n${server.logTail()}`);
        }
    }
});
