/* Unit tests of the queue throttles (src/ent/throttle.c). They cover parsing of the [throttles]
 * table with every key and every error, and availability by concurrency, per worker and by the
 * sliding rate window, alone and combined. They also cover release and expiry of slots, the
 * next deadline, adoption of the slots on a configuration reload, clearing and the INFO
 * description. Time is passed in, so no test sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ent/throttle.h"

#define assert_near(actual, expected)                                                     \
    do {                                                                                  \
        double actual_ = (actual), expected_ = (expected);                                \
        if (fabs(actual_ - expected_) > 1e-9)                                             \
            fail_msg("%s is %.9f, expected %.9f", #actual, actual_, expected_);           \
    } while (0)

/* Checks that every needle occurs in text. */
#define assert_contains(text, needle)                                                     \
    do {                                                                                  \
        if (!strstr((text), (needle)))                                                    \
            fail_msg("\"%s\" does not contain \"%s\"", (text), (needle));                 \
    } while (0)

/* ---- helpers ---- */

/* Times in these tests stay well above 0, as Unix times do: the throttle code uses 0 to mean
 * "no time" (for example an open rate window). */

/* Parses {"throttles": <table_json>} into set; fails the test when parsing fails. */
static void parse_ok(const char *table_json, struct throttle_set *set) {
    char text[4096];
    snprintf(text, sizeof text, "{\"throttles\": %s}", table_json);
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("test JSON %s is invalid: %s", text, jerr.text);
    char err[512] = "";
    int rc = throttle_parse(doc, set, err, sizeof err);
    json_decref(doc);
    if (rc != 0)
        fail_msg("%s rejected: %s", table_json, err);
}

/* Parses {"throttles": <table_json>}, checks that it is rejected and returns the message. */
static const char *parse_error(const char *table_json) {
    static char err[512];
    char text[4096];
    snprintf(text, sizeof text, "{\"throttles\": %s}", table_json);
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("test JSON %s is invalid: %s", text, jerr.text);
    struct throttle_set set = {(struct throttle *)0x1};
    err[0] = '\0';
    int rc = throttle_parse(doc, &set, err, sizeof err);
    json_decref(doc);
    if (rc == 0) {
        throttle_set_free(&set);
        fail_msg("%s was accepted", table_json);
    }
    assert_int_equal(rc, -1);
    /* A rejected document leaves no throttle behind for the caller to free. */
    assert_null(set.by_queue);
    if (!err[0])
        fail_msg("%s rejected without a message", table_json);
    return err;
}

/* The throttle of queue, which must exist. */
static struct throttle *must_find(struct throttle_set *set, const char *queue) {
    struct throttle *t = throttle_find(set, queue);
    if (!t)
        fail_msg("no throttle for queue %s", queue);
    return t;
}

/* How many holders of t belong to wid. */
static int holders_of(const struct throttle *t, const char *wid) {
    int n = 0;
    for (size_t i = 0; i < t->nholders; i++)
        n += strcmp(t->holders[i].wid, wid) == 0;
    return n;
}

static bool holds_job(const struct throttle *t, int64_t job_id) {
    for (size_t i = 0; i < t->nholders; i++) {
        if (t->holders[i].job_id == job_id)
            return true;
    }
    return false;
}

/* Records the queues passed to the freed callback of throttle_expire. */
struct freed_log {
    int calls;
    char queues[16][32];
};

static void record_freed(void *ctx, const char *queue) {
    struct freed_log *log = ctx;
    if (log->calls < 16)
        snprintf(log->queues[log->calls], sizeof log->queues[0], "%s", queue);
    log->calls++;
}

static int freed_count(const struct freed_log *log, const char *queue) {
    int n = 0;
    for (int i = 0; i < log->calls && i < 16; i++)
        n += strcmp(log->queues[i], queue) == 0;
    return n;
}

/* ---- parsing ---- */

static void parse_without_table_gives_empty_set(void **state) {
    (void)state;
    struct throttle_set set = {(struct throttle *)0x1};
    char err[256] = "";
    assert_int_equal(throttle_parse(NULL, &set, err, sizeof err), 0);
    assert_null(set.by_queue);

    json_t *doc = json_pack("{s:{s:i}}", "fabrik", "max_connections", 10);
    set.by_queue = (struct throttle *)0x1;
    assert_int_equal(throttle_parse(doc, &set, err, sizeof err), 0);
    assert_null(set.by_queue);
    json_decref(doc);

    parse_ok("{}", &set);
    assert_null(set.by_queue);
    assert_null(throttle_find(&set, "bulk"));
}

static void parse_reads_every_key(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"bulk\": {\"worker\": 5, \"timeout\": 60},"
             " \"images\": {\"concurrency\": 4, \"timeout\": 30},"
             " \"api\": {\"rate_limit\": 100, \"rate_period\": 60},"
             " \"mixed.q-1_x\": {\"concurrency\": 3, \"worker\": 2, \"timeout\": 1.5,"
             "   \"rate_limit\": 10, \"rate_period\": 0.5}}",
             &set);

    struct throttle *bulk = must_find(&set, "bulk");
    assert_string_equal(bulk->queue, "bulk");
    assert_int_equal(bulk->concurrency, 0);
    assert_int_equal(bulk->per_worker, 5);
    assert_near(bulk->timeout, 60);
    assert_int_equal(bulk->rate_limit, 0);
    assert_near(bulk->rate_period, 0);

    struct throttle *images = must_find(&set, "images");
    assert_int_equal(images->concurrency, 4);
    assert_int_equal(images->per_worker, 0);
    assert_near(images->timeout, 30);
    assert_int_equal(images->rate_limit, 0);

    /* A rate limit alone needs no timeout, because it takes no slot that could leak. */
    struct throttle *api = must_find(&set, "api");
    assert_int_equal(api->concurrency, 0);
    assert_int_equal(api->per_worker, 0);
    assert_near(api->timeout, 0);
    assert_int_equal(api->rate_limit, 100);
    assert_near(api->rate_period, 60);

    struct throttle *mixed = must_find(&set, "mixed.q-1_x");
    assert_int_equal(mixed->concurrency, 3);
    assert_int_equal(mixed->per_worker, 2);
    assert_near(mixed->timeout, 1.5);
    assert_int_equal(mixed->rate_limit, 10);
    assert_near(mixed->rate_period, 0.5);

    /* Every throttle starts with no slot in use and zero counters. */
    assert_int_equal(mixed->nholders, 0);
    assert_int_equal(mixed->taken, 0);
    assert_int_equal(mixed->released, 0);
    assert_int_equal(mixed->timed_out, 0);
    assert_null(throttle_find(&set, "other"));
    throttle_set_free(&set);
}

static void parse_accepts_bounds(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"low\": {\"concurrency\": 1, \"worker\": 1, \"timeout\": 0.001,"
             "   \"rate_limit\": 1, \"rate_period\": 0.001},"
             " \"high\": {\"concurrency\": 1000000, \"worker\": 1000000, \"timeout\": 31536000,"
             "   \"rate_limit\": 1000000, \"rate_period\": 31536000}}",
             &set);
    assert_int_equal(must_find(&set, "low")->concurrency, 1);
    assert_int_equal(must_find(&set, "high")->concurrency, 1000000);
    assert_int_equal(must_find(&set, "high")->rate_limit, 1000000);
    assert_near(must_find(&set, "high")->timeout, 31536000);
    throttle_set_free(&set);

    /* The maximum queue name length is 128 bytes. */
    char name[129];
    memset(name, 'q', 128);
    name[128] = '\0';
    char table[512];
    snprintf(table, sizeof table, "{\"%s\": {\"concurrency\": 1, \"timeout\": 5}}", name);
    parse_ok(table, &set);
    must_find(&set, name);
    throttle_set_free(&set);
}

static void parse_rejects_non_table(void **state) {
    (void)state;
    assert_contains(parse_error("5"), "[throttles] must be a table");
    assert_contains(parse_error("[1, 2]"), "[throttles] must be a table");
    assert_contains(parse_error("\"bulk\""), "[throttles] must be a table");

    const char *err = parse_error("{\"bulk\": 5}");
    assert_contains(err, "[throttles] bulk must be a table");
    assert_contains(err, "bulk = { concurrency = 4, timeout = 60 }");
    assert_contains(parse_error("{\"bulk\": [4, 60]}"), "[throttles] bulk must be a table");
    assert_contains(parse_error("{\"bulk\": \"concurrency=4\"}"),
                    "[throttles] bulk must be a table");
}

static void parse_rejects_invalid_queue_names(void **state) {
    (void)state;
    const char *err = parse_error("{\"no such!\": {\"concurrency\": 1, \"timeout\": 5}}");
    assert_contains(err, "\"no such!\"");
    assert_contains(err, "[a-zA-Z0-9._-]+");
    assert_contains(parse_error("{\"\": {\"concurrency\": 1, \"timeout\": 5}}"), "\"\"");
    assert_contains(parse_error("{\"a/b\": {\"concurrency\": 1, \"timeout\": 5}}"), "\"a/b\"");

    char name[130];
    memset(name, 'q', 129);
    name[129] = '\0';
    char table[512];
    snprintf(table, sizeof table, "{\"%s\": {\"concurrency\": 1, \"timeout\": 5}}", name);
    assert_contains(parse_error(table), "at most 128 bytes");
}

static void parse_rejects_unknown_key(void **state) {
    (void)state;
    const char *err = parse_error("{\"bulk\": {\"concurency\": 4, \"timeout\": 60}}");
    assert_contains(err, "[throttles] bulk");
    assert_contains(err, "unknown key \"concurency\"");
    assert_contains(err, "concurrency, worker, timeout, rate_limit and rate_period");
    assert_contains(parse_error("{\"bulk\": {\"concurrency\": 4, \"timeout\": 60, \"x\": 1}}"),
                    "unknown key \"x\"");
}

/* Each limit key must be an integer from 1 to 1,000,000. */
static void parse_rejects_bad_limits(void **state) {
    (void)state;
    static const char *const keys[] = {"concurrency", "worker", "rate_limit"};
    static const char *const values[] = {"0", "-1", "1.5", "4.0", "\"4\"", "true", "null",
                                         "1000001", "{}"};
    for (size_t k = 0; k < 3; k++) {
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            char table[256];
            snprintf(table, sizeof table,
                     "{\"bulk\": {\"%s\": %s, \"timeout\": 60, \"rate_period\": 60}}", keys[k],
                     values[v]);
            const char *err = parse_error(table);
            char expected[160];
            snprintf(expected, sizeof expected,
                     "[throttles] bulk: %s must be an integer from 1 to 1000000", keys[k]);
            assert_contains(err, expected);
            /* The example in the message is itself a valid entry. */
            snprintf(expected, sizeof expected, "as in bulk = { %s = 5, %s = 60 }", keys[k],
                     k == 2 ? "rate_period" : "timeout");
            assert_contains(err, expected);
        }
    }
}

/* timeout and rate_period must be numbers of seconds above 0 and at most a year. */
static void parse_rejects_bad_seconds(void **state) {
    (void)state;
    static const char *const values[] = {"0", "0.0", "-1", "\"60\"", "true", "31536000.5",
                                         "1e12", "[]"};
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
        char table[256];
        snprintf(table, sizeof table, "{\"bulk\": {\"concurrency\": 2, \"timeout\": %s}}",
                 values[v]);
        assert_contains(parse_error(table),
                        "[throttles] bulk: timeout must be a number of seconds above 0");
        snprintf(table, sizeof table, "{\"api\": {\"rate_limit\": 2, \"rate_period\": %s}}",
                 values[v]);
        assert_contains(parse_error(table),
                        "[throttles] api: rate_period must be a number of seconds above 0");
    }
}

static void parse_rejects_missing_keys(void **state) {
    (void)state;
    const char *err = parse_error("{\"bulk\": {\"timeout\": 60}}");
    assert_contains(err, "[throttles] bulk sets no limit");
    assert_contains(err, "concurrency, worker or rate_limit");
    assert_contains(parse_error("{\"bulk\": {}}"), "[throttles] bulk sets no limit");
    assert_contains(parse_error("{\"bulk\": {\"rate_period\": 60}}"),
                    "[throttles] bulk sets no limit");

    err = parse_error("{\"bulk\": {\"concurrency\": 4}}");
    assert_contains(err, "[throttles] bulk: timeout is required with concurrency or worker");
    err = parse_error("{\"bulk\": {\"worker\": 5}}");
    assert_contains(err, "[throttles] bulk: timeout is required with concurrency or worker");
    err = parse_error("{\"bulk\": {\"worker\": 5, \"rate_limit\": 3, \"rate_period\": 1}}");
    assert_contains(err, "timeout is required");

    err = parse_error("{\"api\": {\"rate_limit\": 100}}");
    assert_contains(err, "[throttles] api: rate_limit and rate_period go together");
    err = parse_error("{\"api\": {\"concurrency\": 1, \"timeout\": 9, \"rate_period\": 60}}");
    assert_contains(err, "[throttles] api: rate_limit and rate_period go together");
}

/* A bad entry after valid ones rejects the whole table and frees what was built so far
 * (the sanitizer build checks for leaks). */
static void parse_error_after_valid_entries(void **state) {
    (void)state;
    const char *err = parse_error("{\"a\": {\"concurrency\": 1, \"timeout\": 5},"
                                  " \"b\": {\"worker\": 2, \"timeout\": 5},"
                                  " \"c\": {\"rate_limit\": 1, \"rate_period\": 1},"
                                  " \"d\": {\"worker\": 2}}");
    assert_contains(err, "[throttles] d: timeout is required");
}

/* ---- availability ---- */

static void concurrency_bounds_slots_in_server(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"images\": {\"concurrency\": 2, \"timeout\": 30}}", &set);
    struct throttle *t = must_find(&set, "images");

    assert_true(throttle_available(t, "w1", 0));
    throttle_take(t, 1, "job-1", "w1", 0, true);
    assert_true(throttle_available(t, "w1", 0));
    assert_true(throttle_available(t, "w2", 0));
    throttle_take(t, 2, "job-2", "w2", 0, true);
    assert_false(throttle_available(t, "w1", 0));
    assert_false(throttle_available(t, "w3", 0));
    assert_false(throttle_available(t, NULL, 0));
    assert_int_equal(t->nholders, 2);

    assert_true(throttle_release(&set, "images", 1));
    assert_true(throttle_available(t, "w3", 1));
    assert_true(throttle_available(t, NULL, 1));
    throttle_take(t, 3, "job-3", NULL, 1, true);
    assert_false(throttle_available(t, "w1", 1));
    assert_int_equal(t->taken, 3);
    assert_int_equal(t->released, 1);
    throttle_set_free(&set);
}

static void worker_limit_applies_per_wid(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"bulk\": {\"worker\": 2, \"timeout\": 60}}", &set);
    struct throttle *t = must_find(&set, "bulk");

    throttle_take(t, 1, "job-1", "wa", 0, true);
    throttle_take(t, 2, "job-2", "wa", 0, true);
    assert_false(throttle_available(t, "wa", 0));
    assert_true(throttle_available(t, "wb", 0));
    throttle_take(t, 3, "job-3", "wb", 0, true);
    throttle_take(t, 4, "job-4", "wb", 0, true);
    assert_false(throttle_available(t, "wb", 0));
    /* No concurrency limit: a third worker still gets slots. */
    assert_true(throttle_available(t, "wc", 0));
    assert_int_equal(holders_of(t, "wa"), 2);
    assert_int_equal(holders_of(t, "wb"), 2);

    assert_true(throttle_release(&set, "bulk", 1));
    assert_true(throttle_available(t, "wa", 0));
    assert_false(throttle_available(t, "wb", 0));
    throttle_set_free(&set);
}

/* Fetches from connections without a wid share one group, stored as the empty wid. */
static void worker_limit_groups_fetches_without_wid(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"bulk\": {\"worker\": 2, \"timeout\": 60}}", &set);
    struct throttle *t = must_find(&set, "bulk");

    throttle_take(t, 1, "job-1", NULL, 0, true);
    assert_true(throttle_available(t, NULL, 0));
    throttle_take(t, 2, "job-2", NULL, 0, true);
    assert_false(throttle_available(t, NULL, 0));
    assert_false(throttle_available(t, "", 0));
    assert_true(throttle_available(t, "wa", 0));
    assert_string_equal(t->holders[0].wid, "");
    assert_string_equal(t->holders[1].wid, "");
    throttle_set_free(&set);
}

/* rate_limit counts starts in the last rate_period seconds: each start leaves the window
 * exactly rate_period seconds after it happened. */
static void rate_window_slides(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"api\": {\"rate_limit\": 3, \"rate_period\": 10}}", &set);
    struct throttle *t = must_find(&set, "api");

    throttle_take(t, 1, "job-1", "w", 1000, true);
    throttle_take(t, 2, "job-2", "w", 1004, true);
    assert_true(throttle_available(t, "w", 1008));
    throttle_take(t, 3, "job-3", "w", 1008, true);
    assert_false(throttle_available(t, "w", 1008));
    assert_false(throttle_available(t, "other", 1009.999));

    /* The start at 1000 leaves the window at 1010: one more start fits, then the window is
     * full until the start at 1004 leaves it at 1014. */
    assert_true(throttle_available(t, "w", 1010));
    throttle_take(t, 4, "job-4", "w", 1010, true);
    assert_false(throttle_available(t, "w", 1010));
    assert_false(throttle_available(t, "w", 1013.999));
    assert_true(throttle_available(t, "w", 1014));
    assert_true(throttle_available(t, "w", 1100));
    throttle_set_free(&set);
}

/* Finished jobs do not give rate back: the window counts starts, not running jobs. */
static void rate_counts_starts_not_holders(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"api\": {\"rate_limit\": 2, \"rate_period\": 60}}", &set);
    struct throttle *t = must_find(&set, "api");

    throttle_take(t, 1, "job-1", "w", 100, true);
    assert_true(throttle_release(&set, "api", 1));
    throttle_take(t, 2, "job-2", "w", 101, true);
    assert_true(throttle_release(&set, "api", 2));
    assert_int_equal(t->nholders, 0);
    assert_false(throttle_available(t, "w", 102));
    assert_false(throttle_available(t, "w", 159.9));
    assert_true(throttle_available(t, "w", 160));

    /* Without a concurrency limit, jobs that run for long do not block new starts. */
    throttle_take(t, 3, "job-3", "w", 200, true);
    throttle_take(t, 4, "job-4", "w", 260, true);
    throttle_take(t, 5, "job-5", "w", 320, true);
    assert_int_equal(t->nholders, 3);
    assert_true(throttle_available(t, "w", 380));
    throttle_set_free(&set);
}

/* Slots rebuilt from storage (count_start false) do not enter the rate window. */
static void rebuilt_slots_skip_rate_window(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"api\": {\"rate_limit\": 1, \"rate_period\": 60, \"concurrency\": 5,"
             " \"timeout\": 600}}",
             &set);
    struct throttle *t = must_find(&set, "api");
    throttle_take(t, 1, "job-1", "w", 10, false);
    throttle_take(t, 2, "job-2", "w", 11, false);
    assert_int_equal(t->nholders, 2);
    assert_int_equal(t->nstarts, 0);
    assert_true(throttle_available(t, "w", 12));
    throttle_take(t, 3, "job-3", "w", 12, true);
    assert_false(throttle_available(t, "w", 12));
    throttle_set_free(&set);
}

static void combined_limits_all_apply(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"mix\": {\"concurrency\": 2, \"worker\": 1, \"timeout\": 300,"
             " \"rate_limit\": 3, \"rate_period\": 10}}",
             &set);
    struct throttle *t = must_find(&set, "mix");

    throttle_take(t, 1, "job-1", "wa", 1000, true);
    assert_false(throttle_available(t, "wa", 1000));   /* worker limit */
    assert_true(throttle_available(t, "wb", 1000));
    throttle_take(t, 2, "job-2", "wb", 1000, true);
    assert_false(throttle_available(t, "wc", 1000));   /* concurrency limit */

    assert_true(throttle_release(&set, "mix", 1));
    assert_true(throttle_available(t, "wc", 1001));
    assert_false(throttle_available(t, "wb", 1001));   /* still the worker limit */
    throttle_take(t, 3, "job-3", "wc", 1001, true);

    /* Three starts fill the rate window even after every slot is free again. */
    assert_true(throttle_release(&set, "mix", 2));
    assert_true(throttle_release(&set, "mix", 3));
    assert_int_equal(t->nholders, 0);
    assert_false(throttle_available(t, "wd", 1002));   /* rate limit */
    assert_true(throttle_available(t, "wd", 1010));
    throttle_set_free(&set);
}

/* ---- release and expiry ---- */

static void release_frees_only_once(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"bulk\": {\"concurrency\": 3, \"timeout\": 60}}", &set);
    struct throttle *t = must_find(&set, "bulk");

    /* Holders are keyed by the job's row id, because a jid may repeat. */
    throttle_take(t, 1, "same-jid", "w", 0, true);
    throttle_take(t, 2, "same-jid", "w", 0, true);
    assert_true(throttle_release(&set, "bulk", 1));
    assert_false(throttle_release(&set, "bulk", 1));
    assert_int_equal(t->nholders, 1);
    assert_true(holds_job(t, 2));
    assert_int_equal(t->released, 1);

    assert_false(throttle_release(&set, "bulk", 99));
    assert_false(throttle_release(&set, "other", 2));
    assert_int_equal(t->nholders, 1);
    assert_true(throttle_release(&set, "bulk", 2));
    assert_false(throttle_release(&set, "bulk", 2));
    assert_int_equal(t->nholders, 0);
    assert_int_equal(t->taken, 2);
    assert_int_equal(t->released, 2);
    throttle_set_free(&set);
}

static void expire_frees_slots_after_timeout(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"bulk\": {\"concurrency\": 2, \"timeout\": 10}}", &set);
    struct throttle *t = must_find(&set, "bulk");
    throttle_take(t, 1, "job-1", "w1", 0, true);
    throttle_take(t, 2, "job-2", "w2", 5, true);
    assert_false(throttle_available(t, "w3", 9));

    struct freed_log log = {0};
    assert_int_equal(throttle_expire(&set, 9.999, record_freed, &log), 0);
    assert_int_equal(t->nholders, 2);

    memset(&log, 0, sizeof log);
    assert_int_equal(throttle_expire(&set, 10, record_freed, &log), 1);
    assert_int_equal(freed_count(&log, "bulk"), 1);
    assert_int_equal(t->nholders, 1);
    assert_true(holds_job(t, 2));
    assert_true(throttle_available(t, "w3", 10));

    /* A job whose slot timed out keeps running; its later ACK frees nothing. */
    assert_false(throttle_release(&set, "bulk", 1));
    assert_int_equal(t->released, 0);

    memset(&log, 0, sizeof log);
    assert_int_equal(throttle_expire(&set, 16, record_freed, &log), 1);
    assert_int_equal(freed_count(&log, "bulk"), 1);
    assert_int_equal(t->nholders, 0);
    assert_int_equal(t->timed_out, 2);
    assert_int_equal(t->taken, 2);
    assert_false(throttle_release(&set, "bulk", 2));
    throttle_set_free(&set);
}

/* One expire pass frees every due slot of every queue and reports each queue once. */
static void expire_reports_each_queue_once(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"a\": {\"concurrency\": 5, \"timeout\": 10},"
             " \"b\": {\"worker\": 5, \"timeout\": 20},"
             " \"c\": {\"concurrency\": 5, \"timeout\": 100}}",
             &set);
    for (int64_t i = 0; i < 3; i++)
        throttle_take(must_find(&set, "a"), 10 + i, "job-a", "w", 0, true);
    for (int64_t i = 0; i < 2; i++)
        throttle_take(must_find(&set, "b"), 20 + i, "job-b", "w", 0, true);
    throttle_take(must_find(&set, "c"), 30, "job-c", "w", 0, true);

    struct freed_log log = {0};
    assert_int_equal(throttle_expire(&set, 50, record_freed, &log), 5);
    assert_int_equal(freed_count(&log, "a"), 1);
    assert_int_equal(freed_count(&log, "b"), 1);
    assert_int_equal(must_find(&set, "a")->timed_out, 3);
    assert_int_equal(must_find(&set, "b")->timed_out, 2);
    assert_int_equal(must_find(&set, "c")->nholders, 1);
    assert_int_equal(must_find(&set, "c")->timed_out, 0);

    /* A NULL callback is allowed. */
    assert_int_equal(throttle_expire(&set, 100, NULL, NULL), 1);
    assert_int_equal(must_find(&set, "c")->nholders, 0);
    throttle_set_free(&set);
}

/* Waiters on a rate-limited queue must hear when its window opens again. */
static void expire_reports_reopened_rate_window(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"api\": {\"rate_limit\": 1, \"rate_period\": 10}}", &set);
    struct throttle *t = must_find(&set, "api");
    throttle_take(t, 1, "job-1", "w", 1000, true);
    assert_true(throttle_release(&set, "api", 1));

    struct freed_log log = {0};
    throttle_expire(&set, 1005, record_freed, &log);
    assert_int_equal(freed_count(&log, "api"), 0);
    throttle_expire(&set, 1010, record_freed, &log);
    assert_int_equal(freed_count(&log, "api"), 1);
    assert_int_equal(t->timed_out, 0);
    throttle_set_free(&set);
}

/* ---- deadline ---- */

static void next_deadline_is_earliest_due_time(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"a\": {\"concurrency\": 5, \"timeout\": 10},"
             " \"b\": {\"worker\": 5, \"timeout\": 30},"
             " \"api\": {\"rate_limit\": 2, \"rate_period\": 7}}",
             &set);
    assert_near(throttle_next_deadline(&set, 0), 0);

    throttle_take(must_find(&set, "b"), 1, "job-1", "w", 2, true);
    assert_near(throttle_next_deadline(&set, 3), 32);
    throttle_take(must_find(&set, "a"), 2, "job-2", "w", 5, true);
    throttle_take(must_find(&set, "a"), 3, "job-3", "w", 4, true);
    assert_near(throttle_next_deadline(&set, 6), 14);

    /* A rate window that still has room sets no deadline, and a rate-only throttle's
     * holders never time out. */
    struct throttle *api = must_find(&set, "api");
    throttle_take(api, 4, "job-4", "w", 1, true);
    assert_near(throttle_next_deadline(&set, 6), 14);
    /* A full window reopens when its oldest start leaves it: 1 + 7. */
    throttle_take(api, 5, "job-5", "w", 6, true);
    assert_near(throttle_next_deadline(&set, 6), 8);
    /* Once the window has room again, it no longer counts. */
    assert_near(throttle_next_deadline(&set, 8), 14);

    throttle_release(&set, "a", 2);
    throttle_release(&set, "a", 3);
    assert_near(throttle_next_deadline(&set, 9), 32);
    throttle_release(&set, "b", 1);
    assert_near(throttle_next_deadline(&set, 9), 0);
    throttle_set_free(&set);
}

/* ---- reload ---- */

static void adopt_keeps_slots_under_lowered_limit(void **state) {
    (void)state;
    struct throttle_set old, fresh;
    parse_ok("{\"bulk\": {\"concurrency\": 3, \"timeout\": 60}}", &old);
    struct throttle *t = must_find(&old, "bulk");
    throttle_take(t, 1, "job-1", "w1", 1, true);
    throttle_take(t, 2, "job-2", "w2", 2, true);
    throttle_take(t, 3, "job-3", "w3", 3, true);
    throttle_take(t, 4, "job-4", "w3", 4, true);
    assert_true(throttle_release(&old, "bulk", 4));

    parse_ok("{\"bulk\": {\"concurrency\": 1, \"timeout\": 60}}", &fresh);
    throttle_adopt(&fresh, &old);
    t = must_find(&fresh, "bulk");
    assert_int_equal(t->concurrency, 1);
    assert_int_equal(t->nholders, 3);
    assert_true(holds_job(t, 1));
    assert_true(holds_job(t, 2));
    assert_true(holds_job(t, 3));
    assert_near(t->holders[0].since + t->holders[1].since + t->holders[2].since, 6);
    assert_int_equal(t->taken, 4);
    assert_int_equal(t->released, 1);

    /* No new job gets in until enough of the old ones finish. */
    assert_false(throttle_available(t, "w9", 5));
    assert_true(throttle_release(&fresh, "bulk", 1));
    assert_false(throttle_available(t, "w9", 5));
    assert_true(throttle_release(&fresh, "bulk", 2));
    assert_false(throttle_available(t, "w9", 5));
    assert_true(throttle_release(&fresh, "bulk", 3));
    assert_true(throttle_available(t, "w9", 5));
    assert_int_equal(t->released, 4);
    throttle_set_free(&fresh);
}

static void adopt_raised_limit_admits_more(void **state) {
    (void)state;
    struct throttle_set old, fresh;
    parse_ok("{\"bulk\": {\"worker\": 1, \"timeout\": 60}}", &old);
    throttle_take(must_find(&old, "bulk"), 1, "job-1", "wa", 0, true);
    assert_false(throttle_available(must_find(&old, "bulk"), "wa", 0));

    parse_ok("{\"bulk\": {\"worker\": 2, \"timeout\": 60}}", &fresh);
    throttle_adopt(&fresh, &old);
    struct throttle *t = must_find(&fresh, "bulk");
    assert_int_equal(holders_of(t, "wa"), 1);
    assert_true(throttle_available(t, "wa", 0));
    throttle_take(t, 2, "job-2", "wa", 0, true);
    assert_false(throttle_available(t, "wa", 0));

    /* The adopted slots keep their timeout clock. */
    struct freed_log log = {0};
    assert_int_equal(throttle_expire(&fresh, 60, record_freed, &log), 2);
    throttle_set_free(&fresh);
}

static void adopt_drops_removed_and_starts_new_queues(void **state) {
    (void)state;
    struct throttle_set old, fresh;
    parse_ok("{\"gone\": {\"concurrency\": 1, \"timeout\": 60},"
             " \"kept\": {\"concurrency\": 1, \"timeout\": 60}}",
             &old);
    throttle_take(must_find(&old, "gone"), 1, "job-1", "w", 0, true);
    throttle_take(must_find(&old, "kept"), 2, "job-2", "w", 0, true);

    parse_ok("{\"kept\": {\"concurrency\": 1, \"timeout\": 60},"
             " \"new\": {\"concurrency\": 1, \"timeout\": 60}}",
             &fresh);
    throttle_adopt(&fresh, &old);
    assert_null(throttle_find(&fresh, "gone"));
    assert_false(throttle_release(&fresh, "gone", 1));
    assert_int_equal(must_find(&fresh, "kept")->nholders, 1);
    assert_int_equal(must_find(&fresh, "new")->nholders, 0);
    assert_true(throttle_available(must_find(&fresh, "new"), "w", 0));
    assert_false(throttle_available(must_find(&fresh, "kept"), "w", 0));
    throttle_set_free(&fresh);

    /* Adopting into an empty set frees everything (checked by the sanitizer build). */
    parse_ok("{\"q\": {\"concurrency\": 1, \"timeout\": 60}}", &old);
    throttle_take(must_find(&old, "q"), 1, "job-1", "w", 0, true);
    struct throttle_set none = {0};
    throttle_adopt(&none, &old);
    assert_null(none.by_queue);
}

static void adopt_keeps_rate_window(void **state) {
    (void)state;
    struct throttle_set old, fresh;
    parse_ok("{\"api\": {\"rate_limit\": 3, \"rate_period\": 10}}", &old);
    struct throttle *t = must_find(&old, "api");
    /* Five starts wrap the ring of three, so the window contains the starts at 3, 4 and 5. */
    for (int i = 1; i <= 5; i++)
        throttle_take(t, i, "job", "w", i, true);
    assert_false(throttle_available(t, "w", 12.9));
    assert_true(throttle_available(t, "w", 13));

    /* Same limit: still blocked until 13. */
    parse_ok("{\"api\": {\"rate_limit\": 3, \"rate_period\": 10}}", &fresh);
    throttle_adopt(&fresh, &old);
    t = must_find(&fresh, "api");
    assert_false(throttle_available(t, "w", 12.9));
    assert_true(throttle_available(t, "w", 13));
    assert_near(throttle_next_deadline(&fresh, 6), 13);

    /* Lowered to two: the newest two starts (4 and 5) are kept, so it opens at 14. */
    old = fresh;
    parse_ok("{\"api\": {\"rate_limit\": 2, \"rate_period\": 10}}", &fresh);
    throttle_adopt(&fresh, &old);
    t = must_find(&fresh, "api");
    assert_false(throttle_available(t, "w", 13.9));
    assert_true(throttle_available(t, "w", 14));
    assert_near(throttle_next_deadline(&fresh, 6), 14);

    /* Raised to four: room for two more starts. */
    old = fresh;
    parse_ok("{\"api\": {\"rate_limit\": 4, \"rate_period\": 10}}", &fresh);
    throttle_adopt(&fresh, &old);
    t = must_find(&fresh, "api");
    assert_true(throttle_available(t, "w", 6));
    throttle_take(t, 6, "job", "w", 6, true);
    throttle_take(t, 7, "job", "w", 6, true);
    assert_false(throttle_available(t, "w", 6));
    assert_true(throttle_available(t, "w", 14));

    /* The rate limit removed: the window no longer counts. */
    old = fresh;
    parse_ok("{\"api\": {\"concurrency\": 100, \"timeout\": 60}}", &fresh);
    throttle_adopt(&fresh, &old);
    assert_true(throttle_available(must_find(&fresh, "api"), "w", 6));
    throttle_set_free(&fresh);
}

/* ---- clear and describe ---- */

static void clear_frees_every_slot(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"a\": {\"concurrency\": 2, \"timeout\": 60},"
             " \"b\": {\"worker\": 1, \"timeout\": 60}}",
             &set);
    throttle_take(must_find(&set, "a"), 1, "job-1", "w", 0, true);
    throttle_take(must_find(&set, "a"), 2, "job-2", "w", 0, true);
    throttle_take(must_find(&set, "b"), 3, "job-3", "w", 0, true);

    throttle_clear(&set);
    assert_int_equal(must_find(&set, "a")->nholders, 0);
    assert_int_equal(must_find(&set, "b")->nholders, 0);
    /* Cleared slots count as released, so taken = released + timed_out + in_use holds. */
    assert_int_equal(must_find(&set, "a")->taken, 2);
    assert_int_equal(must_find(&set, "a")->released, 2);
    assert_int_equal(must_find(&set, "b")->released, 1);
    assert_int_equal(must_find(&set, "b")->timed_out, 0);
    assert_true(throttle_available(must_find(&set, "a"), "w", 0));
    assert_true(throttle_available(must_find(&set, "b"), "w", 0));
    assert_false(throttle_release(&set, "a", 1));
    assert_near(throttle_next_deadline(&set, 0), 0);
    struct freed_log log = {0};
    assert_int_equal(throttle_expire(&set, 1000, record_freed, &log), 0);
    throttle_set_free(&set);
}

static void describe_lists_limits_holders_counters(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"mix\": {\"concurrency\": 9, \"worker\": 4, \"timeout\": 1.5,"
             " \"rate_limit\": 50, \"rate_period\": 60}}",
             &set);
    struct throttle *t = must_find(&set, "mix");
    /* 2026-12-04T20:00:00.5Z */
    double base = 1796414400.5;
    throttle_take(t, 1, "job-1", "wa", base, true);
    throttle_take(t, 2, "job-2", NULL, base + 1, true);
    throttle_take(t, 3, "job-3", "wb", base + 2, true);
    throttle_release(&set, "mix", 3);

    json_t *doc = throttle_describe(t, 100);
    assert_int_equal(json_integer_value(json_object_get(doc, "concurrency")), 9);
    assert_int_equal(json_integer_value(json_object_get(doc, "worker")), 4);
    assert_near(json_number_value(json_object_get(doc, "timeout")), 1.5);
    assert_int_equal(json_integer_value(json_object_get(doc, "rate_limit")), 50);
    assert_near(json_number_value(json_object_get(doc, "rate_period")), 60);
    assert_int_equal(json_integer_value(json_object_get(doc, "in_use")), 2);
    assert_int_equal(json_integer_value(json_object_get(doc, "taken")), 3);
    assert_int_equal(json_integer_value(json_object_get(doc, "released")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "timed_out")), 0);

    json_t *holders = json_object_get(doc, "holders");
    assert_true(json_is_array(holders));
    assert_int_equal(json_array_size(holders), 2);
    json_t *first = json_array_get(holders, 0);
    assert_string_equal(json_string_value(json_object_get(first, "jid")), "job-1");
    assert_string_equal(json_string_value(json_object_get(first, "wid")), "wa");
    assert_string_equal(json_string_value(json_object_get(first, "since")),
                        "2026-12-04T20:00:00.5Z");
    json_t *second = json_array_get(holders, 1);
    assert_string_equal(json_string_value(json_object_get(second, "jid")), "job-2");
    assert_string_equal(json_string_value(json_object_get(second, "wid")), "");
    json_decref(doc);

    /* The holder list is capped, the count is not. */
    doc = throttle_describe(t, 1);
    assert_int_equal(json_array_size(json_object_get(doc, "holders")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "in_use")), 2);
    json_decref(doc);
    doc = throttle_describe(t, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "holders")), 0);
    json_decref(doc);
    throttle_set_free(&set);
}

/* Many holders: the array grows and removal from the middle keeps the rest. */
static void many_holders_grow_and_shrink(void **state) {
    (void)state;
    struct throttle_set set;
    parse_ok("{\"bulk\": {\"concurrency\": 1000, \"timeout\": 60}}", &set);
    struct throttle *t = must_find(&set, "bulk");
    char jid[32];
    for (int64_t i = 0; i < 500; i++) {
        snprintf(jid, sizeof jid, "job-%lld", (long long)i);
        throttle_take(t, i, jid, i % 2 ? "odd" : "even", (double)i, true);
    }
    assert_int_equal(t->nholders, 500);
    for (int64_t i = 0; i < 500; i += 2)
        assert_true(throttle_release(&set, "bulk", i));
    assert_int_equal(t->nholders, 250);
    assert_int_equal(holders_of(t, "odd"), 250);
    assert_int_equal(holders_of(t, "even"), 0);
    for (int64_t i = 1; i < 500; i += 2)
        assert_true(holds_job(t, i));
    /* Slots taken at 1..499 with timeout 60 are due by 559. */
    struct freed_log log = {0};
    assert_int_equal(throttle_expire(&set, 100, record_freed, &log), 20);
    assert_int_equal(t->nholders, 230);
    assert_int_equal(throttle_expire(&set, 559, record_freed, &log), 230);
    assert_int_equal(t->taken, 500);
    assert_int_equal(t->released + t->timed_out, 500);
    throttle_set_free(&set);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_without_table_gives_empty_set),
        cmocka_unit_test(parse_reads_every_key),
        cmocka_unit_test(parse_accepts_bounds),
        cmocka_unit_test(parse_rejects_non_table),
        cmocka_unit_test(parse_rejects_invalid_queue_names),
        cmocka_unit_test(parse_rejects_unknown_key),
        cmocka_unit_test(parse_rejects_bad_limits),
        cmocka_unit_test(parse_rejects_bad_seconds),
        cmocka_unit_test(parse_rejects_missing_keys),
        cmocka_unit_test(parse_error_after_valid_entries),
        cmocka_unit_test(concurrency_bounds_slots_in_server),
        cmocka_unit_test(worker_limit_applies_per_wid),
        cmocka_unit_test(worker_limit_groups_fetches_without_wid),
        cmocka_unit_test(rate_window_slides),
        cmocka_unit_test(rate_counts_starts_not_holders),
        cmocka_unit_test(rebuilt_slots_skip_rate_window),
        cmocka_unit_test(combined_limits_all_apply),
        cmocka_unit_test(release_frees_only_once),
        cmocka_unit_test(expire_frees_slots_after_timeout),
        cmocka_unit_test(expire_reports_each_queue_once),
        cmocka_unit_test(expire_reports_reopened_rate_window),
        cmocka_unit_test(next_deadline_is_earliest_due_time),
        cmocka_unit_test(adopt_keeps_slots_under_lowered_limit),
        cmocka_unit_test(adopt_raised_limit_admits_more),
        cmocka_unit_test(adopt_drops_removed_and_starts_new_queues),
        cmocka_unit_test(adopt_keeps_rate_window),
        cmocka_unit_test(clear_frees_every_slot),
        cmocka_unit_test(describe_lists_limits_holders_counters),
        cmocka_unit_test(many_holders_grow_and_shrink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
