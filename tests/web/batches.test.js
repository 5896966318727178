'use strict';
// Black-box tests of the batch endpoints of the HTTP API (docs/http-api.md): the list with
// its status filter, search and paging, one batch with its callbacks, children and member
// jobs in every place a job can be, and the errors. Batches are seeded over FWP.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const { FabrikServer, FailureTracker, stopAll } = require('./lib/server');
const { FwpClient } = require('./lib/fwp');
const { client } = require('./lib/http');
const {
    batchCommit, batchNew, batchStatus, member, pushAndFetch, seedBatchScenario,
} = require('./lib/batches');

const servers = [];
const tracker = new FailureTracker();
const check = (fn) => tracker.check(fn);
let server;
let fwp;
let web;
let seeded;
// Committed empty batches without callbacks: finished at COMMIT, and enough for three pages.
const FILLER_COUNT = 30;
const fillers = [];

async function getJson(path, expectedStatus = 200) {
    const res = await web.get(path);
    assert.equal(res.status, expectedStatus, `GET ${path}: ${res.text.slice(0, 300)}`);
    assert.match(res.headers['content-type'] || '', /^application\/json/, `GET ${path} content type`);
    assert.ok(res.json !== undefined, `GET ${path} body is JSON`);
    return res.json;
}

async function assertError(path, status, message) {
    const res = await web.get(path);
    assert.equal(res.status, status, `GET ${path}: status (body ${res.text.slice(0, 200)})`);
    assert.deepEqual(res.json, { error: message }, `GET ${path}: error body`);
}

function bidsOf(list) {
    return list.batches.map((batch) => batch.bid);
}

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-web-batches' }).start();
    servers.push(server);
    fwp = await FwpClient.connect(server.port);
    web = client(server.webPort);
    for (let i = 0; i < FILLER_COUNT; i++) {
        const bid = await batchNew(fwp, { description: `filler ${String(i).padStart(2, '0')}` });
        await batchCommit(fwp, bid);
        fillers.push(bid);
    }
    seeded = await seedBatchScenario(fwp, 'api');
});

after(async () => {
    if (fwp) {
        fwp.close();
    }
    await stopAll(servers, tracker.failed);
});

function microseconds(timestamp) {
    const [whole, fraction = ''] = timestamp.replace(/Z$/, '').split('.');
    return BigInt(Date.parse(`${whole}Z`)) * 1000n + BigInt(fraction.padEnd(6, '0').slice(0, 6));
}

describe('GET /api/batches', () => {
    test('lists every batch newest first', check(async () => {
        const { bids } = seeded;
        const list = await getJson('/api/batches?per_page=500');
        assert.equal(list.total, FILLER_COUNT + 5);
        assert.equal(list.page, 1);
        assert.equal(list.per_page, 500);
        assert.deepEqual(bidsOf(list).slice(0, 5),
            [bids.draft, bids.thumbnails, bids.openChild, bids.doneChild, bids.nightly]);
        assert.deepEqual(bidsOf(list).slice(5), [...fillers].reverse());
        // Timestamps drop trailing zeros of the fraction as Go's RFC 3339 format does, so
        // "…40.964Z" is older than "…40.964759Z": compare them as microseconds, not as text.
        const created = list.batches.map((batch) => microseconds(batch.created_at));
        assert.deepEqual(created, [...created].sort((a, b) => Number(b - a)),
            'sorted by created_at, newest first');
    }));

    test('each batch is the full status document', check(async () => {
        const list = await getJson(`/api/batches?q=${seeded.bids.nightly}`);
        assert.equal(list.total, 1);
        const batch = list.batches[0];
        const status = await batchStatus(fwp, seeded.bids.nightly);
        for (const [key, value] of Object.entries(status)) {
            assert.deepEqual(batch[key], value, `${key} as in BATCH STATUS`);
        }
        assert.equal(batch.description, 'Nightly import');
        assert.equal(batch.total, 6);
        assert.equal(batch.pending, 4, 'retry, queued, scheduled and working members');
        assert.equal(batch.succeeded, 1);
        assert.equal(batch.ended, 1, 'the dead member');
        assert.equal(batch.failed, 2, 'the retrying and the dead member');
        assert.equal(batch.ran, 3);
        assert.equal(batch.children, 2);
        assert.equal(batch.complete_st, '');
        assert.equal(batch.success_st, '');
        assert.equal('death_st' in batch, false, 'no death callback declared');
        assert.equal(batch.complete_done, false);
        assert.equal(batch.success_done, false);
        assert.match(batch.committed_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
        assert.equal(batch.finished_at, null);
        assert.deepEqual(Object.keys(batch.callbacks).sort(), ['complete', 'success']);
        assert.equal(batch.callbacks.complete.state, '');
        assert.equal(batch.callbacks.complete.job.jobtype, 'ImportDone');
        assert.equal(batch.callbacks.complete.jid, batch.callbacks.complete.job.jid);
        assert.equal('current' in batch.callbacks.complete, false, 'current only on the detail');
    }));

    test('status filters open, pending and finished', check(async () => {
        const { bids } = seeded;
        const open = await getJson('/api/batches?status=open');
        assert.deepEqual(bidsOf(open), [bids.draft, bids.openChild]);
        assert.equal(open.total, 2);
        const pending = await getJson('/api/batches?status=pending');
        assert.deepEqual(bidsOf(pending), [bids.thumbnails, bids.nightly]);
        for (const batch of pending.batches) {
            assert.ok(batch.committed_at, `${batch.bid} is committed`);
            assert.equal(batch.finished_at, null, `${batch.bid} is not finished`);
        }
        const finished = await getJson('/api/batches?status=finished&per_page=500');
        assert.deepEqual(bidsOf(finished), [bids.doneChild, ...[...fillers].reverse()]);
        assert.ok(finished.batches.every((batch) => batch.finished_at), 'finished_at set');
        const all = await getJson('/api/batches?status=');
        assert.equal(all.total, FILLER_COUNT + 5, 'an empty status means every batch');
    }));

    test('q searches bids and descriptions', check(async () => {
        const { bids } = seeded;
        const nightly = await getJson('/api/batches?q=NIGHTLY%20import');
        assert.deepEqual(bidsOf(nightly), [bids.openChild, bids.doneChild, bids.nightly],
            'case-insensitive substring of the description');
        const byBid = await getJson(`/api/batches?q=${bids.thumbnails.slice(4, 14)}`);
        assert.deepEqual(bidsOf(byBid), [bids.thumbnails], 'substring of the bid');
        const both = await getJson('/api/batches?q=part&status=open');
        assert.deepEqual(bidsOf(both), [bids.openChild], 'q and status together');
        const none = await getJson('/api/batches?q=no%20such%20text');
        assert.deepEqual(none, { batches: [], page: 1, per_page: 25, total: 0 });
    }));

    test('pages', check(async () => {
        const first = await getJson('/api/batches?per_page=10');
        assert.equal(first.batches.length, 10);
        assert.equal(first.total, FILLER_COUNT + 5);
        const pages = [first];
        for (let page = 2; page <= 4; page++) {
            pages.push(await getJson(`/api/batches?per_page=10&page=${page}`));
        }
        assert.deepEqual(pages.map((p) => p.batches.length), [10, 10, 10, 5]);
        assert.deepEqual(pages.map((p) => p.page), [1, 2, 3, 4]);
        const all = await getJson('/api/batches?per_page=500');
        assert.deepEqual(pages.flatMap(bidsOf), bidsOf(all), 'pages join to the whole list');
        const beyond = await getJson('/api/batches?per_page=10&page=9');
        assert.deepEqual(beyond.batches, []);
        assert.equal(beyond.total, FILLER_COUNT + 5);
        const finishedPage = await getJson('/api/batches?status=finished&per_page=20&page=2');
        assert.equal(finishedPage.batches.length, FILLER_COUNT + 1 - 20);
        assert.equal(finishedPage.total, FILLER_COUNT + 1);
    }));

    test('bad parameters answer 400', check(async () => {
        await assertError('/api/batches?status=done', 400,
            'status must be "open", "pending" or "finished", not "done"');
        await assertError('/api/batches?status=OPEN', 400,
            'status must be "open", "pending" or "finished", not "OPEN"');
        await assertError('/api/batches?page=0', 400, 'page must be an integer from 1 to 1000000000, not "0"');
        await assertError('/api/batches?page=x', 400, 'page must be an integer from 1 to 1000000000, not "x"');
        await assertError('/api/batches?per_page=501', 400, 'per_page must be an integer from 1 to 500, not "501"');
        await assertError('/api/batches?per_page=0', 400, 'per_page must be an integer from 1 to 500, not "0"');
    }));
});

describe('GET /api/batches/<bid>', () => {
    test('returns the batch, its children and its jobs', check(async () => {
        const { bids, jobs } = seeded;
        const detail = await getJson(`/api/batches/${bids.nightly}`);
        assert.deepEqual(Object.keys(detail).sort(), ['batch', 'children', 'jobs', 'page', 'per_page', 'total']);
        const listed = (await getJson(`/api/batches?q=${bids.nightly}`)).batches[0];
        const { callbacks, ...rest } = detail.batch;
        const { callbacks: listedCallbacks, ...listedRest } = listed;
        assert.deepEqual(rest, listedRest, 'the same document as in the list');
        assert.deepEqual(Object.keys(callbacks).sort(), Object.keys(listedCallbacks).sort());
        assert.deepEqual(detail.children.map((c) => c.bid), [bids.openChild, bids.doneChild]);
        assert.equal(detail.children[0].parent_bid, bids.nightly);
        assert.equal(detail.children[0].committed_at, null, 'the open child');
        assert.equal(detail.children[0].description, 'Nightly import, part 2');
        assert.equal(detail.total, 6);
        assert.equal(detail.page, 1);
        assert.equal(detail.per_page, 25);

        const expected = [
            [jobs.succeeded.jid, 'succeeded', false, null],
            [jobs.retry.jid, 'failed', true, 'retry'],
            [jobs.queued.jid, 'pending', false, 'queued'],
            [jobs.dead.jid, 'ended', true, 'dead'],
            [jobs.scheduled.jid, 'pending', false, 'scheduled'],
            [jobs.working.jid, 'pending', false, 'working'],
        ].sort((a, b) => (a[0] < b[0] ? -1 : 1));
        assert.deepEqual(detail.jobs.map((m) => [m.jid, m.member_state, m.failed, m.job && m.job.state]),
            expected, 'members in jid order, each once, with where its job is');
        for (const m of detail.jobs) {
            assert.deepEqual(Object.keys(m).sort(), ['failed', 'jid', 'job', 'member_state']);
            if (m.job) {
                assert.equal(m.job.jid, m.jid);
                assert.equal(m.job.custom.bid, bids.nightly);
                assert.ok(Number.isSafeInteger(m.job.id), 'job id is an integer');
                assert.ok(m.job.id > 0, 'job id is positive');
                const byId = await getJson(`/api/jobs/${m.job.id}`);
                assert.deepEqual(byId.job, m.job, 'the job object of /api/jobs/<id>');
            }
        }
        const dead = detail.jobs.find((m) => m.jid === jobs.dead.jid).job;
        assert.equal(dead.failure.errtype, 'CSV::MalformedCSVError');
        const working = detail.jobs.find((m) => m.jid === jobs.working.jid).job;
        assert.ok(working.at, 'a working job has its reservation expiry');
    }));

    test('a jid pushed twice lists its oldest job', check(async () => {
        const { bids, jobs } = seeded;
        const queue = await getJson(`/api/queues/${encodeURIComponent(jobs.queued.queue)}`);
        assert.equal(queue.total, 2, 'two job rows with the same jid');
        const detail = await getJson(`/api/batches/${bids.nightly}`);
        const listed = detail.jobs.filter((m) => m.jid === jobs.queued.jid);
        assert.equal(listed.length, 1);
        assert.equal(listed[0].job.id, Math.min(...queue.jobs.map((j) => j.id)));
    }));

    test('jobs page', check(async () => {
        const { bids } = seeded;
        const all = await getJson(`/api/batches/${bids.nightly}`);
        const pages = [];
        for (let page = 1; page <= 3; page++) {
            pages.push(await getJson(`/api/batches/${bids.nightly}?per_page=4&page=${page}`));
        }
        assert.deepEqual(pages.map((p) => p.jobs.length), [4, 2, 0]);
        assert.deepEqual(pages.map((p) => p.total), [6, 6, 6]);
        assert.deepEqual(pages.map((p) => [p.page, p.per_page]), [[1, 4], [2, 4], [3, 4]]);
        assert.deepEqual(pages.flatMap((p) => p.jobs.map((m) => m.jid)), all.jobs.map((m) => m.jid));
        assert.equal(pages[2].batch.bid, bids.nightly, 'the batch is there on every page');
    }));

    test('callbacks show their job while it exists', check(async () => {
        const { bids, queues } = seeded;
        const before = await getJson(`/api/batches/${bids.nightly}`);
        assert.equal(before.batch.callbacks.complete.current, null, 'not enqueued yet');
        assert.equal(before.batch.callbacks.success.current, null);

        let detail = await getJson(`/api/batches/${bids.thumbnails}`);
        assert.equal(detail.batch.complete_st, '1');
        const callback = detail.batch.callbacks.complete;
        assert.equal(callback.state, '1');
        assert.equal(callback.job.jobtype, 'ThumbnailsDone');
        assert.ok(callback.current, 'the enqueued callback job');
        assert.equal(callback.current.jid, callback.jid);
        assert.equal(callback.current.state, 'queued');
        assert.equal(callback.current.queue, queues.thumbsCallback);
        assert.deepEqual(callback.current.custom, { _bid: bids.thumbnails, _cb: 'complete' });
        assert.deepEqual((await getJson(`/api/jobs/${callback.current.id}`)).job, callback.current);
        assert.equal(detail.batch.finished_at, null, 'a callback job is waiting');
        assert.deepEqual(detail.jobs.map((m) => [m.member_state, m.job]), [['succeeded', null], ['succeeded', null]]);

        const fetched = await fwp.fetch(queues.thumbsCallback);
        assert.equal(fetched.jid, callback.jid);
        detail = await getJson(`/api/batches/${bids.thumbnails}`);
        assert.equal(detail.batch.callbacks.complete.current.state, 'working');
        await fwp.ack(fetched.jid);

        detail = await getJson(`/api/batches/${bids.thumbnails}`);
        assert.equal(detail.batch.complete_st, '2');
        assert.equal(detail.batch.callbacks.complete.state, '2');
        assert.equal(detail.batch.callbacks.complete.current, null, 'gone after its ACK');
        assert.ok(detail.batch.finished_at, 'finished once the callback succeeded');
        const finished = await getJson('/api/batches?status=finished&per_page=500');
        assert.ok(bidsOf(finished).includes(bids.thumbnails));
    }));

    test('a parent is finished only after its children', check(async () => {
        const parent = await batchNew(fwp, { description: 'parent waits for its child' });
        const child = await batchNew(fwp, { parent_bid: parent });
        await batchCommit(fwp, parent);
        const finishedBids = async () =>
            bidsOf(await getJson('/api/batches?status=finished&per_page=500'));
        assert.ok(!(await finishedBids()).includes(parent), 'not finished while the child is open');
        assert.equal((await getJson(`/api/batches/${parent}`)).batch.finished_at, null);
        await batchCommit(fwp, child);
        const finished = await finishedBids();
        assert.ok(finished.includes(child), 'the empty child finishes at its commit');
        assert.ok(finished.includes(parent), 'and so does its parent');
    }));

    test('a death callback is listed with its state', check(async () => {
        const bid = await batchNew(fwp, {
            description: 'with death', death: { jobtype: 'OnDeath', args: [], queue: 'api-death-callback' },
        });
        const job = member(bid, { queue: 'api-death', jobtype: 'Fragile', retry: -1 });
        await pushAndFetch(fwp, job);
        await fwp.fail(job.jid, 'RuntimeError', 'gone');
        await batchCommit(fwp, bid);
        const detail = await getJson(`/api/batches/${bid}`);
        assert.equal(detail.batch.death_st, '1');
        assert.equal(detail.batch.callbacks.death.current.jobtype, 'OnDeath');
        assert.equal(detail.batch.callbacks.death.current.state, 'queued');
        assert.deepEqual(detail.jobs.map((m) => [m.jid, m.member_state, m.failed, m.job.state]),
            [[job.jid, 'ended', true, 'dead']]);
    }));

    test('an empty open batch has no jobs and no children', check(async () => {
        const bid = await batchNew(fwp, {});
        const detail = await getJson(`/api/batches/${bid}`);
        assert.deepEqual(detail.children, []);
        assert.deepEqual(detail.jobs, []);
        assert.equal(detail.total, 0);
        assert.equal(detail.batch.committed_at, null);
        assert.equal('description' in detail.batch, false);
        assert.deepEqual(detail.batch.callbacks, {});
    }));

    test('errors', check(async () => {
        await assertError('/api/batches/b-nosuchbatch', 404, 'no such batch b-nosuchbatch');
        await assertError('/api/batches/a%20b%22c', 404, 'no such batch a b"c');
        await assertError(`/api/batches/${seeded.bids.nightly}?per_page=900`, 400,
            'per_page must be an integer from 1 to 500, not "900"');
        await assertError(`/api/batches/${seeded.bids.nightly}?page=-1`, 400,
            'page must be an integer from 1 to 1000000000, not "-1"');
        const posted = await web.post(`/api/batches/${seeded.bids.nightly}`, {});
        assert.equal(posted.status, 405);
        assert.equal(posted.headers.allow, 'GET, HEAD');
        const listPost = await web.post('/api/batches', {});
        assert.equal(listPost.status, 405);
        const head = await web.send('HEAD', `/api/batches/${seeded.bids.nightly}`);
        assert.equal(head.status, 200);
        assert.equal(head.text, '');
    }));
});

describe('batch endpoints with a password', () => {
    test('need basic authentication', check(async () => {
        const locked = await new FabrikServer({ prefix: 'fabrik-web-batches-auth', password: 'sesame' }).start();
        servers.push(locked);
        const anonymous = client(locked.webPort);
        for (const path of ['/api/batches', '/api/batches/b-x']) {
            const res = await anonymous.get(path);
            assert.equal(res.status, 401, `${path} without credentials`);
        }
        const authorized = client(locked.webPort, { password: 'sesame' });
        const res = await authorized.get('/api/batches');
        assert.equal(res.status, 200);
        assert.deepEqual(res.json, { batches: [], page: 1, per_page: 25, total: 0 });
    }));
});
