/* PUSH and PUSHB: the stored job, defaults the server fills in, the validation order and
 * messages, priorities, queue names and `at` timestamps. */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rejected_push {
    const char *body;
    const char *reply;   /* exact reply, or the start of it when prefix is true */
    bool prefix;
};

static void check_rejections(struct th_conn *c, const struct rejected_push *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (cases[i].prefix) {
            TH_EXPECT_PREFIX(c, cases[i].reply, "PUSH %s", cases[i].body);
        } else {
            TH_EXPECT(c, cases[i].reply, "PUSH %s", cases[i].body);
        }
    }
}

static void push_then_fetch_returns_normalised_job(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    double before = TH_SERVER_TIME(c);
    TH_OK(c, "PUSH {\"jid\":\"job-norm-0001\",\"jobtype\":\"Report\",\"args\":[1,\"two\","
             "{\"three\":3},null],\"at\":\"\",\"custom\":{\"k\":\"v\"},\"extra_top\":"
             "{\"kept\":true},\"backtrace\":5}");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);

    json_t *job = TH_FETCH_JID(c, "default", "job-norm-0001");
    TH_EQ_STR(TH_JSTR(job, "jobtype"), "Report");
    TH_EQ_STR(TH_JSTR(job, "queue"), "default");
    TH_EQ_INT(TH_JINT(job, "retry"), 25);
    TH_EQ_INT(TH_JINT(job, "backtrace"), 5);
    TH_CHECK(json_equal(json_object_get(job, "args"),
                        TH_JSON("[1,\"two\",{\"three\":3},null]", 26)));
    TH_EQ_STR(TH_JSTR(job, "custom.k"), "v");
    /* Unknown top-level fields are kept as sent, and an empty "at" is removed. */
    TH_CHECK(json_is_true(th_json_get(job, "extra_top.kept")));
    TH_CHECK(json_object_get(job, "at") == NULL);

    /* created_at and enqueued_at are server times, UTC, in RFC 3339 with a Z. */
    const char *created = TH_JSTR(job, "created_at");
    const char *enqueued = TH_JSTR(job, "enqueued_at");
    TH_EQ_INT(created[strlen(created) - 1], 'Z');
    TH_EQ_INT(enqueued[strlen(enqueued) - 1], 'Z');
    TH_RANGE(TH_TIME(job, "created_at"), before - 1, before + 5);
    TH_RANGE(TH_TIME(job, "enqueued_at"), TH_TIME(job, "created_at") - 0.001, before + 5);
}

static void push_keeps_created_at_and_exact_integers(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "PUSH {\"jid\":\"job-int-0001\",\"jobtype\":\"T\",\"created_at\":"
             "\"2020-01-02T03:04:05.123456Z\",\"args\":[9007199254740993,"
             "-9223372036854775807,12345678901234567],\"custom\":{\"big\":9007199254740995}}");
    TH_OK(c, "PUSH {\"jid\":\"job-int-0002\",\"jobtype\":\"T\",\"created_at\":\"\",\"args\":[]}");

    json_t *job = TH_FETCH_JID(c, "default", "job-int-0001");
    TH_EQ_STR(TH_JSTR(job, "created_at"), "2020-01-02T03:04:05.123456Z");
    /* Integers above 2^53 must not pass through a double. */
    TH_CHECK(strstr(c->reply.body, "9007199254740993") != NULL);
    TH_CHECK(strstr(c->reply.body, "-9223372036854775807") != NULL);
    TH_CHECK(strstr(c->reply.body, "12345678901234567") != NULL);
    TH_EQ_INT(json_integer_value(json_array_get(json_object_get(job, "args"), 0)),
              9007199254740993LL);
    TH_EQ_INT(TH_JINT(job, "custom.big"), 9007199254740995LL);

    job = TH_FETCH_JID(c, "default", "job-int-0002");
    TH_CHECK(strlen(TH_JSTR(job, "created_at")) > 0);
}

#define JID_ERROR "-ERR jobs must have a reasonable jid parameter: a string of at least 8 characters, unique per job"
#define JOBTYPE_ERROR "-ERR jobs must have a jobtype parameter"
#define ARGS_ERROR "-ERR jobs must have an args parameter"
#define RESERVE_ERROR "-ERR jobs cannot be reserved for more than one day"
#define QUEUE_ERROR(name) \
    "-ERR cannot get \"" name "\" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z"

static void push_validation_messages_match_reference(void) {
    static const struct rejected_push cases[] = {
        { "{\"jobtype\":\"T\",\"args\":[]}", JID_ERROR, false },
        { "{\"jid\":\"\",\"jobtype\":\"T\",\"args\":[]}", JID_ERROR, false },
        { "{\"jid\":\"1234567\",\"jobtype\":\"T\",\"args\":[]}", JID_ERROR, false },
        { "{\"jid\":\"12345678\",\"args\":[]}", JOBTYPE_ERROR, false },
        { "{\"jid\":\"12345678\",\"jobtype\":\"\",\"args\":[]}", JOBTYPE_ERROR, false },
        { "{\"jid\":\"12345678\",\"jobtype\":\"T\"}", ARGS_ERROR, false },
        { "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":null}", ARGS_ERROR, false },
        { "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":86401}",
          RESERVE_ERROR, false },
        { "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"at\":\"invalid time\"}",
          "-ERR invalid timestamp for 'at': \"invalid time\"", true },
        { "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"a:b\"}",
          QUEUE_ERROR("a:b"), false },
    };
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    check_rejections(c, cases, sizeof cases / sizeof cases[0]);

    /* Limits that are just inside pass. */
    TH_OK(c, "PUSH {\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":86400}");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
}

static void push_validation_order_matches_reference(void) {
    /* Each body breaks every rule from one point on, and the first broken rule is reported. */
    static const struct rejected_push cases[] = {
        { "{\"args\":null,\"reserve_for\":90000,\"at\":\"bad\",\"queue\":\"a:b\"}",
          JID_ERROR, false },
        { "{\"jid\":\"12345678\",\"reserve_for\":90000,\"at\":\"bad\",\"queue\":\"a:b\"}",
          JOBTYPE_ERROR, false },
        { "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"reserve_for\":90000,\"at\":\"bad\","
          "\"queue\":\"a:b\"}",
          ARGS_ERROR, false },
        { "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":90000,"
          "\"at\":\"bad\",\"queue\":\"a:b\"}",
          RESERVE_ERROR, false },
        { "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"at\":\"bad\",\"queue\":\"a:b\"}",
          "-ERR invalid timestamp for 'at': \"bad\"", true },
    };
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    check_rejections(c, cases, sizeof cases / sizeof cases[0]);
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void push_wrong_field_types_rejected(void) {
    static const char *const bodies[] = {
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":\"x\"}",
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"retry\":1.5}",
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"retry\":\"3\"}",
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"custom\":[]}",
        "{\"jid\":12345678,\"jobtype\":\"T\",\"args\":[]}",
        "{\"jid\":\"12345678\",\"jobtype\":[\"T\"],\"args\":[]}",
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":\"60\"}",
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"queue\":5}",
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[],\"at\":5}",
        "{not json",
        "[]",
        "{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]} trailing",
    };
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        TH_EXPECT_PREFIX(c, "-ERR invalid JSON", "PUSH %s", bodies[i]);
    }
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void push_priority_orders_fetch(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    /* Pushed in this order. Values outside 1..9 are clamped, missing and null mean 5, and
     * jobs of equal priority keep their push order. */
    TH_PUSH(c, "prio-low-1", "\"priority\":1");
    TH_PUSH(c, "prio-mid-1", "\"priority\":5");
    TH_PUSH(c, "prio-high-9", "\"priority\":9");
    TH_PUSH(c, "prio-low-0", "\"priority\":0");
    TH_PUSH(c, "prio-mid-null", "\"priority\":null");
    TH_PUSH(c, "prio-high-10", "\"priority\":10");
    TH_PUSH(c, "prio-mid-none", NULL);
    TH_PUSH(c, "prio-low-neg", "\"priority\":-7");
    TH_PUSH(c, "prio-seven", "\"priority\":7");

    static const char *const order[] = {
        "prio-high-9", "prio-high-10", "prio-seven", "prio-mid-1", "prio-mid-null",
        "prio-mid-none", "prio-low-1", "prio-low-0", "prio-low-neg",
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        TH_FETCH_JID(c, "default", order[i]);
    }
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
}

static void queue_order_outranks_priority(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-low-first", "\"queue\":\"first\",\"priority\":1");
    TH_PUSH(c, "job-high-second", "\"queue\":\"second\",\"priority\":9");
    /* Priority orders jobs inside one queue, and the FETCH line orders the queues. */
    TH_FETCH_JID(c, "first second", "job-low-first");
    TH_FETCH_JID(c, "first second", "job-high-second");
}

static void push_non_integer_priority_rejected(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT_PREFIX(c, "-ERR", "PUSH {\"jid\":\"prio-bad-01\",\"jobtype\":\"T\",\"args\":[],"
                                "\"priority\":\"high\"}");
    TH_EXPECT_PREFIX(c, "-ERR", "PUSH {\"jid\":\"prio-bad-02\",\"jobtype\":\"T\",\"args\":[],"
                                "\"priority\":1.5}");
    TH_EXPECT_PREFIX(c, "-ERR", "PUSH {\"jid\":\"prio-bad-03\",\"jobtype\":\"T\",\"args\":[],"
                                "\"priority\":true}");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
}

static void push_reserved_words_are_ordinary_queues(void) {
    static const char *const names[] = { "retries", "scheduled", "dead", "working", "queues",
                                         "paused" };
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    for (size_t i = 0; i < 6; i++) {
        TH_OK(c, "PUSH {\"jid\":\"job-%s-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"%s\"}",
              names[i], names[i]);
    }
    json_t *info = TH_INFO(c);
    for (size_t i = 0; i < 6; i++) {
        TH_EQ_INT(TH_JINT(info, th_fmt("faktory.queues.%s", names[i])), 1);
    }
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_queues"), 6);

    TH_FETCH_JID(c, "retries", "job-retries-0001");
    TH_FETCH_JID(c, "dead", "job-dead-0001");
    TH_INFO_EQ(c, "faktory.sets.working", 2);
}

static void push_queue_name_rules(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);

    static const char *const valid[] = { "A-Za-z0-9_.-", "-", "A", "a.b", "under_score" };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        TH_OK(c, "PUSH {\"jid\":\"job-valid-%zu\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"%s\"}",
              i, valid[i]);
        TH_FETCH_JID(c, valid[i], th_fmt("job-valid-%zu", i));
    }

    static const char *const invalid[] = { "a:b", "\u00fc", "a/b", "a b", "default?page=1",
                                           "user@example.com", "c&c", "priority|high" };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        TH_EXPECT(c, th_fmt("-ERR cannot get \"%s\" queue: queue names must match "
                            "\\A[a-zA-Z0-9._-]+\\z", invalid[i]),
                  "PUSH {\"jid\":\"job-invalid-%zu\",\"jobtype\":\"T\",\"args\":[],"
                  "\"queue\":\"%s\"}", i, invalid[i]);
    }

    /* fabrik caps names at 128 bytes. */
    char name[10241];
    memset(name, 'q', sizeof name - 1);
    name[128] = '\0';
    TH_OK(c, "PUSH {\"jid\":\"job-name-128\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"%s\"}",
          name);
    TH_FETCH_JID(c, name, "job-name-128");
    name[128] = 'q';
    name[129] = '\0';
    TH_EXPECT_PREFIX(c, "-ERR", "PUSH {\"jid\":\"job-name-129\",\"jobtype\":\"T\",\"args\":[],"
                                "\"queue\":\"%s\"}", name);
    memset(name, 'q', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    TH_EXPECT_PREFIX(c, "-ERR", "PUSH {\"jid\":\"job-name-10k\",\"jobtype\":\"T\",\"args\":[],"
                                "\"queue\":\"%s\"}", name);

    /* Empty or missing queue means default. */
    TH_OK(c, "PUSH {\"jid\":\"job-empty-q\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"\"}");
    TH_OK(c, "PUSH {\"jid\":\"job-null-q\",\"jobtype\":\"T\",\"args\":[],\"queue\":null}");
    json_t *job = TH_FETCH_JID(c, "default", "job-empty-q");
    TH_EQ_STR(TH_JSTR(job, "queue"), "default");
    job = TH_FETCH_JID(c, "default", "job-null-q");
    TH_EQ_STR(TH_JSTR(job, "queue"), "default");
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void push_scheduled_job_queue_name_checked(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    char at[64];
    th_format_time(TH_SERVER_TIME(c) + 5, at, sizeof at);
    /* The same error as an immediate push, not a job that is lost when it comes due. */
    TH_EXPECT(c, QUEUE_ERROR("no such!"),
              "PUSH {\"jid\":\"job-bad-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"no such!\","
              "\"at\":\"%s\"}", at);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    TH_CLOCK(c, 15);
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
}

/* Formats t as local time at the given UTC offset in minutes, RFC 3339 with +hh:mm. */
static void format_with_offset(double t, int offset_minutes, char *out, size_t size) {
    char utc[64];
    th_format_time(t + offset_minutes * 60.0, utc, sizeof utc);
    int minutes = abs(offset_minutes) % (24 * 60);
    /* The first 19 characters are the date and time without the fraction and the Z. */
    snprintf(out, size, "%.19s%c%02d:%02d", utc, offset_minutes < 0 ? '-' : '+', minutes / 60,
             minutes % 60);
}

static void push_at_accepts_offsets_and_fractions(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    double due = floor(TH_SERVER_TIME(c)) + 100;

    char at_offset[64], at_ruby[64], at_zulu[64], at_nanos[64], at_negative[64];
    format_with_offset(due, 120, at_offset, sizeof at_offset);
    format_with_offset(due, 0, at_ruby, sizeof at_ruby);
    format_with_offset(due, -330, at_negative, sizeof at_negative);
    th_format_time(due, at_zulu, sizeof at_zulu);
    at_zulu[19] = 'Z';
    at_zulu[20] = '\0';
    th_format_time(due + 0.123456789, at_nanos, sizeof at_nanos);

    const char *ats[] = { at_offset, at_ruby, at_zulu, at_nanos, at_negative };
    for (int i = 0; i < 5; i++) {
        TH_OK(c, "PUSH {\"jid\":\"job-at-%04d\",\"jobtype\":\"T\",\"args\":[],\"at\":\"%s\"}", i,
              ats[i]);
    }
    TH_INFO_EQ(c, "faktory.sets.scheduled", 5);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);

    /* All five name the same instant (give or take the fraction), so they come due together. */
    TH_CLOCK(c, 98);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 5);
    TH_CLOCK(c, 3);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 5);

    for (int i = 0; i < 5; i++) {
        json_t *job = TH_FETCH(c, "default");
        TH_CHECK(job != NULL);
        int index = atoi(TH_JSTR(job, "jid") + strlen("job-at-"));
        TH_RANGE(index, 0, 4);
        /* The client's text is kept, nanoseconds included. */
        TH_EQ_STR(TH_JSTR(job, "at"), ats[index]);
        TH_RANGE(TH_TIME(job, "enqueued_at"), due, due + 30);
    }
}

static void push_at_rejects_malformed_times(void) {
    static const struct rejected_push cases[] = {
        { "{\"jid\":\"job-at-bad-1\",\"jobtype\":\"T\",\"args\":[],\"at\":\"2030-01-01 10:00:00\"}",
          "-ERR invalid timestamp for 'at': \"2030-01-01 10:00:00\"", true },
        { "{\"jid\":\"job-at-bad-2\",\"jobtype\":\"T\",\"args\":[],\"at\":\"2030-01-01T10:00:00\"}",
          "-ERR invalid timestamp for 'at': \"2030-01-01T10:00:00\"", true },
        { "{\"jid\":\"job-at-bad-3\",\"jobtype\":\"T\",\"args\":[],"
          "\"at\":\"2030-13-01T10:00:00Z\"}",
          "-ERR invalid timestamp for 'at': \"2030-13-01T10:00:00Z\"", true },
        { "{\"jid\":\"job-at-bad-4\",\"jobtype\":\"T\",\"args\":[],\"at\":\"tomorrow\"}",
          "-ERR invalid timestamp for 'at': \"tomorrow\"", true },
    };
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    check_rejections(c, cases, sizeof cases / sizeof cases[0]);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void push_past_at_enqueues_at_once(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    char at[64];
    th_format_time(TH_SERVER_TIME(c) - 1, at, sizeof at);
    TH_PUSH(c, "job-past-0001", th_fmt("\"at\":\"%s\"", at));
    TH_PUSH(c, "job-past-0002", "\"at\":\"2000-01-01T00:00:00Z\"");
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    json_t *job = TH_FETCH_JID(c, "default", "job-past-0001");
    TH_EQ_STR(TH_JSTR(job, "at"), at);
    TH_FETCH_JID(c, "default", "job-past-0002");
}

static void push_extreme_numbers_handled(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    static const char *const extras[] = {
        "\"retry\":9223372036854775807",
        "\"retry\":-9223372036854775808",
        "\"priority\":9223372036854775807",
        "\"priority\":-9223372036854775808",
        "\"reserve_for\":-5",
        "\"reserve_for\":-9223372036854775808",
        "\"backtrace\":9223372036854775807",
        ("\"failure\":{\"retry_count\":9223372036854775807,\"remaining\":-9223372036854775808,"
         "\"failed_at\":\"not a time\"}"),
        "\"failure\":{\"retry_count\":\"x\",\"remaining\":null}",
        "\"at\":\"0001-01-01T00:00:00Z\"",
        "\"at\":\"1969-12-31T23:59:59.999999999-23:59\"",
    };
    enum { COUNT = sizeof extras / sizeof extras[0] };
    bool accepted[COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        const struct th_reply *r = th_cmd(c, "PUSH {\"jid\":\"job-edge-%04zu\",\"jobtype\":\"T\","
                                             "\"args\":[],%s}", i, extras[i]);
        /* +OK and -ERR are both fine, as long as an accepted job stays consistent. */
        TH_CHECK(r->kind == TH_SIMPLE || r->kind == TH_ERROR);
        accepted[i] = r->kind == TH_SIMPLE;
    }
    /* Every accepted job can be fetched and failed, and lands in retries, dead or nowhere. */
    for (size_t i = 0; i < COUNT; i++) {
        if (!accepted[i]) {
            continue;
        }
        json_t *job = TH_FETCH(c, "default");
        TH_CHECK(job != NULL);
        TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"m\"}",
              TH_JSTR(job, "jid"));
    }
    TH_CLOCK(c, 400 * 86400.0);
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);

    /* A far-future schedule is accepted and stays scheduled. */
    TH_PUSH(c, "job-edge-far", "\"at\":\"9999-12-31T23:59:59.999999999Z\"");
    TH_INFO_EQ(c, "faktory.sets.scheduled", 1);
    TH_CLOCK(c, 86400);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 1);
}

static char *bulk_job_array(int count, int bad_index, const char *bad_field) {
    char *out = th_fmt("[");
    for (int i = 0; i < count; i++) {
        const char *jobtype = i == bad_index && strcmp(bad_field, "jobtype") == 0 ? "" : "T";
        out = th_fmt("%s%s{\"jid\":\"bulk-job-%04d\",\"jobtype\":\"%s\",\"args\":[%d]}", out,
                     i ? "," : "", i, jobtype, i);
    }
    return th_fmt("%s]", out);
}

static void pushb_all_valid_returns_empty_map(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT_RAW(c, "$2\r\n{}\r\n", "PUSHB %s", bulk_job_array(10, -1, ""));
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 10);
    for (int i = 0; i < 10; i++) {
        json_t *job = TH_FETCH_JID(c, "default", th_fmt("bulk-job-%04d", i));
        TH_EQ_INT(TH_JINT(job, "retry"), 25);
        TH_CHECK(json_is_string(json_object_get(job, "created_at")));
    }
}

static void pushb_reports_errors_per_jid(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *expected = "{\"bulk-job-0003\":\"jobs must have a jobtype parameter\"}";
    TH_EXPECT_RAW(c, th_fmt("$%zu\r\n%s\r\n", strlen(expected), expected), "PUSHB %s",
                  bulk_job_array(10, 3, "jobtype"));
    /* Not atomic: the valid jobs are stored. */
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 9);

    const struct th_reply *r =
        th_cmd(c, "PUSHB [{\"jid\":\"bulk-ok-0001\",\"jobtype\":\"T\",\"args\":[]},"
                  "{\"jid\":\"bulk-no-args\",\"jobtype\":\"T\"},"
                  "{\"jid\":\"bulk-far-reserve\",\"jobtype\":\"T\",\"args\":[],"
                  "\"reserve_for\":90000},"
                  "{\"jid\":\"bulk-bad-queue\",\"jobtype\":\"T\",\"args\":[],"
                  "\"queue\":\"a:b\"}]");
    TH_EQ_INT(r->kind, TH_BULK);
    json_t *errors = TH_JSON(r->body, r->body_len);
    TH_EQ_INT(json_object_size(errors), 3);
    TH_EQ_STR(TH_JSTR(errors, "bulk-no-args"), "jobs must have an args parameter");
    TH_EQ_STR(TH_JSTR(errors, "bulk-far-reserve"), "jobs cannot be reserved for more than one day");
    TH_CHECK(json_is_string(json_object_get(errors, "bulk-bad-queue")));
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 10);
}

static void pushb_schedules_future_jobs(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    char at[64];
    th_format_time(TH_SERVER_TIME(c) + 60, at, sizeof at);
    TH_EXPECT_RAW(c, "$2\r\n{}\r\n",
                  "PUSHB [{\"jid\":\"bulk-now-0001\",\"jobtype\":\"T\",\"args\":[]},"
                  "{\"jid\":\"bulk-later-0001\",\"jobtype\":\"T\",\"args\":[],\"at\":\"%s\"}]",
                  at);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    TH_FETCH_JID(c, "default", "bulk-now-0001");
    TH_CLOCK(c, 61);
    TH_FETCH_JID(c, "default", "bulk-later-0001");
}

static void pushb_rejects_non_array_body(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT_PREFIX(c, "-ERR", "PUSHB {\"jid\":\"bulk-job-0001\",\"jobtype\":\"T\",\"args\":[]}");
    TH_EXPECT_PREFIX(c, "-ERR", "PUSHB [{\"jid\":\"bulk-job-0001\"");
    TH_EXPECT_PREFIX(c, "-ERR", "PUSHB not json");
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(push_then_fetch_returns_normalised_job),
        TH_CASE(push_keeps_created_at_and_exact_integers),
        TH_CASE(push_validation_messages_match_reference),
        TH_CASE(push_validation_order_matches_reference),
        TH_CASE(push_wrong_field_types_rejected),
        TH_CASE(push_priority_orders_fetch),
        TH_CASE(queue_order_outranks_priority),
        TH_CASE(push_non_integer_priority_rejected),
        TH_CASE(push_reserved_words_are_ordinary_queues),
        TH_CASE(push_queue_name_rules),
        TH_CASE(push_scheduled_job_queue_name_checked),
        TH_CASE(push_at_accepts_offsets_and_fractions),
        TH_CASE(push_at_rejects_malformed_times),
        TH_CASE(push_past_at_enqueues_at_once),
        TH_CASE(push_extreme_numbers_handled),
        TH_CASE(pushb_all_valid_returns_empty_map),
        TH_CASE(pushb_reports_errors_per_jid),
        TH_CASE(pushb_schedules_future_jobs),
        TH_CASE(pushb_rejects_non_array_body),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
