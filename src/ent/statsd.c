/* statsd configuration, DogStatsD line format, packets and the UDP exporter. */
#include "ent/statsd.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>

#include "config/config.h"
#include "engine/engine.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

#define MAX_NAMESPACE_BYTES 100
/* The global tags, joined by commas, end every line, so they must leave room in a packet. */
#define MAX_GLOBAL_TAG_BYTES 1024
#define MAX_LATENCY_QUEUES 1000
#define MAX_QUEUE_NAME_BYTES 128
/* Distinct counters (name and tags) summed between two flushes; a client that invents job
 * types faster than that only makes the exporter flush early. */
#define MAX_COUNTERS 10000
/* Room for the tags of one job metric: jobtype (cut to a whole tag of STATSD_MAX_TAG_BYTES),
 * queue (at most 128 bytes) and status. */
#define JOB_TAGS_BYTES 512
#define DROP_LOG_SECONDS 30.0

struct statsd_counter {
    char *key;        /* name, '|', tags */
    size_t name_len;
    int64_t value;    /* sum since the last flush */
    UT_hash_handle hh;
};

struct statsd {
    struct statsd_config cfg;
    char *global_tags;            /* cfg.tags joined by commas; "" when none */
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct statsd_packer packer;
    struct statsd_counter *counters;
    size_t ncounters;
    double next_gauges;           /* server clock; 0 until the first statsd_report */
    struct statsd_stats stats;
    uint64_t logged_drops;        /* lines_dropped at the last drop log line */
    double next_drop_log;         /* monotonic clock */
    int last_errno;               /* of the last failed send */
};

/* ---- configuration -------------------------------------------------------------------- */

static const char *const reserved_tag_names[] = {"host", "device", "source", "service"};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
                                                      const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool is_letter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* The characters after the first one of a DogStatsD tag: \w, '-', ':', '.' and '/'. */
static bool is_tag_char(char c) {
    return is_letter(c) || is_digit(c) || c == '_' || c == '-' || c == ':' || c == '.' ||
           c == '/';
}

const char *statsd_tag_problem(const char *tag) {
    if (!is_letter(tag[0]))
        return "a tag must start with a letter";
    for (const char *p = tag + 1; *p; p++) {
        if (!is_tag_char(*p))
            return "a tag may contain only letters, digits and the characters _ - : . /";
    }
    if (strlen(tag) > STATSD_MAX_TAG_BYTES)
        return "a tag may be at most 200 bytes long";
    size_t name_len = strcspn(tag, ":");
    for (size_t i = 0; i < sizeof reserved_tag_names / sizeof reserved_tag_names[0]; i++) {
        const char *reserved = reserved_tag_names[i];
        /* Datadog lower-cases tag names, so "Host" would collide with "host" too. */
        if (strlen(reserved) == name_len && strncasecmp(tag, reserved, name_len) == 0)
            return "host, device, source and service are reserved tag names";
    }
    return NULL;
}

static bool queue_name_valid(const char *name) {
    size_t len = strlen(name);
    if (len == 0 || len > MAX_QUEUE_NAME_BYTES)
        return false;
    for (const char *p = name; *p; p++) {
        if (!is_letter(*p) && !is_digit(*p) && *p != '.' && *p != '_' && *p != '-')
            return false;
    }
    return true;
}

/* Copies untrusted configuration text into out for an error message. */
static const char *sample(char out[4 * 64 + 1], const char *text) {
    return log_sample(out, text, strlen(text), 64);
}

/* Checks a "host:port" location whose port is 1..65535 and whose host is not empty. */
static bool location_valid(const char *location) {
    char host[256];
    int port = 0;
    return config_parse_binding(location, host, sizeof host, &port) == 0 && host[0] &&
           port > 0;
}

static int parse_env_url(const char *url, struct statsd_config *out, char *err, size_t errlen) {
    static const char scheme[] = "udp://";
    char shown[4 * 64 + 1];
    const char *rest = url + sizeof scheme - 1;
    if (strncasecmp(url, scheme, sizeof scheme - 1) != 0 || !location_valid(rest))
        return fail(err, errlen,
                    "%s \"%s\" is invalid: it must be udp://host:port with a port from 1 to "
                    "65535, as in udp://127.0.0.1:8125; fabrik sends statsd metrics over UDP "
                    "only",
                    STATSD_ENV_URL, sample(shown, url));
    out->location = xstrdup(rest);
    out->location_from_env = true;
    return 0;
}

static int parse_location(const json_t *table, struct statsd_config *out, char *err,
                          size_t errlen) {
    const json_t *v = json_object_get(table, "location");
    if (out->location_from_env)
        return 0;
    if (!v)
        return fail(err, errlen,
                    "[statsd] location is required: set it to the statsd server's host:port, as "
                    "in location = \"127.0.0.1:8125\", or set %s",
                    STATSD_ENV_URL);
    char shown[4 * 64 + 1];
    if (!json_is_string(v) || !location_valid(json_string_value(v)))
        return fail(err, errlen,
                    "[statsd] location %s is invalid: it must be a string host:port with a port "
                    "from 1 to 65535, as in location = \"127.0.0.1:8125\"",
                    json_is_string(v) ? sample(shown, json_string_value(v)) : "(not a string)");
    out->location = xstrdup(json_string_value(v));
    return 0;
}

static bool namespace_valid(const char *text) {
    size_t len = strlen(text);
    if (len == 0)
        return true;
    if (len > MAX_NAMESPACE_BYTES || !is_letter(text[0]))
        return false;
    for (const char *p = text; *p; p++) {
        if (!is_letter(*p) && !is_digit(*p) && *p != '_' && *p != '.')
            return false;
    }
    return true;
}

static int parse_namespace(const json_t *table, struct statsd_config *out, char *err,
                           size_t errlen) {
    const json_t *v = json_object_get(table, "namespace");
    if (!v) {
        out->metric_namespace = xstrdup(STATSD_DEFAULT_NAMESPACE);
        return 0;
    }
    char shown[4 * 64 + 1];
    if (!json_is_string(v) || !namespace_valid(json_string_value(v)))
        return fail(err, errlen,
                    "[statsd] namespace %s is invalid: it must be a string of at most %d bytes "
                    "that starts with a letter and contains only letters, digits, _ and ., as in "
                    "namespace = \"faktory.\" (or \"\" for no prefix)",
                    json_is_string(v) ? sample(shown, json_string_value(v)) : "(not a string)",
                    MAX_NAMESPACE_BYTES);
    out->metric_namespace = xstrdup(json_string_value(v));
    return 0;
}

static int parse_tags(const json_t *table, struct statsd_config *out, char *err,
                      size_t errlen) {
    const json_t *list = json_object_get(table, "tags");
    if (!list)
        return 0;
    if (!json_is_array(list))
        return fail(err, errlen,
                    "[statsd] tags must be an array of strings, as in "
                    "tags = [\"env:production\", \"region:us-east-1a\"]");
    size_t total = 0;
    out->tags = xcalloc(json_array_size(list) + 1, sizeof *out->tags);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *v = json_array_get(list, i);
        if (!json_is_string(v))
            return fail(err, errlen,
                        "[statsd] tags: element %zu is not a string; tags must be strings such "
                        "as \"env:production\"",
                        i + 1);
        const char *tag = json_string_value(v);
        const char *problem = statsd_tag_problem(tag);
        char shown[4 * 64 + 1];
        if (problem)
            return fail(err, errlen, "[statsd] tags: \"%s\" is invalid: %s", sample(shown, tag),
                        problem);
        total += strlen(tag) + 1;
        if (total > MAX_GLOBAL_TAG_BYTES)
            return fail(err, errlen,
                        "[statsd] tags: together the tags exceed %d bytes; they are added to "
                        "every metric, so keep fewer or shorter ones",
                        MAX_GLOBAL_TAG_BYTES);
        out->tags[out->ntags++] = xstrdup(tag);
    }
    return 0;
}

static int parse_buffer_size(const json_t *table, struct statsd_config *out, char *err,
                             size_t errlen) {
    const json_t *v = json_object_get(table, "bufferSize");
    out->buffer_size = STATSD_DEFAULT_BUFFER_SIZE;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > STATSD_MAX_BUFFER_SIZE)
        return fail(err, errlen,
                    "[statsd] bufferSize must be an integer from 1 to %d (metrics per UDP "
                    "packet), as in bufferSize = %d",
                    STATSD_MAX_BUFFER_SIZE, STATSD_DEFAULT_BUFFER_SIZE);
    out->buffer_size = (int)json_integer_value(v);
    return 0;
}

static bool latency_queue_listed(const struct statsd_config *cfg, const char *name) {
    for (size_t i = 0; i < cfg->nlatency_queues; i++) {
        if (strcmp(cfg->latency_queues[i], name) == 0)
            return true;
    }
    return false;
}

static int parse_latency_queues(const json_t *table, struct statsd_config *out, char *err,
                                size_t errlen) {
    const json_t *list = json_object_get(table, "queueLatency");
    if (!list)
        return 0;
    if (!json_is_array(list) || json_array_size(list) > MAX_LATENCY_QUEUES)
        return fail(err, errlen,
                    "[statsd] queueLatency must be an array of at most %d queue names, as in "
                    "queueLatency = [\"critical\", \"default\"]",
                    MAX_LATENCY_QUEUES);
    out->latency_queues = xcalloc(json_array_size(list) + 1, sizeof *out->latency_queues);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *v = json_array_get(list, i);
        char shown[4 * 64 + 1];
        if (!json_is_string(v) || !queue_name_valid(json_string_value(v)))
            return fail(err, errlen,
                        "[statsd] queueLatency: element %zu (%s) is not a queue name; queue "
                        "names are strings that match [a-zA-Z0-9._-]+ and have at most %d bytes",
                        i + 1,
                        json_is_string(v) ? sample(shown, json_string_value(v)) : "not a string",
                        MAX_QUEUE_NAME_BYTES);
        if (!latency_queue_listed(out, json_string_value(v)))
            out->latency_queues[out->nlatency_queues++] = xstrdup(json_string_value(v));
    }
    return 0;
}

static int check_keys(const json_t *table, char *err, size_t errlen) {
    static const char *const known[] = {"location", "namespace", "tags", "bufferSize",
                                        "queueLatency"};
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)table, key, v) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= strcmp(key, known[i]) == 0;
        char shown[4 * 64 + 1];
        if (!ok)
            return fail(err, errlen,
                        "[statsd] unknown key \"%s\"; the keys are location, namespace, tags, "
                        "bufferSize and queueLatency",
                        sample(shown, key));
    }
    return 0;
}

int statsd_config_parse(const json_t *document, const char *env_url, struct statsd_config *out,
                        char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const json_t *table = document ? json_object_get(document, "statsd") : NULL;
    bool env_set = env_url && env_url[0];
    if (!table && !env_set)
        return 0;
    if (table && !json_is_object(table))
        return fail(err, errlen,
                    "[statsd] must be a table, as in [statsd] followed by "
                    "location = \"127.0.0.1:8125\"");
    /* The variable replaces only the location; the table's other keys still apply. */
    if (env_set && parse_env_url(env_url, out, err, errlen) != 0)
        return -1;
    /* Without the table every lookup below finds nothing (jansson accepts a NULL object). */
    if (check_keys(table, err, errlen) != 0 || parse_location(table, out, err, errlen) != 0 ||
        parse_namespace(table, out, err, errlen) != 0 || parse_tags(table, out, err, errlen) != 0 ||
        parse_buffer_size(table, out, err, errlen) != 0 ||
        parse_latency_queues(table, out, err, errlen) != 0)
        return -1;
    return 1;
}

static void free_strings(char **list, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void statsd_config_free(struct statsd_config *cfg) {
    free(cfg->location);
    free(cfg->metric_namespace);
    free_strings(cfg->tags, cfg->ntags);
    free_strings(cfg->latency_queues, cfg->nlatency_queues);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- line format and packets ---------------------------------------------------------- */

char *statsd_format_value(double value, char *out) {
    if (!isfinite(value))
        value = 0;
    if (fabs(value) >= 9e15) {
        snprintf(out, 32, "%.17g", value);
        return out;
    }
    if (value == floor(value)) {
        snprintf(out, 32, "%lld", (long long)value);
        return out;
    }
    snprintf(out, 32, "%.3f", value);
    char *end = out + strlen(out) - 1;
    while (end > out && *end == '0')
        *end-- = '\0';
    if (*end == '.')
        *end = '\0';
    if (strcmp(out, "-0") == 0)
        strcpy(out, "0");
    return out;
}

size_t statsd_format_line(char *out, size_t size, const char *metric_namespace, const char *name,
                          double value, const char *type, const char *tags,
                          const char *global_tags) {
    char number[32];
    bool has_tags = tags && tags[0];
    bool has_global = global_tags && global_tags[0];
    int n = snprintf(out, size, "%s%s:%s|%s%s%s%s%s", metric_namespace ? metric_namespace : "",
                     name, statsd_format_value(value, number), type,
                     has_tags || has_global ? "|#" : "", has_tags ? tags : "",
                     has_tags && has_global ? "," : "", has_global ? global_tags : "");
    if (n < 0 || (size_t)n >= size)
        return 0;
    return (size_t)n;
}

void statsd_packer_flush(struct statsd_packer *p) {
    if (p->lines == 0)
        return;
    p->send(p->ctx, p->data, p->len, p->lines);
    p->len = 0;
    p->lines = 0;
}

int statsd_packer_add(struct statsd_packer *p, const char *line, size_t len) {
    if (len == 0 || len >= sizeof p->data)
        return -1;
    if (p->lines > 0 && p->len + 1 + len > STATSD_PACKET_BYTES)
        statsd_packer_flush(p);
    if (p->lines > 0)
        p->data[p->len++] = '\n';
    memcpy(p->data + p->len, line, len);
    p->len += len;
    p->lines++;
    if (p->lines >= p->max_lines || p->len >= STATSD_PACKET_BYTES)
        statsd_packer_flush(p);
    return 0;
}

/* ---- the exporter ---------------------------------------------------------------------- */

/* Sends one packet without waiting: a full socket buffer drops it, because metrics must never
 * hold up the event loop. */
static void send_packet(void *ctx, const char *data, size_t len, int lines) {
    struct statsd *st = ctx;
    ssize_t n = sendto(st->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr *)&st->addr, st->addrlen);
    if (n < 0) {
        st->last_errno = errno;
        st->stats.packets_dropped++;
        st->stats.lines_dropped += (uint64_t)lines;
        return;
    }
    st->stats.packets_sent++;
    st->stats.lines_sent += (uint64_t)lines;
}

/* Logs lines dropped since the last such log line, at most every DROP_LOG_SECONDS unless
 * force. */
static void log_drops(struct statsd *st, bool force) {
    if (st->stats.lines_dropped == st->logged_drops)
        return;
    double now = time_mono();
    if (now < st->next_drop_log && !force)
        return;
    log_warn("statsd_dropped",
             "location=%s packets_dropped=%llu lines_dropped=%llu packets_sent=%llu "
             "error=\"%s\"",
             st->cfg.location, (unsigned long long)st->stats.packets_dropped,
             (unsigned long long)st->stats.lines_dropped,
             (unsigned long long)st->stats.packets_sent,
             st->last_errno ? strerror(st->last_errno) : "line too long");
    st->logged_drops = st->stats.lines_dropped;
    st->next_drop_log = now + DROP_LOG_SECONDS;
}

static const char *location_source(const struct statsd_config *cfg) {
    return cfg->location_from_env ? STATSD_ENV_URL : "[statsd] location";
}

static int open_socket(struct statsd *st, char *err, size_t errlen) {
    const struct statsd_config *cfg = &st->cfg;
    char host[256], port[8];
    int port_number = 0;
    config_parse_binding(cfg->location, host, sizeof host, &port_number);
    snprintf(port, sizeof port, "%d", port_number);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai)
        return fail(err, errlen,
                    "%s %s: resolving host %s failed: %s; check the name or give an IP address",
                    location_source(cfg), cfg->location, host, gai_strerror(rc));

    /* UDP reports no error when the address has no listener, so there is no fallback to the
     * next address. A name such as "localhost" therefore uses its IPv4 address when it has one,
     * because statsd servers commonly listen on IPv4 only. */
    const struct addrinfo *chosen = ai;
    for (const struct addrinfo *a = ai; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            chosen = a;
            break;
        }
    }
    st->fd = socket(chosen->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (st->fd < 0) {
        freeaddrinfo(ai);
        return fail(err, errlen, "%s %s: opening a UDP socket failed: %s", location_source(cfg),
                    cfg->location, strerror(errno));
    }
    memcpy(&st->addr, chosen->ai_addr, chosen->ai_addrlen);
    st->addrlen = chosen->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static char *join_tags(char *const *tags, size_t n) {
    struct buf joined = {0};
    buf_append(&joined, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_append_str(&joined, ",");
        buf_append_str(&joined, tags[i]);
    }
    return joined.data;
}

int statsd_open(struct statsd **out, struct statsd_config *cfg, char *err, size_t errlen) {
    struct statsd *st = xcalloc(1, sizeof *st);
    st->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    st->fd = -1;
    st->global_tags = join_tags(st->cfg.tags, st->cfg.ntags);
    st->packer.max_lines = st->cfg.buffer_size > 0 ? st->cfg.buffer_size
                                                   : STATSD_DEFAULT_BUFFER_SIZE;
    st->packer.send = send_packet;
    st->packer.ctx = st;
    if (open_socket(st, err, errlen) != 0) {
        statsd_close(st);
        *out = NULL;
        return -1;
    }
    *out = st;
    return 0;
}

int statsd_setup(struct statsd **out, const json_t *document, char *err, size_t errlen) {
    *out = NULL;
    struct statsd_config cfg;
    int rc = statsd_config_parse(document, getenv(STATSD_ENV_URL), &cfg, err, errlen);
    if (rc <= 0) {
        statsd_config_free(&cfg);
        return rc;
    }
    return statsd_open(out, &cfg, err, errlen);
}

int statsd_check(const json_t *document, char *err, size_t errlen) {
    struct statsd_config cfg;
    int rc = statsd_config_parse(document, getenv(STATSD_ENV_URL), &cfg, err, errlen);
    statsd_config_free(&cfg);
    return rc < 0 ? -1 : 0;
}

void statsd_log_config(const struct statsd *st) {
    const struct statsd_config *cfg = &st->cfg;
    char *queues = join_tags(cfg->latency_queues, cfg->nlatency_queues);
    log_info("statsd_enabled",
             "location=%s source=%s namespace=\"%s\" tags=\"%s\" buffer_size=%d "
             "latency_queues=\"%s\"",
             cfg->location, cfg->location_from_env ? STATSD_ENV_URL : "config",
             cfg->metric_namespace, st->global_tags, cfg->buffer_size, queues);
    free(queues);
}

void statsd_adopt(struct statsd *fresh, const struct statsd *old) {
    if (!fresh || !old)
        return;
    fresh->next_gauges = old->next_gauges;
    fresh->next_drop_log = old->next_drop_log;
}

static void clear_counters(struct statsd *st) {
    struct statsd_counter *c, *tmp;
    HASH_ITER(hh, st->counters, c, tmp) {
        HASH_DEL(st->counters, c);
        free(c->key);
        free(c);
    }
    st->ncounters = 0;
}

void statsd_close(struct statsd *st) {
    if (!st)
        return;
    if (st->fd >= 0) {
        statsd_flush(st);
        log_drops(st, true);
        close(st->fd);
    }
    clear_counters(st);
    statsd_config_free(&st->cfg);
    free(st->global_tags);
    free(st);
}

/* Formats one line with the exporter's namespace and global tags and adds it to the packet. */
static void add_line(struct statsd *st, const char *name, double value, const char *type,
                     const char *tags) {
    char line[STATSD_MAX_LINE_BYTES];
    size_t len = statsd_format_line(line, sizeof line, st->cfg.metric_namespace, name, value,
                                    type, tags, st->global_tags);
    if (len == 0 || statsd_packer_add(&st->packer, line, len) != 0)
        st->stats.lines_dropped++;
}

/* Sends every counter that changed since the last flush and zeroes it. The entries stay, so a
 * steady set of job types costs no allocation, unless there are too many of them. */
static void flush_counters(struct statsd *st) {
    struct statsd_counter *c, *tmp;
    HASH_ITER(hh, st->counters, c, tmp) {
        if (c->value == 0)
            continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)c->name_len, c->key);
        add_line(st, name, (double)c->value, "c", c->key + c->name_len + 1);
        c->value = 0;
    }
    if (st->ncounters >= MAX_COUNTERS)
        clear_counters(st);
}

void statsd_count(struct statsd *st, const char *name, int64_t delta, const char *tags) {
    char key[STATSD_MAX_LINE_BYTES];
    int n = snprintf(key, sizeof key, "%s|%s", name, tags ? tags : "");
    if (n < 0 || (size_t)n >= sizeof key) {
        st->stats.lines_dropped++;
        return;
    }
    struct statsd_counter *c = NULL;
    HASH_FIND(hh, st->counters, key, (size_t)n, c);
    if (!c) {
        if (st->ncounters >= MAX_COUNTERS) {
            flush_counters(st);
        }
        c = xcalloc(1, sizeof *c);
        c->key = xstrndup(key, (size_t)n);
        c->name_len = strlen(name);
        HASH_ADD_KEYPTR(hh, st->counters, c->key, (size_t)n, c);
        st->ncounters++;
    }
    c->value += delta;
}

void statsd_timing(struct statsd *st, const char *name, double milliseconds, const char *tags) {
    add_line(st, name, milliseconds, "ms", tags);
}

void statsd_gauge(struct statsd *st, const char *name, double value, const char *tags) {
    add_line(st, name, value, "g", tags);
}

void statsd_flush(struct statsd *st) {
    flush_counters(st);
    statsd_packer_flush(&st->packer);
}

/* ---- job metrics ----------------------------------------------------------------------- */

/* Appends the tag "name:value" to out (a comma first unless out is empty). Characters of
 * value that a tag may not contain become '_', and value is cut so the tag stays within
 * STATSD_MAX_TAG_BYTES, because job types come from clients. */
static void append_tag(char *out, size_t size, const char *name, const char *value) {
    size_t pos = strlen(out);
    int n = snprintf(out + pos, size - pos, "%s%s:", pos ? "," : "", name);
    if (n < 0 || (size_t)n >= size - pos)
        return;
    size_t tag_start = pos + (pos ? 1 : 0);
    pos += (size_t)n;
    for (const char *p = value; *p && pos + 1 < size && pos - tag_start < STATSD_MAX_TAG_BYTES;
         p++)
        out[pos++] = is_tag_char(*p) ? *p : '_';
    out[pos] = '\0';
}

static void job_tags(char *out, size_t size, const char *jobtype, const char *queue) {
    out[0] = '\0';
    append_tag(out, size, "jobtype", jobtype ? jobtype : "");
    append_tag(out, size, "queue", queue ? queue : "");
}

void statsd_on_pushed(void *ctx, const char *jobtype, const char *queue) {
    char tags[JOB_TAGS_BYTES];
    job_tags(tags, sizeof tags, jobtype, queue);
    statsd_count(ctx, "jobs.pushed", 1, tags);
}

void statsd_on_finished(void *ctx, const char *jobtype, const char *queue, bool success,
                        double run_seconds) {
    struct statsd *st = ctx;
    char tags[JOB_TAGS_BYTES];
    job_tags(tags, sizeof tags, jobtype, queue);
    statsd_count(st, success ? "jobs.succeeded" : "jobs.failed", 1, tags);
    append_tag(tags, sizeof tags, "status", success ? "success" : "failure");
    statsd_timing(st, "jobs.run_time", run_seconds * 1000.0, tags);
}

/* ---- gauges ---------------------------------------------------------------------------- */

struct queue_gauges {
    struct statsd *st;
    int64_t enqueued;
};

static void send_queue_gauges(void *ctx, const char *name, int64_t size, bool paused) {
    struct queue_gauges *q = ctx;
    char tags[JOB_TAGS_BYTES] = "";
    append_tag(tags, sizeof tags, "queue", name);
    statsd_gauge(q->st, "queue.size", (double)size, tags);
    statsd_gauge(q->st, "queue.paused", paused ? 1 : 0, tags);
    q->enqueued += size;
}

static int send_latency_gauges(struct statsd *st, struct engine *e) {
    int rc = 0;
    for (size_t i = 0; i < st->cfg.nlatency_queues; i++) {
        const char *queue = st->cfg.latency_queues[i];
        double seconds = 0;
        if (engine_queue_latency(e, queue, &seconds) != 0) {
            rc = -1;
            continue;
        }
        char tags[JOB_TAGS_BYTES] = "";
        append_tag(tags, sizeof tags, "queue", queue);
        statsd_gauge(st, "queue.latency", seconds, tags);
    }
    return rc;
}

static void send_throttle_gauges(struct statsd *st, struct engine *e) {
    if (!e->throttles.by_queue)
        return;
    static const char *const limits[] = {"concurrency", "worker", "rate_limit"};
    static const char *const figures[] = {"in_use", "waiting", "timed_out"};
    json_t *throttles = engine_throttles(e, 0);
    const char *queue;
    json_t *t;
    json_object_foreach(throttles, queue, t) {
        char tags[JOB_TAGS_BYTES] = "";
        append_tag(tags, sizeof tags, "queue", queue);
        for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
            char name[32];
            snprintf(name, sizeof name, "throttle.%s", figures[i]);
            statsd_gauge(st, name, (double)json_integer_value(json_object_get(t, figures[i])),
                         tags);
        }
        for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
            char kind_tags[JOB_TAGS_BYTES];
            snprintf(kind_tags, sizeof kind_tags, "%s", tags);
            append_tag(kind_tags, sizeof kind_tags, "kind", limits[i]);
            statsd_gauge(st, "throttle.limit",
                         (double)json_integer_value(json_object_get(t, limits[i])), kind_tags);
        }
    }
    json_decref(throttles);
}

int statsd_send_gauges(struct statsd *st, struct engine *e,
                       const struct statsd_server_figures *f) {
    struct queue_gauges q = {.st = st};
    engine_each_queue(e, send_queue_gauges, &q);
    const struct {
        const char *name;
        double value;
    } globals[] = {
        {"processed", (double)e->processed},
        {"failures", (double)e->failures},
        {"enqueued", (double)q.enqueued},
        {"scheduled", (double)e->set_size[JOB_SCHEDULED]},
        {"retries", (double)e->set_size[JOB_RETRY]},
        {"dead", (double)e->set_size[JOB_DEAD]},
        {"working", (double)e->set_size[JOB_WORKING]},
        {"connections", (double)f->connections},
        {"workers", (double)f->workers},
        {"commands", (double)f->commands},
        {"uptime", floor(f->uptime_seconds)},
    };
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        statsd_gauge(st, globals[i].name, globals[i].value, NULL);
    send_throttle_gauges(st, e);
    return send_latency_gauges(st, e);
}

void statsd_report(struct statsd *st, struct engine *e, const struct statsd_server_figures *f,
                   double now) {
    /* A wall clock set back by more than one interval would otherwise stop the gauges. */
    if (now < st->next_gauges - 2 * STATSD_GAUGE_SECONDS)
        st->next_gauges = now;
    if (now >= st->next_gauges) {
        if (statsd_send_gauges(st, e, f) != 0)
            log_warn("statsd_gauges_incomplete",
                     "error=\"reading a queue latency failed: %s\" "
                     "action=\"sent the other gauges\"",
                     store_error(e->store));
        /* After a long clock jump the next gauges follow one interval later, with no catch-up
         * burst. */
        st->next_gauges = now + STATSD_GAUGE_SECONDS;
    }
    statsd_flush(st);
    log_drops(st, false);
}

void statsd_get_stats(const struct statsd *st, struct statsd_stats *out) {
    *out = st->stats;
}

const struct statsd_config *statsd_get_config(const struct statsd *st) {
    return &st->cfg;
}
