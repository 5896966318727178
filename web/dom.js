// DOM building and formatting helpers shared by every view. Job data is always inserted as
// text (never as HTML), so arguments and error messages cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function applyAttributes(el, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
        if (value === undefined || value === null || value === false) {
            continue;
        }
        if (name === 'class') {
            el.setAttribute('class', value);
        } else if (name === 'dataset') {
            Object.assign(el.dataset, value);
        } else if (name.startsWith('on') && typeof value === 'function') {
            el.addEventListener(name.slice(2).toLowerCase(), value);
        } else if (name === 'checked' || name === 'value' || name === 'indeterminate') {
            el[name] = value;
        } else {
            el.setAttribute(name, value === true ? '' : String(value));
        }
    }
}

function appendChildren(el, children) {
    for (const child of children.flat(Infinity)) {
        if (child === undefined || child === null || child === false) {
            continue;
        }
        el.append(child instanceof Node ? child : String(child));
    }
}

// Creates an HTML element. Attributes named on<event> become listeners; false, null and
// undefined attributes and children are skipped; strings become text nodes.
export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    applyAttributes(el, attrs);
    appendChildren(el, children);
    return el;
}

// Creates an SVG element with the same conventions as h().
export function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    applyAttributes(el, attrs);
    appendChildren(el, children);
    return el;
}

// Replaces all children of el.
export function setChildren(el, ...children) {
    el.replaceChildren();
    appendChildren(el, children);
}

const numberFormat = new Intl.NumberFormat('en-US');

export function formatNumber(value) {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
        return '–';
    }
    return numberFormat.format(value);
}

// Formats a duration in seconds the way people read it: "0.4 s", "12 s", "5 min 3 s",
// "2 h 10 min", "3 d 4 h".
export function formatDuration(seconds) {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds)) {
        return '–';
    }
    const s = Math.abs(seconds);
    if (s < 10) {
        return `${Math.round(s * 10) / 10} s`;
    }
    if (s < 60) {
        return `${Math.round(s)} s`;
    }
    const minutes = Math.floor(s / 60);
    if (minutes < 60) {
        const rest = Math.floor(s % 60);
        return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
    }
    const hours = Math.floor(minutes / 60);
    if (hours < 24) {
        const rest = minutes % 60;
        return rest ? `${hours} h ${rest} min` : `${hours} h`;
    }
    const days = Math.floor(hours / 24);
    const rest = hours % 24;
    return rest ? `${days} d ${rest} h` : `${days} d`;
}

// Offset between the server clock and this browser's clock in milliseconds, updated from
// every /api/info response so relative times agree with the server.
let clockSkewMs = 0;

export function setServerNow(iso) {
    const server = Date.parse(iso);
    if (Number.isFinite(server)) {
        clockSkewMs = server - Date.now();
    }
}

export function serverNow() {
    return Date.now() + clockSkewMs;
}

// Formats an RFC 3339 time relative to the server's now: "3 min ago", "in 20 s", "just now".
export function formatRelative(iso) {
    const t = Date.parse(iso);
    if (!Number.isFinite(t)) {
        return '–';
    }
    const seconds = (t - serverNow()) / 1000;
    if (Math.abs(seconds) < 1) {
        return 'just now';
    }
    const text = formatDuration(Math.abs(seconds) < 10 ? Math.round(Math.abs(seconds))
        : Math.abs(seconds));
    return seconds < 0 ? `${text} ago` : `in ${text}`;
}

// Formats an RFC 3339 time as an absolute UTC time: "2026-12-04 20:00:00 UTC".
export function formatAbsolute(iso) {
    const t = Date.parse(iso);
    if (!Number.isFinite(t)) {
        return String(iso ?? '–');
    }
    return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
}

// Returns a <time> element showing a relative time, with the absolute time as its title.
// updateRelativeTimes() refreshes every such element between polls.
export function timeElement(iso) {
    if (!iso) {
        return h('span', { class: 'muted' }, '–');
    }
    return h('time', { datetime: iso, title: formatAbsolute(iso), dataset: { relative: '' } },
        formatRelative(iso));
}

export function updateRelativeTimes(root) {
    for (const el of root.querySelectorAll('time[data-relative]')) {
        const text = formatRelative(el.getAttribute('datetime'));
        if (el.textContent !== text) {
            el.textContent = text;
        }
    }
}

// Formats a resident set size given in KiB, as Faktory's Busy page does.
export function formatKilobytes(kb) {
    if (typeof kb !== 'number' || !Number.isFinite(kb)) {
        return '–';
    }
    if (kb < 100000) {
        return `${numberFormat.format(kb)} KB`;
    }
    if (kb < 10000000) {
        return `${(kb / 1024).toFixed(1)} MB`;
    }
    return `${(kb / 1048576).toFixed(1)} GB`;
}

export function truncate(text, max) {
    return text.length > max ? `${text.slice(0, max)}…` : text;
}

// Formats job arguments for a table cell: each one as JSON, comma-separated, cut at
// `max` characters.
export function formatArgs(args, max = 1024) {
    if (!Array.isArray(args)) {
        return truncate(JSON.stringify(args ?? null), max);
    }
    return truncate(args.map((arg) => JSON.stringify(arg)).join(', '), max);
}

export function pluralize(count, singular, plural = `${singular}s`) {
    return `${formatNumber(count)} ${count === 1 ? singular : plural}`;
}

export function errorSummary(failure) {
    if (!failure) {
        return '';
    }
    const type = failure.errtype || 'Error';
    return failure.message ? `${type}: ${failure.message}` : type;
}
