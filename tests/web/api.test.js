'use strict';
// Black-box tests of the HTTP API (docs/http-api.md) against the real server binary: every
// endpoint's shape, paging, filters, search, actions and their effect on the jobs, errors,
// basic authentication, the cross-site POST check, the reverse-proxy prefix, /stats,
// /health, /metrics, the throttles and cron. Jobs are seeded over FWP.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const { FabrikServer, FailureTracker, stopAll } = require('./lib/server');
const { FwpClient, makeJob } = require('./lib/fwp');
const { client } = require('./lib/http');

// A job pushed with an earlier failure count of 10 waits about four hours for its next
// retry after FAIL (11^4 s backoff), so it stays in the retry set while the tests run.
const LONG_BACKOFF_FAILURE = { retry_count: 10, remaining: 15 };
const HOUR_MS = 3600 * 1000;

const servers = [];
const tracker = new FailureTracker();
const check = (fn) => tracker.check(fn);

after(async () => {
    await stopAll(servers, tracker.failed);
});

// Starts a server for one group of tests and connects a web client and an FWP client.
async function startServer(options = {}) {
    const server = await new FabrikServer({ prefix: 'fabrik-web-api', ...options }).start();
    servers.push(server);
    const fwp = await FwpClient.connect(server.port, { password: options.fwpPassword });
    return { server, fwp, web: client(server.webPort) };
}

async function getJson(web, path, expectedStatus = 200) {
    const res = await web.get(path);
    assert.equal(res.status, expectedStatus, `GET ${path}: ${res.text.slice(0, 300)}`);
    assert.match(res.headers['content-type'] || '', /^application\/json/, `GET ${path} content type`);
    assert.ok(res.json !== undefined, `GET ${path} body is JSON: ${res.text.slice(0, 200)}`);
    return res.json;
}

async function postJson(web, path, body, expectedStatus = 200) {
    const res = await web.post(path, body);
    assert.equal(res.status, expectedStatus, `POST ${path} ${JSON.stringify(body)}: ${res.text.slice(0, 300)}`);
    assert.ok(res.json !== undefined, `POST ${path} body is JSON: ${res.text.slice(0, 200)}`);
    return res.json;
}

function assertError(res, status, pattern, what) {
    assert.equal(res.status, status, `${what}: status (body ${res.text.slice(0, 200)})`);
    assert.ok(res.json, `${what}: JSON body, got ${res.text.slice(0, 200)}`);
    assert.equal(typeof res.json.error, 'string', `${what}: {"error": ...} body`);
    if (pattern) {
        assert.match(res.json.error, pattern, `${what}: error message`);
    }
}

function assertRfc3339(value, what) {
    assert.equal(typeof value, 'string', `${what} is a string`);
    assert.match(value, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, `${what} is RFC 3339 UTC`);
}

const JOB_KEYS = ['args', 'at', 'created_at', 'custom', 'display_type', 'enqueued_at', 'failure',
    'id', 'jid', 'jobtype', 'payload', 'priority', 'progress', 'queue', 'state', 'wid'];

function assertJobShape(job, what) {
    assert.deepEqual(Object.keys(job).sort(), JOB_KEYS, `${what}: job keys`);
    assert.ok(Number.isSafeInteger(job.id), `${what}: id is an integer`);
    assert.ok(job.id > 0, `${what}: id is positive`);
    assert.equal(typeof job.jid, 'string', `${what}: jid`);
    assert.ok(['queued', 'scheduled', 'retry', 'working', 'dead'].includes(job.state), `${what}: state ${job.state}`);
    assert.ok(Array.isArray(job.args), `${what}: args is an array`);
    assert.ok(Number.isInteger(job.priority), `${what}: priority is an integer`);
    assert.equal(job.payload.jid, job.jid, `${what}: payload is the stored job`);
    assertRfc3339(job.created_at, `${what}: created_at`);
    if (job.state === 'queued') {
        assert.equal(job.at, null, `${what}: at of a queued job`);
    } else {
        assertRfc3339(job.at, `${what}: at`);
    }
}

function ids(jobs) {
    return jobs.map((job) => job.id);
}

function jids(jobs) {
    return jobs.map((job) => job.jid);
}

describe('read endpoints', () => {
    let web;
    let fwp;
    let server;
    const seeded = {};

    before(async () => {
        ({ web, fwp, server } = await startServer());
        // Two jobs ACKed and three FAILed: processed 5, failures 3 today.
        for (let i = 0; i < 2; i++) {
            const job = await fwp.push(makeJob({ queue: 'done' }));
            await fwp.fetch('done');
            await fwp.ack(job.jid);
        }
        seeded.retry = await fwp.pushAndFail(makeJob({
            queue: 'mail', jobtype: 'SendEmail', args: ['alice@example.com', 3],
            custom: { tenant: 'acme', attempt: 2 },
        }), 'Net::Timeout', 'connection timed out', ['mailer.rb:10', 'worker.rb:20']);
        seeded.dead = await fwp.pushAndFail(makeJob({ queue: 'billing', jobtype: 'ChargeCard', retry: -1 }),
            'CardDeclined', 'card declined');
        seeded.fresh = await fwp.pushAndFail(makeJob({ queue: 'fresh', jobtype: 'FirstFailure' }),
            'RuntimeError', 'first');
        seeded.scheduled = await fwp.push(makeJob({
            queue: 'later', jobtype: 'Reminder', at: new Date(Date.now() + HOUR_MS).toISOString(),
        }));
        seeded.queued = await fwp.push(makeJob({ queue: 'default', jobtype: 'Resize', priority: 7 }));
        seeded.activeJob = await fwp.push(makeJob({
            queue: 'default', jobtype: 'ActiveJob::QueueAdapters::FaktoryAdapter::JobWrapper',
            custom: { wrapped: 'ReportJob' },
        }));
    });

    test('GET /api/info is the FWP INFO document', check(async () => {
        const info = await getJson(web, '/api/info');
        assert.deepEqual(Object.keys(info).sort(), ['faktory', 'now', 'server', 'server_utc_time']);
        assertRfc3339(info.now, 'now');
        assert.match(info.server_utc_time, /^\d\d:\d\d:\d\d UTC$/);
        assert.equal(info.server.description, 'fabrik');
        assert.equal(info.server.faktory_version, '1.10.0');
        assert.equal(typeof info.server.fabrik_version, 'string');
        assert.equal(info.faktory.total_processed, 5);
        assert.equal(info.faktory.total_failures, 3);
        assert.deepEqual(info.faktory.sets, { dead: 1, retries: 2, scheduled: 1, working: 0 });
        const wire = await fwp.info();
        assert.deepEqual(Object.keys(info.faktory).sort(), Object.keys(wire.faktory).sort());
        assert.deepEqual(Object.keys(info.server).sort(), Object.keys(wire.server).sort());
        assert.deepEqual(info.faktory.queues, wire.faktory.queues);
        assert.equal(info.faktory.total_enqueued, wire.faktory.total_enqueued);
    }));

    test('GET /stats is INFO without caching', check(async () => {
        const res = await web.get('/stats');
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'], /^application\/json/);
        assert.equal(res.headers['cache-control'], 'no-cache');
        assert.deepEqual(Object.keys(res.json).sort(), ['faktory', 'now', 'server', 'server_utc_time']);
        assert.equal(res.json.faktory.total_processed, 5);
    }));

    test('GET /health answers without authentication', check(async () => {
        const health = await getJson(web, '/health');
        assertRfc3339(health.now, 'now');
        assert.deepEqual(Object.keys(health.server).sort(),
            ['command_count', 'connections', 'description', 'fabrik_version', 'faktory_version']);
        assert.equal(health.server.description, 'fabrik');
        assert.equal(health.server.faktory_version, '1.10.0');
        assert.ok(health.server.connections >= 1, 'the seeding connection is counted');
        assert.ok(health.server.command_count > 0);
    }));

    test('GET /api/history gives one entry per day', check(async () => {
        const info = await getJson(web, '/api/info');
        const today = info.now.slice(0, 10);
        const standard = await getJson(web, '/api/history');
        assert.equal(standard.days.length, 30, 'the default is 30 days');
        for (const days of [7, 30, 90, 180]) {
            const history = await getJson(web, `/api/history?days=${days}`);
            assert.equal(history.days.length, days, `days=${days}`);
            assert.equal(history.days[days - 1].day, today, 'the last entry is today');
            // Summed over the days because the seeding may have run just before midnight UTC.
            const processed = history.days.reduce((sum, entry) => sum + entry.processed, 0);
            const failures = history.days.reduce((sum, entry) => sum + entry.failures, 0);
            assert.equal(processed, 5, 'processed: 2 ACKs and 3 FAILs');
            assert.equal(failures, 3, 'failures: 3 FAILs');
            for (let i = 1; i < days; i++) {
                const gap = Date.parse(history.days[i].day) - Date.parse(history.days[i - 1].day);
                assert.equal(gap, 24 * HOUR_MS, `entries ${i - 1} and ${i} are consecutive days`);
            }
            for (const entry of history.days.slice(0, -2)) {
                assert.deepEqual(entry, { day: entry.day, processed: 0, failures: 0 }, 'days without work are zero');
            }
        }
        assertError(await web.get('/api/history?days=x'), 400, /days/, 'days=x');
        assertError(await web.get('/api/history?days=0'), 400, /days/, 'days=0');
    }));

    test('GET /api/jobs/<id> returns the whole job', check(async () => {
        const list = await getJson(web, '/api/sets/retries?jobtype=SendEmail');
        assert.equal(list.jobs.length, 1);
        const { job } = await getJson(web, `/api/jobs/${list.jobs[0].id}`);
        assertJobShape(job, 'retry job');
        assert.equal(job.jid, seeded.retry.jid);
        assert.equal(job.state, 'retry');
        assert.equal(job.queue, 'mail');
        assert.equal(job.jobtype, 'SendEmail');
        assert.equal(job.display_type, 'SendEmail');
        assert.deepEqual(job.args, ['alice@example.com', 3]);
        assert.equal(job.priority, 5, 'default priority');
        assert.equal(job.wid, null);
        assert.deepEqual(job.custom, { tenant: 'acme', attempt: 2 });
        assert.equal(job.failure.retry_count, 0, 'first failure');
        assert.equal(job.failure.remaining, 25);
        assert.equal(job.failure.errtype, 'Net::Timeout');
        assert.equal(job.failure.message, 'connection timed out');
        assert.deepEqual(job.failure.backtrace, ['mailer.rb:10', 'worker.rb:20']);
        assertRfc3339(job.failure.failed_at, 'failure.failed_at');
        assertRfc3339(job.failure.next_at, 'failure.next_at');
        assert.equal(Date.parse(job.at), Date.parse(job.failure.next_at), 'at is the next retry');
        assert.equal(job.payload.retry, 25, 'the stored job has the filled-in retry');

        const dead = (await getJson(web, '/api/sets/dead')).jobs[0];
        assert.equal(dead.state, 'dead');
        assert.equal(dead.custom, null, 'custom is null when the job has none');
        const queued = (await getJson(web, '/api/queues/default')).jobs;
        const plain = queued.find((j) => j.jid === seeded.queued.jid);
        assert.equal(plain.failure, null, 'failure is null when the job never failed');
        assert.equal(plain.priority, 7);
        const wrapped = queued.find((j) => j.jid === seeded.activeJob.jid);
        assert.equal(wrapped.display_type, 'ReportJob', 'ActiveJob wrapper unwrapped');

        assertError(await web.get('/api/jobs/999999'), 404, null, 'unknown job id');
        assertError(await web.get('/api/jobs/abc'), 400, /id/, 'non-numeric job id');
    }));

    test('GET /api/sets/<set> lists each set', check(async () => {
        const retries = await getJson(web, '/api/sets/retries');
        assert.deepEqual(Object.keys(retries).sort(),
            ['errtypes', 'jobs', 'jobtypes', 'page', 'per_page', 'queues', 'total']);
        assert.equal(retries.total, 2);
        assert.equal(retries.page, 1);
        assert.equal(retries.per_page, 25);
        for (const job of retries.jobs) {
            assertJobShape(job, 'retries entry');
            assert.equal(job.state, 'retry');
        }
        const scheduled = await getJson(web, '/api/sets/scheduled');
        assert.deepEqual(jids(scheduled.jobs), [seeded.scheduled.jid]);
        assert.equal(scheduled.jobs[0].state, 'scheduled');
        assert.equal(Date.parse(scheduled.jobs[0].at), Date.parse(seeded.scheduled.at), 'at is the run time');
        const dead = await getJson(web, '/api/sets/dead');
        assert.deepEqual(jids(dead.jobs), [seeded.dead.jid]);
        assert.equal(dead.jobs[0].failure.errtype, 'CardDeclined');
        assertError(await web.get('/api/sets/working'), 404, /working/, 'unknown set');
        assertError(await web.get('/api/sets/'), 404, null, 'empty set name');
    }));

    test('GET /api/busy without workers', check(async () => {
        const busy = await getJson(web, '/api/busy');
        assert.deepEqual(busy, { workers: [], jobs: [] });
    }));

    test('GET /api/queues lists queues by name', check(async () => {
        const { queues } = await getJson(web, '/api/queues');
        const names = queues.map((q) => q.name);
        assert.deepEqual(names, [...names].sort(), 'sorted by name');
        for (const name of ['default', 'done', 'fresh', 'mail', 'billing']) {
            assert.ok(names.includes(name), `queue ${name} is listed`);
        }
        const standard = queues.find((q) => q.name === 'default');
        assert.deepEqual(Object.keys(standard).sort(), ['latency', 'name', 'paused', 'size']);
        assert.equal(standard.size, 2);
        assert.equal(standard.paused, false);
        assert.equal(typeof standard.latency, 'number');
        assert.ok(standard.latency >= 0, `latency ${standard.latency} is not negative`);
        assert.ok(standard.latency < 60, `latency ${standard.latency} is the age of the oldest job`);
        const done = queues.find((q) => q.name === 'done');
        assert.equal(done.size, 0);
        assert.equal(done.latency, 0, 'an empty queue has no latency');
        assert.ok(server.port > 0);
    }));
});

describe('queues', () => {
    let web;
    let fwp;

    before(async () => {
        ({ web, fwp } = await startServer());
    });

    test('queue detail lists jobs in FETCH order', check(async () => {
        const pushed = [];
        for (const priority of [5, 9, 5, 1, 9]) {
            pushed.push(await fwp.push(makeJob({ queue: 'ordered', priority })));
        }
        const detail = await getJson(web, '/api/queues/ordered');
        assert.deepEqual(Object.keys(detail).sort(), ['jobs', 'page', 'per_page', 'queue', 'total']);
        assert.deepEqual(detail.queue.name, 'ordered');
        assert.equal(detail.queue.size, 5);
        assert.equal(detail.total, 5);
        const expected = [pushed[1], pushed[4], pushed[0], pushed[2], pushed[3]].map((j) => j.jid);
        assert.deepEqual(jids(detail.jobs), expected, 'higher priority first, FIFO within one');
        for (const job of detail.jobs) {
            assertJobShape(job, 'queued job');
            assert.equal(job.state, 'queued');
            assertRfc3339(job.enqueued_at, 'enqueued_at');
        }
        const fetched = [];
        for (let i = 0; i < 5; i++) {
            fetched.push((await fwp.fetch('ordered')).jid);
        }
        assert.deepEqual(fetched, expected, 'FETCH takes them in the listed order');
        for (const jid of fetched) {
            await fwp.ack(jid);
        }
    }));

    test('queue detail pages', check(async () => {
        const pushed = [];
        for (let i = 0; i < 30; i++) {
            pushed.push((await fwp.push(makeJob({ queue: 'paged' }))).jid);
        }
        const first = await getJson(web, '/api/queues/paged');
        assert.equal(first.per_page, 25);
        assert.deepEqual(jids(first.jobs), pushed.slice(0, 25));
        const second = await getJson(web, '/api/queues/paged?page=2');
        assert.deepEqual(jids(second.jobs), pushed.slice(25));
        assert.equal(second.page, 2);
        const third = await getJson(web, '/api/queues/paged?page=3&per_page=10');
        assert.deepEqual(jids(third.jobs), pushed.slice(20, 30));
        assert.equal(third.per_page, 10);
        assert.equal(third.total, 30);
        const beyond = await getJson(web, '/api/queues/paged?page=4&per_page=10');
        assert.deepEqual(beyond.jobs, []);
        assert.equal(beyond.total, 30);
        const all = await getJson(web, '/api/queues/paged?per_page=500');
        assert.equal(all.jobs.length, 30);
    }));

    test('bad paging parameters answer 400', check(async () => {
        await fwp.push(makeJob({ queue: 'paging-errors' }));
        for (const query of ['page=0', 'page=-1', 'page=x', 'page=1.5', 'page=']) {
            assertError(await web.get(`/api/queues/paging-errors?${query}`), 400, /page/, query);
        }
        for (const query of ['per_page=0', 'per_page=501', 'per_page=ten']) {
            assertError(await web.get(`/api/queues/paging-errors?${query}`), 400, /per_page/, query);
        }
        const res = await web.get('/api/queues/paging-errors?page=x');
        assert.match(res.json.error, /"x"/, 'the message shows the rejected value');
    }));

    test('unknown queue answers 404', check(async () => {
        assertError(await web.get('/api/queues/no-such-queue'), 404, /no-such-queue/, 'GET unknown queue');
        assertError(await web.post('/api/queues/no-such-queue', { action: 'pause' }), 404, /no-such-queue/,
            'POST unknown queue');
    }));

    test('pause and resume a queue', check(async () => {
        const job = await fwp.push(makeJob({ queue: 'pausable' }));
        assert.deepEqual(await postJson(web, '/api/queues/pausable', { action: 'pause' }), { affected: 1 });
        assert.equal((await getJson(web, '/api/queues/pausable')).queue.paused, true);
        const listed = (await getJson(web, '/api/queues')).queues.find((q) => q.name === 'pausable');
        assert.equal(listed.paused, true);
        assert.equal(await fwp.fetch('pausable'), null, 'FETCH skips a paused queue');
        assert.deepEqual(await postJson(web, '/api/queues/pausable', { action: 'pause' }), { affected: 0 },
            'pausing a paused queue changes nothing');
        assert.deepEqual(await postJson(web, '/api/queues/pausable', { action: 'resume' }), { affected: 1 });
        assert.equal((await getJson(web, '/api/queues/pausable')).queue.paused, false);
        const fetched = await fwp.fetch('pausable');
        assert.equal(fetched.jid, job.jid, 'FETCH takes the job after resume');
        await fwp.ack(job.jid);
    }));

    test('delete selected jobs of a queue', check(async () => {
        const pushed = [];
        for (let i = 0; i < 4; i++) {
            pushed.push(await fwp.push(makeJob({ queue: 'pruned' })));
        }
        const before = await getJson(web, '/api/queues/pruned');
        const victims = [before.jobs[1].id, before.jobs[3].id];
        assert.deepEqual(await postJson(web, '/api/queues/pruned', { action: 'delete', ids: victims }), { affected: 2 });
        const after = await getJson(web, '/api/queues/pruned');
        assert.deepEqual(jids(after.jobs), [pushed[0].jid, pushed[2].jid]);
        assert.equal(after.queue.size, 2);
        assertError(await web.get(`/api/jobs/${victims[0]}`), 404, null, 'deleted job');
        assert.deepEqual(await postJson(web, '/api/queues/pruned', { action: 'delete', ids: victims }), { affected: 0 },
            'deleting again affects nothing');
        assertError(await web.post('/api/queues/pruned', { action: 'delete', ids: [] }), 400, /ids/, 'empty ids');
        assertError(await web.post('/api/queues/pruned', { action: 'delete' }), 400, /ids/, 'missing ids');
        assertError(await web.post('/api/queues/pruned', { action: 'delete', ids: ['1'] }), 400, /ids/, 'string ids');
    }));

    test('clear removes every job and the queue', check(async () => {
        for (let i = 0; i < 3; i++) {
            await fwp.push(makeJob({ queue: 'doomed' }));
        }
        assert.deepEqual(await postJson(web, '/api/queues/doomed', { action: 'clear' }), { affected: 3 });
        assertError(await web.get('/api/queues/doomed'), 404, /doomed/, 'cleared queue');
        const names = (await getJson(web, '/api/queues')).queues.map((q) => q.name);
        assert.ok(!names.includes('doomed'), 'the queue is gone from the list');
        const info = await getJson(web, '/api/info');
        assert.ok(!('doomed' in info.faktory.queues), 'the queue is gone from INFO');
    }));

    test('queue action errors', check(async () => {
        await fwp.push(makeJob({ queue: 'strict' }));
        assertError(await web.post('/api/queues/strict', { action: 'explode' }), 400, /action/, 'unknown action');
        assertError(await web.post('/api/queues/strict', {}), 400, /action/, 'missing action');
        assertError(await web.post('/api/queues/strict', '{"action":'), 400, /JSON/, 'malformed JSON');
        assertError(await web.post('/api/queues/strict', '["pause"]'), 400, /object/, 'JSON array body');
        assertError(await web.post('/api/queues/strict', ''), 400, null, 'empty body');
        assert.equal((await getJson(web, '/api/queues/strict')).queue.paused, false, 'nothing changed');
    }));
});

describe('sets', () => {
    let web;
    let fwp;
    const retries = {};
    const scheduled = [];
    const dead = [];

    async function seedRetry(name, fields, errtype, message) {
        retries[name] = await fwp.pushAndFail(makeJob({ ...fields, failure: LONG_BACKOFF_FAILURE }),
            errtype, message, [`${name}.rb:1`]);
    }

    before(async () => {
        ({ web, fwp } = await startServer());
        await seedRetry('email', { jobtype: 'SendEmail', queue: 'mail', args: ['alice@example.com'] },
            'Net::Timeout', 'timed out');
        await seedRetry('charge', { jobtype: 'ChargeCard', queue: 'billing', args: [42] },
            'CardDeclined', 'Card declined for NEEDLE-42');
        await seedRetry('invoice', { jobtype: 'SendEmail', queue: 'billing', args: ['bob@example.com'] },
            'RuntimeError', 'boom');
        const now = Date.now();
        for (const hours of [2, 1, 3]) {
            scheduled.push(await fwp.push(makeJob({
                jobtype: 'Reminder', queue: hours === 3 ? 'late' : 'mail',
                at: new Date(now + hours * HOUR_MS).toISOString(),
            })));
        }
        for (let i = 0; i < 3; i++) {
            dead.push(await fwp.pushAndFail(makeJob({
                jobtype: i === 2 ? 'Export' : 'ChargeCard', queue: 'billing', retry: -1, args: [`dead-${i}`],
            }), i === 2 ? 'IOError' : 'CardDeclined', `dead number ${i}`));
        }
    });

    test('sets are sorted by at', check(async () => {
        const retryList = (await getJson(web, '/api/sets/retries')).jobs;
        assert.equal(retryList.length, 3);
        const times = retryList.map((job) => Date.parse(job.at));
        assert.deepEqual(times, [...times].sort((a, b) => a - b), 'retries: next retry first');
        for (const job of retryList) {
            assert.equal(job.failure.retry_count, 11);
            assert.ok(Date.parse(job.at) > Date.now() + HOUR_MS, 'the next retry is hours away');
        }
        const scheduledList = (await getJson(web, '/api/sets/scheduled')).jobs;
        assert.deepEqual(jids(scheduledList), [scheduled[1], scheduled[0], scheduled[2]].map((j) => j.jid),
            'scheduled: earliest run time first');
        const deadList = (await getJson(web, '/api/sets/dead')).jobs;
        assert.deepEqual(jids(deadList), [dead[2], dead[1], dead[0]].map((j) => j.jid), 'dead: newest first');
        for (const job of deadList) {
            assert.equal(job.state, 'dead');
            assert.ok(Date.parse(job.at) <= Date.now() + 1000, 'at is the time of death');
        }
    }));

    test('sets page', check(async () => {
        const first = await getJson(web, '/api/sets/scheduled?per_page=2');
        assert.equal(first.jobs.length, 2);
        assert.equal(first.total, 3);
        assert.equal(first.per_page, 2);
        const second = await getJson(web, '/api/sets/scheduled?per_page=2&page=2');
        assert.deepEqual(jids(second.jobs), [scheduled[2].jid]);
        assert.equal(second.page, 2);
        const beyond = await getJson(web, '/api/sets/scheduled?per_page=2&page=9');
        assert.deepEqual(beyond.jobs, []);
        assert.equal(beyond.total, 3);
        assertError(await web.get('/api/sets/dead?page=0'), 400, /page/, 'page=0');
        assertError(await web.get('/api/sets/dead?per_page=1000'), 400, /per_page/, 'per_page=1000');
    }));

    test('filter menus list the distinct values', check(async () => {
        const list = await getJson(web, '/api/sets/retries?jobtype=ChargeCard');
        assert.deepEqual([...list.jobtypes].sort(), ['ChargeCard', 'SendEmail']);
        assert.deepEqual([...list.queues].sort(), ['billing', 'mail']);
        assert.deepEqual([...list.errtypes].sort(), ['CardDeclined', 'Net::Timeout', 'RuntimeError']);
        const deadList = await getJson(web, '/api/sets/dead');
        assert.deepEqual([...deadList.errtypes].sort(), ['CardDeclined', 'IOError']);
        const scheduledList = await getJson(web, '/api/sets/scheduled');
        assert.deepEqual([...scheduledList.queues].sort(), ['late', 'mail']);
        assert.deepEqual(scheduledList.errtypes, []);
    }));

    test('filters match exactly', check(async () => {
        const cases = [
            ['jobtype=SendEmail', ['email', 'invoice']],
            ['queue=billing', ['charge', 'invoice']],
            ['errtype=CardDeclined', ['charge']],
            ['jobtype=SendEmail&queue=billing', ['invoice']],
            ['jobtype=Send', []],
            ['errtype=cardDeclined', []],
            ['queue=nowhere', []],
        ];
        for (const [query, names] of cases) {
            const list = await getJson(web, `/api/sets/retries?${query}`);
            assert.deepEqual(jids(list.jobs).sort(), names.map((n) => retries[n].jid).sort(), query);
            assert.equal(list.total, names.length, `${query}: total counts only matching jobs`);
        }
    }));

    test('search q is a case-insensitive substring', check(async () => {
        const cases = [
            ['needle-42', ['charge']],
            ['NEEDLE', ['charge']],
            ['example.com', ['email', 'invoice']],
            ['ALICE@', ['email']],
            ['nothing-like-this', []],
        ];
        for (const [q, names] of cases) {
            const list = await getJson(web, `/api/sets/retries?q=${encodeURIComponent(q)}`);
            assert.deepEqual(jids(list.jobs).sort(), names.map((n) => retries[n].jid).sort(), `q=${q}`);
        }
        const combined = await getJson(web, '/api/sets/retries?q=example&queue=mail');
        assert.deepEqual(jids(combined.jobs), [retries.email.jid], 'q combines with the filters');
        const deadSearch = await getJson(web, '/api/sets/dead?q=dead-1');
        assert.deepEqual(jids(deadSearch.jobs), [dead[1].jid]);
        const special = await getJson(web, `/api/sets/dead?q=${encodeURIComponent('%_"\\')}`);
        assert.deepEqual(special.jobs, [], 'LIKE wildcards and quotes are searched literally');
    }));
});

describe('set actions', () => {
    let web;
    let fwp;

    before(async () => {
        ({ web, fwp } = await startServer());
    });

    async function seedRetries(jobtype, count, fields = {}) {
        const jobs = [];
        for (let i = 0; i < count; i++) {
            jobs.push(await fwp.pushAndFail(makeJob({ jobtype, queue: `q-${jobtype}`, failure: LONG_BACKOFF_FAILURE, ...fields }),
                'RuntimeError', `${jobtype} failed`));
        }
        const list = await getJson(web, `/api/sets/retries?jobtype=${jobtype}`);
        assert.equal(list.total, count);
        return list.jobs;
    }

    test('retry moves jobs to their queue', check(async () => {
        const [job, other] = await seedRetries('RetryMe', 2);
        assert.deepEqual(await postJson(web, '/api/sets/retries', { action: 'retry', ids: [job.id] }), { affected: 1 });
        const moved = (await getJson(web, `/api/jobs/${job.id}`)).job;
        assert.equal(moved.state, 'queued');
        assert.equal(moved.queue, 'q-RetryMe');
        assert.equal(moved.at, null);
        assert.equal(moved.failure.errtype, 'RuntimeError', 'the failure is kept');
        assert.ok(Date.parse(moved.enqueued_at) > Date.parse(job.enqueued_at), 'fresh enqueued_at');
        assert.equal((await getJson(web, `/api/jobs/${other.id}`)).job.state, 'retry', 'the other job stays');
        const fetched = await fwp.fetch('q-RetryMe');
        assert.equal(fetched.jid, job.jid, 'a worker can fetch the retried job');
        await fwp.ack(fetched.jid);
        assert.deepEqual(await postJson(web, '/api/sets/retries', { action: 'retry', ids: [job.id] }), { affected: 0 },
            'a job that left the set is skipped');
    }));

    test('delete removes jobs', check(async () => {
        const jobs = await seedRetries('DeleteMe', 3);
        const victims = [jobs[0].id, jobs[2].id];
        assert.deepEqual(await postJson(web, '/api/sets/retries', { action: 'delete', ids: victims }), { affected: 2 });
        for (const id of victims) {
            assertError(await web.get(`/api/jobs/${id}`), 404, null, `deleted job ${id}`);
        }
        assert.deepEqual(ids((await getJson(web, '/api/sets/retries?jobtype=DeleteMe')).jobs), [jobs[1].id]);
    }));

    test('kill moves jobs to the dead set', check(async () => {
        const [job] = await seedRetries('KillMe', 1);
        assert.deepEqual(await postJson(web, '/api/sets/retries', { action: 'kill', ids: [job.id] }), { affected: 1 });
        const killed = (await getJson(web, `/api/jobs/${job.id}`)).job;
        assert.equal(killed.state, 'dead');
        assert.ok(Math.abs(Date.parse(killed.at) - Date.now()) < 60000, 'at is the time of death');
        const deadList = await getJson(web, '/api/sets/dead?jobtype=KillMe');
        assert.deepEqual(ids(deadList.jobs), [job.id]);
        assertError(await web.post('/api/sets/dead', { action: 'kill', ids: [job.id] }), 400, /kill|dead/,
            'kill in the dead set');
        assert.deepEqual(await postJson(web, '/api/sets/dead', { action: 'retry', ids: [job.id] }), { affected: 1 },
            'a dead job can be retried');
        assert.equal((await getJson(web, `/api/jobs/${job.id}`)).job.state, 'queued');
    }));

    test('scheduled jobs: enqueue now, delete and kill', check(async () => {
        const pushed = [];
        for (let i = 0; i < 3; i++) {
            pushed.push(await fwp.push(makeJob({
                jobtype: 'Later', queue: 'q-later', at: new Date(Date.now() + (i + 1) * HOUR_MS).toISOString(),
            })));
        }
        const list = (await getJson(web, '/api/sets/scheduled?jobtype=Later')).jobs;
        assert.deepEqual(jids(list), jids(pushed));
        assert.deepEqual(await postJson(web, '/api/sets/scheduled', { action: 'retry', ids: [list[0].id] }), { affected: 1 });
        assert.equal((await fwp.fetch('q-later')).jid, pushed[0].jid, 'enqueued before its time');
        await fwp.ack(pushed[0].jid);
        assert.deepEqual(await postJson(web, '/api/sets/scheduled', { action: 'kill', ids: [list[1].id] }), { affected: 1 });
        assert.equal((await getJson(web, `/api/jobs/${list[1].id}`)).job.state, 'dead');
        assert.deepEqual(await postJson(web, '/api/sets/scheduled', { action: 'delete', ids: [list[2].id] }), { affected: 1 });
        assert.equal((await getJson(web, '/api/sets/scheduled?jobtype=Later')).total, 0);
    }));

    test('ids from another set are skipped', check(async () => {
        const [job] = await seedRetries('Elsewhere', 1);
        assert.deepEqual(await postJson(web, '/api/sets/dead', { action: 'delete', ids: [job.id] }), { affected: 0 });
        assert.deepEqual(await postJson(web, '/api/sets/scheduled', { action: 'retry', ids: [job.id, 999999] }), { affected: 0 });
        assert.equal((await getJson(web, `/api/jobs/${job.id}`)).job.state, 'retry', 'the job did not move');
    }));

    test('all:true acts on every matching job', check(async () => {
        await seedRetries('BulkA', 3, { queue: 'bulk' });
        await seedRetries('BulkB', 2, { queue: 'bulk' });
        await seedRetries('BulkC', 2, { queue: 'bulk-other' });
        assert.deepEqual(await postJson(web, '/api/sets/retries', { action: 'kill', all: true, jobtype: 'BulkA' }),
            { affected: 3 });
        assert.equal((await getJson(web, '/api/sets/retries?jobtype=BulkA')).total, 0);
        assert.equal((await getJson(web, '/api/sets/dead?jobtype=BulkA')).total, 3);
        assert.deepEqual(await postJson(web, '/api/sets/retries', { action: 'retry', all: true, queue: 'bulk' }),
            { affected: 2 }, 'only BulkB is left in queue bulk');
        assert.equal((await getJson(web, '/api/queues/bulk')).total, 2);
        assert.deepEqual(await postJson(web, '/api/sets/retries', { action: 'delete', all: true, q: 'bulkc' }),
            { affected: 2 }, 'q filters all:true like the listing');
        assert.equal((await getJson(web, '/api/sets/retries?jobtype=BulkC')).total, 0);
        assert.deepEqual(await postJson(web, '/api/sets/dead', { action: 'delete', all: true, errtype: 'NoSuchError' }),
            { affected: 0 });
        assert.equal((await getJson(web, '/api/sets/dead?jobtype=BulkA')).total, 3, 'non-matching filter deleted nothing');
        const deadTotal = (await getJson(web, '/api/sets/dead')).total;
        assert.ok(deadTotal >= 3);
        assert.deepEqual(await postJson(web, '/api/sets/dead', { action: 'delete', all: true }), { affected: deadTotal });
        assert.equal((await getJson(web, '/api/sets/dead')).total, 0);
    }));

    test('set action errors', check(async () => {
        const [job] = await seedRetries('Strict', 1);
        assertError(await web.post('/api/sets/retries', { action: 'explode', ids: [job.id] }), 400, /action/, 'unknown action');
        assertError(await web.post('/api/sets/retries', { ids: [job.id] }), 400, /action/, 'missing action');
        assertError(await web.post('/api/sets/retries', { action: 'retry' }), 400, /ids/, 'neither ids nor all');
        assertError(await web.post('/api/sets/retries', { action: 'retry', ids: [] }), 400, /ids/, 'empty ids');
        assertError(await web.post('/api/sets/retries', { action: 'retry', ids: 'all' }), 400, /ids/, 'ids not an array');
        assertError(await web.post('/api/sets/retries', { action: 'retry', ids: [1.5] }), 400, /ids/, 'fractional id');
        assertError(await web.post('/api/sets/retries', '{"action":"retry",'), 400, /JSON/, 'malformed JSON');
        assertError(await web.post('/api/sets/retries', '42'), 400, /object/, 'JSON number body');
        assertError(await web.post('/api/sets/nowhere', { action: 'retry', all: true }), 404, /nowhere/, 'unknown set');
        assert.equal((await getJson(web, `/api/jobs/${job.id}`)).job.state, 'retry', 'nothing changed');
    }));
});

describe('busy', () => {
    let web;
    let fwp;
    let server;
    const workers = {};

    before(async () => {
        ({ web, fwp, server } = await startServer());
        for (const [wid, labels] of [['wid-b', ['blue']], ['wid-a', ['node', 'green']]]) {
            workers[wid] = await FwpClient.connect(server.port, {
                hello: { wid, hostname: `host-${wid}`, pid: wid === 'wid-a' ? 111 : 222, labels },
            });
        }
        await fwp.push(makeJob({ queue: 'busy-q', jobtype: 'LongJob', args: ['x'] }));
        await workers['wid-a'].fetch('busy-q');
        await workers['wid-a'].command(`BEAT ${JSON.stringify({ wid: 'wid-a', rss_kb: 2048 })}`);
    });

    after(() => {
        for (const worker of Object.values(workers)) {
            worker.close();
        }
    });

    test('GET /api/busy lists workers and working jobs', check(async () => {
        const busy = await getJson(web, '/api/busy');
        assert.deepEqual(busy.workers.map((w) => w.wid), ['wid-a', 'wid-b'], 'sorted by wid');
        const a = busy.workers[0];
        assert.deepEqual(Object.keys(a).sort(), ['busy', 'connections', 'hostname', 'labels', 'last_beat_at',
            'pid', 'rss_kb', 'started_at', 'state', 'wid']);
        assert.equal(a.hostname, 'host-wid-a');
        assert.equal(a.pid, 111);
        assert.deepEqual(a.labels, ['node', 'green']);
        assert.equal(a.state, 'running');
        assert.equal(a.connections, 1);
        assert.equal(a.rss_kb, 2048);
        assert.equal(a.busy, 1);
        assertRfc3339(a.started_at, 'started_at');
        assertRfc3339(a.last_beat_at, 'last_beat_at');
        assert.equal(busy.workers[1].busy, 0);
        assert.equal(busy.jobs.length, 1);
        const job = busy.jobs[0];
        assertJobShape(job, 'working job');
        assert.equal(job.state, 'working');
        assert.equal(job.wid, 'wid-a');
        assert.equal(job.jobtype, 'LongJob');
        assert.ok(Date.parse(job.at) > Date.now(), 'at is the reservation expiry');
    }));

    test('quiet and terminate workers', check(async () => {
        assert.deepEqual(await postJson(web, '/api/busy', { wid: 'wid-b', signal: 'quiet' }), { affected: 1 });
        assert.equal(await workers['wid-b'].beat('wid-b'), 'quiet', 'BEAT reports the new state');
        let busy = await getJson(web, '/api/busy');
        assert.deepEqual(busy.workers.map((w) => w.state), ['running', 'quiet']);
        assert.deepEqual(await postJson(web, '/api/busy', { wid: 'nobody', signal: 'quiet' }), { affected: 0 });
        assert.deepEqual(await postJson(web, '/api/busy', { wid: '*', signal: 'terminate' }), { affected: 2 });
        assert.equal(await workers['wid-a'].beat('wid-a'), 'terminate');
        busy = await getJson(web, '/api/busy');
        assert.deepEqual(busy.workers.map((w) => w.state), ['terminate', 'terminate']);
        await postJson(web, '/api/busy', { wid: 'wid-a', signal: 'quiet' });
        busy = await getJson(web, '/api/busy');
        assert.equal(busy.workers[0].state, 'terminate', 'states only move forward');
    }));

    test('busy action errors', check(async () => {
        assertError(await web.post('/api/busy', { wid: 'wid-a', signal: 'stop' }), 400, /signal/, 'unknown signal');
        assertError(await web.post('/api/busy', { signal: 'quiet' }), 400, /wid/, 'missing wid');
        assertError(await web.post('/api/busy', { wid: '', signal: 'quiet' }), 400, /wid/, 'empty wid');
        assertError(await web.post('/api/busy', 'quiet'), 400, /JSON/, 'not JSON');
    }));
});

describe('HTTP conventions', () => {
    let web;
    let server;

    before(async () => {
        ({ web, server } = await startServer());
    });

    test('unknown API paths answer 404', check(async () => {
        for (const path of ['/api/nope', '/api/', '/api/info/extra', '/api/queues/a/b/c/../x']) {
            const res = await web.get(path);
            assert.equal(res.status, 404, `${path}: ${res.text.slice(0, 100)}`);
            assert.equal(typeof res.json?.error, 'string', `${path}: JSON error`);
        }
    }));

    test('POST to a GET-only endpoint answers 405', check(async () => {
        for (const path of ['/api/info', '/api/history', '/api/queues', '/api/jobs/1']) {
            const res = await web.post(path, {});
            assertError(res, 405, null, `POST ${path}`);
            assert.match(res.headers.allow || '', /GET/, `POST ${path}: Allow header`);
            assert.doesNotMatch(res.headers.allow || '', /POST/, `POST ${path}: Allow header`);
        }
        const page = await web.post('/queues', {});
        assert.equal(page.status, 405, 'POST to a page path');
        assert.match(page.headers.allow || '', /GET/);
    }));

    test('other methods answer 405 with Allow', check(async () => {
        for (const method of ['PUT', 'DELETE', 'PATCH']) {
            const res = await web.send(method, '/api/queues/default', { body: '{}' });
            assertError(res, 405, null, `${method} /api/queues/default`);
            assert.match(res.headers.allow || '', /GET/, `${method}: Allow header`);
        }
    }));

    test('HEAD answers without a body', check(async () => {
        const res = await web.send('HEAD', '/api/info');
        assert.equal(res.status, 200);
        assert.equal(res.text, '');
    }));

    test('request bodies above 1 MiB answer 413', check(async () => {
        const huge = JSON.stringify({ action: 'retry', ids: [1], padding: 'x'.repeat(1024 * 1024) });
        const res = await web.post('/api/sets/retries', huge);
        assert.equal(res.status, 413);
        const fits = JSON.stringify({ action: 'retry', ids: [1], padding: 'x'.repeat(1000 * 1000) });
        const ok = await web.post('/api/sets/retries', fits);
        assert.equal(ok.status, 200, `a body just under 1 MiB is accepted: ${ok.text.slice(0, 100)}`);
    }));

    test('413 answers carry a JSON error', check(async () => {
        const huge = JSON.stringify({ action: 'retry', ids: [1], padding: 'x'.repeat(1024 * 1024) });
        assertError(await web.post('/api/sets/retries', huge), 413, null, 'huge body');
    }));

    test('every page path serves index.html', check(async () => {
        const paths = ['/', '/busy', '/queues', '/queues/default', '/retries', '/retries/12', '/scheduled',
            '/scheduled/3', '/morgue', '/morgue/7', '/throttles', '/cron'];
        for (const path of paths) {
            const res = await web.get(path);
            assert.equal(res.status, 200, path);
            assert.match(res.headers['content-type'], /^text\/html/, `${path} content type`);
            assert.match(res.text, /<meta name="fabrik-root" content="">/, `${path}: empty root`);
            assert.match(res.text, /<script type="module" src="\/static\/app\.js">/, `${path}: script URL`);
            assert.doesNotMatch(res.text, /\{\{ROOT\}\}/, `${path}: placeholder replaced`);
        }
    }));

    test('static files are served with their types', check(async () => {
        const types = {
            'app.js': /^application\/javascript/, 'style.css': /^text\/css/, 'favicon.svg': /^image\/svg\+xml/,
            'api.js': /^application\/javascript/, 'dashboard.js': /^application\/javascript/,
        };
        for (const [name, type] of Object.entries(types)) {
            const res = await web.get(`/static/${name}`);
            assert.equal(res.status, 200, name);
            assert.match(res.headers['content-type'], type, `${name} content type`);
            assert.ok(res.text.length > 100, `${name} has content`);
        }
        assert.equal((await web.get('/static/missing.js')).status, 404);
        assert.equal((await web.get('/static/index.html')).status, 404, 'index.html only as a page');
        const traversal = await web.get('/static/../CMakeLists.txt');
        assert.ok(!traversal.text.includes('cmake_minimum_required'), 'no path traversal');
    }));

    test('X-Script-Name prefixes every link', check(async () => {
        const proxied = client(server.webPort, { headers: { 'X-Script-Name': '/fabrik' } });
        for (const path of ['/fabrik/', '/fabrik', '/fabrik/queues/default', '/fabrik/morgue/3']) {
            const res = await proxied.get(path);
            assert.equal(res.status, 200, path);
            assert.match(res.text, /<meta name="fabrik-root" content="\/fabrik">/, `${path}: root`);
            assert.match(res.text, /src="\/fabrik\/static\/app\.js"/, `${path}: script URL`);
            assert.match(res.text, /href="\/fabrik\/static\/style\.css"/, `${path}: stylesheet URL`);
            assert.match(res.text, /href="\/fabrik\/retries"/, `${path}: nav link`);
            assert.doesNotMatch(res.text, /\{\{ROOT\}\}/, `${path}: placeholder replaced`);
            assert.doesNotMatch(res.text, /(href|src)="\/(?!fabrik)/, `${path}: no link outside the prefix`);
        }
        const info = await proxied.get('/fabrik/api/info');
        assert.equal(info.status, 200);
        assert.equal(info.json.server.description, 'fabrik');
        const script = await proxied.get('/fabrik/static/app.js');
        assert.equal(script.status, 200);
        assert.match(script.headers['content-type'], /^application\/javascript/);
        const trailing = client(server.webPort, { headers: { 'X-Script-Name': '/fabrik/' } });
        assert.match((await trailing.get('/fabrik/busy')).text, /content="\/fabrik"/, 'trailing slash dropped');
    }));

    test('GET /metrics is Prometheus text', check(async () => {
        const seeding = await FwpClient.connect(server.port, { hello: { wid: 'metrics-worker', hostname: 'h', pid: 1 } });
        await seeding.push(makeJob({ queue: 'metrics.q' }));
        await seeding.push(makeJob({ queue: 'metrics.q' }));
        await seeding.pushAndFail(makeJob({ queue: 'metrics.fail', failure: LONG_BACKOFF_FAILURE }), 'E', 'm');
        await seeding.push(makeJob({ queue: 'metrics.paused' }));
        await web.post('/api/queues/metrics.paused', { action: 'pause' });

        const res = await web.get('/metrics');
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
        const info = await getJson(web, '/api/info');
        seeding.close();

        const samples = new Map();
        const types = new Map();
        for (const line of res.text.split('\n')) {
            if (line === '') {
                continue;
            }
            let m = line.match(/^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/);
            if (m) {
                if (m[1] === 'TYPE') {
                    types.set(m[2], m[3]);
                }
                continue;
            }
            m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+]+|\+Inf|NaN)$/);
            assert.ok(m, `sample line is valid exposition format: ${JSON.stringify(line)}`);
            samples.set(`${m[1]}${m[2] || ''}`, Number(m[3]));
        }
        const expectedTypes = {
            fabrik_jobs_processed_total: 'counter', fabrik_jobs_failed_total: 'counter',
            fabrik_queue_size: 'gauge', fabrik_queue_latency_seconds: 'gauge', fabrik_queue_paused: 'gauge',
            fabrik_set_size: 'gauge', fabrik_connections: 'gauge', fabrik_workers: 'gauge',
            fabrik_commands_total: 'counter', fabrik_commit_duration_seconds: 'histogram',
            fabrik_uptime_seconds: 'gauge',
        };
        for (const [name, type] of Object.entries(expectedTypes)) {
            assert.equal(types.get(name), type, `# TYPE of ${name}`);
        }
        assert.equal(samples.get('fabrik_jobs_processed_total'), info.faktory.total_processed);
        assert.equal(samples.get('fabrik_jobs_failed_total'), info.faktory.total_failures);
        assert.equal(samples.get('fabrik_queue_size{queue="metrics.q"}'), 2);
        assert.equal(samples.get('fabrik_queue_paused{queue="metrics.paused"}'), 1);
        assert.equal(samples.get('fabrik_queue_paused{queue="metrics.q"}'), 0);
        assert.ok(samples.get('fabrik_queue_latency_seconds{queue="metrics.q"}') >= 0);
        for (const set of ['scheduled', 'retries', 'dead', 'working']) {
            assert.equal(samples.get(`fabrik_set_size{set="${set}"}`), info.faktory.sets[set], `set ${set}`);
        }
        assert.ok(samples.get('fabrik_workers') >= 1, 'the worker connection is registered');
        assert.ok(samples.get('fabrik_connections') >= 1);
        assert.ok(samples.get('fabrik_commands_total') > 0);
        assert.ok(samples.get('fabrik_uptime_seconds') >= 0);

        const buckets = [...samples.entries()]
            .filter(([key]) => key.startsWith('fabrik_commit_duration_seconds_bucket'));
        assert.ok(buckets.length >= 2, 'histogram buckets');
        assert.equal(buckets[buckets.length - 1][0], 'fabrik_commit_duration_seconds_bucket{le="+Inf"}');
        for (let i = 1; i < buckets.length; i++) {
            assert.ok(buckets[i][1] >= buckets[i - 1][1], `bucket ${buckets[i][0]} is cumulative`);
        }
        assert.equal(buckets[buckets.length - 1][1], samples.get('fabrik_commit_duration_seconds_count'));
        assert.ok(samples.get('fabrik_commit_duration_seconds_count') > 0, 'commits were measured');
        assert.ok(samples.get('fabrik_commit_duration_seconds_sum') >= 0);
    }));
});

describe('throttles', () => {
    const TOML = [
        '[throttles]',
        'images = { concurrency = 2, timeout = 30 }',
        'bulk = { worker = 1, timeout = 60 }',
        'api = { rate_limit = 100, rate_period = 60 }',
        '',
    ].join('\n');
    const THROTTLE_KEYS = ['concurrency', 'holders', 'in_use', 'queue', 'rate_limit', 'rate_period', 'released',
        'taken', 'timed_out', 'timeout', 'waiting', 'worker'];
    let web;
    let fwp;
    let server;
    let plain;
    const workers = {};
    const jobs = {};

    before(async () => {
        ({ web, fwp, server } = await startServer({ toml: TOML }));
        plain = await startServer();
        for (const wid of ['thr-a', 'thr-b']) {
            workers[wid] = await FwpClient.connect(server.port, { hello: { wid, hostname: 'h', pid: 1 } });
        }
        for (const name of ['i1', 'i2', 'i3']) {
            jobs[name] = await fwp.push(makeJob({ queue: 'images', jobtype: 'Resize' }));
        }
        for (const name of ['b1', 'b2', 'b3']) {
            jobs[name] = await fwp.push(makeJob({ queue: 'bulk', jobtype: 'Import' }));
        }
        for (const name of ['a1', 'a2']) {
            jobs[name] = await fwp.push(makeJob({ queue: 'api', jobtype: 'CallApi' }));
        }
    });

    after(() => {
        for (const worker of Object.values(workers)) {
            worker.close();
        }
    });

    async function throttles() {
        return (await getJson(web, '/api/throttles')).throttles;
    }

    async function throttle(queue) {
        const found = (await throttles()).find((t) => t.queue === queue);
        assert.ok(found, `/api/throttles lists ${queue}`);
        return found;
    }

    function holderJids(t) {
        return t.holders.map((holder) => holder.jid).sort();
    }

    async function fetchJid(worker, ...queues) {
        const job = await worker.fetch(...queues);
        assert.ok(job, `FETCH ${queues.join(' ')} returned a job`);
        return job.jid;
    }

    test('GET /api/throttles without throttles', check(async () => {
        assert.deepEqual(await getJson(plain.web, '/api/throttles'), { throttles: [] });
        const info = await getJson(plain.web, '/api/info');
        assert.equal(info.faktory.throttles, undefined, 'INFO has no throttles key');
    }));

    test('GET /api/throttles lists limits sorted by queue', check(async () => {
        const list = await throttles();
        assert.deepEqual(list.map((t) => t.queue), ['api', 'bulk', 'images']);
        for (const t of list) {
            assert.deepEqual(Object.keys(t).sort(), THROTTLE_KEYS, `${t.queue}: keys`);
        }
        const [api, bulk, images] = list;
        assert.deepEqual({ ...images, holders: undefined }, {
            queue: 'images', concurrency: 2, worker: 0, timeout: 30, rate_limit: 0, rate_period: 0,
            in_use: 0, holders: undefined, taken: 0, released: 0, timed_out: 0, waiting: 0,
        });
        assert.equal(bulk.worker, 1);
        assert.equal(bulk.concurrency, 0);
        assert.equal(bulk.timeout, 60);
        assert.equal(api.rate_limit, 100);
        assert.equal(api.rate_period, 60);
        assert.equal(api.timeout, 0, 'a rate limit alone has no timeout');
        assert.equal(api.concurrency, 0);
        assert.equal(api.worker, 0);
    }));

    test('holders and in_use follow FETCH', check(async () => {
        const a = workers['thr-a'];
        const b = workers['thr-b'];
        assert.equal(await fetchJid(a, 'images'), jobs.i1.jid);
        assert.equal(await fetchJid(a, 'images'), jobs.i2.jid);
        assert.equal(await fetchJid(b, 'images', 'bulk'), jobs.b1.jid, 'full images is skipped');
        assert.equal(await fetchJid(a, 'bulk'), jobs.b2.jid);
        assert.equal(await fetchJid(a, 'bulk', 'api'), jobs.a1.jid, 'thr-a has used its bulk slot');

        const images = await throttle('images');
        assert.equal(images.in_use, 2);
        assert.equal(images.taken, 2);
        assert.deepEqual(holderJids(images), [jobs.i1.jid, jobs.i2.jid].sort());
        for (const holder of images.holders) {
            assert.deepEqual(Object.keys(holder).sort(), ['jid', 'since', 'wid']);
            assert.equal(holder.wid, 'thr-a');
            assertRfc3339(holder.since, 'since');
            assert.ok(Math.abs(Date.parse(holder.since) - Date.now()) < 60000, 'since is about now');
        }
        const bulk = await throttle('bulk');
        assert.equal(bulk.in_use, 2);
        assert.deepEqual(bulk.holders.map((h) => `${h.wid} ${h.jid}`).sort(),
            [`thr-a ${jobs.b2.jid}`, `thr-b ${jobs.b1.jid}`].sort());
        const api = await throttle('api');
        assert.equal(api.in_use, 1, 'a rate-limited job holds a slot while it runs');
        assert.deepEqual(api.holders.map((h) => h.wid), ['thr-a']);
        assert.equal((await getJson(web, '/api/queues/bulk')).total, 1, 'b3 waits');
    }));

    test('a freed slot wakes a waiting fetcher', check(async () => {
        const b = workers['thr-b'];
        const parked = b.fetch('images');
        let images;
        for (let i = 0; i < 40; i++) {
            images = await throttle('images');
            if (images.waiting === 1) {
                break;
            }
            await new Promise((resolve) => setTimeout(resolve, 25));
        }
        assert.equal(images.waiting, 1, 'the parked FETCH is counted');
        await workers['thr-a'].ack(jobs.i1.jid);
        const woken = await parked;
        assert.equal(woken && woken.jid, jobs.i3.jid, 'the waiting FETCH got the job');

        images = await throttle('images');
        assert.equal(images.in_use, 2);
        assert.equal(images.waiting, 0);
        assert.equal(images.taken, 3);
        assert.equal(images.released, 1);
        assert.deepEqual(images.holders.map((h) => `${h.wid} ${h.jid}`).sort(),
            [`thr-a ${jobs.i2.jid}`, `thr-b ${jobs.i3.jid}`].sort());
    }));

    test('INFO and /metrics show the same throttles', check(async () => {
        const info = await getJson(web, '/api/info');
        const list = await throttles();
        assert.deepEqual(Object.keys(info.faktory.throttles).sort(), ['api', 'bulk', 'images']);
        for (const t of list) {
            const { queue, ...rest } = t;
            assert.deepEqual({ ...info.faktory.throttles[queue], queue: undefined }, { ...rest, queue: undefined },
                `INFO throttles.${queue}`);
        }

        const res = await web.get('/metrics');
        assert.equal(res.status, 200);
        const types = new Map();
        const samples = new Map();
        for (const line of res.text.split('\n')) {
            const type = line.match(/^# TYPE (\S+) (\S+)$/);
            if (type) {
                types.set(type[1], type[2]);
            }
            const sample = line.match(/^(fabrik_throttle_\w+\{[^}]*\}) (\S+)$/);
            if (sample) {
                samples.set(sample[1], Number(sample[2]));
            }
        }
        assert.equal(types.get('fabrik_throttle_limit'), 'gauge');
        assert.equal(types.get('fabrik_throttle_in_use'), 'gauge');
        assert.equal(types.get('fabrik_throttle_waiting'), 'gauge');
        assert.equal(types.get('fabrik_throttle_timed_out'), 'counter');
        const expected = {
            'fabrik_throttle_limit{queue="images",kind="concurrency"}': 2,
            'fabrik_throttle_limit{queue="images",kind="worker"}': 0,
            'fabrik_throttle_limit{queue="images",kind="rate_limit"}': 0,
            'fabrik_throttle_limit{queue="bulk",kind="worker"}': 1,
            'fabrik_throttle_limit{queue="api",kind="rate_limit"}': 100,
            'fabrik_throttle_in_use{queue="images"}': 2,
            'fabrik_throttle_in_use{queue="bulk"}': 2,
            'fabrik_throttle_in_use{queue="api"}': 1,
            'fabrik_throttle_waiting{queue="images"}': 0,
            'fabrik_throttle_timed_out{queue="images"}': 0,
        };
        for (const [name, value] of Object.entries(expected)) {
            assert.equal(samples.get(name), value, name);
        }
        const plainMetrics = await plain.web.get('/metrics');
        assert.doesNotMatch(plainMetrics.text, /fabrik_throttle_/, 'no throttle metrics without throttles');
    }));

    test('slots time out on the server clock', check(async () => {
        await fwp.ok('DEBUG CLOCK 31');
        const images = await throttle('images');
        assert.equal(images.in_use, 0, 'the 30 s timeout freed both slots');
        assert.deepEqual(images.holders, []);
        assert.equal(images.timed_out, 2);
        assert.equal(images.released, 1, 'a timeout is not counted as released');
        assert.equal((await throttle('bulk')).in_use, 2, 'the 60 s timeout has not passed');
        assert.equal((await throttle('api')).in_use, 1, 'no timeout without one configured');

        // The job itself keeps its reservation, and its ACK frees nothing a second time.
        await workers['thr-a'].ack(jobs.i2.jid);
        const after = await throttle('images');
        assert.equal(after.released, 1);
        assert.equal(after.in_use, 0);
        const metrics = await web.get('/metrics');
        assert.match(metrics.text, /^fabrik_throttle_timed_out\{queue="images"\} 2$/m);
    }));

    test('/api/throttles accepts GET and HEAD only', check(async () => {
        const post = await web.post('/api/throttles', {});
        assertError(post, 405, null, 'POST /api/throttles');
        assert.match(post.headers.allow || '', /GET/);
        const head = await web.send('HEAD', '/api/throttles');
        assert.equal(head.status, 200);
        assert.equal(head.text, '');
        assert.equal((await web.get('/api/throttles/images')).status, 404);
    }));
});

describe('cron', () => {
    // A daily schedule rather than */5: a run now or a 400 check must not meet a scheduled
    // run that real time reaches while the tests run.
    const TOML = [
        '[[cron]]',
        'schedule = "15 4 * * *"',
        '  [cron.job]',
        '  type = "CleanupJob"',
        '  queue = "maintenance"',
        '',
        '[[cron]]',
        'schedule = "0 9 * * MON-FRI"',
        'timezone = "America/New_York"',
        'catch_up = "skip"',
        '  [cron.job]',
        '  type = "MorningReport"',
        '  queue = "reports"',
        '  args = ["daily", 3]',
        '  retry = 3',
        '  reserve_for = 600',
        '  priority = 7',
        '  [cron.job.custom]',
        '  expires_in = 3600',
        '',
    ].join('\n');
    const ENTRY_KEYS = ['catch_up', 'job', 'key', 'last_run', 'next_run', 'schedule', 'source', 'timezone'];
    const DAY_MS = 24 * HOUR_MS;
    let web;
    let fwp;
    let server;
    let plain;

    before(async () => {
        ({ web, fwp, server } = await startServer({ toml: TOML }));
        plain = await startServer();
    });

    async function entries() {
        return (await getJson(web, '/api/cron')).entries;
    }

    async function entryOf(jobtype) {
        const found = (await entries()).find((entry) => entry.job.jobtype === jobtype);
        assert.ok(found, `/api/cron lists ${jobtype}`);
        return found;
    }

    // The server's now, which DEBUG CLOCK moves ahead of real time.
    async function serverNow() {
        return Date.parse((await getJson(web, '/api/info')).now);
    }

    async function queueSize(name) {
        const queue = (await getJson(web, '/api/queues')).queues.find((q) => q.name === name);
        return queue ? queue.size : 0;
    }

    async function runNow(key) {
        return web.post(`/api/cron/${key}`, { action: 'run' });
    }

    // Moves the server clock to just past time (ms since the epoch).
    async function advanceTo(time) {
        const seconds = (time - await serverNow()) / 1000 + 1;
        assert.ok(seconds > 0, `the target ${new Date(time).toISOString()} lies ahead of the server clock`);
        await fwp.ok(`DEBUG CLOCK ${seconds.toFixed(3)}`);
    }

    // Returns the wall time of an instant in an IANA time zone: { weekday, hour, minute }.
    function wallTime(iso, timeZone) {
        const format = new Intl.DateTimeFormat('en-US', {
            timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
        });
        const parts = Object.fromEntries(format.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
        return { weekday: parts.weekday, hour: parts.hour, minute: parts.minute };
    }

    // FETCHes one job from queue and ACKs it; returns the job.
    async function takeJob(queue) {
        const job = await fwp.fetch(queue);
        assert.ok(job, `FETCH ${queue} returned a job`);
        await fwp.ack(job.jid);
        return job;
    }

    test('GET /api/cron without entries', check(async () => {
        assert.deepEqual(await getJson(plain.web, '/api/cron'), { entries: [] });
    }));

    test('GET /api/cron lists entries in file order', check(async () => {
        const now = await serverNow();
        const list = await entries();
        assert.equal(list.length, 2);
        for (const entry of list) {
            assert.deepEqual(Object.keys(entry).sort(), ENTRY_KEYS, `${entry.job.jobtype}: keys`);
            assert.match(entry.key, /^[0-9a-f]{64}$/, `${entry.job.jobtype}: key is a SHA-256 in hex`);
            assert.equal(entry.last_run, null, `${entry.job.jobtype}: a new entry never ran`);
            assertRfc3339(entry.next_run, `${entry.job.jobtype}: next_run`);
            assert.ok(Date.parse(entry.next_run) > now, `${entry.job.jobtype}: next_run lies ahead`);
        }
        assert.notEqual(list[0].key, list[1].key);
        const file = `${server.configDir}/conf.d/fabrik.toml`;

        const [cleanup, report] = list;
        assert.equal(cleanup.schedule, '15 4 * * *');
        assert.equal(cleanup.timezone, 'UTC', 'an entry without a time zone is in UTC');
        assert.equal(cleanup.catch_up, 'once', 'catch_up defaults to once');
        assert.equal(cleanup.source, `${file} entry 1`);
        assert.deepEqual(cleanup.job, { jobtype: 'CleanupJob', queue: 'maintenance', args: [] });
        const cleanupNext = new Date(cleanup.next_run);
        assert.equal(cleanupNext.getUTCHours(), 4, 'next_run hour in UTC');
        assert.equal(cleanupNext.getUTCMinutes(), 15, 'next_run minute');
        assert.equal(cleanupNext.getUTCSeconds(), 0, 'next_run second');
        assert.ok(cleanupNext.getTime() - now <= DAY_MS, 'a daily entry runs within a day');

        assert.equal(report.schedule, '0 9 * * MON-FRI');
        assert.equal(report.timezone, 'America/New_York');
        assert.equal(report.catch_up, 'skip');
        assert.equal(report.source, `${file} entry 2`);
        assert.deepEqual(report.job, {
            jobtype: 'MorningReport', queue: 'reports', args: ['daily', 3], retry: 3, reserve_for: 600,
            priority: 7, custom: { expires_in: 3600 },
        });
        const wall = wallTime(report.next_run, 'America/New_York');
        assert.equal(`${wall.hour}:${wall.minute}`, '09:00', 'next_run is 09:00 in New York');
        assert.ok(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'].includes(wall.weekday), `next_run on a weekday, not ${wall.weekday}`);
        assert.ok(Date.parse(report.next_run) - now <= 4 * DAY_MS, 'a weekday entry runs within four days');
    }));

    test('POST run pushes one job now', check(async () => {
        const before = await entries();
        const [cleanup, report] = before;

        assert.deepEqual(await postJson(web, `/api/cron/${cleanup.key}`, { action: 'run' }), { affected: 1 });
        assert.equal(await queueSize('maintenance'), 1, 'the job is in its queue at once');
        const pushed = await takeJob('maintenance');
        assert.equal(pushed.jobtype, 'CleanupJob');
        assert.equal(pushed.queue, 'maintenance');
        assert.deepEqual(pushed.args, []);
        assert.match(pushed.jid, /^[0-9a-f]{24}$/, 'a fresh jid of 24 hex digits');
        assert.equal(pushed.retry, 25, 'the server fills the default retry');
        assertRfc3339(pushed.created_at, 'created_at');
        assertRfc3339(pushed.enqueued_at, 'enqueued_at');

        assert.deepEqual(await postJson(web, `/api/cron/${report.key}`, { action: 'run' }), { affected: 1 });
        const morning = await takeJob('reports');
        assert.equal(morning.jobtype, 'MorningReport');
        assert.deepEqual(morning.args, ['daily', 3]);
        assert.equal(morning.retry, 3);
        assert.equal(morning.reserve_for, 600);
        assert.equal(morning.priority, 7);
        assert.deepEqual(morning.custom, { expires_in: 3600 });

        assert.deepEqual(await postJson(web, `/api/cron/${report.key}`, { action: 'run' }), { affected: 1 });
        const again = await takeJob('reports');
        assert.notEqual(again.jid, morning.jid, 'every run gets its own jid');

        const after = await entries();
        for (let i = 0; i < before.length; i++) {
            assert.equal(after[i].last_run, before[i].last_run, `${before[i].job.jobtype}: last_run unchanged`);
            assert.equal(after[i].next_run, before[i].next_run, `${before[i].job.jobtype}: next_run unchanged`);
        }
        assert.match(server.logTail(400), /event=cron_enqueued .*jobtype=CleanupJob .*reason=run_now/);
    }));

    test('unknown key answers 404', check(async () => {
        const [cleanup] = await entries();
        for (const key of ['0'.repeat(64), cleanup.key.slice(0, 10), `${cleanup.key}0`, 'nope']) {
            assertError(await runNow(key), 404, /no cron entry/, `POST /api/cron/${key}`);
        }
        assert.equal(await queueSize('maintenance'), 0, 'nothing was pushed');
    }));

    test('other methods on an entry answer 405', check(async () => {
        const [cleanup] = await entries();
        for (const method of ['GET', 'PUT', 'DELETE']) {
            const res = await web.send(method, `/api/cron/${cleanup.key}`, { body: '{"action":"run"}' });
            assertError(res, 405, null, `${method} /api/cron/<key>`);
            assert.equal(res.headers.allow, 'POST', `${method}: Allow header`);
        }
        const post = await web.post('/api/cron', { action: 'run' });
        assertError(post, 405, null, 'POST /api/cron');
        assert.match(post.headers.allow || '', /GET/, 'POST /api/cron: Allow header');
        assert.doesNotMatch(post.headers.allow || '', /POST/, 'POST /api/cron: Allow header');
        const head = await web.send('HEAD', '/api/cron');
        assert.equal(head.status, 200);
        assert.equal(head.text, '');
        assert.equal(await queueSize('maintenance'), 0, 'nothing was pushed');
    }));

    test('bad action answers 400', check(async () => {
        const [cleanup] = await entries();
        const bodies = [{ action: 'skip' }, { action: 'RUN' }, { action: 1 }, {}, '[]', 'not json', ''];
        for (const body of bodies) {
            const res = await web.post(`/api/cron/${cleanup.key}`, body);
            assertError(res, 400, null, `POST /api/cron/<key> with ${JSON.stringify(body)}`);
        }
        assert.match((await web.post(`/api/cron/${cleanup.key}`, { action: 'skip' })).json.error, /run/,
            'the error names the expected action');
        assert.equal(await queueSize('maintenance'), 0, 'nothing was pushed');
    }));

    test('DEBUG CLOCK fires a due entry', check(async () => {
        const before = await entryOf('CleanupJob');
        const report = await entryOf('MorningReport');
        const due = Date.parse(before.next_run);
        await advanceTo(due);

        const after = await entryOf('CleanupJob');
        assert.equal(after.last_run, before.next_run, 'last_run is the scheduled time that fired');
        assert.equal(Date.parse(after.next_run), due + DAY_MS, 'next_run moves to the next day');
        assert.equal(await queueSize('maintenance'), 1, 'one job was pushed');
        const job = await takeJob('maintenance');
        assert.equal(job.jobtype, 'CleanupJob');
        assert.match(server.logTail(400), /event=cron_enqueued .*jobtype=CleanupJob .*reason=schedule/);

        // The New York entry fires too when its next run lay within the jump.
        const reportAfter = await entryOf('MorningReport');
        if (Date.parse(report.next_run) <= due + 1000) {
            assert.equal(reportAfter.last_run, report.next_run, 'the report fired in the same jump');
            assert.equal(await queueSize('reports'), 1);
            await takeJob('reports');
        } else {
            assert.equal(reportAfter.last_run, null, 'the report is not due yet');
            assert.equal(reportAfter.next_run, report.next_run);
            assert.equal(await queueSize('reports'), 0);
        }
    }));

    test('missed runs give one job', check(async () => {
        const before = await entryOf('CleanupJob');
        const due = Date.parse(before.next_run);
        // Three daily runs become due in one jump.
        await advanceTo(due + 2 * DAY_MS);

        const after = await entryOf('CleanupJob');
        assert.equal(Date.parse(after.last_run), due + 2 * DAY_MS, 'last_run is the latest missed time');
        assert.equal(Date.parse(after.next_run), due + 3 * DAY_MS);
        assert.equal(await queueSize('maintenance'), 1, 'one job for three missed runs');
        const report = await entryOf('MorningReport');
        assert.ok(report.last_run !== null, 'the weekday entry ran within three days');
        assert.ok(Date.parse(report.last_run) > Date.parse(before.last_run), 'it ran within this jump');
        assert.ok(Date.parse(report.next_run) > Date.parse(after.last_run), 'its next run lies ahead');
        assert.equal(await queueSize('reports'), 1, 'one report for all its missed runs');
    }));
});

describe('cross-site POST check', () => {
    let web;
    let server;

    before(async () => {
        ({ web, server } = await startServer());
        const fwp = await FwpClient.connect(server.port);
        await fwp.push(makeJob({ queue: 'guarded' }));
        fwp.close();
    });

    async function pause(headers) {
        return web.post('/api/queues/guarded', { action: 'pause' }, { headers });
    }

    test('cross-site Sec-Fetch-Site is rejected', check(async () => {
        for (const site of ['cross-site', 'same-site']) {
            const res = await pause({ 'Sec-Fetch-Site': site });
            assert.equal(res.status, 403, `Sec-Fetch-Site: ${site}`);
        }
        const res = await pause({ 'Sec-Fetch-Site': 'cross-site', Origin: `http://127.0.0.1:${server.webPort}` });
        assert.equal(res.status, 403, 'Sec-Fetch-Site wins over a matching Origin');
        assert.match(res.headers['content-type'], /^application\/json/);
        assert.match(res.json.error, /^cross-site request rejected/);
        assert.equal((await getJson(web, '/api/queues/guarded')).queue.paused, false, 'nothing changed');
    }));

    test('same-origin and none pass', check(async () => {
        assert.equal((await pause({ 'Sec-Fetch-Site': 'same-origin' })).status, 200);
        assert.equal((await getJson(web, '/api/queues/guarded')).queue.paused, true);
        assert.equal((await pause({ 'Sec-Fetch-Site': 'none' })).status, 200);
    }));

    test('a foreign Origin is rejected', check(async () => {
        for (const origin of ['http://evil.example', `http://127.0.0.1:${server.webPort + 1}`, 'null']) {
            const res = await pause({ Origin: origin });
            assert.equal(res.status, 403, `Origin: ${origin}`);
        }
        const same = await pause({ Origin: `http://127.0.0.1:${server.webPort}` });
        assert.equal(same.status, 200, 'Origin equal to Host passes');
    }));

    test('requests without either header pass', check(async () => {
        assert.equal((await pause({})).status, 200);
    }));

    test('GET is never blocked', check(async () => {
        const res = await web.get('/api/queues/guarded', { headers: { 'Sec-Fetch-Site': 'cross-site', Origin: 'http://evil.example' } });
        assert.equal(res.status, 200);
    }));
});

describe('basic authentication', () => {
    const FWP_PASSWORD = 'fwp secret';
    let fallback;
    let dedicated;

    before(async () => {
        fallback = await startServer({ password: FWP_PASSWORD, fwpPassword: FWP_PASSWORD });
        dedicated = await startServer({
            password: FWP_PASSWORD, fwpPassword: FWP_PASSWORD, toml: '[web]\npassword = "web secret"\n',
        });
    });

    function assertChallenge(res, body, what) {
        assert.equal(res.status, 401, `${what}: status`);
        assert.equal(res.text.trim(), body, `${what}: body`);
        assert.equal(res.headers['www-authenticate'], 'Basic realm="fabrik"', `${what}: WWW-Authenticate`);
    }

    test('missing credentials answer 401 Authorization required', check(async () => {
        for (const path of ['/', '/queues', '/api/info', '/stats', '/metrics']) {
            assertChallenge(await fallback.web.get(path), 'Authorization required', path);
        }
        const bearer = await fallback.web.get('/api/info', { headers: { Authorization: 'Bearer abc' } });
        assertChallenge(bearer, 'Authorization required', 'another scheme');
    }));

    test('a wrong password answers 401 Authorization failed', check(async () => {
        assertChallenge(await fallback.web.get('/api/info', { password: 'wrong' }), 'Authorization failed', 'wrong');
        assertChallenge(await fallback.web.get('/api/info', { password: '' }), 'Authorization failed', 'empty');
        const garbage = await fallback.web.get('/api/info', { headers: { Authorization: 'Basic !!!' } });
        assert.equal(garbage.status, 401, 'undecodable credentials');
    }));

    test('the FWP password opens the web UI', check(async () => {
        const res = await fallback.web.get('/api/info', { password: FWP_PASSWORD });
        assert.equal(res.status, 200);
        const other = await fallback.web.get('/queues', {
            headers: { Authorization: `Basic ${Buffer.from(`anyone:${FWP_PASSWORD}`).toString('base64')}` },
        });
        assert.equal(other.status, 200, 'any user name');
        const post = await fallback.web.post('/api/busy', { wid: '*', signal: 'quiet' }, { password: FWP_PASSWORD });
        assert.equal(post.status, 200);
        const unauthorized = await fallback.web.post('/api/busy', { wid: '*', signal: 'quiet' });
        assert.equal(unauthorized.status, 401, 'POST needs authentication too');
    }));

    test('/health and /static need no password', check(async () => {
        assert.equal((await fallback.web.get('/health')).status, 200);
        assert.equal((await fallback.web.get('/static/app.js')).status, 200);
        assert.equal((await fallback.web.get('/static/style.css')).status, 200);
    }));

    test('[web] password replaces the FWP password', check(async () => {
        assert.equal((await dedicated.web.get('/api/info', { password: 'web secret' })).status, 200);
        assertChallenge(await dedicated.web.get('/api/info', { password: FWP_PASSWORD }), 'Authorization failed',
            'FWP password');
        assertChallenge(await dedicated.web.get('/api/info'), 'Authorization required', 'no password');
        assert.equal((await dedicated.web.get('/health')).status, 200);
    }));
});
