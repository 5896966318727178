'use strict';
// Loading the faktory-worker client and reading INFO in the shape the tests compare.

// Loads faktory-worker with FAKTORY_URL set to url. The client reads FAKTORY_URL once, when
// the module loads, so this must run before anything else requires it in the process.
function loadFaktory(url) {
    process.env.FAKTORY_URL = url;
    try {
        return require('faktory-worker');
    } catch (err) {
        if (err.code === 'MODULE_NOT_FOUND') {
            throw new Error('faktory-worker is not installed: run `npm ci` in tests/compat');
        }
        throw err;
    }
}

// Extracts the counters and set sizes that the tests assert on from an INFO document.
function summarize(info) {
    const { faktory } = info;
    const sets = faktory.sets || {};
    return {
        processed: faktory.total_processed,
        failures: faktory.total_failures,
        enqueued: faktory.total_enqueued,
        queues: faktory.queues,
        retries: sets.retries,
        dead: sets.dead,
        scheduled: sets.scheduled,
        working: sets.working,
        retriesTask: faktory.tasks.Retries.size,
        deadTask: faktory.tasks.Dead.size,
        scheduledTask: faktory.tasks.Scheduled.size,
        busyTask: faktory.tasks.Busy && faktory.tasks.Busy.size,
        workers: faktory.tasks.Workers && faktory.tasks.Workers.size,
    };
}

async function infoSummary(client) {
    return summarize(await client.info());
}

// Polls INFO until done(summary) is true and returns that summary, or throws with the
// last summary once timeoutMs has passed.
async function waitForInfo(client, done, timeoutMs, description) {
    const deadline = Date.now() + timeoutMs;
    let summary;
    for (;;) {
        summary = await infoSummary(client);
        if (done(summary)) {
            return summary;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}; ` +
                `last INFO: ${JSON.stringify(summary)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

// Polls condition (a function, which may return a promise) every 50 ms until it is true, or
// throws once timeoutMs has passed.
async function waitUntil(condition, timeoutMs, description) {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
}

module.exports = { loadFaktory, summarize, infoSummary, waitForInfo, waitUntil };
