/* Unit tests of the statsd module: the [statsd] table and DD_DOGSTATSD_URL, the tag rules, the
 * DogStatsD line format, packing lines into packets, and the exporter sending real UDP packets
 * to a socket bound on 127.0.0.1 by the test. Gauges are read from a real engine over a SQLite
 * store in a fresh temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "ent/statsd.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

#define assert_contains(text, part)                                                     \
    do {                                                                                \
        const char *text_ = (text);                                                     \
        if (!text_ || !strstr(text_, (part)))                                           \
            fail_msg("\"%s\" does not contain \"%s\"", text_ ? text_ : "(null)", (part)); \
    } while (0)

/* ---- helpers ---- */

/* Builds the merged config document {"statsd": <table_json>}, as the config module makes it
 * from TOML. */
static json_t *document_with(const char *table_json) {
    char text[8192];
    snprintf(text, sizeof text, "{\"statsd\": %s}", table_json);
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("test document does not parse: %s: %s", jerr.text, text);
    return doc;
}

/* Parses the table with env_url and expects success; the caller frees cfg. */
static void parse_ok(const char *table_json, const char *env_url, struct statsd_config *cfg) {
    json_t *doc = table_json ? document_with(table_json) : json_object();
    char err[1024] = "";
    int rc = statsd_config_parse(doc, env_url, cfg, err, sizeof err);
    json_decref(doc);
    if (rc != 1)
        fail_msg("statsd_config_parse(%s, %s) returned %d: %s", table_json ? table_json : "{}",
                 env_url ? env_url : "NULL", rc, err);
}

/* Parses the table with env_url, expects an error and checks it contains every part. */
static void parse_fails(const char *table_json, const char *env_url, const char *part1,
                        const char *part2) {
    json_t *doc = table_json ? document_with(table_json) : json_object();
    struct statsd_config cfg;
    char err[1024] = "";
    int rc = statsd_config_parse(doc, env_url, &cfg, err, sizeof err);
    statsd_config_free(&cfg);
    json_decref(doc);
    if (rc != -1)
        fail_msg("statsd_config_parse(%s, %s) returned %d, expected -1", table_json,
                 env_url ? env_url : "NULL", rc);
    assert_contains(err, part1);
    if (part2)
        assert_contains(err, part2);
}

/* A UDP socket bound on 127.0.0.1 that receives what an exporter sends. */
struct receiver {
    int fd;
    int port;
    char location[32];
    char data[65536];   /* every packet received, each followed by '\n' */
    size_t len;
    int packets;
};

static void receiver_open(struct receiver *r) {
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&addr, &len), 0);
    r->port = ntohs(addr.sin_port);
    snprintf(r->location, sizeof r->location, "127.0.0.1:%d", r->port);
}

/* Reads packets until none arrives for wait_ms. Returns the number read by this call. */
static int receiver_collect(struct receiver *r, int wait_ms) {
    int count = 0;
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    while (poll(&p, 1, wait_ms) == 1) {
        char packet[65536];
        ssize_t n = recv(r->fd, packet, sizeof packet, 0);
        if (n <= 0)
            break;
        if (r->len + (size_t)n + 1 >= sizeof r->data)
            fail_msg("the receiver buffer is full after %d packets", r->packets);
        memcpy(r->data + r->len, packet, (size_t)n);
        r->len += (size_t)n;
        r->data[r->len++] = '\n';
        r->data[r->len] = '\0';
        r->packets++;
        count++;
    }
    return count;
}

/* Returns true when a whole line of what r received equals line. */
static bool receiver_has_line(const struct receiver *r, const char *line) {
    size_t n = strlen(line);
    for (const char *p = r->data; (p = strstr(p, line)) != NULL; p++) {
        bool starts = p == r->data || p[-1] == '\n';
        if (starts && p[n] == '\n')
            return true;
    }
    return false;
}

#define assert_received(r, line)                                                         \
    do {                                                                                 \
        if (!receiver_has_line((r), (line)))                                             \
            fail_msg("line \"%s\" was not received; received:\n%s", (line), (r)->data); \
    } while (0)

/* Counts received lines that start with prefix. */
static int receiver_count_prefix(const struct receiver *r, const char *prefix) {
    int count = 0;
    size_t n = strlen(prefix);
    const char *p = r->data;
    while (*p) {
        if (strncmp(p, prefix, n) == 0)
            count++;
        const char *eol = strchr(p, '\n');
        if (!eol)
            break;
        p = eol + 1;
    }
    return count;
}

/* Opens an exporter with the given extra [statsd] keys (JSON members, may be "") to r. */
static struct statsd *exporter_to(struct receiver *r, const char *extra_keys) {
    char table[4096];
    snprintf(table, sizeof table, "{\"location\": \"%s\"%s%s}", r->location,
             extra_keys[0] ? ", " : "", extra_keys);
    struct statsd_config cfg;
    parse_ok(table, NULL, &cfg);
    struct statsd *st = NULL;
    char err[1024] = "";
    if (statsd_open(&st, &cfg, err, sizeof err) != 0)
        fail_msg("statsd_open failed: %s", err);
    statsd_config_free(&cfg);
    return st;
}

/* ---- configuration ---- */

static void config_absent_disables(void **state) {
    (void)state;
    struct statsd_config cfg;
    char err[256] = "";
    json_t *doc = json_object();
    assert_int_equal(statsd_config_parse(doc, NULL, &cfg, err, sizeof err), 0);
    assert_null(cfg.location);
    assert_int_equal(statsd_config_parse(doc, "", &cfg, err, sizeof err), 0);
    assert_int_equal(statsd_config_parse(NULL, NULL, &cfg, err, sizeof err), 0);
    json_decref(doc);
}

static void config_location_only_defaults(void **state) {
    (void)state;
    struct statsd_config cfg;
    parse_ok("{\"location\": \"127.0.0.1:8125\"}", NULL, &cfg);
    assert_string_equal(cfg.location, "127.0.0.1:8125");
    assert_false(cfg.location_from_env);
    assert_string_equal(cfg.metric_namespace, "faktory.");
    assert_int_equal(cfg.ntags, 0);
    assert_int_equal(cfg.buffer_size, 15);
    assert_int_equal(cfg.nlatency_queues, 0);
    statsd_config_free(&cfg);
}

static void config_every_key(void **state) {
    (void)state;
    struct statsd_config cfg;
    parse_ok("{\"location\": \"statsd.example:9125\", \"namespace\": \"jobs.prod.\","
             " \"tags\": [\"env:production\", \"region:us-east-1a\", \"canary\"],"
             " \"bufferSize\": 40, \"queueLatency\": [\"critical\", \"default\", \"critical\"]}",
             NULL, &cfg);
    assert_string_equal(cfg.location, "statsd.example:9125");
    assert_string_equal(cfg.metric_namespace, "jobs.prod.");
    assert_int_equal(cfg.ntags, 3);
    assert_string_equal(cfg.tags[0], "env:production");
    assert_string_equal(cfg.tags[1], "region:us-east-1a");
    assert_string_equal(cfg.tags[2], "canary");
    assert_int_equal(cfg.buffer_size, 40);
    assert_int_equal(cfg.nlatency_queues, 2);   /* the duplicate is dropped */
    assert_string_equal(cfg.latency_queues[0], "critical");
    assert_string_equal(cfg.latency_queues[1], "default");
    statsd_config_free(&cfg);
}

static void config_location_forms(void **state) {
    (void)state;
    struct statsd_config cfg;
    parse_ok("{\"location\": \"[::1]:8125\"}", NULL, &cfg);
    assert_string_equal(cfg.location, "[::1]:8125");
    statsd_config_free(&cfg);
    parse_ok("{\"location\": \"localhost:65535\"}", NULL, &cfg);
    statsd_config_free(&cfg);

    parse_fails("{}", NULL, "[statsd] location is required", "DD_DOGSTATSD_URL");
    parse_fails("{\"namespace\": \"x.\"}", NULL, "[statsd] location is required", NULL);
    static const char *const bad[] = {
        "\"localhost\"", "\"127.0.0.1:0\"", "\":8125\"", "\"127.0.0.1:65536\"",
        "\"127.0.0.1:81a\"", "\"::1:8125\"", "8125", "[\"127.0.0.1:8125\"]", "\"\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char table[128];
        snprintf(table, sizeof table, "{\"location\": %s}", bad[i]);
        parse_fails(table, NULL, "[statsd] location", "host:port");
    }
}

static void config_namespace_rules(void **state) {
    (void)state;
    struct statsd_config cfg;
    parse_ok("{\"location\": \"127.0.0.1:8125\", \"namespace\": \"\"}", NULL, &cfg);
    assert_string_equal(cfg.metric_namespace, "");
    statsd_config_free(&cfg);
    parse_ok("{\"location\": \"127.0.0.1:8125\", \"namespace\": \"app_1.jobs\"}", NULL, &cfg);
    assert_string_equal(cfg.metric_namespace, "app_1.jobs");
    statsd_config_free(&cfg);

    static const char *const bad[] = {"\"9lives.\"", "\"fab rik.\"", "\"fab-rik.\"",
                                      "\".faktory\"", "\"a|b\"", "5", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char table[128];
        snprintf(table, sizeof table, "{\"location\": \"127.0.0.1:8125\", \"namespace\": %s}",
                 bad[i]);
        parse_fails(table, NULL, "[statsd] namespace", "must be a string");
    }
    char name[102];
    memset(name, 'n', 101);
    name[101] = '\0';
    char table[512];
    snprintf(table, sizeof table, "{\"location\": \"127.0.0.1:8125\", \"namespace\": \"%s\"}",
             name);
    parse_fails(table, NULL, "[statsd] namespace", "at most 100 bytes");
    name[100] = '\0';
    snprintf(table, sizeof table, "{\"location\": \"127.0.0.1:8125\", \"namespace\": \"%s\"}",
             name);
    parse_ok(table, NULL, &cfg);
    statsd_config_free(&cfg);
}

static void tag_rules(void **state) {
    (void)state;
    static const char *const valid[] = {
        "env:production", "region:us-east-1a", "canary", "path:/var/lib/x", "a_b.c-d:e:f",
        "Environment:Staging", "hostname:web1", "services:api", "sourcecode:git",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        const char *problem = statsd_tag_problem(valid[i]);
        if (problem)
            fail_msg("tag \"%s\" was rejected: %s", valid[i], problem);
    }

    static const struct {
        const char *tag;
        const char *reason;
    } invalid[] = {
        {"", "start with a letter"},
        {"1env:x", "start with a letter"},
        {"_env:x", "start with a letter"},
        {":x", "start with a letter"},
        {"env production", "only letters"},
        {"env:a,b", "only letters"},
        {"env:a|b", "only letters"},
        {"env:a#b", "only letters"},
        {"env:caf\xc3\xa9", "only letters"},
        {"host", "reserved"},
        {"host:web1", "reserved"},
        {"device:sda", "reserved"},
        {"source:app", "reserved"},
        {"service:api", "reserved"},
        {"Service:api", "reserved"},
        {"HOST:x", "reserved"},
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        const char *problem = statsd_tag_problem(invalid[i].tag);
        if (!problem)
            fail_msg("tag \"%s\" was accepted", invalid[i].tag);
        assert_contains(problem, invalid[i].reason);
    }

    char longest[202];
    memset(longest, 'a', 200);
    longest[200] = '\0';
    assert_null(statsd_tag_problem(longest));
    longest[200] = 'a';
    longest[201] = '\0';
    assert_contains(statsd_tag_problem(longest), "at most 200 bytes");
}

static void config_tag_errors(void **state) {
    (void)state;
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"tags\": \"env:prod\"}", NULL,
                "[statsd] tags must be an array of strings", NULL);
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"tags\": [\"env:prod\", 5]}", NULL,
                "[statsd] tags: element 2 is not a string", NULL);
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"tags\": [\"env:prod\", \"host:web1\"]}",
                NULL, "[statsd] tags: \"host:web1\" is invalid", "reserved");
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"tags\": [\"service\"]}", NULL,
                "\"service\"", "reserved");
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"tags\": [\"device:x\"]}", NULL,
                "\"device:x\"", "reserved");
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"tags\": [\"source:x\"]}", NULL,
                "\"source:x\"", "reserved");
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"tags\": [\"env prod\"]}", NULL,
                "[statsd] tags: \"env prod\" is invalid", "only letters");

    /* Six tags of 200 bytes exceed the 1024 bytes that every line can carry. */
    struct buf table = {0};
    buf_printf(&table, "{\"location\": \"127.0.0.1:8125\", \"tags\": [");
    for (int i = 0; i < 6; i++) {
        char tag[201];
        memset(tag, 'a' + i, 200);
        tag[200] = '\0';
        buf_printf(&table, "%s\"%s\"", i ? ", " : "", tag);
    }
    buf_printf(&table, "]}");
    parse_fails(table.data, NULL, "[statsd] tags: together the tags exceed 1024 bytes", NULL);
    buf_free(&table);
}

static void config_buffer_size(void **state) {
    (void)state;
    struct statsd_config cfg;
    parse_ok("{\"location\": \"127.0.0.1:8125\", \"bufferSize\": 1}", NULL, &cfg);
    assert_int_equal(cfg.buffer_size, 1);
    statsd_config_free(&cfg);
    parse_ok("{\"location\": \"127.0.0.1:8125\", \"bufferSize\": 1000}", NULL, &cfg);
    assert_int_equal(cfg.buffer_size, 1000);
    statsd_config_free(&cfg);

    static const char *const bad[] = {"0", "-1", "1001", "1.5", "\"15\"", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char table[128];
        snprintf(table, sizeof table, "{\"location\": \"127.0.0.1:8125\", \"bufferSize\": %s}",
                 bad[i]);
        parse_fails(table, NULL, "[statsd] bufferSize must be an integer from 1 to 1000", NULL);
    }
}

static void config_queue_latency(void **state) {
    (void)state;
    struct statsd_config cfg;
    parse_ok("{\"location\": \"127.0.0.1:8125\", \"queueLatency\": []}", NULL, &cfg);
    assert_int_equal(cfg.nlatency_queues, 0);
    statsd_config_free(&cfg);
    parse_ok("{\"location\": \"127.0.0.1:8125\", \"queueLatency\": [\"a.b-c_D9\"]}", NULL, &cfg);
    assert_int_equal(cfg.nlatency_queues, 1);
    assert_string_equal(cfg.latency_queues[0], "a.b-c_D9");
    statsd_config_free(&cfg);

    parse_fails("{\"location\": \"127.0.0.1:8125\", \"queueLatency\": \"default\"}", NULL,
                "[statsd] queueLatency must be an array", NULL);
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"queueLatency\": [\"default\", 3]}", NULL,
                "[statsd] queueLatency: element 2", "not a queue name");
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"queueLatency\": [\"bad queue\"]}", NULL,
                "[statsd] queueLatency: element 1 (bad queue)", "[a-zA-Z0-9._-]+");
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"queueLatency\": [\"\"]}", NULL,
                "[statsd] queueLatency: element 1", NULL);
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"queueLatency\": [\"*\"]}", NULL,
                "[statsd] queueLatency: element 1", NULL);
}

static void config_unknown_key_and_type(void **state) {
    (void)state;
    parse_fails("{\"location\": \"127.0.0.1:8125\", \"buffersize\": 10}", NULL,
                "[statsd] unknown key \"buffersize\"", "bufferSize");
    parse_fails("\"127.0.0.1:8125\"", NULL, "[statsd] must be a table", NULL);
    parse_fails("[1]", "udp://127.0.0.1:8125", "[statsd] must be a table", NULL);
}

static void env_url_alone(void **state) {
    (void)state;
    struct statsd_config cfg;
    parse_ok(NULL, "udp://127.0.0.1:9125", &cfg);
    assert_string_equal(cfg.location, "127.0.0.1:9125");
    assert_true(cfg.location_from_env);
    assert_string_equal(cfg.metric_namespace, "faktory.");
    assert_int_equal(cfg.buffer_size, 15);
    statsd_config_free(&cfg);
    parse_ok(NULL, "UDP://[::1]:8125", &cfg);
    assert_string_equal(cfg.location, "[::1]:8125");
    statsd_config_free(&cfg);
}

static void env_url_replaces_location(void **state) {
    (void)state;
    struct statsd_config cfg;
    parse_ok("{\"location\": \"10.0.0.1:8125\", \"namespace\": \"app.\", \"tags\": [\"env:x\"],"
             " \"bufferSize\": 3, \"queueLatency\": [\"critical\"]}",
             "udp://127.0.0.1:9125", &cfg);
    assert_string_equal(cfg.location, "127.0.0.1:9125");
    assert_true(cfg.location_from_env);
    assert_string_equal(cfg.metric_namespace, "app.");
    assert_int_equal(cfg.ntags, 1);
    assert_int_equal(cfg.buffer_size, 3);
    assert_int_equal(cfg.nlatency_queues, 1);
    statsd_config_free(&cfg);

    /* The table may leave location out when the variable gives it. */
    parse_ok("{\"namespace\": \"app.\"}", "udp://127.0.0.1:9125", &cfg);
    assert_string_equal(cfg.location, "127.0.0.1:9125");
    statsd_config_free(&cfg);

    /* An empty variable counts as unset. */
    parse_ok("{\"location\": \"10.0.0.1:8125\"}", "", &cfg);
    assert_string_equal(cfg.location, "10.0.0.1:8125");
    assert_false(cfg.location_from_env);
    statsd_config_free(&cfg);
}

static void env_url_errors(void **state) {
    (void)state;
    static const char *const bad[] = {
        "127.0.0.1:8125", "tcp://127.0.0.1:8125", "unix:///var/run/datadog/dsd.socket",
        "udp://127.0.0.1", "udp://:8125", "udp://127.0.0.1:0", "udp://127.0.0.1:8125/",
        "udp://",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_fails(NULL, bad[i], "DD_DOGSTATSD_URL", "must be udp://host:port");
    /* The table is still checked when the variable gives the location. */
    parse_fails("{\"tags\": [\"host:x\"]}", "udp://127.0.0.1:8125", "[statsd] tags", "reserved");
}

/* ---- line format and packets ---- */

static void value_format(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(statsd_format_value(0, out), "0");
    assert_string_equal(statsd_format_value(42, out), "42");
    assert_string_equal(statsd_format_value(-3, out), "-3");
    assert_string_equal(statsd_format_value(1.5, out), "1.5");
    assert_string_equal(statsd_format_value(12.3456, out), "12.346");
    assert_string_equal(statsd_format_value(0.25, out), "0.25");
    assert_string_equal(statsd_format_value(0.0004, out), "0");
    assert_string_equal(statsd_format_value(-0.0004, out), "0");
    assert_string_equal(statsd_format_value(1234567890123.0, out), "1234567890123");
    assert_string_equal(statsd_format_value(1e16, out), "10000000000000000");
    assert_string_equal(statsd_format_value(0.0 / 0.0, out), "0");
}

static void line_format(void **state) {
    (void)state;
    char line[256];
    size_t n = statsd_format_line(line, sizeof line, "faktory.", "processed", 12, "g", NULL, NULL);
    assert_string_equal(line, "faktory.processed:12|g");
    assert_int_equal(n, strlen(line));

    statsd_format_line(line, sizeof line, "faktory.", "jobs.pushed", 3, "c",
                       "jobtype:Email,queue:default", "");
    assert_string_equal(line, "faktory.jobs.pushed:3|c|#jobtype:Email,queue:default");

    statsd_format_line(line, sizeof line, "", "dead", 0, "g", "", "env:prod,canary");
    assert_string_equal(line, "dead:0|g|#env:prod,canary");

    statsd_format_line(line, sizeof line, "x.", "jobs.run_time", 1.5, "ms",
                       "jobtype:T,queue:q,status:success", "env:prod");
    assert_string_equal(line, "x.jobs.run_time:1.5|ms|#jobtype:T,queue:q,status:success,env:prod");

    /* "faktory.processed:12|g" is 22 bytes and needs 23 with its NUL. */
    assert_int_equal(statsd_format_line(line, 22, "faktory.", "processed", 12, "g", NULL, NULL),
                     0);
    assert_int_equal(statsd_format_line(line, 23, "faktory.", "processed", 12, "g", NULL, NULL),
                     22);
}

/* Packets handed over by a packer, one per '\0'-terminated entry. */
struct captured {
    char packets[64][STATSD_MAX_LINE_BYTES + 1];
    int lines[64];
    int count;
};

static void capture_packet(void *ctx, const char *data, size_t len, int lines) {
    struct captured *c = ctx;
    assert_true(c->count < 64);
    memcpy(c->packets[c->count], data, len);
    c->packets[c->count][len] = '\0';
    c->lines[c->count] = lines;
    c->count++;
}

static struct statsd_packer *packer_new(struct captured *c, int max_lines) {
    struct statsd_packer *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->max_lines = max_lines;
    p->send = capture_packet;
    p->ctx = c;
    return p;
}

static void packer_line_limit(void **state) {
    (void)state;
    struct captured *c = calloc(1, sizeof *c);
    struct statsd_packer *p = packer_new(c, 3);
    for (int i = 0; i < 7; i++) {
        char line[16];
        int n = snprintf(line, sizeof line, "m%d:1|c", i);
        assert_int_equal(statsd_packer_add(p, line, (size_t)n), 0);
    }
    assert_int_equal(c->count, 2);
    assert_string_equal(c->packets[0], "m0:1|c\nm1:1|c\nm2:1|c");
    assert_int_equal(c->lines[0], 3);
    assert_string_equal(c->packets[1], "m3:1|c\nm4:1|c\nm5:1|c");
    statsd_packer_flush(p);
    assert_int_equal(c->count, 3);
    assert_string_equal(c->packets[2], "m6:1|c");
    assert_int_equal(c->lines[2], 1);
    statsd_packer_flush(p);
    assert_int_equal(c->count, 3);   /* nothing left to send */
    free(p);
    free(c);
}

static void packer_byte_limit(void **state) {
    (void)state;
    struct captured *c = calloc(1, sizeof *c);
    struct statsd_packer *p = packer_new(c, 1000);
    char line[100];
    memset(line, 'a', sizeof line);
    /* 13 lines take 13 * 100 + 12 = 1312 bytes; a 14th would make 1413 > 1400. */
    for (int i = 0; i < 14; i++)
        assert_int_equal(statsd_packer_add(p, line, sizeof line), 0);
    assert_int_equal(c->count, 1);
    assert_int_equal(strlen(c->packets[0]), 1312);
    assert_int_equal(c->lines[0], 13);
    statsd_packer_flush(p);
    assert_int_equal(c->count, 2);
    assert_int_equal(c->lines[1], 1);
    for (int i = 0; i < 2; i++)
        assert_true(strlen(c->packets[i]) <= STATSD_PACKET_BYTES);
    free(p);
    free(c);
}

static void packer_long_line_alone(void **state) {
    (void)state;
    struct captured *c = calloc(1, sizeof *c);
    struct statsd_packer *p = packer_new(c, 15);
    char big[1500];
    memset(big, 'b', sizeof big);
    assert_int_equal(statsd_packer_add(p, "small:1|c", 9), 0);
    assert_int_equal(statsd_packer_add(p, big, sizeof big), 0);
    /* The small line leaves first, then the long one in a packet of its own. */
    assert_int_equal(c->count, 2);
    assert_string_equal(c->packets[0], "small:1|c");
    assert_int_equal(strlen(c->packets[1]), sizeof big);
    assert_int_equal(c->lines[1], 1);

    char huge[STATSD_MAX_LINE_BYTES];
    memset(huge, 'h', sizeof huge);
    assert_int_equal(statsd_packer_add(p, huge, sizeof huge), -1);
    assert_int_equal(statsd_packer_add(p, huge, 0), -1);
    statsd_packer_flush(p);
    assert_int_equal(c->count, 2);
    free(p);
    free(c);
}

/* ---- the exporter over UDP ---- */

static void exporter_sums_counters(void **state) {
    (void)state;
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = exporter_to(&r, "\"tags\": [\"env:test\"]");
    statsd_count(st, "jobs.pushed", 1, "jobtype:A,queue:default");
    statsd_count(st, "jobs.pushed", 1, "jobtype:A,queue:default");
    statsd_count(st, "jobs.pushed", 2, "jobtype:A,queue:default");
    statsd_count(st, "jobs.pushed", 1, "jobtype:B,queue:default");
    statsd_count(st, "jobs.failed", 1, NULL);
    assert_int_equal(receiver_collect(&r, 50), 0);   /* counters wait for the flush */
    statsd_flush(st);
    receiver_collect(&r, 500);
    assert_received(&r, "faktory.jobs.pushed:4|c|#jobtype:A,queue:default,env:test");
    assert_received(&r, "faktory.jobs.pushed:1|c|#jobtype:B,queue:default,env:test");
    assert_received(&r, "faktory.jobs.failed:1|c|#env:test");
    assert_int_equal(r.packets, 1);

    /* A counter that did not change is not sent again. */
    statsd_flush(st);
    assert_int_equal(receiver_collect(&r, 100), 0);
    statsd_count(st, "jobs.pushed", 1, "jobtype:B,queue:default");
    statsd_flush(st);
    receiver_collect(&r, 500);
    assert_int_equal(receiver_count_prefix(&r, "faktory.jobs.pushed:1|c|#jobtype:B"), 2);
    assert_int_equal(receiver_count_prefix(&r, "faktory.jobs.pushed:4|c"), 1);

    struct statsd_stats stats;
    statsd_get_stats(st, &stats);
    assert_int_equal(stats.packets_sent, 2);
    assert_int_equal(stats.lines_sent, 4);
    assert_int_equal(stats.packets_dropped, 0);
    statsd_close(st);
    close(r.fd);
}

static void exporter_job_observers(void **state) {
    (void)state;
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = exporter_to(&r, "\"namespace\": \"app.\"");
    statsd_on_pushed(st, "SendEmail", "critical");
    statsd_on_pushed(st, "SendEmail", "critical");
    statsd_on_finished(st, "SendEmail", "critical", true, 0.25);
    statsd_on_finished(st, "SendEmail", "critical", false, 1.5);
    /* Characters that would break the line format become '_'. */
    statsd_on_pushed(st, "Mail job|x,#y:z\n", "default");
    statsd_flush(st);
    receiver_collect(&r, 500);
    assert_received(&r, "app.jobs.pushed:2|c|#jobtype:SendEmail,queue:critical");
    assert_received(&r, "app.jobs.succeeded:1|c|#jobtype:SendEmail,queue:critical");
    assert_received(&r, "app.jobs.failed:1|c|#jobtype:SendEmail,queue:critical");
    assert_received(&r,
                    "app.jobs.run_time:250|ms|#jobtype:SendEmail,queue:critical,status:success");
    assert_received(&r,
                    "app.jobs.run_time:1500|ms|#jobtype:SendEmail,queue:critical,status:failure");
    assert_received(&r, "app.jobs.pushed:1|c|#jobtype:Mail_job_x__y:z_,queue:default");
    statsd_close(st);
    close(r.fd);
}

static void exporter_cuts_long_jobtype(void **state) {
    (void)state;
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = exporter_to(&r, "\"namespace\": \"\"");
    char jobtype[400];
    memset(jobtype, 'J', sizeof jobtype - 1);
    jobtype[sizeof jobtype - 1] = '\0';
    statsd_on_pushed(st, jobtype, "default");
    statsd_flush(st);
    receiver_collect(&r, 500);
    /* "jobtype:" plus 192 letters is a whole tag of 200 bytes. */
    char expected[512];
    snprintf(expected, sizeof expected, "jobs.pushed:1|c|#jobtype:%.192s,queue:default", jobtype);
    assert_received(&r, expected);
    statsd_close(st);
    close(r.fd);
}

static void exporter_packets_follow_buffer_size(void **state) {
    (void)state;
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = exporter_to(&r, "\"bufferSize\": 2");
    for (int i = 0; i < 5; i++)
        statsd_gauge(st, "g", i, NULL);
    /* Two full packets leave at once; the fifth line waits for the flush. */
    receiver_collect(&r, 200);
    assert_int_equal(r.packets, 2);
    assert_string_equal(r.data, "faktory.g:0|g\nfaktory.g:1|g\nfaktory.g:2|g\nfaktory.g:3|g\n");
    statsd_flush(st);
    receiver_collect(&r, 500);
    assert_int_equal(r.packets, 3);
    assert_received(&r, "faktory.g:4|g");
    statsd_close(st);
    close(r.fd);
}

static void exporter_close_sends_pending(void **state) {
    (void)state;
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = exporter_to(&r, "");
    statsd_count(st, "jobs.pushed", 7, "queue:q");
    statsd_timing(st, "jobs.run_time", 3, "queue:q");
    statsd_close(st);
    receiver_collect(&r, 500);
    assert_received(&r, "faktory.jobs.pushed:7|c|#queue:q");
    assert_received(&r, "faktory.jobs.run_time:3|ms|#queue:q");
    close(r.fd);
}

static void exporter_many_counters_flush_early(void **state) {
    (void)state;
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = exporter_to(&r, "\"bufferSize\": 1000");
    /* Past 10000 distinct counters the exporter sends them instead of holding more. */
    for (int i = 0; i <= 10000; i++) {
        char tags[32];
        snprintf(tags, sizeof tags, "jobtype:T%d", i);
        statsd_count(st, "jobs.pushed", 1, tags);
    }
    struct statsd_stats stats;
    statsd_get_stats(st, &stats);
    /* All 10000 went into packets; the last packet (under 1400 bytes) waits for the flush. */
    uint64_t handed_over = stats.lines_sent + stats.lines_dropped;
    if (handed_over < 9900 || handed_over > 10000)
        fail_msg("%llu lines were sent or dropped before the flush, expected 9900 to 10000",
                 (unsigned long long)handed_over);
    statsd_flush(st);
    statsd_get_stats(st, &stats);
    assert_int_equal(stats.lines_sent + stats.lines_dropped, 10001);
    statsd_close(st);
    close(r.fd);
}

static void exporter_open_and_adopt(void **state) {
    (void)state;
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = NULL;
    char err[1024] = "";
    json_t *doc = json_object();
    assert_int_equal(statsd_setup(&st, doc, err, sizeof err), 0);
    assert_null(st);
    json_decref(doc);

    doc = document_with("{\"location\": \"127.0.0.1:8125\", \"bufferSize\": 0}");
    assert_int_equal(statsd_setup(&st, doc, err, sizeof err), -1);
    assert_contains(err, "[statsd] bufferSize");
    assert_int_equal(statsd_check(doc, err, sizeof err), -1);
    json_decref(doc);

    char table[128];
    snprintf(table, sizeof table, "{\"location\": \"%s\"}", r.location);
    doc = document_with(table);
    assert_int_equal(statsd_check(doc, err, sizeof err), 0);
    assert_int_equal(statsd_setup(&st, doc, err, sizeof err), 0);
    assert_non_null(st);
    assert_string_equal(statsd_get_config(st)->location, r.location);
    json_decref(doc);
    statsd_close(st);

    /* localhost resolves through /etc/hosts, without DNS traffic, to the IPv4 receiver. */
    snprintf(table, sizeof table, "{\"location\": \"localhost:%d\"}", r.port);
    doc = document_with(table);
    assert_int_equal(statsd_setup(&st, doc, err, sizeof err), 0);
    json_decref(doc);
    statsd_gauge(st, "via_localhost", 1, NULL);
    statsd_close(st);
    receiver_collect(&r, 500);
    assert_received(&r, "faktory.via_localhost:1|g");
    close(r.fd);
}

/* ---- gauges from a real engine ---- */

struct engine_fixture {
    char dir[64];
    struct config cfg;
    struct store *store;
    struct engine e;
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static struct engine_fixture *engine_fixture_open(const char *document_json) {
    struct engine_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/fabrik-statsd-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->cfg.durability = DURABILITY_OS;
    f->cfg.dead_ttl_days = 180;
    f->cfg.dead_max = 10000;
    f->cfg.config_dir = f->dir;
    json_error_t jerr;
    f->cfg.document = json_loads(document_json, 0, &jerr);
    assert_non_null(f->cfg.document);
    char err[512];
    if (store_open(&f->store, f->dir, DURABILITY_OS, err, sizeof err) != 0)
        fail_msg("store_open failed: %s", err);
    if (engine_open(&f->e, &f->cfg, f->store, err, sizeof err) != 0)
        fail_msg("engine_open failed: %s", err);
    return f;
}

static void engine_fixture_close(struct engine_fixture *f) {
    engine_close(&f->e);
    store_close(f->store);
    json_decref(f->cfg.document);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

static void push(struct engine_fixture *f, const char *jid, const char *queue, const char *at) {
    char text[256];
    snprintf(text, sizeof text,
             "{\"jid\":\"%s\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"%s\"%s%s%s}", jid,
             queue, at ? ",\"at\":\"" : "", at ? at : "", at ? "\"" : "");
    json_t *job = json_loads(text, 0, NULL);
    assert_non_null(job);
    char err[256];
    assert_int_equal(engine_push(&f->e, job, err, sizeof err), 0);
    json_decref(job);
}

static void fetch(struct engine_fixture *f, const char *queue, const char *jid) {
    char *queues[] = {(char *)queue};
    struct store_job job = {0};
    assert_int_equal(engine_fetch(&f->e, queues, 1, "wid-1", &job), 1);
    assert_string_equal(job.jid, jid);
    store_job_clear(&job);
}

static void fail_reserved(struct engine_fixture *f, const char *jid) {
    struct job_failure_report report;
    memset(&report, 0, sizeof report);
    snprintf(report.errtype, sizeof report.errtype, "RuntimeError");
    snprintf(report.message, sizeof report.message, "boom");
    report.backtrace = json_array();
    assert_int_equal(engine_fail(&f->e, jid, NULL, &report), 0);
    json_decref(report.backtrace);
}

/* Finds the value of the received line that starts with prefix (the text before the value). */
static double received_value(const struct receiver *r, const char *prefix, const char *suffix) {
    size_t n = strlen(prefix);
    for (const char *p = r->data; *p;) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, prefix, n) == 0) {
            char *end = NULL;
            double value = strtod(p + n, &end);
            if (end && strncmp(end, suffix, strlen(suffix)) == 0 && end + strlen(suffix) == eol)
                return value;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    fail_msg("no line \"%s<value>%s\" was received; received:\n%s", prefix, suffix, r->data);
    return 0;
}

static const struct statsd_server_figures figures = {
    .connections = 3, .workers = 2, .commands = 99, .uptime_seconds = 12.7};

static void gauges_mirror_engine(void **state) {
    (void)state;
    struct engine_fixture *f = engine_fixture_open(
        "{\"throttles\": {\"critical\": {\"concurrency\": 2, \"timeout\": 60}}}");
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = exporter_to(
        &r, "\"tags\": [\"env:test\"], \"bufferSize\": 1000, "
            "\"queueLatency\": [\"critical\", \"none\"]");

    char at[32];
    time_format_rfc3339(engine_now(&f->e) + 3600, at);
    push(f, "job-critical-1", "critical", NULL);
    push(f, "job-critical-2", "critical", NULL);
    push(f, "job-low-1", "low", NULL);
    push(f, "job-later-1", "low", at);
    fetch(f, "critical", "job-critical-1");
    fetch(f, "low", "job-low-1");
    fail_reserved(f, "job-low-1");
    assert_int_equal(engine_commit(&f->e), 0);
    f->e.clock_offset += 12;

    assert_int_equal(statsd_send_gauges(st, &f->e, &figures), 0);
    statsd_flush(st);
    receiver_collect(&r, 500);

    assert_received(&r, "faktory.processed:1|g|#env:test");
    assert_received(&r, "faktory.failures:1|g|#env:test");
    assert_received(&r, "faktory.enqueued:1|g|#env:test");
    assert_received(&r, "faktory.scheduled:1|g|#env:test");
    assert_received(&r, "faktory.retries:1|g|#env:test");
    assert_received(&r, "faktory.dead:0|g|#env:test");
    assert_received(&r, "faktory.working:1|g|#env:test");
    assert_received(&r, "faktory.connections:3|g|#env:test");
    assert_received(&r, "faktory.workers:2|g|#env:test");
    assert_received(&r, "faktory.commands:99|g|#env:test");
    assert_received(&r, "faktory.uptime:12|g|#env:test");
    assert_received(&r, "faktory.queue.size:1|g|#queue:critical,env:test");
    assert_received(&r, "faktory.queue.size:0|g|#queue:low,env:test");
    assert_received(&r, "faktory.queue.paused:0|g|#queue:critical,env:test");
    assert_received(&r, "faktory.queue.paused:0|g|#queue:low,env:test");
    double latency = received_value(&r, "faktory.queue.latency:", "|g|#queue:critical,env:test");
    if (latency < 12 || latency > 20)
        fail_msg("latency of critical is %.3f s, expected 12 to 20", latency);
    assert_received(&r, "faktory.queue.latency:0|g|#queue:none,env:test");
    assert_int_equal(receiver_count_prefix(&r, "faktory.queue.latency:"), 2);
    assert_received(&r, "faktory.throttle.in_use:1|g|#queue:critical,env:test");
    assert_received(&r, "faktory.throttle.waiting:0|g|#queue:critical,env:test");
    assert_received(&r, "faktory.throttle.timed_out:0|g|#queue:critical,env:test");
    assert_received(&r, "faktory.throttle.limit:2|g|#queue:critical,kind:concurrency,env:test");
    assert_received(&r, "faktory.throttle.limit:0|g|#queue:critical,kind:worker,env:test");
    assert_received(&r, "faktory.throttle.limit:0|g|#queue:critical,kind:rate_limit,env:test");

    statsd_close(st);
    close(r.fd);
    engine_fixture_close(f);
}

static void report_follows_clock(void **state) {
    (void)state;
    struct engine_fixture *f = engine_fixture_open("{}");
    struct receiver r;
    receiver_open(&r);
    struct statsd *st = exporter_to(&r, "");
    static const struct {
        double now;
        int gauges_total;   /* "processed" lines received so far */
    } steps[] = {
        {1000, 1},     /* the first call sends at once */
        {1010, 1},
        {1029.9, 1},
        {1030, 2},     /* 30 s after the previous gauges */
        {1059, 2},
        {1530, 3},     /* a long jump sends once, with no catch-up */
        {1559, 3},
        {1400, 4},     /* a clock set back by more than 60 s starts over */
        {1429, 4},
        {1430, 5},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        statsd_report(st, &f->e, &figures, steps[i].now);
        receiver_collect(&r, 100);
        int got = receiver_count_prefix(&r, "faktory.processed:");
        if (got != steps[i].gauges_total)
            fail_msg("after statsd_report at %.1f: %d gauge reports, expected %d", steps[i].now,
                     got, steps[i].gauges_total);
    }

    /* A reloaded exporter keeps the schedule. */
    struct receiver r2;
    receiver_open(&r2);
    struct statsd *fresh = exporter_to(&r2, "");
    statsd_adopt(fresh, st);
    statsd_close(st);
    statsd_report(fresh, &f->e, &figures, 1440);
    receiver_collect(&r2, 100);
    assert_int_equal(receiver_count_prefix(&r2, "faktory.processed:"), 0);
    statsd_report(fresh, &f->e, &figures, 1460);
    receiver_collect(&r2, 100);
    assert_int_equal(receiver_count_prefix(&r2, "faktory.processed:"), 1);
    statsd_close(fresh);
    close(r.fd);
    close(r2.fd);
    engine_fixture_close(f);
}

static int setup_quiet(void **state) {
    (void)state;
    log_set_level(LOG_ERROR);
    unsetenv(STATSD_ENV_URL);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_absent_disables),
        cmocka_unit_test(config_location_only_defaults),
        cmocka_unit_test(config_every_key),
        cmocka_unit_test(config_location_forms),
        cmocka_unit_test(config_namespace_rules),
        cmocka_unit_test(tag_rules),
        cmocka_unit_test(config_tag_errors),
        cmocka_unit_test(config_buffer_size),
        cmocka_unit_test(config_queue_latency),
        cmocka_unit_test(config_unknown_key_and_type),
        cmocka_unit_test(env_url_alone),
        cmocka_unit_test(env_url_replaces_location),
        cmocka_unit_test(env_url_errors),
        cmocka_unit_test(value_format),
        cmocka_unit_test(line_format),
        cmocka_unit_test(packer_line_limit),
        cmocka_unit_test(packer_byte_limit),
        cmocka_unit_test(packer_long_line_alone),
        cmocka_unit_test(exporter_sums_counters),
        cmocka_unit_test(exporter_job_observers),
        cmocka_unit_test(exporter_cuts_long_jobtype),
        cmocka_unit_test(exporter_packets_follow_buffer_size),
        cmocka_unit_test(exporter_close_sends_pending),
        cmocka_unit_test(exporter_many_counters_flush_early),
        cmocka_unit_test(exporter_open_and_adopt),
        cmocka_unit_test(gauges_mirror_engine),
        cmocka_unit_test(report_follows_clock),
    };
    return cmocka_run_group_tests(tests, setup_quiet, NULL);
}
