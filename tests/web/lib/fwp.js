'use strict';
// A small Faktory Work Protocol client over node:net for seeding jobs in the web tests:
// one command in flight at a time, password handshake, and helpers for the job states.

const crypto = require('node:crypto');
const net = require('node:net');

const CONNECT_TIMEOUT_MS = 5000;

// Splits one reply off the front of buf. Returns { reply, rest } or null when buf does not
// contain a whole reply yet. reply is { kind: 'simple' | 'error' | 'bulk', value }; the
// value of the null bulk string `$-1` is null.
function parseReply(buf) {
    const eol = buf.indexOf('\r\n');
    if (eol < 0) {
        return null;
    }
    const type = String.fromCharCode(buf[0]);
    const line = buf.toString('utf8', 1, eol);
    if (type === '+' || type === '-') {
        return { reply: { kind: type === '+' ? 'simple' : 'error', value: line }, rest: buf.subarray(eol + 2) };
    }
    if (type !== '$') {
        throw new Error(`unexpected reply type ${JSON.stringify(type)} in ${JSON.stringify(line)}`);
    }
    const length = Number.parseInt(line, 10);
    if (length < 0) {
        return { reply: { kind: 'bulk', value: null }, rest: buf.subarray(eol + 2) };
    }
    const end = eol + 2 + length;
    if (buf.length < end + 2) {
        return null;
    }
    return { reply: { kind: 'bulk', value: buf.toString('utf8', eol + 2, end) }, rest: buf.subarray(end + 2) };
}

// The HELLO password hash: SHA-256 of password + salt, hashed again iterations - 1 times.
function passwordHash(password, salt, iterations) {
    let digest = crypto.createHash('sha256').update(password + salt).digest();
    for (let i = 1; i < iterations; i++) {
        digest = crypto.createHash('sha256').update(digest).digest();
    }
    return digest.toString('hex');
}

class FwpClient {
    constructor(socket) {
        this.socket = socket;
        this.buffer = Buffer.alloc(0);
        this.waiting = [];
        this.closed = false;
        socket.setNoDelay(true);
        socket.on('data', (chunk) => this.onData(chunk));
        socket.on('error', () => this.onClose());
        socket.on('close', () => this.onClose());
    }

    // Connects and completes the handshake. hello adds fields to HELLO (wid, labels...), and
    // password is hashed with the server's salt when the greeting contains a challenge.
    static async connect(port, { hello = {}, password } = {}) {
        const socket = await new Promise((resolve, reject) => {
            const sock = net.connect(port, '127.0.0.1');
            const timer = setTimeout(() => {
                sock.destroy();
                reject(new Error(`connecting to 127.0.0.1:${port} timed out`));
            }, CONNECT_TIMEOUT_MS);
            sock.once('connect', () => {
                clearTimeout(timer);
                sock.removeAllListeners('error');
                resolve(sock);
            });
            sock.once('error', (err) => {
                clearTimeout(timer);
                reject(err);
            });
        });
        const client = new FwpClient(socket);
        const greeting = await client.read();
        if (greeting.kind !== 'simple' || !greeting.value.startsWith('HI ')) {
            client.close();
            throw new Error(`unexpected greeting ${JSON.stringify(greeting)}`);
        }
        const challenge = JSON.parse(greeting.value.slice(3));
        const fields = { v: 2, ...hello };
        if (challenge.s) {
            fields.pwdhash = passwordHash(password || '', challenge.s, challenge.i);
        }
        await client.ok(`HELLO ${JSON.stringify(fields)}`);
        return client;
    }

    onData(chunk) {
        this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
        for (;;) {
            const parsed = parseReply(this.buffer);
            if (!parsed) {
                return;
            }
            this.buffer = parsed.rest;
            const waiter = this.waiting.shift();
            if (waiter) {
                waiter.resolve(parsed.reply);
            }
        }
    }

    onClose() {
        this.closed = true;
        const waiting = this.waiting;
        this.waiting = [];
        for (const waiter of waiting) {
            waiter.reject(new Error('FWP connection closed'));
        }
    }

    read() {
        if (this.closed) {
            return Promise.reject(new Error('FWP connection closed'));
        }
        return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    }

    command(line) {
        const reply = this.read();
        this.socket.write(`${line}\r\n`);
        return reply;
    }

    // Sends a command whose reply must be +OK.
    async ok(line) {
        const reply = await this.command(line);
        if (reply.kind !== 'simple' || reply.value !== 'OK') {
            throw new Error(`${line.slice(0, 80)} was answered with ${JSON.stringify(reply)}`);
        }
    }

    async push(job) {
        await this.ok(`PUSH ${JSON.stringify(job)}`);
        return job;
    }

    // FETCHes from the queues; resolves with the job, or null after the 2-second wait.
    async fetch(...queues) {
        const reply = await this.command(`FETCH ${queues.join(' ')}`);
        if (reply.kind !== 'bulk') {
            throw new Error(`FETCH ${queues.join(' ')} was answered with ${JSON.stringify(reply)}`);
        }
        return reply.value === null ? null : JSON.parse(reply.value);
    }

    async fail(jid, errtype, message, backtrace = []) {
        await this.ok(`FAIL ${JSON.stringify({ jid, errtype, message, backtrace })}`);
    }

    async ack(jid) {
        await this.ok(`ACK ${JSON.stringify({ jid })}`);
    }

    // Sends BEAT and returns the state in the server's reply ('' when the reply is +OK).
    async beat(wid) {
        const reply = await this.command(`BEAT ${JSON.stringify({ wid })}`);
        if (reply.kind === 'simple') {
            return '';
        }
        if (reply.kind === 'bulk') {
            return JSON.parse(reply.value).state;
        }
        throw new Error(`BEAT was answered with ${JSON.stringify(reply)}`);
    }

    async info() {
        const reply = await this.command('INFO');
        return JSON.parse(reply.value);
    }

    // Pushes a job into a queue of its own, FETCHes it and FAILs it, so it lands in the
    // retry set (or the dead set when job.retry is negative). Returns the fetched job.
    async pushAndFail(job, errtype, message, backtrace) {
        const queue = job.queue || 'default';
        await this.push(job);
        const fetched = await this.fetch(queue);
        if (!fetched || fetched.jid !== job.jid) {
            throw new Error(`expected to fetch ${job.jid} from ${queue}, got ${JSON.stringify(fetched)}`);
        }
        await this.fail(job.jid, errtype, message, backtrace);
        return fetched;
    }

    close() {
        this.socket.destroy();
        this.onClose();
    }
}

let jidCounter = 0;

// Returns a job with a unique jid; fields override the defaults.
function makeJob(fields = {}) {
    jidCounter += 1;
    return {
        jid: `web-${process.pid}-${jidCounter}-${crypto.randomBytes(4).toString('hex')}`,
        jobtype: 'WebTestJob',
        args: [jidCounter],
        ...fields,
    };
}

module.exports = { FwpClient, makeJob, passwordHash };
