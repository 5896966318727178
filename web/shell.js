// Page-wide services the views share: the message area, the confirmation dialog, the
// polling interval, navigation and the refresh that follows an action. app.js connects
// navigation and refresh when it starts.

import { h, setChildren } from './dom.js';

// Polling interval in seconds, kept in localStorage like Faktory's dashboard slider.
export const POLL_MIN_SECONDS = 2;
export const POLL_MAX_SECONDS = 20;
const POLL_DEFAULT_SECONDS = 5;
const POLL_STORAGE_KEY = 'fabrik.pollInterval';
const SUCCESS_MESSAGE_MS = 8000;

export function clampPollInterval(value) {
    const seconds = Math.round(Number(value));
    if (!Number.isFinite(seconds)) {
        return POLL_DEFAULT_SECONDS;
    }
    return Math.min(POLL_MAX_SECONDS, Math.max(POLL_MIN_SECONDS, seconds));
}

export function pollInterval() {
    let stored = null;
    try {
        stored = localStorage.getItem(POLL_STORAGE_KEY);
    } catch {
        // Storage can be disabled; the default applies.
    }
    return stored === null ? POLL_DEFAULT_SECONDS : clampPollInterval(stored);
}

const intervalListeners = new Set();

export function setPollInterval(seconds) {
    const value = clampPollInterval(seconds);
    try {
        localStorage.setItem(POLL_STORAGE_KEY, String(value));
    } catch {
        // Not remembered across reloads, but still used for this page.
    }
    for (const listener of intervalListeners) {
        listener(value);
    }
}

export function onPollIntervalChange(listener) {
    intervalListeners.add(listener);
}

// Messages. A message with a key replaces the earlier message with the same key, so a
// repeated polling error shows once.

function messageRegion(kind) {
    return document.getElementById(kind === 'error' ? 'messages-alert' : 'messages-status');
}

export function dismissMessage(key) {
    for (const el of document.querySelectorAll('.message')) {
        if (el.dataset.key === key) {
            el.remove();
        }
    }
}

// Shows text in the message area. kind is 'error', 'success' or 'info'; success messages
// disappear after a few seconds, the others stay until dismissed or replaced.
export function notify(text, kind = 'error', key = undefined) {
    if (key) {
        dismissMessage(key);
    }
    const message = h('div', { class: `message message-${kind}`, dataset: key ? { key } : {} },
        h('p', null, text),
        h('button', {
            type: 'button',
            class: 'button button-small',
            'aria-label': 'Dismiss message',
            onclick: () => message.remove(),
        }, 'Dismiss'));
    messageRegion(kind).append(message);
    if (kind === 'success') {
        setTimeout(() => message.remove(), SUCCESS_MESSAGE_MS);
    }
    return message;
}

export function notifyError(err) {
    if (err && err.name === 'AbortError') {
        return;
    }
    notify(err && typeof err.describe === 'function' ? err.describe() : String(err?.message || err));
}

export function clearMessages() {
    for (const el of document.querySelectorAll('.message')) {
        el.remove();
    }
}

// Asks for confirmation in a modal dialog. Resolves true only when the confirm button was
// chosen; Escape and Cancel resolve false. Cancel has the initial focus, so pressing Enter
// right away does nothing destructive.
export function confirmAction({ title, text, confirmLabel = 'Confirm', danger = true }) {
    const dialog = document.getElementById('confirm-dialog');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    const ok = document.getElementById('confirm-ok');
    ok.textContent = confirmLabel;
    ok.className = danger ? 'button button-danger' : 'button button-primary';
    const opener = document.activeElement;
    dialog.returnValue = 'cancel';
    return new Promise((resolve) => {
        dialog.addEventListener('close', () => {
            if (opener && opener.isConnected) {
                opener.focus();
            }
            resolve(dialog.returnValue === 'confirm');
        }, { once: true });
        dialog.showModal();
        document.getElementById('confirm-cancel').focus();
    });
}

// Shows content (a node) in the job dialog.
export function showDialog(title, content) {
    const dialog = document.getElementById('job-dialog');
    document.getElementById('job-dialog-title').textContent = title;
    setChildren(document.getElementById('job-dialog-body'), content);
    dialog.showModal();
}

// Navigation and refresh hooks, connected by app.js.
const hooks = {
    navigate: (path) => { window.location.assign(path); },
    refresh: () => Promise.resolve(),
};

export function connectShell(navigate, refresh) {
    hooks.navigate = navigate;
    hooks.refresh = refresh;
}

// Shows the page at path (with its query string), which starts with "/" and excludes the
// prefix. replace keeps the history entry (filter changes).
export function navigate(path, { replace = false } = {}) {
    return hooks.navigate(path, { replace });
}

// Polls the API now instead of waiting for the next interval, e.g. after an action.
export function refreshNow() {
    return hooks.refresh();
}

// Puts the focus back on a button that had it before runAction disabled it. Disabling the
// focused element moves the focus to the page body (the HTML focus fixup rule). When a poll
// has rebuilt the button's row, the focus goes to the button with the same data-focus-key.
function restoreFocus(button) {
    const active = document.activeElement;
    if (active && active !== document.body) {
        return;
    }
    const key = button.dataset.focusKey;
    let target = null;
    if (button.isConnected) {
        target = button;
    } else if (key) {
        target = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    }
    if (target) {
        target.focus();
    }
}

// Runs an API action: disables the button while it runs, shows the result or the error,
// then refreshes the page. Resolves with the response, or null after an error.
export async function runAction(button, action, describeResult) {
    const hadFocus = Boolean(button) && document.activeElement === button;
    if (button) {
        button.disabled = true;
    }
    try {
        const result = await action();
        if (describeResult) {
            notify(describeResult(result), 'success', 'action');
        }
        return result;
    } catch (err) {
        notifyError(err);
        return null;
    } finally {
        if (button && button.isConnected) {
            button.disabled = false;
        }
        if (hadFocus) {
            restoreFocus(button);
        }
        await refreshNow();
    }
}
