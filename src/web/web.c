/* HTTP plumbing: listener, TLS, authentication, cross-site checks, proxy prefix, static files
 * and routing to the API. */
#include "web/web.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "net/server.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"
#include "web/assets.h"

/* Request bodies are small JSON documents: above MAX_BODY_BYTES the API replies with a JSON
 * 413. libevent reads bodies up to READ_BODY_BYTES, so those get that reply; above it libevent
 * sends its own 413 and closes the connection without reading the body. */
#define MAX_BODY_BYTES (1024 * 1024)
#define READ_BODY_BYTES (4 * 1024 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
/* Seconds an idle HTTP connection stays open. */
#define HTTP_TIMEOUT_SECONDS 60

struct web {
    struct evhttp *http;
    struct evhttp_bound_socket *socket;
};

void web_send(struct evhttp_request *req, int code, struct evbuffer *body) {
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* HEAD gets the headers GET would get, and no body: libevent would send one. */
        char length[32];
        snprintf(length, sizeof length, "%zu", evbuffer_get_length(body));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", length);
        evhttp_send_reply(req, code, NULL, NULL);
        return;
    }
    evhttp_send_reply(req, code, NULL, body);
}

void web_reply_json(struct web_request *r, int code, json_t *doc) {
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(doc);
    struct evbuffer *body = evbuffer_new();
    evbuffer_add(body, text, strlen(text));
    free(text);
    struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Cache-Control", "no-cache");
    web_send(r->req, code, body);
    evbuffer_free(body);
}

void web_reply_error(struct web_request *r, int code, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    web_reply_json(r, code, json_pack("{s:s}", "error", message));
}

static void reply_text(struct evhttp_request *req, int code, const char *type, const char *text,
                       size_t len) {
    struct evbuffer *body = evbuffer_new();
    evbuffer_add(body, text, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    web_send(req, code, body);
    evbuffer_free(body);
}

/* ---- authentication and cross-site checks ---------------------------------------------- */

static const char *web_password(const struct server *s) {
    return s->cfg.web_password ? s->cfg.web_password : s->cfg.password;
}

/* Compares two secrets in time independent of where they differ or of their lengths. */
static bool secrets_equal(const char *a, size_t alen, const char *b) {
    unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)a, alen, da);
    SHA256((const unsigned char *)b, strlen(b), db);
    return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

/* Returns true when the request may go on; otherwise it has been replied to with 401. */
static bool check_auth(struct server *s, struct evhttp_request *req) {
    const char *password = web_password(s);
    if (!password)
        return true;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *header = evhttp_find_header(evhttp_request_get_input_headers(req),
                                            "Authorization");
    if (!header || strncasecmp(header, "Basic ", 6) != 0) {
        evhttp_add_header(out, "WWW-Authenticate", "Basic realm=\"fabrik\"");
        reply_text(req, 401, "text/plain; charset=utf-8", "Authorization required", 22);
        return false;
    }
    const char *encoded = header + 6;
    size_t elen = strlen(encoded);
    unsigned char *decoded = xmalloc(elen + 4);
    int dlen = elen > 0 && elen % 4 == 0
                   ? EVP_DecodeBlock(decoded, (const unsigned char *)encoded, (int)elen)
                   : -1;
    bool ok = false;
    if (dlen > 0) {
        /* EVP_DecodeBlock counts the padding bytes as data; drop them. */
        while (dlen > 0 && elen >= 1 && encoded[elen - 1] == '=') {
            dlen--;
            elen--;
        }
        const char *colon = memchr(decoded, ':', (size_t)dlen);
        if (colon) {
            const char *given = colon + 1;
            size_t glen = (size_t)dlen - (size_t)(given - (const char *)decoded);
            ok = secrets_equal(given, glen, password);
        }
    }
    free(decoded);
    if (!ok) {
        log_warn("web_auth_failed", "uri=%s", evhttp_request_get_uri(req));
        evhttp_add_header(out, "WWW-Authenticate", "Basic realm=\"fabrik\"");
        reply_text(req, 401, "text/plain; charset=utf-8", "Authorization failed", 20);
    }
    return ok;
}

/* Rejects cross-site requests that change state, as Go's CrossOriginProtection in Faktory
 * 1.10 does: by Sec-Fetch-Site when the browser sends it, else by comparing Origin and Host.
 * Returns true when the request may go on. */
static bool check_same_origin(struct evhttp_request *req) {
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD || method == EVHTTP_REQ_OPTIONS)
        return true;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
    bool allowed = true;
    if (site) {
        allowed = strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0;
    } else {
        const char *origin = evhttp_find_header(in, "Origin");
        const char *host = evhttp_find_header(in, "Host");
        if (origin && strcmp(origin, "null") != 0) {
            const char *sep = strstr(origin, "://");
            const char *origin_host = sep ? sep + 3 : origin;
            allowed = host && strcasecmp(origin_host, host) == 0;
        } else if (origin) {
            allowed = false;
        }
    }
    if (!allowed) {
        log_warn("web_cross_site_rejected", "uri=%s", evhttp_request_get_uri(req));
        static const char body[] = "{\"error\":\"cross-site request rejected: send it from "
                                   "the fabrik UI's own origin\"}";
        reply_text(req, 403, "application/json", body, sizeof body - 1);
    }
    return allowed;
}

/* ---- static files and pages ------------------------------------------------------------- */

static const struct web_asset *find_asset(const char *name) {
    for (const struct web_asset *a = web_assets; a->name; a++) {
        if (strcmp(a->name, name) == 0)
            return a;
    }
    return NULL;
}

/* An entity tag for an embedded file: FNV-1a of its bytes. */
static void asset_etag(const struct web_asset *a, char *out, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < a->size; i++) {
        h ^= a->data[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, len, "\"%016llx\"", (unsigned long long)h);
}

static void serve_static(struct web_request *r, const char *name) {
    const struct web_asset *a = find_asset(name);
    if (!a || strcmp(name, "index.html") == 0) {
        reply_text(r->req, 404, "text/plain; charset=utf-8", "not found", 9);
        return;
    }
    /* The module URLs carry no version, so browsers revalidate every time (a 304 when
     * nothing changed) and never mix files of two fabrik versions. */
    char etag[24];
    asset_etag(a, etag, sizeof etag);
    struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(headers, "Cache-Control", "no-cache");
    evhttp_add_header(headers, "ETag", etag);
    const char *match = evhttp_find_header(evhttp_request_get_input_headers(r->req),
                                           "If-None-Match");
    if (match && strcmp(match, etag) == 0) {
        evhttp_send_reply(r->req, 304, NULL, NULL);
        return;
    }
    struct evbuffer *body = evbuffer_new();
    evbuffer_add_reference(body, a->data, a->size, NULL, NULL);
    evhttp_add_header(headers, "Content-Type", a->content_type);
    web_send(r->req, 200, body);
    evbuffer_free(body);
}

/* Serves index.html with every "{{ROOT}}" replaced by the proxy prefix. */
static void serve_page(struct web_request *r) {
    const struct web_asset *a = find_asset("index.html");
    if (!a) {
        reply_text(r->req, 500, "text/plain; charset=utf-8", "web UI files are missing", 24);
        return;
    }
    struct buf page = {0};
    const char *p = (const char *)a->data, *end = p + a->size;
    while (p < end) {
        const char *mark = memmem(p, (size_t)(end - p), "{{ROOT}}", 8);
        if (!mark) {
            buf_append(&page, p, (size_t)(end - p));
            break;
        }
        buf_append(&page, p, (size_t)(mark - p));
        buf_append_str(&page, r->root);
        p = mark + 8;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-cache");
    reply_text(r->req, 200, "text/html; charset=utf-8", page.data ? page.data : "", page.len);
    buf_free(&page);
}

static void serve_health(struct web_request *r) {
    struct server *s = r->srv;
    char ts[32];
    time_format_rfc3339(engine_now(&s->engine), ts);
    web_reply_json(r, 200,
                   json_pack("{s:s, s:{s:s, s:s, s:s, s:I, s:I}}", "now", ts, "server",
                             "description", "fabrik", "faktory_version", "1.10.0",
                             "fabrik_version", FABRIK_VERSION, "connections",
                             (json_int_t)s->open_connections, "command_count",
                             (json_int_t)s->command_count));
}

/* ---- routing ---------------------------------------------------------------------------- */

/* Reads the body into r (NUL-terminated). */
static void read_body(struct web_request *r) {
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    r->body_len = evbuffer_get_length(in);
    r->body = xmalloc(r->body_len + 1);
    evbuffer_remove(in, r->body, r->body_len);
    r->body[r->body_len] = '\0';
}

/* Takes the proxy prefix from X-Script-Name into root, and removes it from path when the
 * proxy left it there (a proxy may forward /fabrik/queues or, stripping it, /queues). */
static const char *strip_prefix(struct evhttp_request *req, const char *path, char *root,
                                size_t rootlen) {
    root[0] = '\0';
    const char *prefix = evhttp_find_header(evhttp_request_get_input_headers(req),
                                            "X-Script-Name");
    if (!prefix || prefix[0] != '/')
        return path;
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    /* The prefix is written into HTML attributes; refuse text that could end one. */
    if (n >= rootlen || strpbrk(prefix, "\"'<>& "))
        return path;
    if (n > 1) {
        memcpy(root, prefix, n);
        root[n] = '\0';
    }
    if (n > 1 && strncmp(path, prefix, n) == 0 && (path[n] == '/' || path[n] == '\0'))
        return path[n] ? path + n : "/";
    return path;
}

/* Replies 405 unless the request is a GET or HEAD; returns whether it is. */
static bool get_only(struct web_request *r) {
    if (r->method == EVHTTP_REQ_GET || r->method == EVHTTP_REQ_HEAD)
        return true;
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Allow", "GET, HEAD");
    web_reply_error(r, 405, "%s accepts only GET and HEAD", r->path);
    return false;
}

static void dispatch(struct web_request *r) {
    const char *path = r->path;
    if (strncmp(path, "/static/", 8) == 0) {
        if (get_only(r))
            serve_static(r, path + 8);
        return;
    }
    if (strcmp(path, "/health") == 0) {
        if (get_only(r))
            serve_health(r);
        return;
    }
    if (!check_auth(r->srv, r->req) || !check_same_origin(r->req))
        return;
    if (strncmp(path, "/api/", 5) == 0)
        api_route(r);
    else if (!get_only(r))
        return;
    else if (strcmp(path, "/stats") == 0)
        web_reply_json(r, 200, server_info_document(r->srv));
    else if (strcmp(path, "/metrics") == 0)
        api_metrics(r);
    else
        serve_page(r);
}

static void request_cb(struct evhttp_request *req, void *arg) {
    struct server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw_path = evhttp_uri_get_path(uri);
    char *path = evhttp_uridecode(raw_path && raw_path[0] ? raw_path : "/", 0, NULL);
    char root[256];
    struct web_request r = {.srv = s, .req = req, .method = evhttp_request_get_command(req)};
    r.path = strip_prefix(req, path, root, sizeof root);
    r.root = root;
    TAILQ_INIT(&r.query);
    const char *query = evhttp_uri_get_query(uri);
    if (query && evhttp_parse_query_str(query, &r.query) != 0) {
        web_reply_error(&r, 400, "the query string is not valid URL encoding");
    } else if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > MAX_BODY_BYTES) {
        web_reply_error(&r, 413, "the request body is larger than %d bytes", MAX_BODY_BYTES);
    } else {
        read_body(&r);
        log_debug("http_request", "method=%d path=%s", (int)r.method, r.path);
        dispatch(&r);
    }
    evhttp_clear_headers(&r.query);
    free(r.body);
    free(path);
}

static struct bufferevent *tls_bev_cb(struct event_base *base, void *arg) {
    struct server *s = arg;
    if (!s->tls_ctx)
        return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    return bufferevent_openssl_socket_new(base, -1, SSL_new(s->tls_ctx),
                                          BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

int web_start(struct server *s, char *err, size_t errlen) {
    char host[256];
    int port;
    if (config_parse_binding(s->cfg.web_bind, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "invalid web binding \"%s\": expected host:port", s->cfg.web_bind);
        return -1;
    }
    if (port == 0)
        return 0;
    struct web *w = xcalloc(1, sizeof *w);
    w->http = evhttp_new(s->base);
    evhttp_set_gencb(w->http, request_cb, s);
    evhttp_set_max_body_size(w->http, READ_BODY_BYTES);
    evhttp_set_max_headers_size(w->http, MAX_HEADER_BYTES);
    evhttp_set_timeout(w->http, HTTP_TIMEOUT_SECONDS);
    /* Every method reaches the handlers, which reply 405 with an Allow header; libevent would
     * reply 501 to the methods it was not told about. */
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_bevcb(w->http, tls_bev_cb, s);
    w->socket = evhttp_bind_socket_with_handle(w->http, host[0] ? host : "0.0.0.0",
                                               (ev_uint16_t)port);
    s->web = w;
    if (!w->socket) {
        snprintf(err, errlen, "cannot listen on web binding %s", s->cfg.web_bind);
        return -1;
    }
    return 0;
}

void web_stop(struct server *s) {
    if (!s->web)
        return;
    evhttp_free(s->web->http);
    free(s->web);
    s->web = NULL;
}
