'use strict';
// Pushes numbered jobs through a faktory-worker Client and runs them on a faktory-worker
// Worker pool, with a known subset failing on purpose, then checks INFO for exact numbers.
//
// Job n fails when n % 100 == 7. Those failing jobs rotate through three retry settings:
// retry 0 (the job is dropped on failure), the client's default retry of 25 (the job waits
// in the retry set) and retry -1 (the job goes straight to the dead set).
//
// A failed job with retries left comes back from the retry set 15 to 44 s after its failure
// (Faktory's backoff for the first retry), which would change the counts if the run took that
// long. So those jobs go to a second queue, `<queue>-late`, pushed after all the others, and
// the worker fetches the queues in strict order: they run, and fail, at the end of the run.

const assert = require('node:assert/strict');
const { infoSummary, waitForInfo } = require('./client');

const JOBTYPE = 'CompatJob';

// Returns how job n is pushed and what its failure leads to.
function planFor(n) {
    if (n % 100 !== 7) {
        return { fails: false, outcome: 'acked' };
    }
    switch (Math.floor(n / 100) % 3) {
    case 0:
        return { fails: true, retry: 0, outcome: 'discarded' };
    case 1:
        return { fails: true, retry: undefined, outcome: 'retry' };
    default:
        return { fails: true, retry: -1, outcome: 'dead' };
    }
}

function expectedCounts(jobCount) {
    const counts = { acked: 0, discarded: 0, retry: 0, dead: 0 };
    for (let n = 0; n < jobCount; n++) {
        counts[planFor(n).outcome] += 1;
    }
    counts.failures = counts.discarded + counts.retry + counts.dead;
    return counts;
}

function lateQueue(queue) {
    return `${queue}-late`;
}

function payloadFor(n, queue) {
    const { retry, outcome } = planFor(n);
    const target = outcome === 'retry' ? lateQueue(queue) : queue;
    const payload = { jobtype: JOBTYPE, queue: target, args: [n, `job number ${n}`] };
    if (retry !== undefined) {
        payload.retry = retry;
    }
    return payload;
}

// Runs task(i) for i in 0..count-1 with at most `parallel` calls in flight.
async function forEachParallel(count, parallel, task) {
    let next = 0;
    const lanes = [];
    for (let lane = 0; lane < parallel; lane++) {
        lanes.push((async () => {
            while (next < count) {
                const i = next++;
                await task(i);
            }
        })());
    }
    await Promise.all(lanes);
}

// Pushes jobCount jobs with `client` while a Worker with the given concurrency runs them,
// waits until every job has run once, stops the worker and returns what happened.
async function runPipeline(faktory, client, options) {
    const { jobCount, queue, concurrency, timeoutMs } = options;
    const runs = new Uint32Array(jobCount);
    const retriedEarly = [];
    const failEvents = [];
    const workerErrors = [];

    const late = lateQueue(queue);
    const worker = new faktory.Worker({ concurrency, queues: [queue, late] });
    worker.use(async (ctx, next) => {
        // A job carrying a failure block is a retry. Retries are due 15 s or more after the
        // failure, so one showing up here means the run was too slow for exact counts.
        if (ctx.job.failure) {
            retriedEarly.push(ctx.job.jid);
        }
        await next();
    });
    worker.register(JOBTYPE, async (n) => {
        runs[n] += 1;
        if (planFor(n).fails) {
            throw new Error(`planned failure ${n}`);
        }
    });
    worker.on('fail', ({ job }) => failEvents.push(job.args[0]));
    worker.on('error', (err) => workerErrors.push(err));

    const started = Date.now();
    await worker.work();
    const first = [];
    const last = [];
    for (let n = 0; n < jobCount; n++) {
        (planFor(n).outcome === 'retry' ? last : first).push(n);
    }
    const pushOne = (n) => client.push(payloadFor(n, queue));
    await forEachParallel(first.length, concurrency, (i) => pushOne(first[i]));
    await forEachParallel(last.length, concurrency, (i) => pushOne(last[i]));
    const pushedMs = Date.now() - started;

    // Done when every job has run and its ACK or FAIL got its reply. INFO is not the
    // signal here, so a wrong counter shows up as a failed check instead of a time-out.
    const expected = expectedCounts(jobCount);
    const deadline = started + timeoutMs;
    while (runs.reduce((sum, count) => sum + count, 0) < jobCount || worker.working.size > 0) {
        if (Date.now() > deadline) {
            const ran = runs.filter((count) => count > 0).length;
            throw new Error(`timed out after ${timeoutMs} ms: ${ran} of ${jobCount} jobs ran; ` +
                `INFO: ${JSON.stringify(await infoSummary(client))}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await waitForInfo(client, (s) => s.queues[queue] === 0 && s.queues[late] === 0 &&
        s.working === 0, 5000, `queues ${queue} and ${late} and the working set to be empty`);
    const processedMs = Date.now() - started;
    await worker.stop();

    return { runs, retriedEarly, failEvents, workerErrors, expected, pushedMs, processedMs };
}

// Asserts the exact INFO numbers and per-job run counts after runPipeline.
async function checkPipeline(client, result, queue) {
    const { runs, retriedEarly, failEvents, workerErrors, expected } = result;

    assert.deepEqual(retriedEarly, [],
        'retried jobs came back during the run (the late queue took over 15 s to process)');
    assert.deepEqual(workerErrors.map((err) => err.message), [], 'worker errors');
    const notOnce = [];
    runs.forEach((count, n) => {
        if (count !== 1) {
            notOnce.push(`${n}:${count}`);
        }
    });
    assert.deepEqual(notOnce, [], 'jobs that did not run exactly once (number:runs)');
    assert.equal(failEvents.length, expected.failures, 'fail events from the worker');

    const info = await infoSummary(client);
    assert.equal(info.processed, runs.length, 'total_processed');
    assert.equal(info.failures, expected.failures, 'total_failures');
    assert.equal(info.retries, expected.retry, 'faktory.sets.retries');
    assert.equal(info.retriesTask, expected.retry, 'faktory.tasks.Retries.size');
    assert.equal(info.dead, expected.dead, 'faktory.sets.dead');
    assert.equal(info.deadTask, expected.dead, 'faktory.tasks.Dead.size');
    assert.equal(info.scheduled, 0, 'faktory.sets.scheduled');
    assert.equal(info.working, 0, 'faktory.sets.working');
    assert.equal(info.queues[queue], 0, `faktory.queues.${queue}`);
    assert.equal(info.queues[lateQueue(queue)], 0, `faktory.queues.${lateQueue(queue)}`);
    assert.equal(info.enqueued, 0, 'total_enqueued');
    return info;
}

module.exports = {
    planFor, expectedCounts, lateQueue, runPipeline, checkPipeline, forEachParallel, JOBTYPE,
};
