/* One FWP connection: TCP or TLS socket, RESP reply reader, HI/HELLO handshake with the
 * password challenge, and reconnecting with capped exponential backoff. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Replies larger than this are treated as a protocol error rather than buffered. */
#define MAX_REPLY_BYTES (256u << 20)

/* ---- small helpers ----------------------------------------------------------------------- */

const char *fabrik_strerror(int code) {
    switch (code) {
    case FABRIK_OK: return "success";
    case FABRIK_EINVAL: return "invalid argument";
    case FABRIK_ENOMEM: return "out of memory";
    case FABRIK_ECONNECT: return "connection failed or lost";
    case FABRIK_ETIMEDOUT: return "timed out waiting for the server";
    case FABRIK_ETLS: return "TLS failure";
    case FABRIK_EAUTH: return "authentication failed";
    case FABRIK_EPROTOCOL: return "unexpected reply from the server";
    case FABRIK_ESERVER: return "the server returned an error";
    case FABRIK_ENOTUNIQUE: return "job not unique";
    case FABRIK_ECODED: return "the server returned a coded error";
    case FABRIK_ESTATE: return "not allowed in the current state";
    default: return "unknown error code";
    }
}

void fabrik_free(void *ptr) {
    free(ptr);
}

double fc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void fc_sleep_ms(int ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

uint64_t fc_random64(void) {
    uint64_t value = 0;
    if (RAND_bytes((unsigned char *)&value, sizeof value) != 1) {
        /* RAND_bytes fails only when OpenSSL cannot seed; jitter and jids then use a weaker
         * mix of the clock and the address of a local variable. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        value = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
    }
    return value;
}

void fc_backoff_sleep(const struct fc_settings *cfg, int attempt) {
    long delay = cfg->backoff_initial_ms;
    for (int i = 0; i < attempt && delay < cfg->backoff_max_ms; i++)
        delay *= 2;
    if (delay > cfg->backoff_max_ms)
        delay = cfg->backoff_max_ms;
    /* Jitter: a random delay between half and all of the computed one, so that many clients
     * that lost the same server do not reconnect in lockstep. */
    long half = delay / 2;
    long jittered = half + (half > 0 ? (long)(fc_random64() % (uint64_t)(half + 1)) : 0);
    fc_sleep_ms((int)jittered);
}

int fc_set_error(struct fabrik_client *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    return code;
}

const char *fabrik_client_error(const struct fabrik_client *client) {
    return client ? client->error : "no client";
}

unsigned fabrik_client_reconnects(const struct fabrik_client *client) {
    return client ? client->reconnects : 0;
}

/* ---- settings ---------------------------------------------------------------------------- */

void fabrik_options_init(struct fabrik_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->connect_timeout_ms = 5000;
    opts->io_timeout_ms = 10000;
    opts->reconnect_attempts = 5;
    opts->backoff_initial_ms = 100;
    opts->backoff_max_ms = 5000;
}

void fc_settings_clear(struct fc_settings *cfg) {
    fabrik_url_clear(&cfg->url);
    free(cfg->password);
    free(cfg->ca_file);
    free(cfg->wid);
    free(cfg->hostname);
    for (size_t i = 0; cfg->labels && cfg->labels[i]; i++)
        free(cfg->labels[i]);
    free(cfg->labels);
    memset(cfg, 0, sizeof *cfg);
}

static int copy_labels(struct fc_settings *cfg, const char *const *labels) {
    size_t n = 0;
    while (labels && labels[n])
        n++;
    cfg->labels = calloc(n + 1, sizeof *cfg->labels);
    if (!cfg->labels)
        return FABRIK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cfg->labels[i] = strdup(labels[i]);
        if (!cfg->labels[i])
            return FABRIK_ENOMEM;
    }
    return 0;
}

int fc_settings_copy(struct fc_settings *cfg, const struct fabrik_options *opts, char *err,
                     size_t errlen) {
    struct fabrik_options defaults;
    if (!opts) {
        fabrik_options_init(&defaults);
        opts = &defaults;
    }
    memset(cfg, 0, sizeof *cfg);

    const char *url = opts->url ? opts->url : fabrik_url_from_env();
    if (!url) {
        snprintf(err, errlen, "FAKTORY_PROVIDER must name a set environment variable that "
                              "holds the server URL");
        return FABRIK_EINVAL;
    }
    if (fabrik_url_parse(url, &cfg->url) != 0) {
        snprintf(err, errlen, "invalid server URL \"%s\": expected tcp://[:password@]host[:port]"
                              " or tcp+tls://...", url);
        return FABRIK_EINVAL;
    }
    const char *password = opts->password ? opts->password : cfg->url.password;
    cfg->password = fc_strdup(password);
    cfg->ca_file = fc_strdup(opts->ca_file);
    cfg->tls_skip_verify = opts->tls_skip_verify;
    cfg->wid = fc_strdup(opts->wid && *opts->wid ? opts->wid : NULL);
    char host[256] = "localhost";
    if (!opts->hostname && gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "localhost");
    cfg->hostname = strdup(opts->hostname ? opts->hostname : host);
    if (!cfg->hostname || copy_labels(cfg, opts->labels) != 0) {
        fc_settings_clear(cfg);
        snprintf(err, errlen, "out of memory");
        return FABRIK_ENOMEM;
    }
    cfg->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
    cfg->io_timeout_ms = opts->io_timeout_ms > 0 ? opts->io_timeout_ms : 10000;
    cfg->reconnect_attempts = opts->reconnect_attempts >= 0 ? opts->reconnect_attempts : 0;
    cfg->backoff_initial_ms = opts->backoff_initial_ms > 0 ? opts->backoff_initial_ms : 100;
    cfg->backoff_max_ms = opts->backoff_max_ms >= cfg->backoff_initial_ms
                              ? opts->backoff_max_ms : cfg->backoff_initial_ms;
    return 0;
}

/* ---- TCP and TLS ------------------------------------------------------------------------- */

static int wait_fd(int fd, short events, int timeout_ms) {
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int rc = poll(&pfd, 1, timeout_ms);
        if (rc > 0)
            return 0;
        if (rc == 0)
            return FABRIK_ETIMEDOUT;
        if (errno != EINTR)
            return FABRIK_ECONNECT;
    }
}

static int connect_address(struct fabrik_client *c, const struct addrinfo *ai, int timeout_ms) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    if (fd < 0)
        return -1;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (wait_fd(fd, POLLOUT, timeout_ms) != 0) {
            errno = ETIMEDOUT;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
            rc = 0;
        } else {
            errno = soerr ? soerr : errno;
        }
    }
    if (rc != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    /* Blocking I/O from here on: every read waits in poll() with the I/O timeout first. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = c->cfg.io_timeout_ms / 1000,
                         .tv_usec = (c->cfg.io_timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static int tcp_connect(struct fabrik_client *c) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", c->cfg.url.port);
    int gai = getaddrinfo(c->cfg.url.host, port, &hints, &res);
    if (gai != 0)
        return fc_set_error(c, FABRIK_ECONNECT, "cannot resolve %s: %s", c->cfg.url.host,
                            gai_strerror(gai));
    int saved = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        c->fd = connect_address(c, ai, c->cfg.connect_timeout_ms);
        if (c->fd >= 0)
            break;
        saved = errno;
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return fc_set_error(c, saved == ETIMEDOUT ? FABRIK_ETIMEDOUT : FABRIK_ECONNECT,
                            "cannot connect to %s:%d: %s", c->cfg.url.host, c->cfg.url.port,
                            strerror(saved));
    return 0;
}

static int tls_error(struct fabrik_client *c, const char *context) {
    unsigned long e = ERR_get_error();
    char detail[256] = "no detail";
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    return fc_set_error(c, FABRIK_ETLS, "%s: %s", context, detail);
}

static int tls_context(struct fabrik_client *c) {
    if (c->ssl_ctx)
        return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return tls_error(c, "cannot create a TLS context");
    /* Faktory requires TLS 1.2 or later on its port. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (c->cfg.tls_skip_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        int ok = c->cfg.ca_file ? SSL_CTX_load_verify_locations(ctx, c->cfg.ca_file, NULL)
                                : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            SSL_CTX_free(ctx);
            return tls_error(c, c->cfg.ca_file ? "cannot load the CA file" :
                                                 "cannot load the system trust store");
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    c->ssl_ctx = ctx;
    return 0;
}

static bool host_is_ip(const char *host) {
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static int tls_handshake(struct fabrik_client *c) {
    int rc = tls_context(c);
    if (rc != 0)
        return rc;
    SSL *ssl = SSL_new(c->ssl_ctx);
    if (!ssl)
        return tls_error(c, "cannot create a TLS session");
    c->ssl = ssl;
    SSL_set_fd(ssl, c->fd);
    const char *host = c->cfg.url.host;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    if (host_is_ip(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(param, host);
    } else {
        SSL_set_tlsext_host_name(ssl, host);
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    }

    struct timeval tv = {.tv_sec = c->cfg.connect_timeout_ms / 1000,
                         .tv_usec = (c->cfg.connect_timeout_ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int ok = SSL_connect(ssl);
    struct timeval none = {0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    if (ok != 1) {
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
            ERR_clear_error();
            return fc_set_error(c, FABRIK_ETLS, "TLS certificate of %s rejected: %s", host,
                                X509_verify_cert_error_string(verify));
        }
        return tls_error(c, "TLS handshake failed");
    }
    return 0;
}

void fc_disconnect(struct fabrik_client *c) {
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->len = 0;
}

/* ---- reading and writing ----------------------------------------------------------------- */

/* SSL_write uses write(2), which raises SIGPIPE when the peer has gone. The signal is blocked
 * in this thread for the call, and a SIGPIPE that became pending is consumed before it is
 * unblocked, so the process disposition is never touched. */
static int tls_write_all(struct fabrik_client *c, const char *data, size_t len) {
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigset_t pending;
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);

    int rc = 0;
    while (len > 0) {
        int n = SSL_write(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0) {
            ERR_clear_error();
            rc = fc_set_error(c, FABRIK_ECONNECT, "TLS write failed: connection lost");
            break;
        }
        data += n;
        len -= (size_t)n;
    }

    if (!was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static int write_all(struct fabrik_client *c, const char *data, size_t len) {
    if (c->ssl)
        return tls_write_all(c, data, len);
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fc_set_error(c, FABRIK_ECONNECT, "write failed: %s",
                                n < 0 ? strerror(errno) : "connection closed");
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more bytes into the buffer, waiting until the absolute deadline (fc_now() seconds). */
static int read_more(struct fabrik_client *c, double deadline) {
    if (c->cap - c->len < 4096) {
        size_t cap = c->cap ? c->cap * 2 : 16384;
        char *buf = realloc(c->buf, cap);
        if (!buf)
            return fc_set_error(c, FABRIK_ENOMEM, "out of memory reading a reply");
        c->buf = buf;
        c->cap = cap;
    }
    if (!c->ssl || SSL_pending(c->ssl) == 0) {
        int left = (int)((deadline - fc_now()) * 1000.0);
        int rc = wait_fd(c->fd, POLLIN, left > 0 ? left : 0);
        if (rc == FABRIK_ETIMEDOUT)
            return fc_set_error(c, rc, "no reply from the server within %d ms",
                                c->cfg.io_timeout_ms);
        if (rc != 0)
            return fc_set_error(c, rc, "poll failed: %s", strerror(errno));
    }
    size_t room = c->cap - c->len - 1;
    ssize_t n;
    if (c->ssl) {
        int r = SSL_read(c->ssl, c->buf + c->len, room > INT32_MAX ? INT32_MAX : (int)room);
        n = r;
        if (r <= 0)
            ERR_clear_error();
    } else {
        do {
            n = recv(c->fd, c->buf + c->len, room, 0);
        } while (n < 0 && errno == EINTR);
    }
    if (n <= 0)
        return fc_set_error(c, FABRIK_ECONNECT, "the server closed the connection");
    c->len += (size_t)n;
    return 0;
}

/* Returns the length of the first line (without CRLF) once it is complete, reading as needed. */
static int read_line(struct fabrik_client *c, double deadline, size_t *line_len) {
    size_t scanned = 0;
    for (;;) {
        char *nl = c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            *line_len = n > 0 && c->buf[n - 1] == '\r' ? n - 1 : n;
            return 0;
        }
        scanned = c->len;
        if (c->len > MAX_REPLY_BYTES)
            return fc_set_error(c, FABRIK_EPROTOCOL, "reply line longer than %u bytes",
                                MAX_REPLY_BYTES);
        int rc = read_more(c, deadline);
        if (rc != 0)
            return rc;
    }
}

static void consume(struct fabrik_client *c, size_t n) {
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static char *copy_bytes(const char *src, size_t len) {
    char *out = malloc(len + 1);
    if (out) {
        memcpy(out, src, len);
        out[len] = '\0';
    }
    return out;
}

static int read_bulk(struct fabrik_client *c, double deadline, size_t header_len,
                     struct fc_reply *reply) {
    char *end = NULL;
    long long size = strtoll(c->buf + 1, &end, 10);
    if (end != c->buf + header_len || size < -1 || size > (long long)MAX_REPLY_BYTES)
        return fc_set_error(c, FABRIK_EPROTOCOL, "invalid bulk string header");
    size_t header_total = header_len + (c->buf[header_len] == '\r' ? 2 : 1);
    if (size == -1) {
        consume(c, header_total);
        reply->kind = FC_NULL;
        return 0;
    }
    size_t need = header_total + (size_t)size + 2;
    while (c->len < need) {
        int rc = read_more(c, deadline);
        if (rc != 0)
            return rc;
    }
    reply->kind = FC_BULK;
    reply->len = (size_t)size;
    reply->text = copy_bytes(c->buf + header_total, (size_t)size);
    consume(c, need);
    return reply->text ? 0 : fc_set_error(c, FABRIK_ENOMEM, "out of memory");
}

/* Reads one RESP reply within the I/O timeout. */
static int read_reply(struct fabrik_client *c, struct fc_reply *reply) {
    memset(reply, 0, sizeof *reply);
    double deadline = fc_now() + c->cfg.io_timeout_ms / 1000.0;
    size_t line_len = 0;
    int rc = read_line(c, deadline, &line_len);
    if (rc != 0)
        return rc;
    if (line_len == 0)
        return fc_set_error(c, FABRIK_EPROTOCOL, "empty reply line");

    char type = c->buf[0];
    if (type == '$')
        return read_bulk(c, deadline, line_len, reply);
    switch (type) {
    case '+': reply->kind = FC_SIMPLE; break;
    case '-': reply->kind = FC_ERROR; break;
    case ':': reply->kind = FC_INTEGER; break;
    default:
        return fc_set_error(c, FABRIK_EPROTOCOL, "unexpected reply type '%c'", type);
    }
    reply->text = copy_bytes(c->buf + 1, line_len - 1);
    reply->len = line_len - 1;
    size_t nl = (size_t)((char *)memchr(c->buf, '\n', c->len) - c->buf);
    consume(c, nl + 1);
    return reply->text ? 0 : fc_set_error(c, FABRIK_ENOMEM, "out of memory");
}

/* Turns an error reply into a code: "-ERR x" is FABRIK_ESERVER with the text "x",
 * "-NOTUNIQUE x" FABRIK_ENOTUNIQUE, any other "-CODE x" FABRIK_ECODED with the whole text. */
static int error_reply(struct fabrik_client *c, const char *text) {
    if (strncmp(text, "ERR ", 4) == 0 || strcmp(text, "ERR") == 0)
        return fc_set_error(c, FABRIK_ESERVER, "%s", text[3] ? text + 4 : "");
    if (strncmp(text, "NOTUNIQUE", 9) == 0 && (text[9] == ' ' || text[9] == '\0'))
        return fc_set_error(c, FABRIK_ENOTUNIQUE, "%s", text);
    return fc_set_error(c, FABRIK_ECODED, "%s", text);
}

/* ---- handshake --------------------------------------------------------------------------- */

static void password_hash(const char *password, const char *salt, long rounds, char out[65]) {
    unsigned char digest[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, password, strlen(password));
    EVP_DigestUpdate(ctx, salt, strlen(salt));
    EVP_DigestFinal_ex(ctx, digest, NULL);
    for (long i = 1; i < rounds; i++) {
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        EVP_DigestUpdate(ctx, digest, sizeof digest);
        EVP_DigestFinal_ex(ctx, digest, NULL);
    }
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static json_t *hello_document(struct fabrik_client *c, json_t *hi) {
    json_t *hello = json_object();
    json_object_set_new(hello, "hostname", json_string(c->cfg.hostname));
    if (c->cfg.wid)
        json_object_set_new(hello, "wid", json_string(c->cfg.wid));
    json_object_set_new(hello, "pid", json_integer((json_int_t)getpid()));
    json_t *labels = json_array();
    for (size_t i = 0; c->cfg.labels && c->cfg.labels[i]; i++)
        json_array_append_new(labels, json_string(c->cfg.labels[i]));
    json_object_set_new(hello, "labels", labels);
    json_object_set_new(hello, "v", json_integer(2));

    const char *salt = json_string_value(json_object_get(hi, "s"));
    if (salt && c->cfg.password) {
        json_int_t rounds = json_integer_value(json_object_get(hi, "i"));
        char hash[65];
        password_hash(c->cfg.password, salt, rounds, hash);
        json_object_set_new(hello, "pwdhash", json_string(hash));
    }
    return hello;
}

static int read_greeting(struct fabrik_client *c, json_t **hi) {
    struct fc_reply reply;
    int rc = read_reply(c, &reply);
    if (rc != 0)
        return rc;
    if (reply.kind != FC_SIMPLE || strncmp(reply.text, "HI ", 3) != 0) {
        free(reply.text);
        return fc_set_error(c, FABRIK_EPROTOCOL, "the server did not greet with +HI");
    }
    *hi = json_loads(reply.text + 3, 0, NULL);
    free(reply.text);
    if (!json_is_object(*hi)) {
        json_decref(*hi);
        return fc_set_error(c, FABRIK_EPROTOCOL, "the server's +HI greeting is not JSON");
    }
    return 0;
}

static int handshake(struct fabrik_client *c) {
    json_t *hi = NULL;
    int rc = read_greeting(c, &hi);
    if (rc != 0)
        return rc;
    if (json_object_get(hi, "s") && !c->cfg.password) {
        json_decref(hi);
        return fc_set_error(c, FABRIK_EAUTH, "the server requires a password: put it in the "
                                             "URL (tcp://:password@host:port) or the options");
    }
    json_t *hello = hello_document(c, hi);
    json_decref(hi);
    char *body = json_dumps(hello, JSON_COMPACT);
    json_decref(hello);
    char *line = body ? fc_printf("HELLO %s\r\n", body) : NULL;
    free(body);
    if (!line)
        return fc_set_error(c, FABRIK_ENOMEM, "out of memory");
    rc = write_all(c, line, strlen(line));
    free(line);
    if (rc != 0)
        return rc;

    struct fc_reply reply;
    rc = read_reply(c, &reply);
    if (rc == FABRIK_ECONNECT)
        return fc_set_error(c, FABRIK_ECONNECT, "the server closed the connection during the "
                                                "handshake");
    if (rc != 0)
        return rc;
    if (reply.kind == FC_SIMPLE && strcmp(reply.text, "OK") == 0) {
        free(reply.text);
        return 0;
    }
    if (reply.kind == FC_ERROR) {
        bool password = strstr(reply.text, "password") != NULL;
        rc = error_reply(c, reply.text);
        free(reply.text);
        return password ? FABRIK_EAUTH : rc;
    }
    free(reply.text);
    return fc_set_error(c, FABRIK_EPROTOCOL, "unexpected reply to HELLO");
}

static int connect_once(struct fabrik_client *c) {
    int rc = tcp_connect(c);
    if (rc == 0 && c->cfg.url.tls)
        rc = tls_handshake(c);
    if (rc == 0) {
        int saved_timeout = c->cfg.io_timeout_ms;
        c->cfg.io_timeout_ms = c->cfg.connect_timeout_ms;
        rc = handshake(c);
        c->cfg.io_timeout_ms = saved_timeout;
    }
    if (rc != 0)
        fc_disconnect(c);
    return rc;
}

int fc_ensure_connected(struct fabrik_client *c) {
    if (c->fd >= 0)
        return 0;
    int rc = connect_once(c);
    /* Authentication and TLS verification failures do not heal by themselves. */
    for (int attempt = 0; rc != 0 && rc != FABRIK_EAUTH && rc != FABRIK_ETLS &&
                          attempt < c->cfg.reconnect_attempts && c->ever_connected;
         attempt++) {
        fc_backoff_sleep(&c->cfg, attempt);
        rc = connect_once(c);
    }
    if (rc == 0) {
        if (c->ever_connected)
            c->reconnects++;
        c->ever_connected = true;
    }
    return rc;
}

/* ---- public connection API --------------------------------------------------------------- */

int fc_client_new(struct fabrik_client **out, const struct fabrik_options *opts, char *err,
                  size_t errlen) {
    char scratch[FC_ERRMSG_SIZE];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    *out = NULL;
    struct fabrik_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return FABRIK_ENOMEM;
    }
    c->fd = -1;
    int rc = fc_settings_copy(&c->cfg, opts, err, errlen);
    if (rc != 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int fabrik_client_open(struct fabrik_client **out, const struct fabrik_options *opts,
                       char *errbuf, size_t errlen) {
    if (!out)
        return FABRIK_EINVAL;
    *out = NULL;
    struct fabrik_client *c;
    int rc = fc_client_new(&c, opts, errbuf, errlen);
    if (rc != 0)
        return rc;
    rc = fc_ensure_connected(c);
    if (rc != 0) {
        if (errbuf && errlen > 0)
            snprintf(errbuf, errlen, "%s", c->error);
        fabrik_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void fabrik_client_close(struct fabrik_client *client) {
    if (!client)
        return;
    if (client->fd >= 0)
        write_all(client, "END\r\n", 5);
    fc_disconnect(client);
    if (client->ssl_ctx)
        SSL_CTX_free(client->ssl_ctx);
    fc_settings_clear(&client->cfg);
    free(client->buf);
    free(client);
}

int fc_call(struct fabrik_client *c, const char *line, struct fc_reply *reply) {
    memset(reply, 0, sizeof *reply);
    if (strpbrk(line, "\r\n"))
        return fc_set_error(c, FABRIK_EINVAL, "a command must be one line");
    int rc = fc_ensure_connected(c);
    if (rc != 0)
        return rc;

    size_t len = strlen(line);
    char *framed = malloc(len + 3);
    if (!framed)
        return fc_set_error(c, FABRIK_ENOMEM, "out of memory");
    memcpy(framed, line, len);
    memcpy(framed + len, "\r\n", 3);
    rc = write_all(c, framed, len + 2);
    free(framed);
    if (rc == 0)
        rc = read_reply(c, reply);
    if (rc == FABRIK_ECONNECT || rc == FABRIK_ETIMEDOUT || rc == FABRIK_EPROTOCOL) {
        /* The stream position is unknown now, so the next call starts a fresh connection. */
        fc_disconnect(c);
        return rc;
    }
    if (rc != 0)
        return rc;
    if (reply->kind == FC_ERROR) {
        rc = error_reply(c, reply->text);
        free(reply->text);
        reply->text = NULL;
        return rc;
    }
    c->error[0] = '\0';
    return 0;
}

int fc_call_ok(struct fabrik_client *c, const char *line) {
    struct fc_reply reply;
    int rc = fc_call(c, line, &reply);
    if (rc != 0)
        return rc;
    bool ok = reply.kind == FC_SIMPLE && strcmp(reply.text, "OK") == 0;
    free(reply.text);
    return ok ? 0 : fc_set_error(c, FABRIK_EPROTOCOL, "expected +OK");
}

int fc_call_string(struct fabrik_client *c, const char *line, char **out) {
    struct fc_reply reply;
    int rc = fc_call(c, line, &reply);
    if (rc != 0)
        return rc;
    if (reply.kind == FC_NULL || reply.kind == FC_INTEGER) {
        free(reply.text);
        return fc_set_error(c, FABRIK_EPROTOCOL, "expected a string reply");
    }
    if (out)
        *out = reply.text;
    else
        free(reply.text);
    return 0;
}

int fabrik_command(struct fabrik_client *client, const char *line, char **reply) {
    if (!client || !line)
        return FABRIK_EINVAL;
    if (reply)
        *reply = NULL;
    struct fc_reply r;
    int rc = fc_call(client, line, &r);
    if (rc != 0)
        return rc;
    if (reply)
        *reply = r.text;
    else
        free(r.text);
    return 0;
}
