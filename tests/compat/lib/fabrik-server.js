'use strict';
// Starts and stops a real fabrik server on 127.0.0.1 for the compat and crash tests.
//
// The binary comes from the FABRIK_BIN environment variable (CTest sets it to the built
// target) and falls back to build/fabrik in the repository. Each server gets a temporary
// root directory holding data/, conf/ (with conf.d/fabrik.toml when TOML is given) and
// fabrik.log, which receives the server's stderr.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const READY_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 10000;
const START_ATTEMPTS = 5;

function fabrikBinary() {
    const bin = process.env.FABRIK_BIN || path.resolve(__dirname, '../../../build/fabrik');
    if (!fs.existsSync(bin)) {
        throw new Error(`fabrik binary not found at ${bin}: build it with ` +
            '`cmake --build build --target fabrik` or set FABRIK_BIN');
    }
    return bin;
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// Returns a TCP port that was free a moment ago. Another process can take it before the
// server binds, so start() retries with a new port when the bind fails.
function freePort() {
    return new Promise((resolve, reject) => {
        const probe = net.createServer();
        probe.unref();
        probe.once('error', reject);
        probe.listen(0, '127.0.0.1', () => {
            const { port } = probe.address();
            probe.close(() => resolve(port));
        });
    });
}

function canConnect(port) {
    return new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        socket.once('connect', () => {
            socket.destroy();
            resolve(true);
        });
        socket.once('error', () => resolve(false));
    });
}

function makeRoot(prefix) {
    return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}

class FabrikServer {
    // options: root (temporary directory to reuse, e.g. across crash restarts), prefix,
    // port (fixed port; otherwise a free one is picked), password (FAKTORY_PASSWORD),
    // toml (text of conf.d/fabrik.toml), env (extra environment variables).
    constructor(options = {}) {
        this.root = options.root || makeRoot(options.prefix || 'fabrik-test');
        this.dataDir = path.join(this.root, 'data');
        this.configDir = path.join(this.root, 'conf');
        this.logPath = path.join(this.root, 'fabrik.log');
        this.fixedPort = options.port || 0;
        this.port = this.fixedPort;
        this.password = options.password;
        this.extraEnv = options.env || {};
        this.child = null;
        this.exit = null;
        // Start-up attempts that ended with the process exiting, as { port, exit }.
        this.startFailures = [];

        fs.mkdirSync(this.dataDir, { recursive: true });
        fs.mkdirSync(path.join(this.configDir, 'conf.d'), { recursive: true });
        if (options.toml !== undefined) {
            fs.writeFileSync(path.join(this.configDir, 'conf.d', 'fabrik.toml'), options.toml);
        }
    }

    get url() {
        return `tcp://127.0.0.1:${this.port}`;
    }

    // Spawns the process without waiting for it to listen. The crash test uses this to
    // kill the server while it is still opening its database.
    spawn(port) {
        this.port = port;
        this.exit = null;
        const env = { ...process.env, ...this.extraEnv };
        delete env.FAKTORY_PASSWORD;
        if (this.password !== undefined) {
            env.FAKTORY_PASSWORD = this.password;
        }
        const log = fs.openSync(this.logPath, 'a');
        fs.writeSync(log, `--- fabrik start on port ${port} at ${new Date().toISOString()}\n`);
        const args = ['-b', `127.0.0.1:${port}`, '-w', '127.0.0.1:0', '-d', this.dataDir,
            '-c', this.configDir, '-e', 'development', '-l', 'debug'];
        const child = spawn(fabrikBinary(), args, { env, stdio: ['ignore', log, log] });
        fs.closeSync(log);
        this.child = child;
        this.exited = new Promise((resolve) => {
            child.once('exit', (code, signal) => {
                this.exit = { code, signal };
                resolve(this.exit);
            });
        });
        return child;
    }

    // Waits until a TCP connect succeeds. Returns false when the process exited first.
    async waitReady() {
        const deadline = Date.now() + READY_TIMEOUT_MS;
        while (Date.now() < deadline) {
            if (this.exit) {
                return false;
            }
            if (await canConnect(this.port)) {
                return true;
            }
            await sleep(25);
        }
        this.child.kill('SIGKILL');
        await this.exited;
        throw new Error(`fabrik did not accept connections on port ${this.port} within ` +
            `${READY_TIMEOUT_MS} ms; log tail:\n${this.logTail()}`);
    }

    // Starts the server and waits until it accepts connections. A server that exits
    // during start-up is started again (a picked port may have been taken meanwhile,
    // and a fixed port may still be held by the previous, killed process).
    async start() {
        for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
            const port = this.fixedPort || await freePort();
            this.spawn(port);
            if (await this.waitReady()) {
                return this;
            }
            this.startFailures.push({ port, exit: this.exit });
            await sleep(200 * attempt);
        }
        throw new Error(`fabrik exited during start-up ${START_ATTEMPTS} times ` +
            `(last exit ${JSON.stringify(this.exit)}); log tail:\n${this.logTail()}`);
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

    // Kills the process with SIGKILL, the crash case, and waits until it is gone.
    async kill() {
        if (!this.child || this.exit) {
            return this.exit;
        }
        this.child.kill('SIGKILL');
        return this.exited;
    }

    logTail(lines = 40) {
        try {
            const text = fs.readFileSync(this.logPath, 'utf8');
            return text.split('\n').slice(-lines).join('\n');
        } catch (err) {
            return `(no log: ${err.message})`;
        }
    }

    // Deletes the temporary directory. Callers keep it after a failure so the data and
    // the log can be inspected.
    removeFiles() {
        fs.rmSync(this.root, { recursive: true, force: true });
    }

    // Stops the server and checks that it exited cleanly after SIGTERM. Its files are kept,
    // and their place printed, when keepFiles is true (a test failed) or the exit was not clean.
    async stopAndClean(keepFiles) {
        const exit = await this.stop();
        if (keepFiles || exit.code !== 0) {
            console.log(`server files kept in ${this.root}; log tail:\n${this.logTail()}`);
        } else {
            this.removeFiles();
        }
        assert.deepEqual(exit, { code: 0, signal: null }, 'fabrik exit status after SIGTERM');
    }
}

module.exports = { FabrikServer, fabrikBinary, freePort, sleep, canConnect };
