'use strict';
// Starts and stops a real fabrik server with its web port on 127.0.0.1 for the web tests.
//
// The binary comes from FABRIK_BIN (CTest passes the built target) and falls back to
// build/fabrik in the repository. Each server gets a temporary directory holding data/,
// conf/ (with conf.d/fabrik.toml when TOML is given) and fabrik.log, which receives the
// server's stderr.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const READY_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 10000;
const START_ATTEMPTS = 5;

// The binary lookup, ports and readiness probe are those of the compat tests' server.
const { fabrikBinary, freePort, sleep, canConnect } = require('../../compat/lib/fabrik-server');

class FabrikServer {
    // options: prefix (of the temporary directory), password (FAKTORY_PASSWORD),
    // toml (text of conf.d/fabrik.toml), env (extra environment variables).
    constructor(options = {}) {
        this.root = fs.mkdtempSync(path.join(os.tmpdir(), `${options.prefix || 'fabrik-web'}-`));
        this.dataDir = path.join(this.root, 'data');
        this.configDir = path.join(this.root, 'conf');
        this.logPath = path.join(this.root, 'fabrik.log');
        this.password = options.password;
        this.extraEnv = options.env || {};
        this.port = 0;
        this.webPort = 0;
        this.child = null;
        this.exit = null;
        fs.mkdirSync(this.dataDir, { recursive: true });
        fs.mkdirSync(path.join(this.configDir, 'conf.d'), { recursive: true });
        if (options.toml !== undefined) {
            fs.writeFileSync(path.join(this.configDir, 'conf.d', 'fabrik.toml'), options.toml);
        }
    }

    get webUrl() {
        return `http://127.0.0.1:${this.webPort}`;
    }

    spawn(port, webPort) {
        this.port = port;
        this.webPort = webPort;
        this.exit = null;
        const env = { ...process.env, ...this.extraEnv };
        delete env.FAKTORY_PASSWORD;
        if (this.password !== undefined) {
            env.FAKTORY_PASSWORD = this.password;
        }
        const log = fs.openSync(this.logPath, 'a');
        fs.writeSync(log, `--- fabrik start on ports ${port} and ${webPort} at ${new Date().toISOString()}\n`);
        const args = ['-b', `127.0.0.1:${port}`, '-w', `127.0.0.1:${webPort}`, '-d', this.dataDir,
            '-c', this.configDir, '-e', 'development', '-l', 'debug'];
        this.child = spawn(fabrikBinary(), args, { env, stdio: ['ignore', log, log] });
        fs.closeSync(log);
        this.exited = new Promise((resolve) => {
            this.child.once('exit', (code, signal) => {
                this.exit = { code, signal };
                resolve(this.exit);
            });
        });
    }

    // Waits until both ports accept connections. Returns false when the process exited.
    async waitReady() {
        const deadline = Date.now() + READY_TIMEOUT_MS;
        while (Date.now() < deadline) {
            if (this.exit) {
                return false;
            }
            if (await canConnect(this.port) && await canConnect(this.webPort)) {
                return true;
            }
            await sleep(25);
        }
        this.child.kill('SIGKILL');
        await this.exited;
        throw new Error(`fabrik did not accept connections on ports ${this.port} and ` +
            `${this.webPort} within ${READY_TIMEOUT_MS} ms; log tail:\n${this.logTail()}`);
    }

    async start() {
        for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
            this.spawn(await freePort(), await freePort());
            if (await this.waitReady()) {
                return this;
            }
            await sleep(200 * attempt);
        }
        throw new Error(`fabrik exited during start-up ${START_ATTEMPTS} times (last exit ` +
            `${JSON.stringify(this.exit)}); log tail:\n${this.logTail()}`);
    }

    // Sends SIGTERM and resolves with the exit status once the process is gone.
    async stop() {
        if (!this.child || this.exit) {
            return this.exit;
        }
        this.child.kill('SIGTERM');
        const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        const exit = await this.exited;
        clearTimeout(timer);
        return exit;
    }

    logTail(lines = 40) {
        try {
            return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
        } catch (err) {
            return `(no log: ${err.message})`;
        }
    }

    removeFiles() {
        fs.rmSync(this.root, { recursive: true, force: true });
    }
}

// Stops every server in servers and checks that each exited cleanly. The files of a
// server are kept (and their place printed) when the tests failed or it exited badly.
async function stopAll(servers, failed) {
    const problems = [];
    for (const server of servers) {
        const exit = await server.stop();
        const clean = exit && exit.code === 0 && exit.signal === null;
        if (failed || !clean) {
            console.log(`server files kept in ${server.root}; log tail:\n${server.logTail()}`);
        } else {
            server.removeFiles();
        }
        if (!clean) {
            problems.push(`fabrik exited with ${JSON.stringify(exit)} after SIGTERM`);
        }
    }
    if (problems.length) {
        throw new Error(problems.join('\n'));
    }
}

// Records whether a test of one file failed, so that stopAll keeps the servers' files then.
class FailureTracker {
    constructor() {
        this.failed = false;
    }

    // Wraps a test body: a failure is recorded and thrown again.
    check(fn) {
        return async (t) => {
            try {
                await fn(t);
            } catch (err) {
                this.failed = true;
                throw err;
            }
        };
    }
}

module.exports = { FabrikServer, FailureTracker, freePort, sleep, stopAll };
