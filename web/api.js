// Client for fabrik's JSON API. Every URL starts with the reverse-proxy prefix that the
// server writes into the fabrik-root meta tag of index.html.

function readRoot() {
    const meta = document.querySelector('meta[name="fabrik-root"]');
    const content = meta ? meta.getAttribute('content') || '' : '';
    // An unreplaced placeholder means the page was opened as a file, not served by fabrik.
    if (content.includes('{{')) {
        return '';
    }
    return content.replace(/\/+$/, '');
}

export const root = readRoot();

// Returns the URL of a page or API path (which starts with "/") under the prefix.
export function url(path) {
    return `${root}${path}`;
}

// An HTTP error response from the API, or a failure to reach the server (status 0).
export class ApiError extends Error {
    constructor(method, path, status, message) {
        super(message);
        this.name = 'ApiError';
        this.method = method;
        this.path = path;
        this.status = status;
    }

    // A sentence for the message area that names the request and the server's reason.
    describe() {
        const where = `${this.method} ${this.path}`;
        if (this.status === 0) {
            return `Cannot reach the fabrik server (${where}): ${this.message}`;
        }
        return `${where} failed with status ${this.status}: ${this.message}`;
    }
}

async function readError(response) {
    const text = await response.text().catch(() => '');
    try {
        const body = JSON.parse(text);
        if (body && typeof body.error === 'string') {
            return body.error;
        }
    } catch {
        // Not JSON, e.g. a proxy error page or the plain-text 401 body. Fall through.
    }
    return text.trim() || response.statusText || 'no error message';
}

async function request(method, path, body, signal) {
    const init = {
        method,
        signal,
        headers: { Accept: 'application/json' },
        credentials: 'same-origin',
        cache: 'no-store',
    };
    if (body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
    }
    let response;
    try {
        response = await fetch(url(path), init);
    } catch (err) {
        if (err.name === 'AbortError') {
            throw err;
        }
        throw new ApiError(method, path, 0, err.message);
    }
    if (!response.ok) {
        throw new ApiError(method, path, response.status, await readError(response));
    }
    try {
        return await response.json();
    } catch (err) {
        throw new ApiError(method, path, response.status, `invalid JSON in the response: ${err.message}`);
    }
}

// Builds "path?k=v&..." from the parameters whose value is neither empty nor null.
export function withQuery(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
        if (value !== undefined && value !== null && value !== '') {
            query.set(key, String(value));
        }
    }
    const text = query.toString();
    return text ? `${path}?${text}` : path;
}

export function apiGet(path, params, signal) {
    return request('GET', withQuery(path, params), undefined, signal);
}

export function apiPost(path, body) {
    return request('POST', path, body);
}
