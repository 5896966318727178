/* Unit tests of the engine over a real SQLite store in a fresh temporary directory per test.
 * Time moves only through the engine's clock_offset (the same mechanism as DEBUG CLOCK) followed
 * by engine_tick, so no test sleeps. Many tests end by checking that the in-memory mirrors
 * (set sizes, counters) agree with what the store holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "store/store.h"
#include "util/log.h"
#include "util/timefmt.h"

#define assert_near(actual, expected, tolerance)                                          \
    do {                                                                                  \
        double actual_ = (actual), expected_ = (expected);                                \
        if (fabs(actual_ - expected_) > (tolerance))                                      \
            fail_msg("%s is %.6f, expected %.6f within %g", #actual, actual_, expected_,  \
                     (double)(tolerance));                                                \
    } while (0)

struct fixture {
    char dir[64];
    struct config cfg;
    struct store *store;
    struct engine e;
    int enqueue_calls;          /* on_enqueue callbacks seen */
    char last_enqueued[160];    /* queue named by the latest on_enqueue */
};

static void on_enqueue(void *ctx, const char *queue) {
    struct fixture *f = ctx;
    f->enqueue_calls++;
    snprintf(f->last_enqueued, sizeof f->last_enqueued, "%s", queue);
}

/* Opens the store and the engine on f->dir, keeping the fake clock's offset. */
static int open_engine(struct fixture *f) {
    char err[512];
    if (store_open(&f->store, f->dir, DURABILITY_OS, err, sizeof err) != 0) {
        fprintf(stderr, "store_open failed: %s\n", err);
        return -1;
    }
    double offset = f->e.clock_offset;
    memset(&f->e, 0, sizeof f->e);
    f->e.clock_offset = offset;
    f->e.on_enqueue = on_enqueue;
    f->e.ctx = f;
    if (engine_open(&f->e, &f->cfg, f->store, err, sizeof err) != 0) {
        fprintf(stderr, "engine_open failed: %s\n", err);
        return -1;
    }
    return 0;
}

static void close_engine(struct fixture *f) {
    engine_close(&f->e);
    store_close(f->store);
    f->store = NULL;
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/fabrik-engine-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cfg.durability = DURABILITY_OS;
    f->cfg.dead_ttl_days = 180;
    f->cfg.dead_max = 10000;
    *state = f;
    return open_engine(f);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    struct fixture *f = *state;
    if (f->store)
        close_engine(f);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static double now_of(struct fixture *f) {
    return engine_now(&f->e);
}

static void commit(struct fixture *f) {
    assert_int_equal(engine_commit(&f->e), 0);
}

/* Commits, closes the store and opens it again, as a server restart does. */
static void restart(struct fixture *f) {
    commit(f);
    close_engine(f);
    assert_int_equal(open_engine(f), 0);
}

/* Moves the fake clock forward and runs every timer that became due. */
static void advance(struct fixture *f, double seconds) {
    f->e.clock_offset += seconds;
    assert_int_equal(engine_tick(&f->e, now_of(f)), 0);
}

/* Moves the fake clock to just past an absolute time and runs the timers. */
static void advance_to(struct fixture *f, double when) {
    double delta = when - now_of(f);
    advance(f, (delta > 0 ? delta : 0) + 0.001);
}

/* Pushes {"jid":jid,"jobtype":type,"args":[]<extra>}; extra starts with a comma or is "". */
static int push_typed(struct fixture *f, const char *jid, const char *type, const char *extra,
                      char *err, size_t errlen) {
    char text[4096];
    snprintf(text, sizeof text, "{\"jid\":\"%s\",\"jobtype\":\"%s\",\"args\":[]%s}", jid, type,
             extra);
    json_error_t jerr;
    json_t *job = json_loads(text, 0, &jerr);
    if (!job)
        fail_msg("test job does not parse: %s: %s", jerr.text, text);
    err[0] = '\0';
    int rc = engine_push(&f->e, job, err, errlen);
    json_decref(job);
    return rc;
}

static void push_job(struct fixture *f, const char *jid, const char *extra) {
    char err[256];
    int rc = push_typed(f, jid, "T", extra, err, sizeof err);
    if (rc != 0)
        fail_msg("push of %s failed with %d: %s", jid, rc, err);
}

/* Pushes jid scheduled `delta` seconds from now; returns the due time as stored. */
static double push_scheduled(struct fixture *f, const char *jid, double delta) {
    char at[32], extra[64], err[64];
    time_format_rfc3339(now_of(f) + delta, at);
    snprintf(extra, sizeof extra, ",\"at\":\"%s\"", at);
    push_job(f, jid, extra);
    double due;
    assert_int_equal(time_parse_rfc3339(at, &due, err, sizeof err), 0);
    return due;
}

static int fetch_from(struct fixture *f, const char *queue, struct store_job *out) {
    char *queues[] = {(char *)queue};
    memset(out, 0, sizeof *out);
    return engine_fetch(&f->e, queues, 1, "wid-1", out);
}

/* Fetches from queue and checks that the job is jid; failures point at the caller's line. */
#define fetch_expect(f, queue, jid) fetch_expect_at((f), (queue), (jid), __FILE__, __LINE__)
#define fetch_expect_none(f, queue) fetch_expect_at((f), (queue), NULL, __FILE__, __LINE__)

static void fetch_expect_at(struct fixture *f, const char *queue, const char *jid,
                            const char *file, int line) {
    struct store_job job;
    int rc = fetch_from(f, queue, &job);
    const char *got = "an error";
    if (rc == 1)
        got = job.jid;
    else if (rc == 0)
        got = "nothing";
    const char *expected = jid ? jid : "nothing";
    if (strcmp(got, expected) != 0) {
        print_error("fetch from %s returned %s, expected %s\n", queue, got, expected);
        if (rc == 1)
            store_job_clear(&job);
        _fail(file, line);
    }
    if (rc == 1)
        store_job_clear(&job);
}

static int fail_job(struct fixture *f, const char *jid) {
    struct job_failure_report report;
    memset(&report, 0, sizeof report);
    snprintf(report.errtype, sizeof report.errtype, "RuntimeError");
    snprintf(report.message, sizeof report.message, "boom");
    report.backtrace = json_pack("[s]", "worker.rb:1");
    int rc = engine_fail(&f->e, jid, NULL, &report);
    json_decref(report.backtrace);
    return rc;
}

/* Pushes, fetches and fails jid once; extra sets its retry policy. */
static void push_and_fail(struct fixture *f, const char *jid, const char *type,
                          const char *extra) {
    char err[256];
    assert_int_equal(push_typed(f, jid, type, extra, err, sizeof err), 0);
    fetch_expect(f, "default", jid);
    assert_int_equal(fail_job(f, jid), 0);
}

struct find_ctx {
    const char *jid;
    int64_t id;
    int count;
};

static int find_cb(void *ctx, const struct store_job *job) {
    struct find_ctx *c = ctx;
    c->count++;
    if (c->jid && !c->id && strcmp(job->jid, c->jid) == 0)
        c->id = job->id;
    return 0;
}

/* Loads jid from a set (scheduled, retry, working or dead). Returns 1 when found, else 0. */
static int find_in_set(struct fixture *f, enum job_state state, const char *jid,
                       struct store_job *out) {
    struct find_ctx c = {.jid = jid};
    memset(out, 0, sizeof *out);
    assert_int_equal(store_scan(f->store, state, find_cb, &c), 0);
    if (!c.id)
        return 0;
    return store_get_job(f->store, c.id, out);
}

static int count_in_set(struct fixture *f, enum job_state state) {
    struct find_ctx c = {0};
    assert_int_equal(store_scan(f->store, state, find_cb, &c), 0);
    return c.count;
}

static json_t *payload_of(const struct store_job *job) {
    json_t *doc = json_loads(job->payload, 0, NULL);
    if (!json_is_object(doc))
        fail_msg("stored payload is not a JSON object: %s", job->payload);
    return doc;
}

static const char *string_at(const json_t *doc, const char *key) {
    return json_string_value(json_object_get(doc, key));
}

static json_int_t int_at(const json_t *doc, const char *key) {
    const json_t *v = json_object_get(doc, key);
    if (!json_is_integer(v))
        fail_msg("field %s is not an integer", key);
    return json_integer_value(v);
}

static double time_at(const json_t *doc, const char *key) {
    const char *text = string_at(doc, key);
    if (!text)
        fail_msg("field %s is missing", key);
    double t;
    char err[128];
    if (time_parse_rfc3339(text, &t, err, sizeof err) != 0)
        fail_msg("field %s=\"%s\" is not RFC 3339: %s", key, text, err);
    return t;
}

/* Checks that the engine's per-state job counts agree with the store. */
static void assert_mirrors_match_store(struct fixture *f) {
    int64_t counts[5];
    assert_int_equal(store_count_states(f->store, counts), 0);
    for (int s = 0; s < 5; s++) {
        if (counts[s] != f->e.set_size[s])
            fail_msg("state %d: store holds %lld jobs, engine counts %lld", s,
                     (long long)counts[s], (long long)f->e.set_size[s]);
    }
}

/* ---- push, fetch, ack, fail ---- */

static void push_enqueues_job(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
    assert_int_equal(engine_queue_size(&f->e, "default"), 1);
    assert_int_equal(engine_queue_count(&f->e), 1);
    assert_int_equal(f->enqueue_calls, 1);
    assert_string_equal(f->last_enqueued, "default");
    assert_mirrors_match_store(f);
}

static void push_registers_named_queue(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"queue\":\"critical\"");
    assert_int_equal(engine_queue_size(&f->e, "critical"), 1);
    assert_int_equal(engine_queue_size(&f->e, "default"), 0);
    assert_false(engine_queue_paused(&f->e, "critical"));
}

static void push_invalid_stores_nothing(void **state) {
    struct fixture *f = *state;
    char err[256];
    assert_int_equal(push_typed(f, "short", "T", "", err, sizeof err), 1);
    assert_string_equal(err, "jobs must have a reasonable jid parameter: a string of at least 8 characters, unique per job");
    assert_int_equal(f->e.set_size[JOB_QUEUED], 0);
    assert_int_equal(engine_queue_count(&f->e), 0);
    assert_int_equal(f->enqueue_calls, 0);
    assert_mirrors_match_store(f);
}

static void fetch_reserves_job(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    double before = now_of(f);
    struct store_job job;
    assert_int_equal(fetch_from(f, "default", &job), 1);
    assert_string_equal(job.jid, "job-a-0001");
    assert_string_equal(job.queue, "default");
    assert_int_equal(job.state, JOB_WORKING);
    assert_string_equal(job.wid, "wid-1");
    assert_int_equal(job.reserve_for, 1800);
    assert_near(job.reserved_at, before, 1.0);
    assert_near(job.at - job.reserved_at, 1800, 1e-6);
    json_t *doc = payload_of(&job);
    assert_string_equal(string_at(doc, "jid"), "job-a-0001");
    assert_int_equal(int_at(doc, "retry"), 25);
    assert_non_null(string_at(doc, "enqueued_at"));
    json_decref(doc);
    store_job_clear(&job);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 0);
    assert_int_equal(f->e.set_size[JOB_WORKING], 1);
    assert_int_equal(engine_queue_size(&f->e, "default"), 0);
    assert_mirrors_match_store(f);
}

static void fetch_empty_queue_returns_nothing(void **state) {
    struct fixture *f = *state;
    fetch_expect_none(f, "default");
    push_job(f, "job-a-0001", "");
    fetch_expect_none(f, "other");
}

static void fetch_follows_queue_order(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-low-0001", ",\"queue\":\"low\"");
    push_job(f, "job-high-001", ",\"queue\":\"high\"");
    char *queues[] = {"missing", "high", "low"};
    struct store_job job;
    assert_int_equal(engine_fetch(&f->e, queues, 3, "wid-1", &job), 1);
    assert_string_equal(job.jid, "job-high-001");
    store_job_clear(&job);
    assert_int_equal(engine_fetch(&f->e, queues, 3, "wid-1", &job), 1);
    assert_string_equal(job.jid, "job-low-0001");
    store_job_clear(&job);
    assert_int_equal(engine_fetch(&f->e, queues, 3, "wid-1", &job), 0);
}

static void fetch_is_fifo_within_queue(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    push_job(f, "job-b-0001", "");
    push_job(f, "job-c-0001", "");
    fetch_expect(f, "default", "job-a-0001");
    fetch_expect(f, "default", "job-b-0001");
    fetch_expect(f, "default", "job-c-0001");
}

static void fetch_higher_priority_first(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-p1-0001", ",\"priority\":1");
    push_job(f, "job-p9-0001", ",\"priority\":9");
    push_job(f, "job-p5-0001", ",\"priority\":5");
    push_job(f, "job-p9-0002", ",\"priority\":9");
    push_job(f, "job-px-0001", "");
    fetch_expect(f, "default", "job-p9-0001");
    fetch_expect(f, "default", "job-p9-0002");
    fetch_expect(f, "default", "job-p5-0001");
    fetch_expect(f, "default", "job-px-0001");
    fetch_expect(f, "default", "job-p1-0001");
    fetch_expect_none(f, "default");
}

static void fetch_clamped_priorities(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-lo-0001", ",\"priority\":-3");
    push_job(f, "job-hi-0001", ",\"priority\":42");
    push_job(f, "job-p8-0001", ",\"priority\":8");
    struct store_job job;
    assert_int_equal(fetch_from(f, "default", &job), 1);
    assert_string_equal(job.jid, "job-hi-0001");
    assert_int_equal(job.priority, 9);
    store_job_clear(&job);
    fetch_expect(f, "default", "job-p8-0001");
    assert_int_equal(fetch_from(f, "default", &job), 1);
    assert_string_equal(job.jid, "job-lo-0001");
    assert_int_equal(job.priority, 1);
    store_job_clear(&job);
}

static void ack_removes_and_counts(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    fetch_expect(f, "default", "job-a-0001");
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    assert_int_equal(f->e.set_size[JOB_WORKING], 0);
    assert_int_equal(f->e.processed, 1);
    assert_int_equal(f->e.failures, 0);
    assert_int_equal(f->e.tx_processed, 1);
    commit(f);
    assert_int_equal(f->e.tx_processed, 0);
    assert_mirrors_match_store(f);
}

static void ack_twice_changes_nothing(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    fetch_expect(f, "default", "job-a-0001");
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    assert_int_equal(f->e.processed, 1);
}

static void ack_unknown_jid_is_success(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    assert_int_equal(engine_ack(&f->e, "never-pushed", NULL), 0);
    assert_int_equal(f->e.processed, 0);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
}

static void fail_moves_to_retry(void **state) {
    struct fixture *f = *state;
    double start = now_of(f);
    push_and_fail(f, "job-a-0001", "T", "");
    assert_int_equal(f->e.set_size[JOB_WORKING], 0);
    assert_int_equal(f->e.set_size[JOB_RETRY], 1);
    assert_int_equal(f->e.processed, 1);
    assert_int_equal(f->e.failures, 1);

    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-a-0001", &job), 1);
    assert_true(job.at >= start + 15);
    assert_true(job.at <= now_of(f) + 44);
    json_t *doc = payload_of(&job);
    json_t *failure = json_object_get(doc, "failure");
    assert_string_equal(string_at(failure, "errtype"), "RuntimeError");
    assert_string_equal(string_at(failure, "message"), "boom");
    assert_int_equal(int_at(failure, "retry_count"), 0);
    assert_int_equal(int_at(failure, "remaining"), 25);
    assert_near(time_at(failure, "next_at"), job.at, 1e-6);
    assert_int_equal(json_array_size(json_object_get(failure, "backtrace")), 1);
    json_decref(doc);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void fail_unknown_jid_returns_1(void **state) {
    struct fixture *f = *state;
    assert_int_equal(fail_job(f, "never-pushed"), 1);
    assert_int_equal(f->e.failures, 0);
    assert_int_equal(f->e.processed, 0);
}

static void fail_queued_job_returns_1(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    assert_int_equal(fail_job(f, "job-a-0001"), 1);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
}

static void fail_retry_zero_discards(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-c-0001", "T", ",\"retry\":0");
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    assert_int_equal(f->e.set_size[JOB_DEAD], 0);
    assert_int_equal(f->e.set_size[JOB_WORKING], 0);
    assert_int_equal(f->e.processed, 1);
    assert_int_equal(f->e.failures, 1);
    assert_mirrors_match_store(f);
}

static void fail_negative_retry_kills(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-d-0001", "T", ",\"retry\":-1");
    assert_int_equal(f->e.set_size[JOB_DEAD], 1);
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_DEAD, "job-d-0001", &job), 1);
    assert_near(job.at, now_of(f), 1.0);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void fail_null_retry_means_25(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-b-0001", "T", ",\"retry\":null");
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-b-0001", &job), 1);
    json_t *doc = payload_of(&job);
    assert_int_equal(int_at(json_object_get(doc, "failure"), "remaining"), 25);
    json_decref(doc);
    store_job_clear(&job);
}

/* ---- retries and scheduled jobs ---- */

static void retry_enqueued_at_due_time(void **state) {
    struct fixture *f = *state;
    advance(f, 0);
    push_and_fail(f, "job-a-0001", "T", "");
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-a-0001", &job), 1);
    double due = job.at;
    store_job_clear(&job);
    assert_true(f->e.next_deadline == due);

    advance(f, due - now_of(f) - 1);
    assert_int_equal(f->e.set_size[JOB_RETRY], 1);
    fetch_expect_none(f, "default");

    advance_to(f, due);
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
    assert_int_equal(f->e.tasks.retries_enqueued, 1);
    assert_int_equal(fetch_from(f, "default", &job), 1);
    json_t *doc = payload_of(&job);
    assert_near(time_at(doc, "enqueued_at"), now_of(f), 1.0);
    assert_true(time_at(doc, "enqueued_at") >= due);
    assert_int_equal(int_at(json_object_get(doc, "failure"), "retry_count"), 0);
    json_decref(doc);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void retry_then_second_failure(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-e-0001", "T", ",\"retry\":2");
    for (int round = 1; round <= 2; round++) {
        struct store_job job;
        assert_int_equal(find_in_set(f, JOB_RETRY, "job-e-0001", &job), 1);
        advance_to(f, job.at);
        store_job_clear(&job);
        fetch_expect(f, "default", "job-e-0001");
        assert_int_equal(fail_job(f, "job-e-0001"), 0);
    }
    /* Three runs in total, then dead. */
    assert_int_equal(f->e.set_size[JOB_DEAD], 1);
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    assert_int_equal(f->e.failures, 3);
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_DEAD, "job-e-0001", &job), 1);
    json_t *doc = payload_of(&job);
    json_t *failure = json_object_get(doc, "failure");
    assert_int_equal(int_at(failure, "retry_count"), 2);
    assert_int_equal(int_at(failure, "remaining"), 0);
    json_decref(doc);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void scheduled_waits_until_due(void **state) {
    struct fixture *f = *state;
    advance(f, 0);
    double due = push_scheduled(f, "job-s-0001", 100);
    assert_int_equal(f->e.set_size[JOB_SCHEDULED], 1);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 0);
    assert_int_equal(engine_queue_count(&f->e), 0);
    assert_int_equal(f->enqueue_calls, 0);
    fetch_expect_none(f, "default");

    advance(f, 50);
    assert_int_equal(f->e.set_size[JOB_SCHEDULED], 1);
    fetch_expect_none(f, "default");
    assert_true(f->e.next_deadline == due);

    advance_to(f, due);
    assert_int_equal(f->e.set_size[JOB_SCHEDULED], 0);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
    assert_int_equal(f->e.tasks.scheduled_enqueued, 1);
    assert_int_equal(f->enqueue_calls, 1);
    struct store_job job;
    assert_int_equal(fetch_from(f, "default", &job), 1);
    json_t *doc = payload_of(&job);
    assert_true(time_at(doc, "enqueued_at") >= due);
    assert_near(time_at(doc, "at"), due, 1e-6);
    json_decref(doc);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void scheduled_past_at_enqueues_now(void **state) {
    struct fixture *f = *state;
    push_scheduled(f, "job-s-0001", -100);
    assert_int_equal(f->e.set_size[JOB_SCHEDULED], 0);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
    fetch_expect(f, "default", "job-s-0001");
}

/* FETCH order within a priority is the order of entry into the queue, not of the original
 * PUSH, so jobs coming from the scheduled or retry set line up behind jobs already waiting, as
 * Faktory's queues do. */
static void scheduled_due_in_time_order(void **state) {
    struct fixture *f = *state;
    double late = push_scheduled(f, "job-late-001", 200);
    push_scheduled(f, "job-early-01", 100);
    advance_to(f, late);
    fetch_expect(f, "default", "job-early-01");
    fetch_expect(f, "default", "job-late-001");
}

static void retry_joins_back_of_queue(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-r-0001", "T", "");
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-r-0001", &job), 1);
    double due = job.at;
    store_job_clear(&job);
    push_job(f, "job-b-0001", "");
    push_job(f, "job-c-0001", "");
    advance_to(f, due);
    fetch_expect(f, "default", "job-b-0001");
    fetch_expect(f, "default", "job-c-0001");
    fetch_expect(f, "default", "job-r-0001");
}

static void tick_moves_at_most_one_batch(void **state) {
    struct fixture *f = *state;
    char jid[32];
    double due = 0;
    for (int i = 0; i < 1001; i++) {
        snprintf(jid, sizeof jid, "job-batch-%04d", i);
        due = push_scheduled(f, jid, 10);
    }
    commit(f);
    f->e.clock_offset += due - now_of(f) + 1;
    double now = now_of(f);
    assert_int_equal(engine_tick(&f->e, now), 0);
    assert_int_equal(f->e.tasks.scheduled_enqueued, 1000);
    assert_int_equal(f->e.set_size[JOB_SCHEDULED], 1);
    /* A full batch means more is due: the next tick is due at once. */
    assert_true(f->e.next_deadline == now);
    advance(f, 0);
    assert_int_equal(f->e.set_size[JOB_SCHEDULED], 0);
    assert_int_equal(engine_queue_size(&f->e, "default"), 1001);
    assert_mirrors_match_store(f);
}

/* ---- reservations ---- */

static void reservation_clamped_to_60(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"reserve_for\":10");
    struct store_job job;
    assert_int_equal(fetch_from(f, "default", &job), 1);
    assert_int_equal(job.reserve_for, 60);
    assert_near(job.at - job.reserved_at, 60, 1e-6);
    store_job_clear(&job);
}

static void reservation_expires_into_retry(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"retry\":3,\"reserve_for\":10");
    struct store_job job;
    assert_int_equal(fetch_from(f, "default", &job), 1);
    double expiry = job.at;
    store_job_clear(&job);

    advance(f, expiry - now_of(f) - 1);
    assert_int_equal(f->e.set_size[JOB_WORKING], 1);
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);

    advance_to(f, expiry);
    assert_int_equal(f->e.set_size[JOB_WORKING], 0);
    assert_int_equal(f->e.set_size[JOB_RETRY], 1);
    assert_int_equal(f->e.set_size[JOB_DEAD], 0);
    assert_int_equal(f->e.tasks.reservations_expired, 1);
    assert_int_equal(f->e.failures, 1);
    assert_int_equal(f->e.processed, 1);

    assert_int_equal(find_in_set(f, JOB_RETRY, "job-a-0001", &job), 1);
    json_t *doc = payload_of(&job);
    json_t *failure = json_object_get(doc, "failure");
    assert_string_equal(string_at(failure, "errtype"), "ReservationExpired");
    assert_string_equal(string_at(failure, "message"), "Faktory job reservation expired");
    assert_int_equal(int_at(failure, "retry_count"), 0);
    assert_int_equal(int_at(failure, "remaining"), 3);
    assert_null(json_object_get(failure, "backtrace"));
    json_decref(doc);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void reservation_expiry_counts_as_failure_until_dead(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"retry\":3,\"reserve_for\":60");
    for (int expiry = 1; expiry <= 4; expiry++) {
        fetch_expect(f, "default", "job-a-0001");
        advance(f, 61);
        if (expiry < 4) {
            assert_int_equal(f->e.set_size[JOB_RETRY], 1);
            struct store_job job;
            assert_int_equal(find_in_set(f, JOB_RETRY, "job-a-0001", &job), 1);
            advance_to(f, job.at);
            store_job_clear(&job);
        }
    }
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    assert_int_equal(f->e.set_size[JOB_DEAD], 1);
    assert_int_equal(f->e.tasks.reservations_expired, 4);
    assert_mirrors_match_store(f);
}

static void reservation_expiry_with_retry_zero_discards(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-c-0001", ",\"retry\":0,\"reserve_for\":60");
    fetch_expect(f, "default", "job-c-0001");
    advance(f, 61);
    for (int s = 0; s < 5; s++)
        assert_int_equal(f->e.set_size[s], 0);
    assert_int_equal(f->e.failures, 1);
    assert_int_equal(f->e.tasks.reservations_expired, 1);
    assert_mirrors_match_store(f);
}

static void late_ack_after_expiry_keeps_retry(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"reserve_for\":60");
    fetch_expect(f, "default", "job-a-0001");
    advance(f, 80);
    assert_int_equal(fail_job(f, "job-a-0001"), 1);
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    assert_int_equal(f->e.set_size[JOB_RETRY], 1);
    assert_int_equal(f->e.processed, 1);
}

static void expired_reservation_of_job_without_retry(void **state) {
    struct fixture *f = *state;
    /* A row written without "retry", as an older version or another tool might leave it. */
    double now = now_of(f);
    struct store_job row = {
        .jid = "job-old-0001",
        .queue = "default",
        .state = JOB_WORKING,
        .priority = 5,
        .reserve_for = 60,
        .at = now - 10,
        .enqueued_at = now - 100,
        .reserved_at = now - 70,
        .payload = "{\"jid\":\"job-old-0001\",\"jobtype\":\"T\",\"args\":[]}",
    };
    assert_int_equal(store_insert_job(f->store, &row), 0);
    restart(f);
    assert_int_equal(f->e.set_size[JOB_WORKING], 1);

    advance(f, 0);
    assert_int_equal(f->e.set_size[JOB_RETRY], 1);
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-old-0001", &job), 1);
    json_t *doc = payload_of(&job);
    assert_int_equal(int_at(json_object_get(doc, "failure"), "remaining"), 25);
    json_decref(doc);
    store_job_clear(&job);
}

/* ---- dead set ---- */

static void dead_trimmed_by_age(void **state) {
    struct fixture *f = *state;
    f->cfg.dead_ttl_days = 1;
    advance(f, 0);
    push_and_fail(f, "job-d-0001", "T", ",\"retry\":-1");
    assert_int_equal(f->e.set_size[JOB_DEAD], 1);

    advance(f, 86400 - 100);
    assert_int_equal(f->e.set_size[JOB_DEAD], 1);

    advance(f, 200);
    assert_int_equal(f->e.set_size[JOB_DEAD], 0);
    assert_int_equal(f->e.tasks.dead_removed, 1);
    assert_int_equal(count_in_set(f, JOB_DEAD), 0);
    assert_mirrors_match_store(f);
}

static void dead_trimmed_by_cap_oldest_first(void **state) {
    struct fixture *f = *state;
    f->cfg.dead_max = 2;
    push_and_fail(f, "job-d-0001", "T", ",\"retry\":-1");
    advance(f, 1);
    push_and_fail(f, "job-d-0002", "T", ",\"retry\":-1");
    advance(f, 1);
    push_and_fail(f, "job-d-0003", "T", ",\"retry\":-1");
    assert_int_equal(f->e.set_size[JOB_DEAD], 3);

    advance(f, 0);
    assert_int_equal(f->e.set_size[JOB_DEAD], 2);
    assert_int_equal(f->e.tasks.dead_removed, 1);
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_DEAD, "job-d-0001", &job), 0);
    assert_int_equal(find_in_set(f, JOB_DEAD, "job-d-0002", &job), 1);
    store_job_clear(&job);
    assert_int_equal(find_in_set(f, JOB_DEAD, "job-d-0003", &job), 1);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

/* ---- next_deadline ---- */

static void deadline_set_for_startup_tick(void **state) {
    struct fixture *f = *state;
    assert_true(f->e.next_deadline > 0);
    assert_true(f->e.next_deadline <= now_of(f));
}

static void deadline_none_when_empty(void **state) {
    struct fixture *f = *state;
    advance(f, 0);
    assert_true(f->e.next_deadline == 0);
    assert_true(f->e.deadline_changed);
}

static void deadline_follows_earliest_scheduled(void **state) {
    struct fixture *f = *state;
    advance(f, 0);
    double due100 = push_scheduled(f, "job-s-0100", 100);
    assert_true(f->e.next_deadline == due100);
    assert_true(f->e.deadline_changed);

    f->e.deadline_changed = false;
    double due50 = push_scheduled(f, "job-s-0050", 50);
    assert_true(f->e.next_deadline == due50);
    assert_true(f->e.deadline_changed);

    f->e.deadline_changed = false;
    push_scheduled(f, "job-s-0200", 200);
    assert_true(f->e.next_deadline == due50);
    assert_false(f->e.deadline_changed);
}

static void deadline_includes_reservations(void **state) {
    struct fixture *f = *state;
    advance(f, 0);
    double due100 = push_scheduled(f, "job-s-0100", 100);
    push_job(f, "job-a-0001", ",\"reserve_for\":60");
    struct store_job job;
    assert_int_equal(fetch_from(f, "default", &job), 1);
    double expiry = job.at;
    store_job_clear(&job);
    assert_true(f->e.next_deadline == expiry);

    advance(f, 0);
    assert_true(f->e.next_deadline == expiry);

    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    advance(f, 0);
    assert_true(f->e.next_deadline == due100);
}

static void deadline_includes_retries(void **state) {
    struct fixture *f = *state;
    advance(f, 0);
    push_scheduled(f, "job-s-9999", 9999);
    push_and_fail(f, "job-a-0001", "T", "");
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-a-0001", &job), 1);
    assert_true(f->e.next_deadline == job.at);
    advance(f, 0);
    assert_true(f->e.next_deadline == job.at);
    store_job_clear(&job);
}

/* ---- flush ---- */

static void flush_removes_everything(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-q-0001", ",\"queue\":\"critical\"");
    push_scheduled(f, "job-s-0001", 100);
    push_and_fail(f, "job-r-0001", "T", "");
    push_and_fail(f, "job-d-0001", "T", ",\"retry\":-1");
    push_job(f, "job-a-0001", "");
    fetch_expect(f, "default", "job-a-0001");
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    push_job(f, "job-w-0001", "");
    fetch_expect(f, "default", "job-w-0001");
    char *paused[] = {"critical"};
    assert_int_equal(engine_pause_queues(&f->e, paused, 1, true), 0);
    commit(f);

    assert_int_equal(engine_flush(&f->e), 0);
    for (int s = 0; s < 5; s++)
        assert_int_equal(f->e.set_size[s], 0);
    assert_int_equal(engine_queue_count(&f->e), 0);
    assert_false(engine_queue_paused(&f->e, "critical"));
    assert_int_equal(f->e.processed, 0);
    assert_int_equal(f->e.failures, 0);
    assert_mirrors_match_store(f);

    restart(f);
    for (int s = 0; s < 5; s++)
        assert_int_equal(f->e.set_size[s], 0);
    assert_int_equal(engine_queue_count(&f->e), 0);
    assert_int_equal(f->e.processed, 0);
    assert_int_equal(f->e.failures, 0);
    fetch_expect_none(f, "critical");
}

/* ---- MUTATE ---- */

static void run_mutate(struct fixture *f, const char *text) {
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    struct mutate_request req;
    char err[256];
    if (mutate_parse(doc, &req, err, sizeof err) != 0)
        fail_msg("MUTATE rejected: %s: %s", text, err);
    assert_int_equal(engine_mutate(&f->e, &req), 0);
    mutate_request_free(&req);
    json_decref(doc);
}

static void mutate_kill_by_jobtype(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-a-0001", "Alpha", "");
    push_and_fail(f, "job-b-0001", "Beta", "");
    run_mutate(f, "{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jobtype\":\"Alpha\"}}");
    assert_int_equal(f->e.set_size[JOB_RETRY], 1);
    assert_int_equal(f->e.set_size[JOB_DEAD], 1);
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_DEAD, "job-a-0001", &job), 1);
    store_job_clear(&job);
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-b-0001", &job), 1);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void mutate_requeue_scheduled(void **state) {
    struct fixture *f = *state;
    push_scheduled(f, "job-s-0001", 1000);
    f->e.clock_offset += 5;
    double now = now_of(f);
    run_mutate(f, "{\"cmd\":\"requeue\",\"target\":\"scheduled\"}");
    assert_int_equal(f->e.set_size[JOB_SCHEDULED], 0);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
    assert_int_equal(engine_queue_size(&f->e, "default"), 1);
    assert_int_equal(f->enqueue_calls, 1);
    struct store_job job;
    assert_int_equal(fetch_from(f, "default", &job), 1);
    json_t *doc = payload_of(&job);
    assert_near(time_at(doc, "enqueued_at"), now, 1.0);
    json_decref(doc);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void mutate_requeue_retry_keeps_failure(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-r-0001", "T", "");
    run_mutate(f, "{\"cmd\":\"requeue\",\"target\":\"retries\",\"filter\":{\"jids\":"
                  "[\"job-r-0001\"]}}");
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    struct store_job job;
    assert_int_equal(fetch_from(f, "default", &job), 1);
    json_t *doc = payload_of(&job);
    assert_int_equal(int_at(json_object_get(doc, "failure"), "retry_count"), 0);
    json_decref(doc);
    store_job_clear(&job);
}

static void mutate_discard_by_jids(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-d-0001", "T", ",\"retry\":-1");
    push_and_fail(f, "job-d-0002", "T", ",\"retry\":-1");
    run_mutate(f, "{\"cmd\":\"discard\",\"target\":\"dead\",\"filter\":{\"jids\":"
                  "[\"job-d-0001\"],\"jobtype\":\"Other\"}}");
    assert_int_equal(f->e.set_size[JOB_DEAD], 1);
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_DEAD, "job-d-0002", &job), 1);
    store_job_clear(&job);
    assert_mirrors_match_store(f);
}

static void mutate_discard_without_filter_clears(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-r-0001", "T", "");
    push_and_fail(f, "job-r-0002", "T", "");
    run_mutate(f, "{\"cmd\":\"discard\",\"target\":\"retries\"}");
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    assert_mirrors_match_store(f);
}

static void mutate_clear_ignores_filter(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-r-0001", "T", "");
    push_and_fail(f, "job-r-0002", "U", "");
    run_mutate(f, "{\"cmd\":\"clear\",\"target\":\"retries\",\"filter\":{\"jobtype\":\"Nope\"}}");
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    assert_mirrors_match_store(f);
}

static void mutate_only_touches_target_set(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-r-0001", "T", "");
    push_and_fail(f, "job-d-0001", "T", ",\"retry\":-1");
    push_scheduled(f, "job-s-0001", 100);
    run_mutate(f, "{\"cmd\":\"clear\",\"target\":\"dead\"}");
    assert_int_equal(f->e.set_size[JOB_DEAD], 0);
    assert_int_equal(f->e.set_size[JOB_RETRY], 1);
    assert_int_equal(f->e.set_size[JOB_SCHEDULED], 1);
    assert_mirrors_match_store(f);
}

static void mutate_kill_dead_changes_nothing(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-d-0001", "T", ",\"retry\":-1");
    run_mutate(f, "{\"cmd\":\"kill\",\"target\":\"dead\"}");
    assert_int_equal(f->e.set_size[JOB_DEAD], 1);
    assert_mirrors_match_store(f);
}

static void mutate_regexp_over_stored_json(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-r-0001", "T", ",\"custom\":{\"tenant\":\"acme\"}");
    push_and_fail(f, "job-r-0002", "T", ",\"custom\":{\"tenant\":\"other\"}");
    run_mutate(f, "{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"regexp\":"
                  "\"*\\\"tenant\\\":\\\"acme\\\"*\"}}");
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_DEAD, "job-r-0001", &job), 1);
    store_job_clear(&job);
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-r-0002", &job), 1);
    store_job_clear(&job);
}

/* ---- queues ---- */

static void pause_stops_fetch(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"queue\":\"critical\"");
    char *names[] = {"critical"};
    assert_int_equal(engine_pause_queues(&f->e, names, 1, true), 0);
    assert_true(engine_queue_paused(&f->e, "critical"));
    fetch_expect_none(f, "critical");
    assert_int_equal(engine_queue_size(&f->e, "critical"), 1);
}

static void pause_skips_enqueue_callback(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    char *names[] = {"default"};
    assert_int_equal(engine_pause_queues(&f->e, names, 1, true), 0);
    int calls = f->enqueue_calls;
    push_job(f, "job-b-0001", "");
    assert_int_equal(f->enqueue_calls, calls);
}

static void resume_allows_fetch_and_wakes(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"queue\":\"critical\"");
    char *names[] = {"critical"};
    assert_int_equal(engine_pause_queues(&f->e, names, 1, true), 0);
    int calls = f->enqueue_calls;
    assert_int_equal(engine_pause_queues(&f->e, names, 1, false), 0);
    assert_false(engine_queue_paused(&f->e, "critical"));
    assert_int_equal(f->enqueue_calls, calls + 1);
    assert_string_equal(f->last_enqueued, "critical");
    fetch_expect(f, "critical", "job-a-0001");
}

static void pause_star_pauses_every_queue(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"queue\":\"a\"");
    push_job(f, "job-b-0001", ",\"queue\":\"b\"");
    char *names[] = {"*", "ignored"};
    assert_int_equal(engine_pause_queues(&f->e, names, 2, true), 0);
    assert_true(engine_queue_paused(&f->e, "a"));
    assert_true(engine_queue_paused(&f->e, "b"));
    assert_int_equal(engine_queue_count(&f->e), 2);
}

static void pause_unknown_queue_ignored(void **state) {
    struct fixture *f = *state;
    char *names[] = {"nosuch"};
    assert_int_equal(engine_pause_queues(&f->e, names, 1, true), 0);
    assert_int_equal(engine_queue_count(&f->e), 0);
    assert_false(engine_queue_paused(&f->e, "nosuch"));
    /* Faktory does not remember the pause for a queue created later. */
    push_job(f, "job-a-0001", ",\"queue\":\"nosuch\"");
    assert_false(engine_queue_paused(&f->e, "nosuch"));
}

static void pause_survives_restart(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"queue\":\"critical\"");
    char *names[] = {"critical"};
    assert_int_equal(engine_pause_queues(&f->e, names, 1, true), 0);
    restart(f);
    assert_true(engine_queue_paused(&f->e, "critical"));
    fetch_expect_none(f, "critical");
}

static void remove_deletes_queue_and_jobs(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-l-0001", ",\"queue\":\"low\"");
    push_job(f, "job-l-0002", ",\"queue\":\"low\"");
    push_job(f, "job-d-0001", "");
    char *names[] = {"low", "unknown"};
    assert_int_equal(engine_remove_queues(&f->e, names, 2), 0);
    assert_int_equal(engine_queue_count(&f->e), 1);
    assert_int_equal(engine_queue_size(&f->e, "low"), 0);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
    fetch_expect_none(f, "low");
    assert_mirrors_match_store(f);
    restart(f);
    assert_int_equal(engine_queue_count(&f->e), 1);
    assert_int_equal(engine_queue_size(&f->e, "default"), 1);
}

static void remove_star_deletes_every_queue(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"queue\":\"a\"");
    push_job(f, "job-b-0001", ",\"queue\":\"b\"");
    char *names[] = {"*"};
    assert_int_equal(engine_remove_queues(&f->e, names, 1), 0);
    assert_int_equal(engine_queue_count(&f->e), 0);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 0);
    assert_mirrors_match_store(f);
}

static void remove_paused_queue_forgets_pause(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", ",\"queue\":\"a\"");
    char *names[] = {"a"};
    assert_int_equal(engine_pause_queues(&f->e, names, 1, true), 0);
    assert_int_equal(engine_remove_queues(&f->e, names, 1), 0);
    push_job(f, "job-a-0002", ",\"queue\":\"a\"");
    assert_false(engine_queue_paused(&f->e, "a"));
    fetch_expect(f, "a", "job-a-0002");
}

static void latency_of_queue_head(void **state) {
    struct fixture *f = *state;
    double seconds = -1;
    assert_int_equal(engine_queue_latency(&f->e, "default", &seconds), 0);
    assert_true(seconds == 0);
    push_job(f, "job-a-0001", "");
    f->e.clock_offset += 10;
    push_job(f, "job-b-0001", "");
    assert_int_equal(engine_queue_latency(&f->e, "default", &seconds), 0);
    assert_near(seconds, 10, 0.5);
    assert_int_equal(engine_queue_latency(&f->e, "unknown", &seconds), 0);
    assert_true(seconds == 0);
}

/* ---- transactions and restart ---- */

static void abort_restores_counters_and_sizes(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    fetch_expect(f, "default", "job-a-0001");
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    push_job(f, "job-c-0001", "");
    commit(f);

    push_job(f, "job-b-0001", ",\"queue\":\"other\"");
    fetch_expect(f, "other", "job-b-0001");
    assert_int_equal(fail_job(f, "job-b-0001"), 0);
    fetch_expect(f, "default", "job-c-0001");
    assert_int_equal(f->e.processed, 2);
    assert_int_equal(f->e.failures, 1);
    assert_int_equal(f->e.set_size[JOB_RETRY], 1);

    engine_abort(&f->e);
    assert_int_equal(f->e.processed, 1);
    assert_int_equal(f->e.failures, 0);
    assert_int_equal(f->e.tx_processed, 0);
    assert_int_equal(f->e.tx_failures, 0);
    assert_int_equal(f->e.set_size[JOB_RETRY], 0);
    assert_int_equal(f->e.set_size[JOB_WORKING], 0);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 1);
    assert_int_equal(engine_queue_size(&f->e, "default"), 1);
    assert_int_equal(engine_queue_count(&f->e), 1);
    assert_int_equal(engine_queue_size(&f->e, "other"), 0);
    assert_mirrors_match_store(f);

    fetch_expect(f, "default", "job-c-0001");
    fetch_expect_none(f, "other");
}

static void abort_then_commit_persists_nothing(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    engine_abort(&f->e);
    commit(f);
    restart(f);
    assert_int_equal(f->e.set_size[JOB_QUEUED], 0);
    assert_int_equal(engine_queue_count(&f->e), 0);
}

static void restart_keeps_everything(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-q-0001", ",\"queue\":\"critical\"");
    double due = push_scheduled(f, "job-s-0001", 500);
    push_and_fail(f, "job-r-0001", "T", "");
    push_and_fail(f, "job-d-0001", "T", ",\"retry\":-1");
    push_job(f, "job-w-0001", "");
    fetch_expect(f, "default", "job-w-0001");
    push_job(f, "job-a-0001", "");
    fetch_expect(f, "default", "job-a-0001");
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    push_job(f, "job-p-0001", ",\"queue\":\"held\"");
    char *names[] = {"held"};
    assert_int_equal(engine_pause_queues(&f->e, names, 1, true), 0);
    int64_t sizes[5];
    memcpy(sizes, f->e.set_size, sizeof sizes);
    int64_t processed = f->e.processed, failures = f->e.failures;

    restart(f);
    for (int s = 0; s < 5; s++)
        assert_int_equal(f->e.set_size[s], sizes[s]);
    assert_int_equal(f->e.processed, processed);
    assert_int_equal(f->e.failures, failures);
    assert_int_equal(engine_queue_size(&f->e, "critical"), 1);
    assert_int_equal(engine_queue_size(&f->e, "held"), 1);
    assert_true(engine_queue_paused(&f->e, "held"));
    assert_int_equal(engine_queue_count(&f->e), 3);

    /* The reservation survives: ACK works after the restart. */
    assert_int_equal(engine_ack(&f->e, "job-w-0001", NULL), 0);
    assert_int_equal(f->e.processed, processed + 1);

    /* The scheduled job is still due at its time. */
    advance_to(f, due);
    fetch_expect(f, "default", "job-s-0001");
    assert_mirrors_match_store(f);
}

static void restart_keeps_queue_order(void **state) {
    struct fixture *f = *state;
    push_and_fail(f, "job-r-0001", "T", "");
    push_job(f, "job-a-0001", "");
    push_job(f, "job-b-0001", "");
    fetch_expect(f, "default", "job-a-0001");
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    restart(f);

    /* Jobs entering the queue after the restart line up behind those already waiting. */
    push_job(f, "job-c-0001", "");
    struct store_job job;
    assert_int_equal(find_in_set(f, JOB_RETRY, "job-r-0001", &job), 1);
    advance_to(f, job.at);
    store_job_clear(&job);
    fetch_expect(f, "default", "job-b-0001");
    fetch_expect(f, "default", "job-c-0001");
    fetch_expect(f, "default", "job-r-0001");
}

static void restart_keeps_counters_committed(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-a-0001", "");
    fetch_expect(f, "default", "job-a-0001");
    assert_int_equal(engine_ack(&f->e, "job-a-0001", NULL), 0);
    commit(f);
    push_and_fail(f, "job-b-0001", "T", "");
    restart(f);
    assert_int_equal(f->e.processed, 2);
    assert_int_equal(f->e.failures, 1);
}

/* ---- INFO ---- */

static void info_reports_queues_sets_and_totals(void **state) {
    struct fixture *f = *state;
    push_job(f, "job-b-0001", ",\"queue\":\"b\"");
    push_job(f, "job-b-0002", ",\"queue\":\"b\"");
    push_job(f, "job-a-0001", ",\"queue\":\"a\"");
    push_scheduled(f, "job-s-0001", 100);
    json_t *info = engine_info(&f->e, 3, 1);
    char *queues = json_dumps(json_object_get(info, "queues"), JSON_COMPACT);
    assert_string_equal(queues, "{\"a\":1,\"b\":2}");
    free(queues);
    assert_int_equal(int_at(info, "total_enqueued"), 3);
    assert_int_equal(int_at(info, "total_queues"), 2);
    assert_int_equal(int_at(info, "total_processed"), 0);
    assert_int_equal(int_at(info, "total_failures"), 0);
    json_t *sets = json_object_get(info, "sets");
    assert_int_equal(int_at(sets, "scheduled"), 1);
    assert_int_equal(int_at(sets, "retries"), 0);
    assert_int_equal(int_at(sets, "dead"), 0);
    assert_int_equal(int_at(sets, "working"), 0);
    json_t *workers = json_object_get(json_object_get(info, "tasks"), "Workers");
    assert_int_equal(int_at(workers, "size"), 3);
    assert_int_equal(int_at(workers, "reaped"), 1);
    json_decref(info);
}

#define ENGINE_TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        ENGINE_TEST(push_enqueues_job),
        ENGINE_TEST(push_registers_named_queue),
        ENGINE_TEST(push_invalid_stores_nothing),
        ENGINE_TEST(fetch_reserves_job),
        ENGINE_TEST(fetch_empty_queue_returns_nothing),
        ENGINE_TEST(fetch_follows_queue_order),
        ENGINE_TEST(fetch_is_fifo_within_queue),
        ENGINE_TEST(fetch_higher_priority_first),
        ENGINE_TEST(fetch_clamped_priorities),
        ENGINE_TEST(ack_removes_and_counts),
        ENGINE_TEST(ack_twice_changes_nothing),
        ENGINE_TEST(ack_unknown_jid_is_success),
        ENGINE_TEST(fail_moves_to_retry),
        ENGINE_TEST(fail_unknown_jid_returns_1),
        ENGINE_TEST(fail_queued_job_returns_1),
        ENGINE_TEST(fail_retry_zero_discards),
        ENGINE_TEST(fail_negative_retry_kills),
        ENGINE_TEST(fail_null_retry_means_25),
        ENGINE_TEST(retry_enqueued_at_due_time),
        ENGINE_TEST(retry_then_second_failure),
        ENGINE_TEST(scheduled_waits_until_due),
        ENGINE_TEST(scheduled_past_at_enqueues_now),
        ENGINE_TEST(scheduled_due_in_time_order),
        ENGINE_TEST(retry_joins_back_of_queue),
        ENGINE_TEST(tick_moves_at_most_one_batch),
        ENGINE_TEST(reservation_clamped_to_60),
        ENGINE_TEST(reservation_expires_into_retry),
        ENGINE_TEST(reservation_expiry_counts_as_failure_until_dead),
        ENGINE_TEST(reservation_expiry_with_retry_zero_discards),
        ENGINE_TEST(late_ack_after_expiry_keeps_retry),
        ENGINE_TEST(expired_reservation_of_job_without_retry),
        ENGINE_TEST(dead_trimmed_by_age),
        ENGINE_TEST(dead_trimmed_by_cap_oldest_first),
        ENGINE_TEST(deadline_set_for_startup_tick),
        ENGINE_TEST(deadline_none_when_empty),
        ENGINE_TEST(deadline_follows_earliest_scheduled),
        ENGINE_TEST(deadline_includes_reservations),
        ENGINE_TEST(deadline_includes_retries),
        ENGINE_TEST(flush_removes_everything),
        ENGINE_TEST(mutate_kill_by_jobtype),
        ENGINE_TEST(mutate_requeue_scheduled),
        ENGINE_TEST(mutate_requeue_retry_keeps_failure),
        ENGINE_TEST(mutate_discard_by_jids),
        ENGINE_TEST(mutate_discard_without_filter_clears),
        ENGINE_TEST(mutate_clear_ignores_filter),
        ENGINE_TEST(mutate_only_touches_target_set),
        ENGINE_TEST(mutate_kill_dead_changes_nothing),
        ENGINE_TEST(mutate_regexp_over_stored_json),
        ENGINE_TEST(pause_stops_fetch),
        ENGINE_TEST(pause_skips_enqueue_callback),
        ENGINE_TEST(resume_allows_fetch_and_wakes),
        ENGINE_TEST(pause_star_pauses_every_queue),
        ENGINE_TEST(pause_unknown_queue_ignored),
        ENGINE_TEST(pause_survives_restart),
        ENGINE_TEST(remove_deletes_queue_and_jobs),
        ENGINE_TEST(remove_star_deletes_every_queue),
        ENGINE_TEST(remove_paused_queue_forgets_pause),
        ENGINE_TEST(latency_of_queue_head),
        ENGINE_TEST(abort_restores_counters_and_sizes),
        ENGINE_TEST(abort_then_commit_persists_nothing),
        ENGINE_TEST(restart_keeps_everything),
        ENGINE_TEST(restart_keeps_queue_order),
        ENGINE_TEST(restart_keeps_counters_committed),
        ENGINE_TEST(info_reports_queues_sets_and_totals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
