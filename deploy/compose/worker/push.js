'use strict';
// Pushes one "Hello" job: docker compose run --rm worker node push.js <name>

const fs = require('node:fs');
const faktory = require('faktory-worker');

async function main() {
    const file = process.env.FAKTORY_PASSWORD_FILE;
    const client = await faktory.connect({
        url: process.env.FAKTORY_URL || 'tcp://fabrik:7419',
        password: file ? fs.readFileSync(file, 'utf8').trim() : undefined,
    });
    const jid = await client.job('Hello', process.argv[2] || 'world').push();
    console.log(`pushed Hello job ${jid}`);
    await client.close();
}

main().catch((err) => {
    console.error(`push failed: ${err.message}`);
    process.exit(1);
});
