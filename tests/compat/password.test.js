'use strict';
// The faktory-worker client against a fabrik server that requires a password, given in
// FAKTORY_URL (tcp://:password@host:port, percent-encoded) or in a file named by
// FAKTORY_PASSWORD.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const { FabrikServer } = require('./lib/fabrik-server');
const { loadFaktory } = require('./lib/client');
const { runPipeline, checkPipeline } = require('./lib/pipeline');

// A space and an @ check that the client's percent-decoding and the server agree.
const PASSWORD = 'compat p@ss';
const ENCODED = encodeURIComponent(PASSWORD);

const servers = [];
let server;
let faktory;
let client;
let failed = false;

before(async () => {
    server = await new FabrikServer({ prefix: 'fabrik-compat-password', password: PASSWORD })
        .start();
    servers.push(server);
    faktory = loadFaktory(`tcp://:${ENCODED}@127.0.0.1:${server.port}`);
    client = new faktory.Client();
});

after(async () => {
    if (client) {
        await client.close();
    }
    for (const started of servers) {
        await started.stopAndClean(failed);
    }
});

async function guarded(fn) {
    try {
        await fn();
    } catch (err) {
        failed = true;
        throw err;
    }
}

test('1,000 jobs with a password from FAKTORY_URL', () => guarded(async () => {
    const result = await runPipeline(faktory, client, {
        jobCount: 1000, queue: 'secured', concurrency: 10, timeoutMs: 60000,
    });
    await checkPipeline(client, result, 'secured');
}));

test('wrong password is rejected', () => guarded(async () => {
    const intruder = new faktory.Client({ url: `tcp://:wrong@127.0.0.1:${server.port}` });
    await assert.rejects(intruder.connect(), /Invalid password/);
}));

test('missing password is rejected', () => guarded(async () => {
    const intruder = new faktory.Client({ url: server.url });
    await assert.rejects(intruder.connect());
}));

test('password read from a file path', () => guarded(async () => {
    const fileServer = new FabrikServer({ prefix: 'fabrik-compat-pwfile' });
    servers.push(fileServer);
    const passwordFile = path.join(fileServer.root, 'password.txt');
    // The server trims the file content, so the trailing newline is not part of it.
    fs.writeFileSync(passwordFile, 'from-a-file\n');
    fileServer.password = passwordFile;
    await fileServer.start();

    const good = new faktory.Client({ url: `tcp://:from-a-file@127.0.0.1:${fileServer.port}` });
    const info = await good.info();
    assert.equal(info.server.description, 'fabrik');
    await good.close();

    const bad = new faktory.Client({ url: `tcp://:${ENCODED}@127.0.0.1:${fileServer.port}` });
    await assert.rejects(bad.connect(), /Invalid password/);
}));
