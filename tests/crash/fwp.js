'use strict';
// A minimal Faktory Work Protocol connection over node:net for the crash test: one command
// in flight at a time, replies decoded from the RESP subset that FWP uses.

const net = require('node:net');

const CONNECT_TIMEOUT_MS = 5000;

class ConnectionClosedError extends Error {
    constructor(detail) {
        super(`connection closed${detail ? `: ${detail}` : ''}`);
        this.name = 'ConnectionClosedError';
    }
}

// Splits one reply off the front of buf. Returns { reply, rest } or null when buf does not
// hold a whole reply yet. A reply is { kind: 'simple' | 'error' | 'bulk', value }, and
// value is null for the null bulk string `$-1`.
function parseReply(buf) {
    const eol = buf.indexOf('\r\n');
    if (eol < 0) {
        return null;
    }
    const type = String.fromCharCode(buf[0]);
    const line = buf.toString('utf8', 1, eol);
    switch (type) {
    case '+':
        return { reply: { kind: 'simple', value: line }, rest: buf.subarray(eol + 2) };
    case '-':
        return { reply: { kind: 'error', value: line }, rest: buf.subarray(eol + 2) };
    case '$': {
        const length = Number.parseInt(line, 10);
        if (length < 0) {
            return { reply: { kind: 'bulk', value: null }, rest: buf.subarray(eol + 2) };
        }
        const end = eol + 2 + length;
        if (buf.length < end + 2) {
            return null;
        }
        const value = buf.toString('utf8', eol + 2, end);
        return { reply: { kind: 'bulk', value }, rest: buf.subarray(end + 2) };
    }
    default:
        throw new Error(`unexpected reply type ${JSON.stringify(type)} in ${JSON.stringify(line)}`);
    }
}

class FwpConnection {
    constructor(socket) {
        this.socket = socket;
        this.buffer = Buffer.alloc(0);
        this.waiting = [];
        this.closed = false;
        this.closeReason = null;
        socket.setNoDelay(true);
        socket.on('data', (chunk) => this.onData(chunk));
        socket.on('error', (err) => this.onClose(err.code || err.message));
        socket.on('close', () => this.onClose(null));
    }

    // Connects, reads the greeting and sends HELLO with `hello` (no password support: the
    // crash test runs the server without one). Resolves with the open connection.
    static async open(port, hello) {
        const socket = await new Promise((resolve, reject) => {
            const sock = net.connect(port, '127.0.0.1');
            const timer = setTimeout(() => {
                sock.destroy();
                reject(new ConnectionClosedError('connect timed out'));
            }, CONNECT_TIMEOUT_MS);
            sock.once('connect', () => {
                clearTimeout(timer);
                sock.removeAllListeners('error');
                resolve(sock);
            });
            sock.once('error', (err) => {
                clearTimeout(timer);
                reject(new ConnectionClosedError(err.code || err.message));
            });
        });
        const conn = new FwpConnection(socket);
        const greeting = await conn.read();
        if (greeting.kind !== 'simple' || !greeting.value.startsWith('HI ')) {
            conn.destroy();
            throw new Error(`unexpected greeting ${JSON.stringify(greeting)}`);
        }
        const reply = await conn.command(`HELLO ${JSON.stringify({ v: 2, ...hello })}`);
        if (reply.kind !== 'simple' || reply.value !== 'OK') {
            conn.destroy();
            throw new Error(`HELLO was answered with ${JSON.stringify(reply)}`);
        }
        return conn;
    }

    // Resolves waiting commands in order. Bytes that are not a valid reply, or a reply with
    // no command waiting for it, go to FwpConnection.protocolErrors and end the connection.
    onData(chunk) {
        this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
        for (;;) {
            let parsed;
            try {
                parsed = parseReply(this.buffer);
            } catch (err) {
                this.failProtocol(err.message);
                return;
            }
            if (!parsed) {
                return;
            }
            this.buffer = parsed.rest;
            const waiter = this.waiting.shift();
            if (!waiter) {
                this.failProtocol(`unsolicited reply ${JSON.stringify(parsed.reply)}`);
                return;
            }
            waiter.resolve(parsed.reply);
        }
    }

    failProtocol(message) {
        FwpConnection.protocolErrors.push(message);
        this.destroy();
    }

    onClose(reason) {
        if (!this.closed) {
            this.closed = true;
            this.closeReason = reason;
        }
        const waiting = this.waiting;
        this.waiting = [];
        for (const waiter of waiting) {
            waiter.reject(new ConnectionClosedError(this.closeReason));
        }
    }

    read() {
        if (this.closed) {
            return Promise.reject(new ConnectionClosedError(this.closeReason));
        }
        return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    }

    // Sends one command line and resolves with its reply. Rejects with
    // ConnectionClosedError when the connection ends first, and then the client cannot
    // tell whether the server carried the command out.
    command(line) {
        const reply = this.read();
        if (!this.closed) {
            this.socket.write(`${line}\r\n`);
        }
        return reply;
    }

    destroy() {
        this.socket.destroy();
        this.onClose('destroyed');
    }
}

FwpConnection.protocolErrors = [];

module.exports = { FwpConnection, ConnectionClosedError, parseReply };
