'use strict';
// The Chromium side of the web UI tests: Debian's chromium driven by playwright-core with a
// throw-away profile, tabs that collect console errors, and screenshots.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT_DIR = process.env.FABRIK_WEB_SCREENSHOTS ||
    path.resolve(__dirname, '../../../build/web-screenshots');

// Loads playwright-core from the web tests' node_modules, with a hint when it is missing.
function requirePlaywright() {
    try {
        return require('playwright-core');
    } catch (err) {
        throw new Error(`playwright-core is not installed (${err.message}): run \`npm ci\` in ` +
            path.dirname(__dirname));
    }
}

// Starts Chromium with a fresh profile whose tabs open paths under baseURL. With pollSeconds,
// the UI refreshes at that interval unless a test sets its own. close() stops the browser and
// removes the profile.
async function launchBrowser(baseURL, { profilePrefix = 'fabrik-web-chromium-', pollSeconds } = {}) {
    if (!fs.existsSync(CHROMIUM)) {
        throw new Error(`${CHROMIUM} is missing: install Debian's browser with \`apt-get install -y chromium\``);
    }
    const { chromium } = requirePlaywright();
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), profilePrefix));
    const removeProfile = () => fs.rmSync(profileDir, { recursive: true, force: true });
    let context;
    try {
        context = await chromium.launchPersistentContext(profileDir, {
            executablePath: CHROMIUM,
            headless: true,
            args: CHROMIUM_ARGS,
            viewport: { width: 1280, height: 900 },
            baseURL,
        });
    } catch (err) {
        removeProfile();
        throw err;
    }
    if (pollSeconds) {
        await context.addInitScript((seconds) => {
            if (!localStorage.getItem('fabrik.pollInterval')) {
                localStorage.setItem('fabrik.pollInterval', String(seconds));
            }
        }, pollSeconds);
    }
    return {
        context,
        async close() {
            await context.close();
            removeProfile();
        },
    };
}

// Waits until the summary bar shows the server's numbers and the page has its heading.
async function waitForSummary(page) {
    await page.waitForFunction(() => {
        const count = document.querySelector('[data-summary="processed"]');
        return count && count.textContent !== '–' && document.querySelector('main h1');
    });
}

// Opens pagePath in a new tab of context, waits with ready(page), and collects console errors
// and uncaught exceptions. allowed lists patterns of console errors a test expects (such as a
// 404 it provoked); close() fails the test on any other.
async function openPage(context, pagePath, { allowed = [], ready = waitForSummary } = {}) {
    const page = await context.newPage();
    const errors = [];
    page.on('console', (message) => {
        if (message.type() === 'error' && !allowed.some((re) => re.test(message.text()))) {
            errors.push(`console error: ${message.text()}`);
        }
    });
    page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
    await page.goto(pagePath);
    await ready(page);
    return {
        page,
        async close() {
            await page.close();
            assert.deepEqual(errors, [], `no console errors on ${pagePath}`);
        },
    };
}

// Saves a full-page screenshot as <name>.png in SCREENSHOT_DIR and returns its path.
async function screenshot(page, name) {
    const file = path.join(SCREENSHOT_DIR, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
}

module.exports = { SCREENSHOT_DIR, launchBrowser, openPage, screenshot, waitForSummary };
