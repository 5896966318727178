'use strict';
// 10,000 jobs through the real faktory-worker client and worker pool, with exact INFO checks.
// The client finds the server through FAKTORY_URL, as applications configure it.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { FabrikServer } = require('./lib/fabrik-server');
const { loadFaktory, infoSummary, waitForInfo } = require('./lib/client');
const { runPipeline, checkPipeline, planFor, lateQueue, JOBTYPE } = require('./lib/pipeline');

const JOB_COUNT = 10000;
const CONCURRENCY = 20;
const QUEUE = 'compat';
const LATE_QUEUE = lateQueue(QUEUE);

let server;
let faktory;
let client;
let passed = false;

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-compat-throughput' }).start();
    faktory = loadFaktory(server.url);
    client = new faktory.Client();
});

after(async () => {
    if (client) {
        await client.close();
    }
    await server.stopAndClean(!passed);
});

test('10,000 jobs with planned failures give exact INFO numbers', async (t) => {
    const result = await runPipeline(faktory, client, {
        jobCount: JOB_COUNT, queue: QUEUE, concurrency: CONCURRENCY, timeoutMs: 90000,
    });
    t.diagnostic(`pushed ${JOB_COUNT} jobs in ${result.pushedMs} ms, all processed after ` +
        `${result.processedMs} ms`);
    const info = await checkPipeline(client, result, QUEUE);
    t.diagnostic(`INFO after the run: ${JSON.stringify(info)}`);

    // Move the server clock past the longest first-retry delay (44 s): the jobs waiting in
    // the retry set return to their queue with their failure block, and now succeed.
    const { expected } = result;
    assert.equal(await client.send(['DEBUG', 'CLOCK', '60']), 'OK', 'DEBUG CLOCK 60 reply');
    const due = await waitForInfo(client, (s) => s.retries === 0, 5000, 'due retries');
    assert.equal(due.queues[LATE_QUEUE], expected.retry,
        `faktory.queues.${LATE_QUEUE} after the clock step`);

    const retried = [];
    const worker = new faktory.Worker({ concurrency: CONCURRENCY, queues: [QUEUE, LATE_QUEUE] });
    worker.register(JOBTYPE, () => {});
    worker.use(async (ctx, next) => {
        retried.push(ctx.job);
        await next();
    });
    await worker.work();
    await waitForInfo(client, (s) => s.processed === JOB_COUNT + expected.retry &&
        s.queues[LATE_QUEUE] === 0 && s.working === 0, 30000, 'the retried jobs to be processed');
    await worker.stop();

    assert.equal(retried.length, expected.retry, 'retried jobs fetched by the second worker');
    for (const job of retried) {
        const n = job.args[0];
        assert.equal(planFor(n).outcome, 'retry', `job ${n} should not have been retried`);
        assert.equal(job.failure.message, `planned failure ${n}`, `failure.message of job ${n}`);
        assert.equal(job.failure.retry_count, 0, `failure.retry_count of job ${n}`);
        assert.equal(job.retry, 25, `retry of job ${n}`);
    }
    const final = await infoSummary(client);
    assert.equal(final.processed, JOB_COUNT + expected.retry, 'total_processed at the end');
    assert.equal(final.failures, expected.failures, 'total_failures at the end');
    assert.equal(final.retries, 0, 'faktory.sets.retries at the end');
    assert.equal(final.dead, expected.dead, 'faktory.sets.dead at the end');
    assert.equal(final.queues[QUEUE], 0, `faktory.queues.${QUEUE} at the end`);
    assert.equal(final.queues[LATE_QUEUE], 0, `faktory.queues.${LATE_QUEUE} at the end`);
    passed = true;
});
