/* Unit tests of the job model: job_prepare (validation order, messages, defaults), the
 * reservation length, the failure report (job_parse_failure), the failure record and retry
 * policy (job_record_failure) and the backoff (job_retry_delay). Every call gets a fixed `now`,
 * so no test depends on the clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"

/* 2026-01-01T00:00:00Z */
#define NOW 1767225600.0
#define NOW_TEXT "2026-01-01T00:00:00Z"

#define VALID_FIELDS "\"jid\":\"job-a-0001\",\"jobtype\":\"T\",\"args\":[1]"

#define assert_prefix(text, prefix)                                                       \
    do {                                                                                  \
        const char *text_ = (text);                                                       \
        if (strncmp(text_, (prefix), strlen(prefix)) != 0)                                \
            fail_msg("\"%s\" does not start with \"%s\"", text_, (prefix));               \
    } while (0)

static json_t *parse_json(const char *text) {
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!doc)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    return doc;
}

/* Runs job_prepare on text; returns its result with err and info filled. */
static int prepare_text(const char *text, json_t **job_out, struct job_info *info, char *err,
                        size_t errlen) {
    json_t *job = parse_json(text);
    err[0] = '\0';
    memset(info, 0, sizeof *info);
    int rc = job_prepare(job, NOW, info, err, errlen);
    if (job_out)
        *job_out = job;
    else
        json_decref(job);
    return rc;
}

/* Expects job_prepare to reject text with exactly message. */
static void expect_rejected(const char *text, const char *message) {
    struct job_info info;
    char err[512];
    int rc = prepare_text(text, NULL, &info, err, sizeof err);
    if (rc != -1)
        fail_msg("job_prepare accepted %s", text);
    assert_string_equal(err, message);
}

/* Expects job_prepare to accept text; returns the normalised job (caller decrefs). */
static json_t *expect_accepted(const char *text, struct job_info *info) {
    json_t *job;
    char err[512];
    int rc = prepare_text(text, &job, info, err, sizeof err);
    if (rc != 0)
        fail_msg("job_prepare rejected %s: %s", text, err);
    return job;
}

static const char *string_field(const json_t *job, const char *key) {
    return json_string_value(json_object_get(job, key));
}

static json_int_t int_field(const json_t *job, const char *key) {
    const json_t *v = json_object_get(job, key);
    if (!json_is_integer(v))
        fail_msg("field %s is not an integer", key);
    return json_integer_value(v);
}

/* ---- job_prepare: required fields and their messages ---- */

static void prepare_rejects_non_object(void **state) {
    (void)state;
    expect_rejected("[1,2]", "invalid JSON: a job must be a JSON object");
    expect_rejected("\"job\"", "invalid JSON: a job must be a JSON object");
}

static void prepare_rejects_missing_jid(void **state) {
    (void)state;
    expect_rejected("{\"jobtype\":\"T\",\"args\":[]}", "jobs must have a reasonable jid parameter: a string of at least 8 characters, unique per job");
}

static void prepare_rejects_null_jid(void **state) {
    (void)state;
    expect_rejected("{\"jid\":null,\"jobtype\":\"T\",\"args\":[]}",
                    "jobs must have a reasonable jid parameter: a string of at least 8 characters, unique per job");
}

static void prepare_rejects_short_jid(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"1234567\",\"jobtype\":\"T\",\"args\":[]}",
                    "jobs must have a reasonable jid parameter: a string of at least 8 characters, unique per job");
}

static void prepare_rejects_empty_jid(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"\",\"jobtype\":\"T\",\"args\":[]}",
                    "jobs must have a reasonable jid parameter: a string of at least 8 characters, unique per job");
}

static void prepare_accepts_eight_byte_jid(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[]}", &info);
    assert_string_equal(info.jid, "12345678");
    json_decref(job);
}

static void prepare_rejects_missing_jobtype(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"job-a-0001\",\"args\":[]}", "jobs must have a jobtype parameter");
}

static void prepare_rejects_empty_jobtype(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"job-a-0001\",\"jobtype\":\"\",\"args\":[]}",
                    "jobs must have a jobtype parameter");
}

static void prepare_rejects_missing_args(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"job-a-0001\",\"jobtype\":\"T\"}",
                    "jobs must have an args parameter");
}

static void prepare_rejects_null_args(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"job-a-0001\",\"jobtype\":\"T\",\"args\":null}",
                    "jobs must have an args parameter");
}

static void prepare_accepts_empty_args(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{\"jid\":\"job-a-0001\",\"jobtype\":\"T\",\"args\":[]}", &info);
    assert_int_equal(json_array_size(json_object_get(job, "args")), 0);
    json_decref(job);
}

static void prepare_rejects_reserve_over_one_day(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"reserve_for\":86401}",
                    "jobs cannot be reserved for more than one day");
}

static void prepare_accepts_reserve_of_one_day(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"reserve_for\":86400}", &info);
    assert_int_equal(int_field(job, "reserve_for"), 86400);
    json_decref(job);
}

/* ---- job_prepare: the order of the checks ---- */

static void prepare_order_jid_before_jobtype(void **state) {
    (void)state;
    expect_rejected("{\"args\":[]}", "jobs must have a reasonable jid parameter: a string of at least 8 characters, unique per job");
}

static void prepare_order_jobtype_before_args(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"job-a-0001\"}", "jobs must have a jobtype parameter");
}

static void prepare_order_args_before_reserve(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"job-a-0001\",\"jobtype\":\"T\",\"reserve_for\":99999}",
                    "jobs must have an args parameter");
}

static void prepare_order_reserve_before_at(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"reserve_for\":99999,\"at\":\"soon\"}",
                    "jobs cannot be reserved for more than one day");
}

static void prepare_order_at_before_queue(void **state) {
    (void)state;
    struct job_info info;
    char err[512];
    int rc = prepare_text("{" VALID_FIELDS ",\"at\":\"soon\",\"queue\":\"a b\"}", NULL, &info,
                          err, sizeof err);
    assert_int_equal(rc, -1);
    assert_prefix(err, "invalid timestamp for 'at': \"soon\": ");
}

static void prepare_order_types_before_jid(void **state) {
    (void)state;
    expect_rejected("{\"args\":\"x\"}",
                    "invalid JSON: field \"args\" must be an array, not a string");
}

/* ---- job_prepare: field types ---- */

static void prepare_rejects_string_args(void **state) {
    (void)state;
    expect_rejected("{\"jid\":\"job-a-0001\",\"jobtype\":\"T\",\"args\":\"x\"}",
                    "invalid JSON: field \"args\" must be an array, not a string");
}

static void prepare_rejects_fractional_retry(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"retry\":1.5}",
                    "invalid JSON: field \"retry\" must be an integer, not a fractional number");
}

static void prepare_rejects_array_custom(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"custom\":[]}",
                    "invalid JSON: field \"custom\" must be an object, not an array");
}

static void prepare_rejects_integer_jid(void **state) {
    (void)state;
    expect_rejected("{\"jid\":12345678,\"jobtype\":\"T\",\"args\":[]}",
                    "invalid JSON: field \"jid\" must be a string, not an integer");
}

static void prepare_rejects_string_priority(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"priority\":\"high\"}",
                    "invalid JSON: field \"priority\" must be an integer, not a string");
}

static void prepare_rejects_fractional_priority(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"priority\":2.5}",
                    "invalid JSON: field \"priority\" must be an integer, not a fractional number");
}

static void prepare_rejects_boolean_queue(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"queue\":true}",
                    "invalid JSON: field \"queue\" must be a string, not a boolean");
}

static void prepare_rejects_numeric_at(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"at\":1893484800}",
                    "invalid JSON: field \"at\" must be a string, not an integer");
}

static void prepare_rejects_object_reserve_for(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"reserve_for\":{}}",
                    "invalid JSON: field \"reserve_for\" must be an integer, not an object");
}

static void prepare_rejects_string_failure(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"failure\":\"x\"}",
                    "invalid JSON: field \"failure\" must be an object, not a string");
}

static void prepare_null_fields_count_as_absent(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"custom\":null,\"failure\":null,"
                                  "\"backtrace\":null,\"reserve_for\":null}",
                                  &info);
    assert_true(json_is_null(json_object_get(job, "custom")));
    json_decref(job);
}

/* ---- job_prepare: "at" ---- */

static void prepare_rejects_at_with_space(void **state) {
    (void)state;
    struct job_info info;
    char err[512];
    assert_int_equal(prepare_text("{" VALID_FIELDS ",\"at\":\"2030-01-01 10:00:00\"}", NULL,
                                  &info, err, sizeof err),
                     -1);
    assert_prefix(err, "invalid timestamp for 'at': \"2030-01-01 10:00:00\": ");
}

static void prepare_rejects_at_without_zone(void **state) {
    (void)state;
    struct job_info info;
    char err[512];
    assert_int_equal(prepare_text("{" VALID_FIELDS ",\"at\":\"2030-01-01T10:00:00\"}", NULL,
                                  &info, err, sizeof err),
                     -1);
    assert_prefix(err, "invalid timestamp for 'at': \"2030-01-01T10:00:00\": ");
}

static void prepare_rejects_at_date_only(void **state) {
    (void)state;
    struct job_info info;
    char err[512];
    assert_int_equal(prepare_text("{" VALID_FIELDS ",\"at\":\"2030-01-01\"}", NULL, &info, err,
                                  sizeof err),
                     -1);
    assert_prefix(err, "invalid timestamp for 'at': \"2030-01-01\": ");
}

static void prepare_at_message_cuts_long_value(void **state) {
    (void)state;
    char text[512];
    char value[201];
    memset(value, '9', 200);
    value[200] = '\0';
    snprintf(text, sizeof text, "{" VALID_FIELDS ",\"at\":\"%s\"}", value);
    struct job_info info;
    char err[512];
    assert_int_equal(prepare_text(text, NULL, &info, err, sizeof err), -1);
    char expected[128];
    snprintf(expected, sizeof expected, "invalid timestamp for 'at': \"%.64s\": ", value);
    assert_prefix(err, expected);
}

static void prepare_future_at_schedules(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"at\":\"2030-01-01T10:00:00+02:00\"}",
                                  &info);
    assert_true(info.at == 1893484800.0);
    json_decref(job);
}

static void prepare_at_text_kept_as_sent(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted(
        "{" VALID_FIELDS ",\"at\":\"2030-01-01T10:00:00.123456789+02:00\"}", &info);
    assert_string_equal(string_field(job, "at"), "2030-01-01T10:00:00.123456789+02:00");
    json_decref(job);
}

static void prepare_scheduled_has_no_enqueued_at(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"at\":\"2030-01-01T08:00:00Z\","
                                  "\"enqueued_at\":\"2025-01-01T00:00:00Z\"}",
                                  &info);
    assert_null(json_object_get(job, "enqueued_at"));
    json_decref(job);
}

static void prepare_past_at_enqueues_now(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"at\":\"2017-08-17T18:55:26Z\"}", &info);
    assert_true(info.at == 0);
    assert_string_equal(string_field(job, "enqueued_at"), NOW_TEXT);
    assert_string_equal(string_field(job, "at"), "2017-08-17T18:55:26Z");
    json_decref(job);
}

static void prepare_at_equal_to_now_enqueues(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"at\":\"" NOW_TEXT "\"}", &info);
    assert_true(info.at == 0);
    assert_non_null(json_object_get(job, "enqueued_at"));
    json_decref(job);
}

static void prepare_removes_empty_at(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"at\":\"\"}", &info);
    assert_null(json_object_get(job, "at"));
    assert_true(info.at == 0);
    json_decref(job);
}

static void prepare_removes_null_at(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"at\":null}", &info);
    assert_null(json_object_get(job, "at"));
    json_decref(job);
}

/* ---- job_prepare: queue names ---- */

static void prepare_default_queue_when_missing(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS "}", &info);
    assert_string_equal(string_field(job, "queue"), "default");
    assert_string_equal(info.queue, "default");
    json_decref(job);
}

static void prepare_default_queue_when_empty(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"queue\":\"\"}", &info);
    assert_string_equal(string_field(job, "queue"), "default");
    json_decref(job);
}

static void prepare_default_queue_when_null(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"queue\":null}", &info);
    assert_string_equal(string_field(job, "queue"), "default");
    json_decref(job);
}

static void prepare_accepts_valid_queue_names(void **state) {
    (void)state;
    static const char *const names[] = {"A-Za-z0-9_.-", "-", "A", "critical", "retries",
                                        "scheduled", "dead", "working", "queues", "paused"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{" VALID_FIELDS ",\"queue\":\"%s\"}", names[i]);
        struct job_info info;
        json_t *job = expect_accepted(text, &info);
        assert_string_equal(info.queue, names[i]);
        json_decref(job);
    }
}

static void prepare_rejects_invalid_queue_names(void **state) {
    (void)state;
    static const char *const names[] = {"a:b", "a/b", "a b", "default?page=1",
                                        "user@example.com", "c&c", "priority|high",
                                        "\xc3\xbc"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[256], expected[256];
        snprintf(text, sizeof text, "{" VALID_FIELDS ",\"queue\":\"%s\"}", names[i]);
        snprintf(expected, sizeof expected,
                 "cannot get \"%s\" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z",
                 names[i]);
        expect_rejected(text, expected);
    }
}

static void prepare_accepts_128_byte_queue(void **state) {
    (void)state;
    char name[JOB_MAX_QUEUE_BYTES + 1];
    memset(name, 'q', JOB_MAX_QUEUE_BYTES);
    name[JOB_MAX_QUEUE_BYTES] = '\0';
    char text[512];
    snprintf(text, sizeof text, "{" VALID_FIELDS ",\"queue\":\"%s\"}", name);
    struct job_info info;
    json_t *job = expect_accepted(text, &info);
    assert_int_equal(strlen(info.queue), 128);
    json_decref(job);
}

static void prepare_rejects_129_byte_queue(void **state) {
    (void)state;
    char name[JOB_MAX_QUEUE_BYTES + 2];
    memset(name, 'q', JOB_MAX_QUEUE_BYTES + 1);
    name[JOB_MAX_QUEUE_BYTES + 1] = '\0';
    char text[512];
    snprintf(text, sizeof text, "{" VALID_FIELDS ",\"queue\":\"%s\"}", name);
    expect_rejected(text, "cannot get \"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...\" queue: queue names "
                          "must be at most 128 bytes, not 129");
}

static void prepare_rejects_invalid_queue_when_scheduled(void **state) {
    (void)state;
    expect_rejected("{" VALID_FIELDS ",\"queue\":\"no such!\",\"at\":\"2030-01-01T08:00:00Z\"}",
                    "cannot get \"no such!\" queue: queue names must match "
                    "\\A[a-zA-Z0-9._-]+\\z");
}

/* ---- job_prepare: defaults and kept fields ---- */

static void prepare_retry_default_when_missing(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS "}", &info);
    assert_int_equal(int_field(job, "retry"), 25);
    json_decref(job);
}

static void prepare_retry_default_when_null(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"retry\":null}", &info);
    assert_int_equal(int_field(job, "retry"), 25);
    json_decref(job);
}

static void prepare_retry_zero_kept(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"retry\":0}", &info);
    assert_int_equal(int_field(job, "retry"), 0);
    json_decref(job);
}

static void prepare_retry_negative_kept(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"retry\":-1}", &info);
    assert_int_equal(int_field(job, "retry"), -1);
    json_decref(job);
}

static void prepare_sets_created_at_when_missing(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS "}", &info);
    assert_string_equal(string_field(job, "created_at"), NOW_TEXT);
    json_decref(job);
}

static void prepare_sets_created_at_when_empty(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"created_at\":\"\"}", &info);
    assert_string_equal(string_field(job, "created_at"), NOW_TEXT);
    json_decref(job);
}

static void prepare_keeps_given_created_at(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"created_at\":\"2020-02-02T02:02:02Z\"}",
                                  &info);
    assert_string_equal(string_field(job, "created_at"), "2020-02-02T02:02:02Z");
    json_decref(job);
}

static void prepare_sets_enqueued_at_for_immediate(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS "}", &info);
    assert_string_equal(string_field(job, "enqueued_at"), NOW_TEXT);
    json_decref(job);
}

static void prepare_overwrites_pushed_enqueued_at(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"enqueued_at\":\"1999-01-01T00:00:00Z\"}",
                                  &info);
    assert_string_equal(string_field(job, "enqueued_at"), NOW_TEXT);
    json_decref(job);
}

static void prepare_enqueued_at_keeps_fraction(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS "}");
    struct job_info info;
    char err[256];
    assert_int_equal(job_prepare(job, NOW + 0.25, &info, err, sizeof err), 0);
    assert_string_equal(string_field(job, "enqueued_at"), "2026-01-01T00:00:00.25Z");
    json_decref(job);
}

static void prepare_priority_default_when_missing(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS "}", &info);
    assert_int_equal(info.priority, 5);
    json_decref(job);
}

static void prepare_priority_default_when_null(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"priority\":null}", &info);
    assert_int_equal(info.priority, 5);
    json_decref(job);
}

static void prepare_priority_kept_in_range(void **state) {
    (void)state;
    for (int p = 1; p <= 9; p++) {
        char text[256];
        snprintf(text, sizeof text, "{" VALID_FIELDS ",\"priority\":%d}", p);
        struct job_info info;
        json_t *job = expect_accepted(text, &info);
        assert_int_equal(info.priority, p);
        assert_int_equal(int_field(job, "priority"), p);
        json_decref(job);
    }
}

static void prepare_priority_clamped_below(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"priority\":0}", &info);
    assert_int_equal(info.priority, 1);
    assert_int_equal(int_field(job, "priority"), 1);
    json_decref(job);
}

static void prepare_priority_clamped_negative(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"priority\":-9223372036854775808}", &info);
    assert_int_equal(info.priority, 1);
    assert_int_equal(int_field(job, "priority"), 1);
    json_decref(job);
}

static void prepare_priority_clamped_above(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"priority\":10}", &info);
    assert_int_equal(info.priority, 9);
    assert_int_equal(int_field(job, "priority"), 9);
    json_decref(job);
}

static void prepare_priority_clamped_huge(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"priority\":9223372036854775807}", &info);
    assert_int_equal(info.priority, 9);
    json_decref(job);
}

static void prepare_keeps_unknown_fields(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"extra\":{\"a\":[1,\"b\"]},\"Queue\":\"x\","
                                  "\"_private\":null}",
                                  &info);
    json_t *expected = parse_json("{\"a\":[1,\"b\"]}");
    assert_true(json_equal(json_object_get(job, "extra"), expected));
    assert_string_equal(string_field(job, "Queue"), "x");
    assert_non_null(json_object_get(job, "_private"));
    json_decref(expected);
    json_decref(job);
}

static void prepare_keeps_custom_and_backtrace(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"custom\":{\"track\":1},\"backtrace\":12}",
                                  &info);
    assert_int_equal(int_field(json_object_get(job, "custom"), "track"), 1);
    assert_int_equal(int_field(job, "backtrace"), 12);
    json_decref(job);
}

static void prepare_keeps_large_integers_exact(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{\"jid\":\"job-a-0001\",\"jobtype\":\"T\",\"args\":"
                                  "[9007199254740993,-9223372036854775808,9223372036854775807],"
                                  "\"custom\":{\"id\":1234567890123456789}}",
                                  &info);
    char *text = json_dumps(json_object_get(job, "args"), JSON_COMPACT);
    assert_string_equal(text, "[9007199254740993,-9223372036854775808,9223372036854775807]");
    free(text);
    text = json_dumps(json_object_get(job, "custom"), JSON_COMPACT);
    assert_string_equal(text, "{\"id\":1234567890123456789}");
    free(text);
    json_decref(job);
}

static void prepare_info_borrows_job_strings(void **state) {
    (void)state;
    struct job_info info;
    json_t *job = expect_accepted("{" VALID_FIELDS ",\"queue\":\"critical\"}", &info);
    assert_ptr_equal(info.jid, string_field(job, "jid"));
    assert_ptr_equal(info.queue, string_field(job, "queue"));
    json_decref(job);
}

/* ---- job_set_enqueued and job_reserve_seconds ---- */

static void set_enqueued_overwrites(void **state) {
    (void)state;
    json_t *job = parse_json("{\"enqueued_at\":\"old\"}");
    job_set_enqueued(job, 1502996126.554544);
    assert_string_equal(string_field(job, "enqueued_at"), "2017-08-17T18:55:26.554544Z");
    json_decref(job);
}

static int reserve_of(const char *text) {
    json_t *job = parse_json(text);
    int seconds = job_reserve_seconds(job);
    json_decref(job);
    return seconds;
}

static void reserve_default_when_missing(void **state) {
    (void)state;
    assert_int_equal(reserve_of("{}"), 1800);
}

static void reserve_default_when_zero(void **state) {
    (void)state;
    assert_int_equal(reserve_of("{\"reserve_for\":0}"), 1800);
}

static void reserve_default_when_negative(void **state) {
    (void)state;
    assert_int_equal(reserve_of("{\"reserve_for\":-5}"), 1800);
}

static void reserve_raised_to_minimum(void **state) {
    (void)state;
    assert_int_equal(reserve_of("{\"reserve_for\":1}"), 60);
    assert_int_equal(reserve_of("{\"reserve_for\":59}"), 60);
}

static void reserve_kept_in_range(void **state) {
    (void)state;
    assert_int_equal(reserve_of("{\"reserve_for\":60}"), 60);
    assert_int_equal(reserve_of("{\"reserve_for\":3600}"), 3600);
    assert_int_equal(reserve_of("{\"reserve_for\":86400}"), 86400);
}

static void reserve_lowered_to_maximum(void **state) {
    (void)state;
    assert_int_equal(reserve_of("{\"reserve_for\":90000}"), 86400);
}

/* ---- job_retry_delay ---- */

/* The backoff table: retry_count, shortest and longest wait in seconds. */
static const struct {
    int64_t count;
    double min, max;
} backoff_table[] = {
    {0, 15, 44},         {1, 16, 74},         {5, 640, 814},
    {10, 10015, 10334},  {20, 160015, 160624}, {24, 331791, 332516},
};

static void retry_delay_minimum_per_count(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof backoff_table / sizeof backoff_table[0]; i++)
        assert_true(job_retry_delay(backoff_table[i].count, 0) == backoff_table[i].min);
}

static void retry_delay_maximum_per_count(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof backoff_table / sizeof backoff_table[0]; i++)
        assert_true(job_retry_delay(backoff_table[i].count, 29) == backoff_table[i].max);
}

static void retry_delay_random_wraps_at_thirty(void **state) {
    (void)state;
    assert_true(job_retry_delay(0, 30) == 15);
    assert_true(job_retry_delay(1, 31) == 18);
}

static void retry_delay_stays_in_bounds(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof backoff_table / sizeof backoff_table[0]; i++) {
        for (uint32_t r = 0; r < 200; r++) {
            double d = job_retry_delay(backoff_table[i].count, r * 2654435761u);
            assert_true(d >= backoff_table[i].min);
            assert_true(d <= backoff_table[i].max);
        }
    }
}

static void retry_delay_uint32_max(void **state) {
    (void)state;
    /* 4294967295 % 30 == 15 */
    assert_true(job_retry_delay(0, UINT32_MAX) == 30);
}

static void retry_delay_capped_at_one_year(void **state) {
    (void)state;
    assert_true(job_retry_delay(1000, 0) == 365.0 * 86400);
    assert_true(job_retry_delay(INT64_MAX, 29) == 365.0 * 86400);
}

/* ---- job_parse_failure ---- */

struct parsed_failure {
    int rc;
    const char *jid;
    struct job_failure_report report;
    char err[256];
    json_t *doc;
};

static void parse_failure_text(const char *text, struct parsed_failure *out) {
    memset(out, 0, sizeof *out);
    out->doc = parse_json(text);
    out->rc = job_parse_failure(out->doc, &out->jid, &out->report, out->err, sizeof out->err);
}

static void parsed_failure_free(struct parsed_failure *p) {
    json_decref(p->report.backtrace);
    json_decref(p->doc);
}

static void parse_failure_reads_fields(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"job-a-0001\",\"errtype\":\"RuntimeError\",\"message\":\"boom\","
                       "\"backtrace\":[\"a.rb:1\",\"b.rb:2\"]}",
                       &p);
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.jid, "job-a-0001");
    assert_string_equal(p.report.errtype, "RuntimeError");
    assert_string_equal(p.report.message, "boom");
    assert_int_equal(json_array_size(p.report.backtrace), 2);
    assert_string_equal(json_string_value(json_array_get(p.report.backtrace, 1)), "b.rb:2");
    parsed_failure_free(&p);
}

static void parse_failure_jid_borrowed(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"job-a-0001\"}", &p);
    assert_int_equal(p.rc, 0);
    assert_ptr_equal(p.jid, json_string_value(json_object_get(p.doc, "jid")));
    parsed_failure_free(&p);
}

static void parse_failure_trims_whitespace(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"job-a-0001\",\"errtype\":\"  MyError \\n\","
                       "\"message\":\"\\t boom \\r\\n\"}",
                       &p);
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.report.errtype, "MyError");
    assert_string_equal(p.report.message, "boom");
    parsed_failure_free(&p);
}

static void parse_failure_keeps_inner_whitespace(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"job-a-0001\",\"message\":\" a \\n b \"}", &p);
    assert_string_equal(p.report.message, "a \n b");
    parsed_failure_free(&p);
}

static void parse_failure_unknown_when_missing(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"job-a-0001\"}", &p);
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.report.errtype, "unknown");
    assert_string_equal(p.report.message, "unknown");
    parsed_failure_free(&p);
}

static void parse_failure_unknown_when_empty(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"job-a-0001\",\"errtype\":\"\",\"message\":\" \\t\\r\\n\"}", &p);
    assert_string_equal(p.report.errtype, "unknown");
    assert_string_equal(p.report.message, "unknown");
    parsed_failure_free(&p);
}

static void parse_failure_unknown_when_null(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"job-a-0001\",\"errtype\":null,\"message\":null,"
                       "\"backtrace\":null}",
                       &p);
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.report.errtype, "unknown");
    assert_string_equal(p.report.message, "unknown");
    assert_int_equal(json_array_size(p.report.backtrace), 0);
    parsed_failure_free(&p);
}

/* Builds {"jid":"job-a-0001","<key>":"<value>"} with value given as raw bytes. */
static void parse_failure_field(const char *key, const char *value, struct parsed_failure *p) {
    json_t *doc = json_pack("{s:s, s:s}", "jid", "job-a-0001", key, value);
    assert_non_null(doc);
    memset(p, 0, sizeof *p);
    p->doc = doc;
    p->rc = job_parse_failure(doc, &p->jid, &p->report, p->err, sizeof p->err);
}

static void parse_failure_errtype_cut_to_100(void **state) {
    (void)state;
    char value[151];
    memset(value, 'e', 150);
    value[150] = '\0';
    struct parsed_failure p;
    parse_failure_field("errtype", value, &p);
    assert_int_equal(strlen(p.report.errtype), 100);
    parsed_failure_free(&p);
}

static void parse_failure_errtype_of_100_kept(void **state) {
    (void)state;
    char value[101];
    memset(value, 'e', 100);
    value[100] = '\0';
    struct parsed_failure p;
    parse_failure_field("errtype", value, &p);
    assert_string_equal(p.report.errtype, value);
    parsed_failure_free(&p);
}

static void parse_failure_errtype_cut_before_two_byte_char(void **state) {
    (void)state;
    /* 99 ASCII bytes, then U+00E9 in bytes 100 and 101: the cut must drop the whole char. */
    char value[160];
    memset(value, 'e', 99);
    strcpy(value + 99, "\xc3\xa9tail");
    struct parsed_failure p;
    parse_failure_field("errtype", value, &p);
    assert_int_equal(strlen(p.report.errtype), 99);
    assert_int_equal(p.report.errtype[98], 'e');
    parsed_failure_free(&p);
}

static void parse_failure_errtype_cut_before_three_byte_char(void **state) {
    (void)state;
    /* 98 ASCII bytes, then U+20AC in bytes 99 to 101. */
    char value[160];
    memset(value, 'e', 98);
    strcpy(value + 98, "\xe2\x82\xac");
    struct parsed_failure p;
    parse_failure_field("errtype", value, &p);
    assert_int_equal(strlen(p.report.errtype), 98);
    parsed_failure_free(&p);
}

static void parse_failure_errtype_keeps_char_ending_at_100(void **state) {
    (void)state;
    /* 98 ASCII bytes, then U+00E9 in bytes 99 and 100: it fits whole. */
    char value[160];
    memset(value, 'e', 98);
    strcpy(value + 98, "\xc3\xa9zzz");
    struct parsed_failure p;
    parse_failure_field("errtype", value, &p);
    assert_int_equal(strlen(p.report.errtype), 100);
    assert_memory_equal(p.report.errtype + 98, "\xc3\xa9", 2);
    parsed_failure_free(&p);
}

static void parse_failure_message_cut_to_1000(void **state) {
    (void)state;
    char *value = test_malloc(2001);
    memset(value, 'm', 2000);
    value[2000] = '\0';
    struct parsed_failure p;
    parse_failure_field("message", value, &p);
    assert_int_equal(strlen(p.report.message), 1000);
    test_free(value);
    parsed_failure_free(&p);
}

static void parse_failure_message_cut_before_four_byte_char(void **state) {
    (void)state;
    /* 998 ASCII bytes, then U+1F600 in bytes 999 to 1002. */
    char *value = test_malloc(1100);
    memset(value, 'm', 998);
    strcpy(value + 998, "\xf0\x9f\x98\x80 more");
    struct parsed_failure p;
    parse_failure_field("message", value, &p);
    assert_int_equal(strlen(p.report.message), 998);
    test_free(value);
    parsed_failure_free(&p);
}

static void parse_failure_trims_before_cut(void **state) {
    (void)state;
    char value[110];
    value[0] = ' ';
    memset(value + 1, 'e', 100);
    strcpy(value + 101, "  ");
    struct parsed_failure p;
    parse_failure_field("errtype", value, &p);
    assert_int_equal(strlen(p.report.errtype), 100);
    assert_int_equal(p.report.errtype[0], 'e');
    parsed_failure_free(&p);
}

static void parse_failure_backtrace_cut_to_50(void **state) {
    (void)state;
    json_t *doc = json_pack("{s:s}", "jid", "job-a-0001");
    json_t *lines = json_array();
    for (int i = 0; i < 60; i++) {
        char line[32];
        snprintf(line, sizeof line, "frame %d", i);
        json_array_append_new(lines, json_string(line));
    }
    json_object_set_new(doc, "backtrace", lines);
    const char *jid;
    struct job_failure_report report;
    char err[128];
    assert_int_equal(job_parse_failure(doc, &jid, &report, err, sizeof err), 0);
    assert_int_equal(json_array_size(report.backtrace), 50);
    assert_string_equal(json_string_value(json_array_get(report.backtrace, 0)), "frame 0");
    assert_string_equal(json_string_value(json_array_get(report.backtrace, 49)), "frame 49");
    json_decref(report.backtrace);
    json_decref(doc);
}

static void parse_failure_backtrace_missing_is_empty(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"job-a-0001\"}", &p);
    assert_true(json_is_array(p.report.backtrace));
    assert_int_equal(json_array_size(p.report.backtrace), 0);
    parsed_failure_free(&p);
}

static void parse_failure_missing_jid(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"errtype\":\"E\"}", &p);
    assert_int_equal(p.rc, -1);
    assert_string_equal(p.err, "missing JID");
    parsed_failure_free(&p);
}

static void parse_failure_empty_jid(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":\"\"}", &p);
    assert_int_equal(p.rc, -1);
    assert_string_equal(p.err, "missing JID");
    parsed_failure_free(&p);
}

static void parse_failure_null_jid(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("{\"jid\":null}", &p);
    assert_int_equal(p.rc, -1);
    assert_string_equal(p.err, "missing JID");
    parsed_failure_free(&p);
}

static void parse_failure_rejects_wrong_types(void **state) {
    (void)state;
    static const char *const docs[] = {
        "{\"jid\":5}",
        "{\"jid\":\"job-a-0001\",\"errtype\":1}",
        "{\"jid\":\"job-a-0001\",\"message\":[]}",
        "{\"jid\":\"job-a-0001\",\"backtrace\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct parsed_failure p;
        parse_failure_text(docs[i], &p);
        assert_int_equal(p.rc, -1);
        assert_string_equal(p.err, "invalid FAIL: jid, errtype and message must be strings and "
                                   "backtrace an array of strings");
        parsed_failure_free(&p);
    }
}

static void parse_failure_non_object_is_missing_jid(void **state) {
    (void)state;
    struct parsed_failure p;
    parse_failure_text("[\"job-a-0001\"]", &p);
    assert_int_equal(p.rc, -1);
    assert_string_equal(p.err, "missing JID");
    parsed_failure_free(&p);
}

/* ---- job_record_failure ---- */

static struct job_failure_report make_report(const char *errtype, const char *message,
                                             int lines) {
    struct job_failure_report r;
    memset(&r, 0, sizeof r);
    snprintf(r.errtype, sizeof r.errtype, "%s", errtype);
    snprintf(r.message, sizeof r.message, "%s", message);
    r.backtrace = json_array();
    for (int i = 0; i < lines; i++)
        json_array_append_new(r.backtrace, json_string("frame"));
    return r;
}

static json_t *failure_of(const json_t *job) {
    json_t *f = json_object_get(job, "failure");
    if (!json_is_object(f))
        fail_msg("job has no failure object");
    return f;
}

static void record_first_failure_fields(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":25}");
    struct job_failure_report r = make_report("RuntimeError", "boom", 2);
    double next_at = 0;
    enum job_fail_outcome out = job_record_failure(job, &r, NOW, 10, &next_at);
    assert_int_equal(out, JOB_FAIL_RETRY);
    assert_true(next_at == NOW + 25);
    json_t *f = failure_of(job);
    assert_int_equal(int_field(f, "retry_count"), 0);
    assert_int_equal(int_field(f, "remaining"), 25);
    assert_string_equal(string_field(f, "failed_at"), NOW_TEXT);
    assert_string_equal(string_field(f, "next_at"), "2026-01-01T00:00:25Z");
    assert_string_equal(string_field(f, "message"), "boom");
    assert_string_equal(string_field(f, "errtype"), "RuntimeError");
    assert_int_equal(json_array_size(json_object_get(f, "backtrace")), 2);
    json_decref(r.backtrace);
    json_decref(job);
}

static void record_failure_key_order(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":25}");
    struct job_failure_report r = make_report("E", "m", 1);
    double next_at;
    job_record_failure(job, &r, NOW, 0, &next_at);
    char *text = json_dumps(failure_of(job), JSON_COMPACT);
    assert_string_equal(text, "{\"failed_at\":\"2026-01-01T00:00:00Z\","
                              "\"next_at\":\"2026-01-01T00:00:15Z\",\"message\":\"m\","
                              "\"errtype\":\"E\",\"backtrace\":[\"frame\"],\"retry_count\":0,"
                              "\"remaining\":25}");
    free(text);
    json_decref(r.backtrace);
    json_decref(job);
}

static void record_failure_without_backtrace_omits_key(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS "}");
    struct job_failure_report r = make_report("E", "m", 0);
    double next_at;
    job_record_failure(job, &r, NOW, 0, &next_at);
    assert_null(json_object_get(failure_of(job), "backtrace"));
    json_decref(r.backtrace);
    json_decref(job);
}

static void record_failure_null_backtrace_omits_key(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS "}");
    struct job_failure_report r = make_report("E", "m", 0);
    json_decref(r.backtrace);
    r.backtrace = NULL;
    double next_at;
    job_record_failure(job, &r, NOW, 0, &next_at);
    assert_null(json_object_get(failure_of(job), "backtrace"));
    json_decref(job);
}

static void record_second_failure_keeps_failed_at(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":25}");
    struct job_failure_report r1 = make_report("E1", "first", 1);
    struct job_failure_report r2 = make_report("E2", "second", 0);
    double next_at;
    job_record_failure(job, &r1, NOW, 0, &next_at);
    enum job_fail_outcome out = job_record_failure(job, &r2, NOW + 100, 0, &next_at);
    assert_int_equal(out, JOB_FAIL_RETRY);
    json_t *f = failure_of(job);
    assert_string_equal(string_field(f, "failed_at"), NOW_TEXT);
    assert_int_equal(int_field(f, "retry_count"), 1);
    assert_int_equal(int_field(f, "remaining"), 24);
    assert_string_equal(string_field(f, "message"), "second");
    assert_string_equal(string_field(f, "errtype"), "E2");
    assert_null(json_object_get(f, "backtrace"));
    assert_true(next_at == NOW + 100 + 16);
    assert_string_equal(string_field(f, "next_at"), "2026-01-01T00:01:56Z");
    json_decref(r1.backtrace);
    json_decref(r2.backtrace);
    json_decref(job);
}

static void record_retry_zero_discards(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":0}");
    struct job_failure_report r = make_report("E", "m", 0);
    double next_at = -1;
    assert_int_equal(job_record_failure(job, &r, NOW, 0, &next_at), JOB_FAIL_DISCARD);
    assert_true(next_at == -1);
    assert_null(json_object_get(failure_of(job), "next_at"));
    json_decref(r.backtrace);
    json_decref(job);
}

static void record_negative_retry_dies_at_once(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":-1}");
    struct job_failure_report r = make_report("E", "m", 0);
    double next_at = -1;
    assert_int_equal(job_record_failure(job, &r, NOW, 0, &next_at), JOB_FAIL_DEAD);
    assert_true(next_at == -1);
    json_t *f = failure_of(job);
    assert_null(json_object_get(f, "next_at"));
    assert_int_equal(int_field(f, "retry_count"), 0);
    assert_int_equal(int_field(f, "remaining"), -1);
    json_decref(r.backtrace);
    json_decref(job);
}

/* Fails job `failures` times and returns the last outcome. */
static enum job_fail_outcome fail_times(json_t *job, int failures) {
    struct job_failure_report r = make_report("E", "m", 0);
    enum job_fail_outcome out = JOB_FAIL_RETRY;
    double next_at;
    for (int i = 0; i < failures; i++)
        out = job_record_failure(job, &r, NOW + i, 7, &next_at);
    json_decref(r.backtrace);
    return out;
}

static void record_retry_two_dies_on_third_failure(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":2}");
    assert_int_equal(fail_times(job, 1), JOB_FAIL_RETRY);
    assert_int_equal(int_field(failure_of(job), "remaining"), 2);
    assert_int_equal(fail_times(job, 1), JOB_FAIL_RETRY);
    assert_int_equal(int_field(failure_of(job), "remaining"), 1);
    assert_int_equal(fail_times(job, 1), JOB_FAIL_DEAD);
    assert_int_equal(int_field(failure_of(job), "retry_count"), 2);
    assert_int_equal(int_field(failure_of(job), "remaining"), 0);
    assert_null(json_object_get(failure_of(job), "next_at"));
    json_decref(job);
}

static void record_retry_one_dies_on_second_failure(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":1}");
    assert_int_equal(fail_times(job, 1), JOB_FAIL_RETRY);
    assert_int_equal(fail_times(job, 1), JOB_FAIL_DEAD);
    json_decref(job);
}

static void record_default_retry_gives_26_runs(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":25}");
    assert_int_equal(fail_times(job, 25), JOB_FAIL_RETRY);
    assert_int_equal(int_field(failure_of(job), "retry_count"), 24);
    assert_int_equal(int_field(failure_of(job), "remaining"), 1);
    assert_int_equal(fail_times(job, 1), JOB_FAIL_DEAD);
    assert_int_equal(int_field(failure_of(job), "retry_count"), 25);
    assert_int_equal(int_field(failure_of(job), "remaining"), 0);
    json_decref(job);
}

static void record_missing_retry_means_25(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS "}");
    assert_int_equal(fail_times(job, 1), JOB_FAIL_RETRY);
    assert_int_equal(int_field(failure_of(job), "remaining"), 25);
    assert_int_equal(fail_times(job, 25), JOB_FAIL_DEAD);
    json_decref(job);
}

static void record_null_retry_means_25(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":null}");
    assert_int_equal(fail_times(job, 1), JOB_FAIL_RETRY);
    assert_int_equal(int_field(failure_of(job), "remaining"), 25);
    json_decref(job);
}

static void record_next_at_uses_backoff(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":25}");
    struct job_failure_report r = make_report("E", "m", 0);
    double next_at;
    for (int i = 0; i < 6; i++)
        job_record_failure(job, &r, NOW, 29, &next_at);
    assert_int_equal(int_field(failure_of(job), "retry_count"), 5);
    assert_true(next_at == NOW + 814);
    json_decref(r.backtrace);
    json_decref(job);
}

static void record_pushed_failure_counts_as_earlier(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":3,\"failure\":{\"retry_count\":1,"
                             "\"remaining\":2,\"failed_at\":\"2020-01-01T00:00:00Z\"}}");
    assert_int_equal(fail_times(job, 1), JOB_FAIL_RETRY);
    json_t *f = failure_of(job);
    assert_int_equal(int_field(f, "retry_count"), 2);
    assert_int_equal(int_field(f, "remaining"), 1);
    assert_string_equal(string_field(f, "failed_at"), "2020-01-01T00:00:00Z");
    json_decref(job);
}

/* A pushed "failure" object is stored as sent, so the client chooses retry_count. The count
 * must not overflow past INT64_MAX, and a job that has used up its retries goes to the dead set. */
static void record_huge_pushed_retry_count(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":25,\"failure\":"
                             "{\"retry_count\":9223372036854775807,\"remaining\":0}}");
    assert_int_equal(fail_times(job, 1), JOB_FAIL_DEAD);
    json_decref(job);
}

static void record_keeps_other_job_fields(void **state) {
    (void)state;
    json_t *job = parse_json("{" VALID_FIELDS ",\"retry\":5,\"custom\":{\"k\":\"v\"},"
                             "\"at\":\"2025-01-01T00:00:00Z\"}");
    fail_times(job, 1);
    assert_string_equal(string_field(job, "jid"), "job-a-0001");
    assert_string_equal(string_field(json_object_get(job, "custom"), "k"), "v");
    assert_string_equal(string_field(job, "at"), "2025-01-01T00:00:00Z");
    assert_int_equal(int_field(job, "retry"), 5);
    json_decref(job);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prepare_rejects_non_object),
        cmocka_unit_test(prepare_rejects_missing_jid),
        cmocka_unit_test(prepare_rejects_null_jid),
        cmocka_unit_test(prepare_rejects_short_jid),
        cmocka_unit_test(prepare_rejects_empty_jid),
        cmocka_unit_test(prepare_accepts_eight_byte_jid),
        cmocka_unit_test(prepare_rejects_missing_jobtype),
        cmocka_unit_test(prepare_rejects_empty_jobtype),
        cmocka_unit_test(prepare_rejects_missing_args),
        cmocka_unit_test(prepare_rejects_null_args),
        cmocka_unit_test(prepare_accepts_empty_args),
        cmocka_unit_test(prepare_rejects_reserve_over_one_day),
        cmocka_unit_test(prepare_accepts_reserve_of_one_day),
        cmocka_unit_test(prepare_order_jid_before_jobtype),
        cmocka_unit_test(prepare_order_jobtype_before_args),
        cmocka_unit_test(prepare_order_args_before_reserve),
        cmocka_unit_test(prepare_order_reserve_before_at),
        cmocka_unit_test(prepare_order_at_before_queue),
        cmocka_unit_test(prepare_order_types_before_jid),
        cmocka_unit_test(prepare_rejects_string_args),
        cmocka_unit_test(prepare_rejects_fractional_retry),
        cmocka_unit_test(prepare_rejects_array_custom),
        cmocka_unit_test(prepare_rejects_integer_jid),
        cmocka_unit_test(prepare_rejects_string_priority),
        cmocka_unit_test(prepare_rejects_fractional_priority),
        cmocka_unit_test(prepare_rejects_boolean_queue),
        cmocka_unit_test(prepare_rejects_numeric_at),
        cmocka_unit_test(prepare_rejects_object_reserve_for),
        cmocka_unit_test(prepare_rejects_string_failure),
        cmocka_unit_test(prepare_null_fields_count_as_absent),
        cmocka_unit_test(prepare_rejects_at_with_space),
        cmocka_unit_test(prepare_rejects_at_without_zone),
        cmocka_unit_test(prepare_rejects_at_date_only),
        cmocka_unit_test(prepare_at_message_cuts_long_value),
        cmocka_unit_test(prepare_future_at_schedules),
        cmocka_unit_test(prepare_at_text_kept_as_sent),
        cmocka_unit_test(prepare_scheduled_has_no_enqueued_at),
        cmocka_unit_test(prepare_past_at_enqueues_now),
        cmocka_unit_test(prepare_at_equal_to_now_enqueues),
        cmocka_unit_test(prepare_removes_empty_at),
        cmocka_unit_test(prepare_removes_null_at),
        cmocka_unit_test(prepare_default_queue_when_missing),
        cmocka_unit_test(prepare_default_queue_when_empty),
        cmocka_unit_test(prepare_default_queue_when_null),
        cmocka_unit_test(prepare_accepts_valid_queue_names),
        cmocka_unit_test(prepare_rejects_invalid_queue_names),
        cmocka_unit_test(prepare_accepts_128_byte_queue),
        cmocka_unit_test(prepare_rejects_129_byte_queue),
        cmocka_unit_test(prepare_rejects_invalid_queue_when_scheduled),
        cmocka_unit_test(prepare_retry_default_when_missing),
        cmocka_unit_test(prepare_retry_default_when_null),
        cmocka_unit_test(prepare_retry_zero_kept),
        cmocka_unit_test(prepare_retry_negative_kept),
        cmocka_unit_test(prepare_sets_created_at_when_missing),
        cmocka_unit_test(prepare_sets_created_at_when_empty),
        cmocka_unit_test(prepare_keeps_given_created_at),
        cmocka_unit_test(prepare_sets_enqueued_at_for_immediate),
        cmocka_unit_test(prepare_overwrites_pushed_enqueued_at),
        cmocka_unit_test(prepare_enqueued_at_keeps_fraction),
        cmocka_unit_test(prepare_priority_default_when_missing),
        cmocka_unit_test(prepare_priority_default_when_null),
        cmocka_unit_test(prepare_priority_kept_in_range),
        cmocka_unit_test(prepare_priority_clamped_below),
        cmocka_unit_test(prepare_priority_clamped_negative),
        cmocka_unit_test(prepare_priority_clamped_above),
        cmocka_unit_test(prepare_priority_clamped_huge),
        cmocka_unit_test(prepare_keeps_unknown_fields),
        cmocka_unit_test(prepare_keeps_custom_and_backtrace),
        cmocka_unit_test(prepare_keeps_large_integers_exact),
        cmocka_unit_test(prepare_info_borrows_job_strings),
        cmocka_unit_test(set_enqueued_overwrites),
        cmocka_unit_test(reserve_default_when_missing),
        cmocka_unit_test(reserve_default_when_zero),
        cmocka_unit_test(reserve_default_when_negative),
        cmocka_unit_test(reserve_raised_to_minimum),
        cmocka_unit_test(reserve_kept_in_range),
        cmocka_unit_test(reserve_lowered_to_maximum),
        cmocka_unit_test(retry_delay_minimum_per_count),
        cmocka_unit_test(retry_delay_maximum_per_count),
        cmocka_unit_test(retry_delay_random_wraps_at_thirty),
        cmocka_unit_test(retry_delay_stays_in_bounds),
        cmocka_unit_test(retry_delay_uint32_max),
        cmocka_unit_test(retry_delay_capped_at_one_year),
        cmocka_unit_test(parse_failure_reads_fields),
        cmocka_unit_test(parse_failure_jid_borrowed),
        cmocka_unit_test(parse_failure_trims_whitespace),
        cmocka_unit_test(parse_failure_keeps_inner_whitespace),
        cmocka_unit_test(parse_failure_unknown_when_missing),
        cmocka_unit_test(parse_failure_unknown_when_empty),
        cmocka_unit_test(parse_failure_unknown_when_null),
        cmocka_unit_test(parse_failure_errtype_cut_to_100),
        cmocka_unit_test(parse_failure_errtype_of_100_kept),
        cmocka_unit_test(parse_failure_errtype_cut_before_two_byte_char),
        cmocka_unit_test(parse_failure_errtype_cut_before_three_byte_char),
        cmocka_unit_test(parse_failure_errtype_keeps_char_ending_at_100),
        cmocka_unit_test(parse_failure_message_cut_to_1000),
        cmocka_unit_test(parse_failure_message_cut_before_four_byte_char),
        cmocka_unit_test(parse_failure_trims_before_cut),
        cmocka_unit_test(parse_failure_backtrace_cut_to_50),
        cmocka_unit_test(parse_failure_backtrace_missing_is_empty),
        cmocka_unit_test(parse_failure_missing_jid),
        cmocka_unit_test(parse_failure_empty_jid),
        cmocka_unit_test(parse_failure_null_jid),
        cmocka_unit_test(parse_failure_rejects_wrong_types),
        cmocka_unit_test(parse_failure_non_object_is_missing_jid),
        cmocka_unit_test(record_first_failure_fields),
        cmocka_unit_test(record_failure_key_order),
        cmocka_unit_test(record_failure_without_backtrace_omits_key),
        cmocka_unit_test(record_failure_null_backtrace_omits_key),
        cmocka_unit_test(record_second_failure_keeps_failed_at),
        cmocka_unit_test(record_retry_zero_discards),
        cmocka_unit_test(record_negative_retry_dies_at_once),
        cmocka_unit_test(record_retry_two_dies_on_third_failure),
        cmocka_unit_test(record_retry_one_dies_on_second_failure),
        cmocka_unit_test(record_default_retry_gives_26_runs),
        cmocka_unit_test(record_missing_retry_means_25),
        cmocka_unit_test(record_null_retry_means_25),
        cmocka_unit_test(record_next_at_uses_backoff),
        cmocka_unit_test(record_pushed_failure_counts_as_earlier),
        cmocka_unit_test(record_keeps_other_job_fields),
        cmocka_unit_test(record_huge_pushed_retry_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
