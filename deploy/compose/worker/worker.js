'use strict';
// Example worker for docker-compose.yml: processes "Hello" jobs from the default queue of the
// fabrik service. The password comes from the file named by FAKTORY_PASSWORD_FILE (a Docker
// secret), so it never appears in the environment or the compose file.

const fs = require('node:fs');
const faktory = require('faktory-worker');

function readPassword() {
    const file = process.env.FAKTORY_PASSWORD_FILE;
    return file ? fs.readFileSync(file, 'utf8').trim() : undefined;
}

faktory.register('Hello', async (name) => {
    console.log(`Hello, ${name}!`);
});

faktory.work({
    url: process.env.FAKTORY_URL || 'tcp://fabrik:7419',
    password: readPassword(),
    queues: ['default'],
    concurrency: 5,
}).catch((err) => {
    console.error(`worker stopped: ${err.message}`);
    process.exit(1);
});
