/* FAKTORY_URL parsing and the environment lookup that Faktory clients share. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_PORT 7419

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Copies len bytes of src and decodes %XX escapes, as URL user information allows. Returns
 * NULL for a malformed escape or on allocation failure. */
static char *percent_decode(const char *src, size_t len) {
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] != '%') {
            out[n++] = src[i];
            continue;
        }
        if (i + 2 >= len) {
            free(out);
            return NULL;
        }
        int high = hex_value(src[i + 1]);
        int low = hex_value(src[i + 2]);
        if (high < 0 || low < 0) {
            free(out);
            return NULL;
        }
        out[n++] = (char)(high * 16 + low);
        i += 2;
    }
    out[n] = '\0';
    return out;
}

static int parse_port(const char *text, size_t len, int *port) {
    if (len == 0 || len > 5)
        return FABRIK_EINVAL;
    int value = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)text[i]))
            return FABRIK_EINVAL;
        value = value * 10 + (text[i] - '0');
    }
    if (value < 1 || value > 65535)
        return FABRIK_EINVAL;
    *port = value;
    return 0;
}

/* Splits "host[:port]" or "[v6]:port" into out->host and out->port. */
static int parse_host_port(const char *start, size_t len, struct fabrik_url *out) {
    const char *end = start + len;
    const char *host = start;
    size_t host_len;
    const char *rest;
    if (len > 0 && *start == '[') {
        const char *close = memchr(start, ']', len);
        if (!close)
            return FABRIK_EINVAL;
        host = start + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
        if (rest < end && *rest != ':')
            return FABRIK_EINVAL;
    } else {
        const char *colon = memchr(start, ':', len);
        host_len = colon ? (size_t)(colon - start) : len;
        rest = start + host_len;
    }
    if (host_len == 0)
        return FABRIK_EINVAL;
    for (size_t i = 0; i < host_len; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch <= ' ' || ch == '/' || ch == '@' || ch == '?' || ch == '#')
            return FABRIK_EINVAL;
    }

    out->port = DEFAULT_PORT;
    if (rest < end) {
        /* rest starts with ':' here. */
        if (parse_port(rest + 1, (size_t)(end - rest - 1), &out->port) != 0)
            return FABRIK_EINVAL;
    }
    out->host = malloc(host_len + 1);
    if (!out->host)
        return FABRIK_ENOMEM;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    return 0;
}

int fabrik_url_parse(const char *url, struct fabrik_url *out) {
    if (!url || !out)
        return FABRIK_EINVAL;
    memset(out, 0, sizeof *out);

    const char *authority;
    if (strncmp(url, "tcp://", 6) == 0) {
        authority = url + 6;
    } else if (strncmp(url, "tcp+tls://", 10) == 0) {
        authority = url + 10;
        out->tls = true;
    } else {
        return FABRIK_EINVAL;
    }

    /* The authority ends at a path, which Faktory URLs do not use: only "/" is accepted. */
    size_t len = strcspn(authority, "/?#");
    if (authority[len] != '\0' && strcmp(authority + len, "/") != 0)
        return FABRIK_EINVAL;

    const char *at = NULL;
    for (size_t i = 0; i < len; i++) {
        if (authority[i] == '@')
            at = authority + i;
    }
    const char *hostpart = authority;
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        if (colon) {
            out->password = percent_decode(colon + 1, (size_t)(at - colon - 1));
            if (!out->password)
                return FABRIK_EINVAL;
        }
        hostpart = at + 1;
    }

    int rc = parse_host_port(hostpart, len - (size_t)(hostpart - authority), out);
    if (rc != 0)
        fabrik_url_clear(out);
    return rc;
}

void fabrik_url_clear(struct fabrik_url *url) {
    if (!url)
        return;
    free(url->host);
    free(url->password);
    memset(url, 0, sizeof *url);
}

const char *fabrik_url_from_env(void) {
    const char *provider = getenv("FAKTORY_PROVIDER");
    if (provider && *provider) {
        /* A URL in FAKTORY_PROVIDER is a common mistake; Faktory's Go client rejects it too. */
        if (strchr(provider, ':'))
            return NULL;
        const char *value = getenv(provider);
        return value && *value ? value : NULL;
    }
    const char *url = getenv("FAKTORY_URL");
    return url && *url ? url : FABRIK_DEFAULT_URL;
}

char *fc_strdup(const char *s) {
    return s ? strdup(s) : NULL;
}

char *fc_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        out = NULL;
    va_end(ap);
    return out;
}
