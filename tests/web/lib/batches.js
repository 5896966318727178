'use strict';
// Seeds batches over FWP for the batch API and browser tests: BATCH NEW and COMMIT, members
// pushed with custom.bid, and FETCH, ACK and FAIL to move each member to a known place.

const { makeJob } = require('./fwp');

const HOUR_MS = 3600 * 1000;
// A member pushed with 10 earlier failures waits about four hours after FAIL, so it stays
// in the retry set while the tests run.
const LONG_BACKOFF_FAILURE = { retry_count: 10, remaining: 15 };

async function batchNew(fwp, fields = {}) {
    const reply = await fwp.command(`BATCH NEW ${JSON.stringify(fields)}`);
    if (reply.kind !== 'bulk' || !reply.value) {
        throw new Error(`BATCH NEW was answered with ${JSON.stringify(reply)}`);
    }
    return reply.value;
}

async function batchCommit(fwp, bid) {
    await fwp.ok(`BATCH COMMIT ${bid}`);
}

async function batchStatus(fwp, bid) {
    const reply = await fwp.command(`BATCH STATUS ${bid}`);
    if (reply.kind !== 'bulk' || !reply.value) {
        throw new Error(`BATCH STATUS ${bid} was answered with ${JSON.stringify(reply)}`);
    }
    return JSON.parse(reply.value);
}

function member(bid, fields = {}) {
    return makeJob({ ...fields, custom: { ...(fields.custom || {}), bid } });
}

// Pushes job into its own queue and FETCHes it, so it is the job FETCH returns.
async function pushAndFetch(fwp, job) {
    await fwp.push(job);
    const fetched = await fwp.fetch(job.queue);
    if (!fetched || fetched.jid !== job.jid) {
        throw new Error(`expected to fetch ${job.jid} from ${job.queue}, got ${JSON.stringify(fetched)}`);
    }
    return fetched;
}

// Seeds a committed batch whose members are in every place a job can be, with two children:
// one committed and empty, one still open. Then a batch whose complete callback is enqueued,
// and a batch never committed. Queue names start with prefix. Returns the bids and the
// member jobs by place.
async function seedBatchScenario(fwp, prefix = 'batch') {
    const q = (name) => `${prefix}-${name}`;
    const nightly = await batchNew(fwp, {
        description: 'Nightly import',
        complete: { jobtype: 'ImportDone', args: ['nightly'], queue: q('callbacks') },
        success: { jobtype: 'ImportSucceeded', args: [], queue: q('callbacks') },
    });
    const jobs = {
        succeeded: member(nightly, { queue: q('ack'), jobtype: 'ImportRow', args: [1] }),
        retry: member(nightly, {
            queue: q('fail'), jobtype: 'ImportRow', args: [2], failure: LONG_BACKOFF_FAILURE,
        }),
        queued: member(nightly, { queue: q('wait'), jobtype: 'ImportRow', args: [3] }),
        dead: member(nightly, { queue: q('die'), jobtype: 'ImportRow', args: [4], retry: -1 }),
        scheduled: member(nightly, {
            queue: q('later'), jobtype: 'ImportRow', args: [5], at: new Date(Date.now() + HOUR_MS).toISOString(),
        }),
        working: member(nightly, { queue: q('run'), jobtype: 'ImportRow', args: [6] }),
    };
    await pushAndFetch(fwp, jobs.succeeded);
    await fwp.ack(jobs.succeeded.jid);
    await pushAndFetch(fwp, jobs.retry);
    await fwp.fail(jobs.retry.jid, 'Net::Timeout', 'execution expired');
    await fwp.push(jobs.queued);
    // The same jid pushed twice is one member with two job rows.
    await fwp.push(jobs.queued);
    await pushAndFetch(fwp, jobs.dead);
    await fwp.fail(jobs.dead.jid, 'CSV::MalformedCSVError', 'bad quote');
    await fwp.push(jobs.scheduled);
    await pushAndFetch(fwp, jobs.working);

    const doneChild = await batchNew(fwp, { parent_bid: nightly, description: 'Nightly import, part 1' });
    await batchCommit(fwp, doneChild);
    const openChild = await batchNew(fwp, { parent_bid: nightly, description: 'Nightly import, part 2' });
    await batchCommit(fwp, nightly);

    const thumbnails = await batchNew(fwp, {
        description: 'Thumbnails',
        complete: { jobtype: 'ThumbnailsDone', args: [], queue: q('thumbs-callback') },
    });
    const thumbs = [member(thumbnails, { queue: q('thumbs'), jobtype: 'Thumbnail', args: ['a.png'] }),
        member(thumbnails, { queue: q('thumbs'), jobtype: 'Thumbnail', args: ['b.png'] })];
    for (const job of thumbs) {
        await pushAndFetch(fwp, job);
        await fwp.ack(job.jid);
    }
    await batchCommit(fwp, thumbnails);

    const draft = await batchNew(fwp, { description: 'Draft export' });
    await fwp.push(member(draft, { queue: q('draft'), jobtype: 'Export', args: [] }));

    return {
        bids: { nightly, doneChild, openChild, thumbnails, draft },
        jobs,
        thumbs,
        queues: { thumbsCallback: q('thumbs-callback'), callbacks: q('callbacks') },
    };
}

module.exports = {
    batchCommit, batchNew, batchStatus, member, pushAndFetch, seedBatchScenario,
};
