/* Requests to fabrik's HTTP JSON API (docs/http-api.md) through libcurl. */
#ifndef FABRIKCTL_HTTP_H
#define FABRIKCTL_HTTP_H

#include <jansson.h>

/* Default limit of one request, connection included. */
#define HTTP_TIMEOUT_SECONDS 10L

/* Result classes, mapped by the caller to exit codes. */
enum http_status {
    HTTP_OK = 0,
    HTTP_SERVER_ERROR,
    HTTP_AUTH_ERROR,
    HTTP_CONNECT_ERROR,
    HTTP_URL_ERROR,       /* base_url is not an http:// or https:// URL */
};

struct http_client {
    const char *base_url;   /* e.g. "http://127.0.0.1:7420"; a trailing slash is ignored */
    const char *password;   /* HTTP basic auth password, or NULL */
    const char *ca_file;    /* CA file for https URLs, or NULL */
    long timeout_seconds;   /* limit of the whole request; 0 means HTTP_TIMEOUT_SECONDS */
    char error[512];        /* message of the last failure */
};

/* Sends a GET (body NULL) or a POST with a JSON body to base_url + path and parses the JSON
 * response into *out (caller owns it). */
enum http_status http_request(struct http_client *http, const char *path, const json_t *body,
                              json_t **out);

/* Percent-encodes text for a query string or a path segment. Caller frees. */
char *http_escape(const char *text);

#endif
