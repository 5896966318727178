'use strict';
// Online backup through POST /api/backup (docs/http-api.md, docs/deployment.md): a copy taken
// while producers keep pushing, restored into a second server, must hold exactly the job
// counts that the backup response reported. Jobs are seeded over FWP; the servers come from
// tests/web/lib.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { after, test } = require('node:test');
const { FabrikServer, FailureTracker, sleep, stopAll } = require('../web/lib/server');
const { FwpClient, makeJob } = require('../web/lib/fwp');
const { client } = require('../web/lib/http');

const PASSWORD = 'backup-test-password';
// A job pushed with an earlier failure count of 10 waits about four hours for its next retry
// after FAIL, so it stays in the retry set while the test runs.
const LONG_BACKOFF_FAILURE = { retry_count: 10, remaining: 15 };
// 3000 jobs of 4 KB make a database of more than 12 MB: several backup steps of 1024 pages.
const QUEUED_JOBS = 3000;
const PAYLOAD = 'p'.repeat(4096);

const servers = [];
const tracker = new FailureTracker();
const check = (fn) => tracker.check(fn);

after(async () => {
    await stopAll(servers, tracker.failed);
});

async function startServer(options = {}) {
    const server = new FabrikServer({ prefix: 'fabrik-backup', password: PASSWORD, ...options });
    if (options.database) {
        fs.copyFileSync(options.database, path.join(server.dataDir, 'fabrik.db'));
    }
    await server.start();
    servers.push(server);
    return server;
}

function fwp(server) {
    return FwpClient.connect(server.port, { password: PASSWORD });
}

function web(server) {
    return client(server.webPort, { password: PASSWORD });
}

// Seeds every job state: queued (two queues), scheduled, retry, dead and working. Returns the
// first job of queue default, to compare its payload after the restore.
async function seed(server) {
    const c = await fwp(server);
    let first;
    for (let i = 0; i < QUEUED_JOBS; i++) {
        const queue = i % 3 === 0 ? 'mail' : 'default';
        const job = await c.push(makeJob({ queue, args: [PAYLOAD, i] }));
        first = first || (queue === 'default' ? job : undefined);
    }
    const inAnHour = new Date(Date.now() + 3600 * 1000).toISOString();
    for (let i = 0; i < 20; i++) {
        await c.push(makeJob({ queue: 'later', at: inAnHour }));
    }
    for (let i = 0; i < 15; i++) {
        await c.pushAndFail(makeJob({ queue: 'flaky', failure: LONG_BACKOFF_FAILURE }), 'E', 'retry later');
    }
    for (let i = 0; i < 10; i++) {
        await c.pushAndFail(makeJob({ queue: 'doomed', retry: -1 }), 'E', 'dead at once');
    }
    for (let i = 0; i < 5; i++) {
        await c.push(makeJob({ queue: 'work' }));
        assert.ok(await c.fetch('work'), 'a seeded job of queue work is fetched');
    }
    c.close();
    return first;
}

// Pushes into queue "load" on its own connection until stop() is called. pushed() returns how
// many pushes were acknowledged so far.
async function startProducer(server) {
    const c = await fwp(server);
    let pushed = 0;
    let running = true;
    const done = (async () => {
        while (running) {
            await c.push(makeJob({ queue: 'load', args: [PAYLOAD.slice(0, 512)] }));
            pushed += 1;
        }
    })();
    return {
        pushed: () => pushed,
        stop: async () => {
            running = false;
            await done;
            c.close();
        },
    };
}

async function waitFor(condition, what, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await sleep(10);
    }
}

function partialFiles(server) {
    const dir = path.join(server.dataDir, 'backups');
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => name.endsWith('.partial')) : [];
}

test('backup under load restores the reported counts', check(async () => {
    const source = await startServer();
    const first = await seed(source);
    const producers = [await startProducer(source), await startProducer(source)];
    await waitFor(() => producers.every((p) => p.pushed() >= 50), 'the producers to push');

    const res = await web(source).post('/api/backup');
    assert.equal(res.status, 200, `POST /api/backup: ${res.text.slice(0, 300)}`);
    const backup = res.json;
    const pushedAtBackup = producers.reduce((sum, p) => sum + p.pushed(), 0);
    // Keep pushing after the copy, so the source moves past the snapshot.
    await waitFor(() => producers.reduce((sum, p) => sum + p.pushed(), 0) >= pushedAtBackup + 100,
        'more pushes after the backup');
    for (const p of producers) {
        await p.stop();
    }

    assert.match(backup.name, /^fabrik-\d{8}T\d{6}\.\d{3}Z\.db$/);
    assert.equal(backup.file, path.join(source.dataDir, 'backups', backup.name));
    assert.equal(fs.statSync(backup.file).size, backup.bytes, 'bytes is the file size');
    assert.ok(backup.pages > 1024, `the copy took several steps (${backup.pages} pages)`);
    assert.deepEqual(partialFiles(source), [], 'no partial file is left');
    assert.equal(backup.jobs.scheduled, 20);
    assert.equal(backup.jobs.retries, 15);
    assert.equal(backup.jobs.dead, 10);
    assert.equal(backup.jobs.working, 5);
    assert.equal(backup.queues.default, 2000);
    assert.equal(backup.queues.mail, 1000);
    assert.ok(backup.queues.load >= 100, `the copy holds the pushes made before it (${backup.queues.load})`);
    const queuedSum = Object.values(backup.queues).reduce((a, b) => a + b, 0);
    assert.equal(backup.jobs.queued, queuedSum, 'jobs.queued is the sum of the queues');

    const sourceInfo = (await web(source).get('/api/info')).json.faktory;
    assert.ok(sourceInfo.queues.load > backup.queues.load,
        `the source moved on after the copy (${sourceInfo.queues.load} > ${backup.queues.load})`);

    const listing = await web(source).get('/api/backup');
    assert.equal(listing.status, 200);
    assert.deepEqual(listing.json.backups.map((b) => b.name), [backup.name]);
    assert.equal(listing.json.backups[0].bytes, backup.bytes);

    const restored = await startServer({ database: backup.file });
    const info = (await web(restored).get('/api/info')).json.faktory;
    assert.deepEqual(info.queues, backup.queues, 'queue sizes after the restore');
    assert.equal(info.total_enqueued, backup.jobs.queued);
    assert.equal(info.sets.scheduled, backup.jobs.scheduled);
    assert.equal(info.sets.retries, backup.jobs.retries);
    assert.equal(info.sets.dead, backup.jobs.dead);
    assert.equal(info.sets.working, backup.jobs.working);
    assert.equal(info.total_processed, backup.processed);
    assert.equal(info.total_failures, backup.failures);

    const c = await fwp(restored);
    const fetched = await c.fetch('default');
    c.close();
    assert.equal(fetched.jid, first.jid, 'the oldest job comes first after the restore');
    assert.deepEqual(fetched.args, first.args, 'its payload is intact');
}));

test('backup needs the web password', check(async () => {
    const server = await startServer();
    const res = await client(server.webPort).post('/api/backup');
    assert.equal(res.status, 401);
    assert.equal(fs.existsSync(path.join(server.dataDir, 'backups')), false, 'no backup directory');
    const wrong = await client(server.webPort, { password: 'wrong' }).post('/api/backup');
    assert.equal(wrong.status, 401);
}));

test('backup accepts GET and POST only', check(async () => {
    const server = await startServer();
    const res = await web(server).send('PUT', '/api/backup');
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'GET, HEAD, POST');
    const empty = await web(server).get('/api/backup');
    assert.equal(empty.status, 200);
    assert.deepEqual(empty.json.backups, [], 'no backups before the first');
}));

function logText(server) {
    return fs.readFileSync(server.logPath, 'utf8');
}

test('failed backup is logged and answered', check(async () => {
    const server = await startServer();
    // A file where the backups directory belongs makes creating the copy fail.
    fs.writeFileSync(path.join(server.dataDir, 'backups'), '');
    const res = await web(server).post('/api/backup');
    assert.equal(res.status, 500);
    assert.match(res.json.error, /^cannot create the backup file .*\/backups\/fabrik-.*\.partial: Not a directory$/);
    const logged = logText(server).split('\n').find((line) => line.includes('event=backup_failed'));
    assert.ok(logged, `a backup_failed line in the log:\n${server.logTail()}`);
    assert.match(logged, /level=error .*code=500 .*Not a directory/);
}));

test('backup finishes after its client left', check(async () => {
    const server = await startServer();
    await seed(server);
    // The request goes out whole, then the socket closes before the reply.
    await new Promise((resolve, reject) => {
        const req = http.request({
            host: '127.0.0.1', port: server.webPort, method: 'POST', path: '/api/backup',
            auth: `:${PASSWORD}`, headers: { 'content-length': 0 },
        });
        req.on('error', (err) => (err.code === 'ECONNRESET' ? resolve() : reject(err)));
        req.on('close', resolve);
        req.end(() => req.destroy());
    });
    await waitFor(() => logText(server).includes('event=backup_finished'), 'backup_finished');
    const list = await web(server).get('/api/backup');
    assert.equal(list.json.backups.length, 1, 'the copy is kept');
    assert.deepEqual(partialFiles(server), []);
}));

test('two backups at once both finish', check(async () => {
    const server = await startServer();
    const c = await fwp(server);
    for (let i = 0; i < 500; i++) {
        await c.push(makeJob({ args: [PAYLOAD] }));
    }
    c.close();
    const [a, b] = await Promise.all([web(server).post('/api/backup'), web(server).post('/api/backup')]);
    for (const res of [a, b]) {
        // Two requests in the same millisecond collide on the file name: that one is a 409.
        assert.ok(res.status === 200 || res.status === 409, `status ${res.status}: ${res.text.slice(0, 200)}`);
    }
    const finished = [a, b].filter((res) => res.status === 200);
    assert.ok(finished.length >= 1);
    for (const res of finished) {
        assert.equal(res.json.jobs.queued, 500);
        assert.equal(fs.statSync(res.json.file).size, res.json.bytes);
    }
    assert.deepEqual(partialFiles(server), []);
}));

test('stop during a backup leaves no partial file', check(async () => {
    const server = await startServer();
    await seed(server);
    const pending = web(server).post('/api/backup').catch((err) => ({ error: err }));
    await sleep(5);
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, 'fabrik exits cleanly');
    const res = await pending;
    if (res.status === 200) {
        assert.ok(fs.existsSync(res.json.file), 'a backup that finished before the stop is kept');
    }
    assert.deepEqual(partialFiles(server), [], 'an interrupted copy is removed');
}));
