'use strict';
// TLS on both ports: with private.key.pem and public.cert.pem in the config directory the web
// port serves HTTPS only and the FWP port speaks TLS only. The certificate is self-signed,
// made with the openssl command for each run, and trusted explicitly by the clients here.

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const path = require('node:path');
const tls = require('node:tls');
const { after, before, test } = require('node:test');
const { FabrikServer, FailureTracker, stopAll } = require('./lib/server');

let server;
let ca;
const tracker = new FailureTracker();
const check = (fn) => tracker.check(fn);

before(async () => {
    server = new FabrikServer({ prefix: 'fabrik-web-tls' });
    const key = path.join(server.configDir, 'private.key.pem');
    const cert = path.join(server.configDir, 'public.cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
        '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    ca = fs.readFileSync(cert);
    await server.start();
});

after(async () => {
    await stopAll(server ? [server] : [], tracker.failed);
});

// Resolves with { status, body } or rejects with the socket error.
function get(module, url, options = {}) {
    return new Promise((resolve, reject) => {
        const req = module.get(url, { ...options, timeout: 5000 }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk) => { body += chunk; });
            res.on('end', () => resolve({ status: res.statusCode, body }));
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', reject);
    });
}

test('the web port serves HTTPS', check(async () => {
    const health = await get(https, `https://127.0.0.1:${server.webPort}/health`, { ca });
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.body).server.description, 'fabrik');
    const info = await get(https, `https://127.0.0.1:${server.webPort}/api/info`, { ca });
    assert.equal(info.status, 200);
    assert.ok(JSON.parse(info.body).faktory, 'the INFO document over HTTPS');
}));

test('plain HTTP to the TLS web port gets no page', check(async () => {
    await assert.rejects(get(http, `http://127.0.0.1:${server.webPort}/health`),
        'a plain request must fail, not be answered in clear text');
}));

test('the FWP port greets over TLS', check(async () => {
    const greeting = await new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca,
            servername: undefined }, () => {
            socket.once('data', (data) => {
                socket.end();
                resolve(data.toString('utf8'));
            });
        });
        socket.setTimeout(5000, () => socket.destroy(new Error('timed out')));
        socket.on('error', reject);
    });
    assert.equal(greeting, '+HI {"v":2}\r\n');
}));
