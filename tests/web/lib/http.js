'use strict';
// HTTP requests over node:http with exactly the headers a test gives (fetch would add its
// own Sec-Fetch-* and Origin handling).

const http = require('node:http');

const REQUEST_TIMEOUT_MS = 10000;

// Sends one request. options: method, headers, body (string, Buffer, or a value sent as
// JSON), password (basic auth with user "admin"). Resolves with { status, headers, text,
// json } where json is the parsed body or undefined when it is not JSON.
function request(port, path, options = {}) {
    const headers = { ...(options.headers || {}) };
    let body = options.body;
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
        body = JSON.stringify(body);
        headers['Content-Type'] = headers['Content-Type'] || 'application/json';
    }
    if (options.password !== undefined) {
        headers.Authorization = `Basic ${Buffer.from(`admin:${options.password}`).toString('base64')}`;
    }
    if (body !== undefined) {
        headers['Content-Length'] = Buffer.byteLength(body);
    }
    return new Promise((resolve, reject) => {
        const req = http.request({
            host: '127.0.0.1', port, path, method: options.method || 'GET', headers,
            agent: false,
        }, (res) => {
            const chunks = [];
            res.on('data', (chunk) => chunks.push(chunk));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try {
                    json = JSON.parse(text);
                } catch {
                    json = undefined;
                }
                resolve({ status: res.statusCode, headers: res.headers, text, json });
            });
            res.on('error', reject);
        });
        req.setTimeout(REQUEST_TIMEOUT_MS, () => {
            req.destroy(new Error(`${options.method || 'GET'} ${path} timed out`));
        });
        req.on('error', reject);
        if (body !== undefined) {
            req.write(body);
        }
        req.end();
    });
}

// A client bound to one server's web port.
function client(port, defaults = {}) {
    const call = (method, path, options = {}) =>
        request(port, path, { ...defaults, ...options, method, headers: { ...defaults.headers, ...options.headers } });
    return {
        get: (path, options) => call('GET', path, options),
        post: (path, body, options = {}) => call('POST', path, { ...options, body }),
        send: call,
    };
}

module.exports = { client, request };
