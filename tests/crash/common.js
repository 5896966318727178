'use strict';
// Helpers both crash tests use: a seeded random generator, the test for a connection the
// killed server closed, and the control commands of the drain.

const { ConnectionClosedError } = require('./fwp');

// A small deterministic generator (mulberry32), so a failing run can be repeated by seed.
function makeRandom(seed) {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6D2B79F5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

function isClosed(err) {
    return err instanceof ConnectionClosedError;
}

// Sends one command on the control connection and parses a bulk JSON reply.
async function control(conn, line) {
    const reply = await conn.command(line);
    if (reply.kind === 'error') {
        throw new Error(`${line} was answered with -${reply.value}`);
    }
    return reply.kind === 'bulk' ? JSON.parse(reply.value) : reply.value;
}

function leftovers(info) {
    const { faktory } = info;
    const queued = Object.values(faktory.queues).reduce((sum, size) => sum + size, 0);
    const { scheduled, retries, working, dead } = faktory.sets;
    return { queued, scheduled, retries, working, dead };
}

module.exports = { makeRandom, isClosed, control, leftovers };
