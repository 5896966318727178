// bullmq-load: a load driver for BullMQ on a Redis server at 127.0.0.1, written for fabrik's
// benchmark comparison. It runs the workloads of fwpload and bsload with BullMQ's own API and
// prints the same JSON fields, so that bench/run reads all drivers alike:
//   push     --connections producers, each a Queue with its own Redis connection, add one job
//            at a time (with --bulk N, addBulk of N jobs at a time)
//   work     one Worker with concurrency --connections processes the jobs already waiting
//   cycle    half of --connections producers add while a Worker with concurrency of the other
//            half processes; 1% of the jobs throw in the processor with attempts: 1, so they
//            fail and leave, as a FAILed job with retry 0 leaves fabrik
//   latency  a Worker with concurrency 1 waits for jobs while one producer adds one job at a
//            time; PICKUP is the time from calling add to the processor starting
// Jobs are removed when they complete or fail, as an ACK or a FAIL with retry 0 removes a job
// from fabrik.
import { Queue, Worker } from "bullmq";

const FAIL_EVERY = 100;
const LATENCY_PARK_MS = 2;
const PROGRESS_AFTER_SECONDS = 3;

function usage() {
    return `usage: node bullmq-load.mjs MODE [options]

modes: push, work, cycle, latency (see the comment at the top of this file)

options:
  -p, --port N          Redis port on 127.0.0.1 (default 6379)
  -n, --jobs N          jobs to process (default 100000; latency: 1000)
  -c, --connections N   producers plus worker concurrency (default 10; cycle needs 2)
  -q, --queue NAME      queue name (default bullmq-load)
      --bulk N          push: addBulk N jobs per call instead of add (default 1)
      --timeout SECONDS abort the run after this many seconds (default 600)
      --json            print the result as one JSON object on stdout
`;
}

function parseOptions(argv) {
    const opt = { port: 6379, jobs: -1, connections: 10, queue: "bullmq-load", bulk: 1,
                  timeout: 600, json: false, mode: null };
    const numeric = { "-p": "port", "--port": "port", "-n": "jobs", "--jobs": "jobs",
                      "-c": "connections", "--connections": "connections", "--bulk": "bulk",
                      "--timeout": "timeout" };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === "-h" || arg === "--help") {
            process.stdout.write(usage());
            process.exit(0);
        } else if (arg === "--json") {
            opt.json = true;
        } else if (arg === "-q" || arg === "--queue") {
            opt.queue = argv[++i];
        } else if (arg in numeric) {
            const value = Number(argv[++i]);
            if (!Number.isFinite(value) || value <= 0)
                fail(`invalid ${arg} "${argv[i]}": expected a positive number`);
            opt[numeric[arg]] = value;
        } else if (!opt.mode && ["push", "work", "cycle", "latency"].includes(arg)) {
            opt.mode = arg;
        } else {
            fail(`unexpected argument "${arg}" (see --help)`);
        }
    }
    if (!opt.mode)
        fail("missing MODE: use push, work, cycle or latency (see --help)");
    if (!opt.queue)
        fail("--queue requires a name");
    if (opt.jobs < 0)
        opt.jobs = opt.mode === "latency" ? 1000 : 100000;
    if (opt.mode === "latency")
        opt.connections = 2;
    if (opt.mode === "cycle" && opt.connections < 2)
        fail(`cycle mode needs --connections 2 or more, got ${opt.connections}`);
    return opt;
}

function fail(message) {
    process.stderr.write(`bullmq-load: ${message}\n`);
    process.exit(2);
}

// Latency samples in nanoseconds, kept whole: a run has at most a few hundred thousand.
class Samples {
    constructor() { this.values = []; }
    add(ns) { this.values.push(Number(ns)); }
    json() {
        const sorted = Float64Array.from(this.values).sort();
        const at = (q) => sorted.length ? sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] : 0;
        return { count: sorted.length, p50_us: at(0.5) / 1e3, p99_us: at(0.99) / 1e3,
                 max_us: sorted.length ? sorted[sorted.length - 1] / 1e3 : 0 };
    }
}

const now = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Run {
    constructor(opt) {
        this.opt = opt;
        this.connection = { host: "127.0.0.1", port: opt.port, maxRetriesPerRequest: null };
        this.nextSeq = 0;
        this.pushed = 0;
        this.done = 0;
        this.failed = 0;
        this.errors = 0;
        this.firstError = null;
        this.stop = false;
        this.add = new Samples();
        this.pickup = new Samples();
        this.pickupWaiters = new Map();   // seq -> resolve, for latency mode
    }

    noteError(what, err) {
        this.errors++;
        if (!this.firstError)
            this.firstError = `${what}: ${err && err.message ? err.message : err}`;
    }

    jobOptions(seq) {
        const fails = this.opt.mode === "cycle" && seq % FAIL_EVERY === FAIL_EVERY - 1;
        return { removeOnComplete: true, removeOnFail: true, attempts: 1, fails };
    }

    jobData(seq) {
        return { jid: `bullmq-${seq}`, jobtype: "fwpload", queue: this.opt.queue, args: [seq],
                 fail: this.jobOptions(seq).fails };
    }

    async producer(queue) {
        const bulk = this.opt.mode === "push" ? this.opt.bulk : 1;
        while (!this.stop && this.nextSeq < this.opt.jobs) {
            const first = this.nextSeq;
            const count = Math.min(bulk, this.opt.jobs - first);
            this.nextSeq += count;
            const started = now();
            try {
                if (bulk === 1) {
                    const { fails, ...opts } = this.jobOptions(first);
                    await queue.add("fwpload", this.jobData(first), opts);
                } else {
                    const jobs = [];
                    for (let seq = first; seq < first + count; seq++) {
                        const { fails, ...opts } = this.jobOptions(seq);
                        jobs.push({ name: "fwpload", data: this.jobData(seq), opts });
                    }
                    await queue.addBulk(jobs);
                }
                this.add.add(now() - started);
                this.pushed += count;
            } catch (err) {
                this.noteError("add", err);
                this.stop = true;
            }
        }
    }

    // Starts a Worker and returns it with a promise that settles once opt.jobs jobs have
    // completed or failed.
    startWorker(concurrency) {
        let finish;
        const finished = new Promise((resolve) => { finish = resolve; });
        const worker = new Worker(this.opt.queue, async (job) => {
            const resolve = this.pickupWaiters.get(job.data.args[0]);
            if (resolve)
                resolve(now());
            if (job.data.fail)
                throw new Error("deliberate failure of 1% of the jobs");
        }, { connection: this.connection, concurrency, autorun: true });
        const count = (failedJob) => {
            this.done++;
            if (failedJob)
                this.failed++;
            if (this.done >= this.opt.jobs)
                finish();
        };
        worker.on("completed", () => count(false));
        worker.on("failed", (job, err) => {
            if (job && job.data && job.data.fail)
                count(true);
            else
                this.noteError("processor", err);
        });
        worker.on("error", (err) => this.noteError("worker", err));
        return { worker, finished };
    }

    async latency(queue) {
        const { worker } = this.startWorker(1);
        await worker.waitUntilReady();
        await sleep(100);
        for (let seq = 0; seq < this.opt.jobs && !this.stop; seq++) {
            await sleep(LATENCY_PARK_MS);
            const picked = new Promise((resolve) => this.pickupWaiters.set(seq, resolve));
            const { fails, ...opts } = this.jobOptions(seq);
            const started = now();
            try {
                await queue.add("fwpload", this.jobData(seq), opts);
            } catch (err) {
                this.noteError("add", err);
                break;
            }
            this.add.add(now() - started);
            this.pushed++;
            const at = await picked;
            this.pickupWaiters.delete(seq);
            this.pickup.add(at - started);
            this.samples = seq + 1;
        }
        // Let the last job complete before the worker closes.
        while (this.done < this.pushed && !this.stop)
            await sleep(1);
        await worker.close();
    }

    progress() {
        if (this.opt.mode === "push")
            return this.pushed;
        if (this.opt.mode === "latency")
            return this.samples || 0;
        return this.done;
    }
}

async function main() {
    const opt = parseOptions(process.argv.slice(2));
    const run = new Run(opt);
    const producers = opt.mode === "push" ? opt.connections
                    : opt.mode === "cycle" ? Math.floor(opt.connections / 2)
                    : opt.mode === "latency" ? 1 : 0;
    const queues = [];
    for (let i = 0; i < Math.max(producers, 1); i++)
        queues.push(new Queue(opt.queue, { connection: run.connection }));
    await Promise.all(queues.map((q) => q.waitUntilReady()));

    const cpuBefore = process.cpuUsage();
    const started = now();
    let last = 0;
    const ticker = setInterval(() => {
        const elapsed = Number(now() - started) / 1e9;
        const count = run.progress();
        if (elapsed >= PROGRESS_AFTER_SECONDS)
            process.stderr.write(`bullmq-load: ${opt.mode} ${elapsed.toFixed(0)} s: ${count} of ` +
                                 `${opt.jobs} jobs, ${count - last} jobs/s in the last second\n`);
        last = count;
        if (elapsed > opt.timeout && !run.stop) {
            run.stop = true;
            run.noteError("run", `timed out after ${opt.timeout} s`);
        }
    }, 1000);

    let worker = null;
    if (opt.mode === "push") {
        await Promise.all(queues.map((q) => run.producer(q)));
    } else if (opt.mode === "latency") {
        await run.latency(queues[0]);
    } else {
        const started = run.startWorker(opt.connections - producers);
        worker = started.worker;
        const stopped = new Promise((resolve) => {
            const poll = setInterval(() => { if (run.stop) { clearInterval(poll); resolve(); } }, 100);
            started.finished.then(() => { clearInterval(poll); resolve(); });
        });
        await Promise.all([...queues.slice(0, producers).map((q) => run.producer(q)), stopped]);
    }
    const seconds = Number(now() - started) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    clearInterval(ticker);
    if (worker)
        await worker.close();

    let after = null;
    try {
        after = await queues[0].getJobCounts("waiting", "active", "completed", "failed", "delayed");
    } catch (err) {
        run.noteError("getJobCounts", err);
    }
    await Promise.all(queues.map((q) => q.close()));

    const jobs = run.progress();
    const commands = {};
    if (run.add.values.length > 0)
        commands.ADD = run.add.json();
    if (opt.mode === "latency")
        commands.PICKUP = run.pickup.json();
    const result = {
        mode: opt.mode, connections: opt.connections, jobs_requested: opt.jobs, jobs, seconds,
        jobs_per_sec: seconds > 0 ? jobs / seconds : 0,
        driver_cpu_seconds: (cpu.user + cpu.system) / 1e6, failed: run.failed,
        errors: run.errors, commands, first_error: run.firstError,
        shortfall: jobs < opt.jobs ? "the run stopped early (see first_error)" : null,
        server_after: after,
    };
    process.stdout.write(JSON.stringify(result, null, opt.json ? 0 : 2) + "\n");
    if (run.firstError)
        process.stderr.write(`bullmq-load: first error: ${run.firstError}\n`);
    process.exit(jobs >= opt.jobs && run.errors === 0 ? 0 : 1);
}

main().catch((err) => {
    process.stderr.write(`bullmq-load: ${err.stack || err}\n`);
    process.exit(1);
});
