'use strict';
// Soak test of the queue throttles, about two minutes: 50 worker processes (distinct wids,
// raw FWP sockets) fetch from three throttled queues, one with a concurrency limit, one with
// a per-worker limit and one with both. Workers hold each job up to 150 ms and then ACK it,
// FAIL it or drop their connection without a word. Meanwhile the server is reloaded with other
// limits (SIGHUP, including one invalid file) and restarted with SIGTERM and SIGKILL.
//
// After every step and about every 250 ms the test checks INFO and /api/throttles: no limit is
// exceeded (slots held over from before a lowered limit excepted), every holder list is
// complete, and taken = released + timed_out + in_use. After quiescence no slot is in use and
// the free slots equal the limits. Every job pushed is accounted for exactly once. It was
// either ACKed during the run, or drained at the end from its queue or (after FAIL or
// abandonment) from the dead set, because every job is pushed with retry -1.
//
// It reuses the server, FWP and HTTP helpers of tests/web/lib (Node built-ins only).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { after, test } = require('node:test');
const { FabrikServer, sleep } = require('../web/lib/server');
const { FwpClient } = require('../web/lib/fwp');
const { client: httpClient } = require('../web/lib/http');

const WORKERS = 50;
const QUEUES = ['conc', 'perw', 'both'];
const SLOT_TIMEOUT_S = 2;
const HOLD_MAX_MS = 150;
const QUEUED_TARGET = 150;
const DRAINERS = 5;
const CHECK_INTERVAL_MS = 250;

// Limits per configuration: conc = { concurrency }, perw = { worker }, both = { both }.
const CONFIGS = [
    { conc: 3, perw: 2, both: { concurrency: 6, worker: 1 } },
    { conc: 5, perw: 3, both: { concurrency: 4, worker: 2 } },
    { conc: 1, perw: 1, both: { concurrency: 2, worker: 1 } },
    { conc: 8, perw: 2, both: { concurrency: 10, worker: 3 } },
];
const INVALID_CONFIG = '[throttles]\nconc = { concurrency = 4 }\n';

function toml(limits) {
    return '[throttles]\n' +
        `conc = { concurrency = ${limits.conc}, timeout = ${SLOT_TIMEOUT_S} }\n` +
        `perw = { worker = ${limits.perw}, timeout = ${SLOT_TIMEOUT_S} }\n` +
        `both = { concurrency = ${limits.both.concurrency}, worker = ${limits.both.worker}, ` +
        `timeout = ${SLOT_TIMEOUT_S} }\n` +
        '[fabrik]\ndurability = "os"\n';
}

// The limits of one queue under a configuration: { concurrency, worker } with 0 for none.
function limitsOf(limits, queue) {
    if (queue === 'conc') {
        return { concurrency: limits.conc, worker: 0 };
    }
    if (queue === 'perw') {
        return { concurrency: 0, worker: limits.perw };
    }
    return limits.both;
}

function randomInt(max) {
    return Math.floor(Math.random() * max);
}

function shuffled(list) {
    const copy = [...list];
    for (let i = copy.length - 1; i > 0; i--) {
        const j = randomInt(i + 1);
        [copy[i], copy[j]] = [copy[j], copy[i]];
    }
    return copy;
}

let server;
let passed = false;

after(async () => {
    if (!server) {
        return;
    }
    const exit = await server.stop();
    if (passed && exit && exit.code === 0) {
        server.removeFiles();
    } else {
        console.log(`server files kept in ${server.root}; log tail:\n${server.logTail()}`);
    }
    assert.deepEqual(exit, { code: 0, signal: null }, 'fabrik exit status after SIGTERM');
});

// What happened to every job, by jid. Violations found inside worker loops are collected in
// problems, because an exception there only drops the worker's connection.
class Ledger {
    constructor() {
        this.jobs = new Map();
        this.counter = 0;
        this.problems = [];
    }

    newJid() {
        this.counter += 1;
        return `soak-${String(this.counter).padStart(8, '0')}`;
    }

    pushed(jid, certain) {
        this.jobs.set(jid, { push: certain ? 'ok' : 'uncertain', fetches: 0, outcome: null });
    }

    fetched(jid) {
        const entry = this.jobs.get(jid);
        if (!entry) {
            this.problems.push(`fetched job ${jid}, which was never pushed`);
            return;
        }
        entry.fetches += 1;
        if (entry.fetches > 1) {
            this.problems.push(`job ${jid} was handed out ${entry.fetches} times (it has retry -1)`);
        }
    }

    outcome(jid, what) {
        this.jobs.get(jid).outcome = what;
    }
}

// One worker process: a single connection with its own wid that fetches, holds, and then
// ACKs, FAILs or drops the connection.
class SoakWorker {
    constructor(index, context) {
        this.wid = `soak-wid-${String(index).padStart(2, '0')}`;
        this.index = index;
        this.context = context;
        this.conn = null;
        this.lastBeat = 0;
    }

    async connect() {
        this.conn = await FwpClient.connect(this.context.server.port, {
            hello: { wid: this.wid, hostname: 'soak', pid: 20000 + this.index, labels: ['soak'] },
        });
        this.lastBeat = Date.now();
    }

    drop() {
        if (this.conn) {
            this.conn.close();
            this.conn = null;
        }
    }

    async step() {
        const { ledger, stats } = this.context;
        if (Date.now() - this.lastBeat > 10000) {
            await this.conn.beat(this.wid);
            this.lastBeat = Date.now();
        }
        const job = await this.conn.fetch(...shuffled(QUEUES));
        if (!job) {
            return;
        }
        ledger.fetched(job.jid);
        stats.fetched += 1;
        await sleep(randomInt(HOLD_MAX_MS + 1));
        const roll = Math.random();
        if (roll < 0.08) {
            // Dies holding the job: its slot comes back at the timeout.
            ledger.outcome(job.jid, 'abandoned');
            stats.abandoned += 1;
            this.drop();
        } else if (roll < 0.28) {
            ledger.outcome(job.jid, 'fail?');
            await this.conn.fail(job.jid, 'SoakError', 'planned failure');
            ledger.outcome(job.jid, 'failed');
            stats.failed += 1;
        } else {
            ledger.outcome(job.jid, 'ack?');
            await this.conn.ack(job.jid);
            ledger.outcome(job.jid, 'acked');
            stats.acked += 1;
        }
    }

    async run() {
        while (!this.context.stopping) {
            try {
                if (!this.conn) {
                    await this.connect();
                }
                if (Math.random() < 0.002) {
                    // Drops an idle connection now and then, too.
                    this.drop();
                    continue;
                }
                await this.step();
            } catch (err) {
                // The server went away (restart) or this worker dropped its connection.
                this.drop();
                await sleep(50 + randomInt(100));
            }
        }
        this.drop();
    }
}

// Keeps about QUEUED_TARGET jobs waiting in every queue.
async function refill(context) {
    const { ledger } = context;
    const fwp = await FwpClient.connect(context.server.port);
    try {
        const info = await fwp.info();
        for (const queue of QUEUES) {
            const missing = QUEUED_TARGET - (info.faktory.queues[queue] || 0);
            if (missing <= 0) {
                continue;
            }
            const jobs = [];
            for (let i = 0; i < missing; i++) {
                jobs.push({ jid: ledger.newJid(), jobtype: 'Soak', queue, args: [i], retry: -1 });
            }
            for (const job of jobs) {
                ledger.pushed(job.jid, false);
            }
            const reply = await fwp.command(`PUSHB ${JSON.stringify(jobs)}`);
            assert.deepEqual(reply, { kind: 'bulk', value: '{}' }, 'PUSHB reply');
            for (const job of jobs) {
                ledger.pushed(job.jid, true);
            }
        }
    } finally {
        fwp.close();
    }
}

// Records the holders of every queue now, as slots that may exceed a just-lowered limit.
async function captureHeldOver(context) {
    const reply = await context.web.get('/api/throttles');
    assert.equal(reply.status, 200, 'GET /api/throttles');
    context.heldOver = new Set();
    for (const t of reply.json.throttles) {
        for (const holder of t.holders) {
            context.heldOver.add(`${t.queue}/${holder.jid}`);
        }
    }
}

// Checks every limit through INFO (slots in use and limits) and /api/throttles (every holder).
async function checkLimits(context, when) {
    const fwp = await FwpClient.connect(context.server.port);
    let info;
    try {
        info = await fwp.info();
    } finally {
        fwp.close();
    }
    const reply = await context.web.get('/api/throttles');
    assert.equal(reply.status, 200, 'GET /api/throttles');
    const full = new Map(reply.json.throttles.map((t) => [t.queue, t]));
    context.checks += 1;

    for (const queue of QUEUES) {
        const expected = limitsOf(context.limits, queue);
        const t = info.faktory.throttles[queue];
        const where = `${when}: queue ${queue} ${JSON.stringify({ ...t, holders: undefined })}`;
        assert.ok(t, `${when}: INFO has no throttle for ${queue}`);
        assert.equal(t.concurrency, expected.concurrency, `${where}: concurrency`);
        assert.equal(t.worker, expected.worker, `${where}: worker`);
        assert.equal(t.holders.length, Math.min(t.in_use, 100), `${where}: INFO holders`);
        assert.equal(t.taken, t.released + t.timed_out + t.in_use,
            `${where}: taken = released + timed_out + in_use`);

        // The web view is read after INFO, so its numbers may have moved on; it is checked
        // on its own.
        const w = full.get(queue);
        assert.equal(w.holders.length, w.in_use, `${when}: /api/throttles holders of ${queue}`);
        const isOld = (holder) => context.heldOver.has(`${queue}/${holder.jid}`);
        if (expected.concurrency && t.in_use >= expected.concurrency) {
            context.atLimit[queue] += 1;
        }
        if (expected.concurrency) {
            const old = t.holders.filter(isOld).length;
            assert.ok(t.in_use <= Math.max(expected.concurrency, old),
                `${where}: in_use above concurrency (${old} held over)`);
            const oldWeb = w.holders.filter(isOld).length;
            assert.ok(w.in_use <= Math.max(expected.concurrency, oldWeb),
                `${when}: /api/throttles ${queue} in_use ${w.in_use} above concurrency`);
        }
        if (expected.worker) {
            const perWid = new Map();
            for (const holder of w.holders) {
                const entry = perWid.get(holder.wid) || { all: 0, old: 0 };
                entry.all += 1;
                entry.old += isOld(holder) ? 1 : 0;
                perWid.set(holder.wid, entry);
            }
            if ([...perWid.values()].some((entry) => entry.all >= expected.worker)) {
                context.atWorkerLimit[queue] += 1;
            }
            for (const [wid, entry] of perWid) {
                assert.ok(entry.all <= Math.max(expected.worker, entry.old),
                    `${when}: wid ${wid} holds ${entry.all} slots of ${queue}, worker limit ` +
                    `${expected.worker} (${entry.old} held over)`);
            }
        }
    }
    return info;
}

// Runs the workers for ms, refilling the queues and checking the limits as it goes.
async function runFor(context, ms, label) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        await refill(context);
        await checkLimits(context, label);
        await sleep(CHECK_INTERVAL_MS);
    }
}

function countLines(file, needle) {
    return fs.readFileSync(file, 'utf8').split('\n').filter((line) => line.includes(needle)).length;
}

// Writes the configuration, sends SIGHUP and waits until the server logs its verdict.
async function reload(context, text, expectApplied) {
    const { server: srv } = context;
    const applied = countLines(srv.logPath, 'event=config_reloaded');
    const rejected = countLines(srv.logPath, 'event=reload_failed');
    fs.writeFileSync(path.join(srv.configDir, 'conf.d', 'fabrik.toml'), text);
    srv.child.kill('SIGHUP');
    const deadline = Date.now() + 10000;
    for (;;) {
        const nowApplied = countLines(srv.logPath, 'event=config_reloaded');
        const nowRejected = countLines(srv.logPath, 'event=reload_failed');
        if (nowApplied > applied || nowRejected > rejected) {
            assert.equal(nowApplied > applied, expectApplied,
                `SIGHUP with ${JSON.stringify(text)}: applied ${nowApplied > applied}`);
            return;
        }
        assert.ok(Date.now() < deadline, 'no config_reloaded or reload_failed within 10 s');
        await sleep(20);
    }
}

async function restart(context, signal) {
    const { server: srv } = context;
    srv.child.kill(signal);
    const exit = await srv.exited;
    if (signal === 'SIGTERM') {
        assert.deepEqual(exit, { code: 0, signal: null }, 'exit status after SIGTERM');
    }
    srv.spawn(srv.port, srv.webPort);
    assert.ok(await srv.waitReady(), `fabrik did not restart after ${signal}; log tail:\n` +
        srv.logTail());
    context.restarts += 1;
}

// Takes slots on queue with fresh workers until FETCH skips it. Returns how many were taken,
// per wid. Each fetch goes through a job on the unthrottled queue "probe", so FETCH returns at
// once on a blocked queue.
async function takeUntilBlocked(context, queue, wids) {
    const taken = [];
    for (const wid of wids) {
        const fwp = await FwpClient.connect(context.server.port, {
            hello: { wid, hostname: 'soak-check', pid: 1, labels: [] },
        });
        context.checkConns.push(fwp);
        let n = 0;
        for (;;) {
            await fwp.push({ jid: context.ledger.newJid(), jobtype: 'Probe', queue: 'probe', args: [] });
            const job = await fwp.fetch(queue, 'probe');
            if (job.queue === 'probe') {
                await fwp.ack(job.jid);
                break;
            }
            context.ledger.fetched(job.jid);
            context.heldByCheck.push({ fwp, jid: job.jid });
            n += 1;
        }
        taken.push(n);
    }
    return taken;
}

test('throttle limits hold through reloads, restarts and dropped workers', async (t) => {
    server = await new FabrikServer({ prefix: 'fabrik-soak-throttle', toml: toml(CONFIGS[0]) }).start();
    const context = {
        server,
        web: httpClient(server.webPort),
        ledger: new Ledger(),
        stats: { fetched: 0, acked: 0, failed: 0, abandoned: 0 },
        limits: CONFIGS[0],
        heldOver: new Set(),
        stopping: false,
        checks: 0,
        atLimit: { conc: 0, perw: 0, both: 0 },
        atWorkerLimit: { conc: 0, perw: 0, both: 0 },
        restarts: 0,
        checkConns: [],
        heldByCheck: [],
    };
    const started = Date.now();
    await refill(context);
    const workers = [];
    for (let i = 0; i < WORKERS; i++) {
        workers.push(new SoakWorker(i, context));
    }
    const running = workers.map((w) => w.run());

    const steps = [
        { run: 10000 },
        { reload: 1, run: 10000 },
        { restart: 'SIGKILL', run: 10000 },
        { reload: 2, run: 10000 },
        { restart: 'SIGTERM', run: 10000 },
        { reload: 3, run: 10000 },
        { restart: 'SIGKILL', run: 8000 },
        { invalid: true, run: 5000 },
        { reload: 0, run: 8000 },
    ];
    for (const [index, step] of steps.entries()) {
        const label = `step ${index + 1} ${JSON.stringify(step)}`;
        if (step.reload !== undefined) {
            await reload(context, toml(CONFIGS[step.reload]), true);
            context.limits = CONFIGS[step.reload];
            await captureHeldOver(context);
        } else if (step.restart) {
            await restart(context, step.restart);
            await captureHeldOver(context);
        } else if (step.invalid) {
            await reload(context, INVALID_CONFIG, false);
            // The old configuration stays in force, and so does the file for the next restart.
            fs.writeFileSync(path.join(server.configDir, 'conf.d', 'fabrik.toml'), toml(context.limits));
        }
        await checkLimits(context, `${label}, right after`);
        await runFor(context, step.run, label);
    }

    // Quiescence: every worker gone, then every abandoned slot past its timeout.
    context.stopping = true;
    await Promise.all(running);
    await sleep(SLOT_TIMEOUT_S * 1000 + 500);
    const control = await FwpClient.connect(server.port);
    context.checkConns.push(control);
    await control.ok('DEBUG CLOCK 0');
    let info = await checkLimits(context, 'after quiescence');
    for (const queue of QUEUES) {
        assert.equal(info.faktory.throttles[queue].in_use, 0, `slots of ${queue} in use after quiescence`);
    }
    // The abandoned jobs are still working: only their slots timed out. Past the reservation
    // (1800 s) they go to the dead set, and still no slot is in use.
    await control.ok('DEBUG CLOCK 1801');
    // NOTE: one timer run moves at most 1000 expired reservations; the server runs the next
    // batches right after DEBUG CLOCK replies, so wait for them.
    const expiryDeadline = Date.now() + 20000;
    while ((await control.info()).faktory.sets.working > 0 && Date.now() < expiryDeadline) {
        await sleep(100);
    }
    info = await checkLimits(context, 'after the reservations expired');
    assert.equal(info.faktory.sets.working, 0, 'working jobs after the reservations expired');
    for (const queue of QUEUES) {
        assert.equal(info.faktory.throttles[queue].in_use, 0, `slots of ${queue} in use at the end`);
    }

    // The free slots equal the limits.
    await refill(context);
    const limits = context.limits;
    const sum = (counts) => counts.reduce((a, b) => a + b, 0);
    const wids = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    const concTaken = await takeUntilBlocked(context, 'conc', wids('check-conc', limits.conc + 1));
    assert.equal(sum(concTaken), limits.conc, `free slots of conc: ${concTaken}`);
    const perwTaken = await takeUntilBlocked(context, 'perw', wids('check-perw', 2));
    assert.deepEqual(perwTaken, [limits.perw, limits.perw], 'free slots of perw per worker');
    const bothTaken = await takeUntilBlocked(context, 'both',
        wids('check-both', limits.both.concurrency + 1));
    assert.equal(sum(bothTaken), limits.both.concurrency, `free slots of both: ${bothTaken}`);
    assert.ok(bothTaken.every((n) => n <= limits.both.worker), `slots of both per worker: ${bothTaken}`);
    await checkLimits(context, 'with the slots of the final check taken');
    for (const { fwp, jid } of context.heldByCheck) {
        await fwp.ack(jid);
        context.ledger.outcome(jid, 'acked');
    }

    // Every job is accounted for once: drain the queues, after moving the dead set back.
    await control.ok('MUTATE {"cmd":"requeue","target":"dead"}');
    const drained = new Map();
    const drain = async (index) => {
        const drainer = await FwpClient.connect(server.port, {
            hello: { wid: `soak-drain-${index}`, hostname: 'soak-check', pid: 2, labels: [] },
        });
        context.checkConns.push(drainer);
        for (;;) {
            const job = await drainer.fetch(...QUEUES);
            if (job) {
                drained.set(job.jid, (drained.get(job.jid) || 0) + 1);
                await drainer.ack(job.jid);
                continue;
            }
            const left = await drainer.info();
            if (QUEUES.every((q) => !left.faktory.queues[q]) && left.faktory.sets.working === 0) {
                return;
            }
        }
    };
    await Promise.all(Array.from({ length: DRAINERS }, (_, i) => drain(i)));
    const problems = [...context.ledger.problems];
    for (const [jid, entry] of context.ledger.jobs) {
        const drainCount = drained.get(jid) || 0;
        let expected;
        switch (entry.outcome) {
        case 'acked':
            expected = [0];
            break;
        case 'ack?':
            expected = [0, 1];   // the ACK was cut off by a restart: it may have been applied
            break;
        case null:
            // Never fetched (queued) or fetched by this test's probe loop; a push cut off by a
            // restart may never have been stored.
            expected = entry.push === 'ok' ? [1] : [0, 1];
            if (entry.fetches > 0) {
                expected = [1];
            }
            break;
        default:   // failed, fail? and abandoned jobs end in the dead set
            expected = [1];
        }
        if (!expected.includes(drainCount)) {
            problems.push(`${jid} ${JSON.stringify(entry)} drained ${drainCount} times`);
        }
    }
    for (const jid of drained.keys()) {
        if (!context.ledger.jobs.has(jid)) {
            problems.push(`drained ${jid}, which was never pushed`);
        }
    }
    assert.deepEqual(problems.slice(0, 20), [], `jobs lost or duplicated (${problems.length})`);
    info = await checkLimits(context, 'after the drain');
    assert.equal(info.faktory.sets.working, 0, 'working jobs after the drain');

    for (const conn of context.checkConns) {
        conn.close();
    }
    const { stats } = context;
    t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s, ${context.ledger.jobs.size} jobs ` +
        `pushed, ${stats.fetched} fetched, ${stats.acked} acked, ${stats.failed} failed, ` +
        `${stats.abandoned} abandoned, ${drained.size} drained, ${context.checks} checks, ` +
        `${context.restarts} restarts; checks at the concurrency limit ` +
        `${JSON.stringify(context.atLimit)}, with a wid at its worker limit ` +
        `${JSON.stringify(context.atWorkerLimit)}`);
    assert.ok(stats.fetched > 1000, `jobs fetched during the run: ${stats.fetched}`);
    // The limits were under pressure, so the checks above could have caught an excess.
    assert.ok(context.atLimit.conc > context.checks / 4, 'checks with conc at its limit');
    assert.ok(context.atLimit.both > context.checks / 4, 'checks with both at its limit');
    assert.ok(context.atWorkerLimit.perw > context.checks / 4, 'checks with a perw wid at its limit');
    assert.ok(stats.abandoned > 20, `jobs abandoned during the run: ${stats.abandoned}`);
    passed = true;
});
