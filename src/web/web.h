/* The web port: an HTTP server (libevent's evhttp) on the same loop as FWP, serving the
 * embedded UI, the JSON API of docs/http-api.md, /stats, /health and /metrics. Handlers run
 * inside a loop iteration like FWP commands; a request that writes commits before it answers. */
#ifndef FABRIK_WEB_H
#define FABRIK_WEB_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct server;

/* Opens the web listener on cfg.web_bind unless its port is 0. Returns 0, or -1 with err. */
int web_start(struct server *s, char *err, size_t errlen);
/* Closes the listener and every HTTP connection. Accepts a server without a web port. */
void web_stop(struct server *s);

/* One HTTP request as the API handlers see it. */
struct web_request {
    struct server *srv;
    struct evhttp_request *req;
    enum evhttp_cmd_type method;
    const char *path;          /* decoded path without the X-Script-Name prefix or query */
    const char *root;          /* the X-Script-Name prefix, "" without a proxy */
    struct evkeyvalq query;    /* decoded query parameters */
    char *body;                /* request body, NUL-terminated (owned) */
    size_t body_len;
};

/* Sends a reply with body (borrowed); a HEAD request gets the headers only. */
void web_send(struct evhttp_request *req, int code, struct evbuffer *body);
/* Sends doc (stolen) as JSON with status code. */
void web_reply_json(struct web_request *r, int code, json_t *doc);
/* Sends {"error": message} with status code. */
void web_reply_error(struct web_request *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The JSON API (api.c): path starts with "/api/". */
void api_route(struct web_request *r);
/* The Prometheus text of /metrics (api.c). */
void api_metrics(struct web_request *r);

#endif
