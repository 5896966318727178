/* Unit tests of MUTATE support in the job model: the Redis-style glob (job_glob_match), request
 * parsing (mutate_parse) and filter matching (mutate_matches) against stored job text. */
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

static bool glob(const char *pattern, const char *text) {
    return job_glob_match(pattern, strlen(pattern), text, strlen(text));
}

#define assert_glob_match(pattern, text)                                            \
    do {                                                                            \
        if (!glob((pattern), (text)))                                               \
            fail_msg("pattern \"%s\" should match \"%s\"", (pattern), (text));      \
    } while (0)

#define assert_glob_no_match(pattern, text)                                         \
    do {                                                                            \
        if (glob((pattern), (text)))                                                \
            fail_msg("pattern \"%s\" should not match \"%s\"", (pattern), (text));  \
    } while (0)

/* ---- job_glob_match ---- */

static void glob_literal_matches_whole_text(void **state) {
    (void)state;
    assert_glob_match("hello", "hello");
    assert_glob_no_match("hello", "hello!");
    assert_glob_no_match("hello", "hell");
    assert_glob_no_match("hello", "");
}

static void glob_is_case_sensitive(void **state) {
    (void)state;
    assert_glob_no_match("Hello", "hello");
}

static void glob_empty_pattern(void **state) {
    (void)state;
    assert_glob_match("", "");
    assert_glob_no_match("", "a");
}

static void glob_star_matches_anything(void **state) {
    (void)state;
    assert_glob_match("*", "");
    assert_glob_match("*", "anything at all");
    assert_glob_match("**", "");
    assert_glob_match("***", "abc");
}

static void glob_star_inside_pattern(void **state) {
    (void)state;
    assert_glob_match("a*c", "ac");
    assert_glob_match("a*c", "abc");
    assert_glob_match("a*c", "abbbbc");
    assert_glob_no_match("a*c", "abd");
    assert_glob_no_match("a*c", "bac");
}

static void glob_star_backtracks(void **state) {
    (void)state;
    assert_glob_match("*ab", "aab");
    assert_glob_match("a*b*c", "abXbc");
    assert_glob_match("*a*b", "xaxxbxab");
    assert_glob_no_match("*a*b", "xaxxbxa");
}

static void glob_many_stars_fail_fast(void **state) {
    (void)state;
    char text[2001];
    memset(text, 'a', 2000);
    text[2000] = '\0';
    assert_false(glob("*a*a*a*a*a*a*a*a*a*a*b", text));
}

static void glob_question_mark_matches_one_byte(void **state) {
    (void)state;
    assert_glob_match("?", "a");
    assert_glob_no_match("?", "");
    assert_glob_no_match("?", "ab");
    assert_glob_match("h?llo", "hello");
    assert_glob_match("h?llo", "hallo");
    assert_glob_no_match("h?llo", "hllo");
}

static void glob_star_then_question_mark(void **state) {
    (void)state;
    assert_glob_no_match("*?", "");
    assert_glob_match("*?", "a");
    assert_glob_match("?*", "a");
}

static void glob_class_lists_bytes(void **state) {
    (void)state;
    assert_glob_match("[abc]", "a");
    assert_glob_match("[abc]", "c");
    assert_glob_no_match("[abc]", "d");
    assert_glob_no_match("[abc]", "");
    assert_glob_no_match("[abc]", "ab");
    assert_glob_match("h[ae]llo", "hallo");
    assert_glob_no_match("h[ae]llo", "hillo");
}

static void glob_class_ranges(void **state) {
    (void)state;
    assert_glob_match("[a-z]", "m");
    assert_glob_match("[a-z]", "a");
    assert_glob_match("[a-z]", "z");
    assert_glob_no_match("[a-z]", "M");
    assert_glob_no_match("[a-z]", "-");
    assert_glob_match("[0-9a-f]", "c");
    assert_glob_no_match("[0-9a-f]", "g");
}

static void glob_class_reversed_range(void **state) {
    (void)state;
    assert_glob_match("[z-a]", "m");
    assert_glob_no_match("[z-a]", "A");
}

static void glob_class_dash_at_end_is_literal(void **state) {
    (void)state;
    assert_glob_match("[a-]", "-");
    assert_glob_match("[a-]", "a");
    assert_glob_no_match("[a-]", "b");
}

static void glob_class_negated_with_caret(void **state) {
    (void)state;
    assert_glob_match("[^a]", "b");
    assert_glob_no_match("[^a]", "a");
    assert_glob_match("h[^e]llo", "hallo");
    assert_glob_no_match("h[^e]llo", "hello");
    assert_glob_no_match("[^a]", "");
}

static void glob_class_negated_with_bang(void **state) {
    (void)state;
    assert_glob_match("[!a]", "b");
    assert_glob_no_match("[!a]", "a");
}

static void glob_class_negated_range(void **state) {
    (void)state;
    assert_glob_match("[^0-9]", "x");
    assert_glob_no_match("[^0-9]", "5");
}

static void glob_class_escaped_bracket(void **state) {
    (void)state;
    assert_glob_match("[\\]]", "]");
    assert_glob_no_match("[\\]]", "\\");
    assert_glob_match("[\\-]", "-");
}

static void glob_unclosed_class_runs_to_end(void **state) {
    (void)state;
    assert_glob_match("[ab", "a");
    assert_glob_no_match("[ab", "c");
}

static void glob_star_then_class(void **state) {
    (void)state;
    assert_glob_match("*[0-9]", "job42");
    assert_glob_no_match("*[0-9]", "job");
}

static void glob_escapes_special_bytes(void **state) {
    (void)state;
    assert_glob_match("\\*", "*");
    assert_glob_no_match("\\*", "a");
    assert_glob_match("a\\?", "a?");
    assert_glob_no_match("a\\?", "ab");
    assert_glob_match("\\[x\\]", "[x]");
    assert_glob_match("\\a", "a");
}

static void glob_trailing_backslash_is_literal(void **state) {
    (void)state;
    assert_glob_match("a\\", "a\\");
    assert_glob_no_match("a\\", "a");
}

static void glob_uses_lengths_not_nul(void **state) {
    (void)state;
    assert_true(job_glob_match("abc", 2, "ab", 2));
    assert_true(job_glob_match("a?c", 3, "a\0c", 3));
    assert_false(job_glob_match("a", 1, "a\0", 2));
}

static void glob_over_job_text(void **state) {
    (void)state;
    const char *text = "{\"jid\":\"job-a-0001\",\"jobtype\":\"QuickbooksSyncJob\",\"args\":[1]}";
    assert_glob_match("*\"jobtype\":\"Quickbooks*", text);
    assert_glob_match("*job-a-000[0-9]*", text);
    assert_glob_no_match("*\"jobtype\":\"Other*", text);
    assert_glob_no_match("Quickbooks", text);
}

/* ---- mutate_parse ---- */

struct parsed {
    int rc;
    struct mutate_request req;
    char err[256];
};

static void parse_request(const char *text, struct parsed *out) {
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!doc)
        fail_msg("test JSON does not parse: %s", text);
    memset(out, 0, sizeof *out);
    out->rc = mutate_parse(doc, &out->req, out->err, sizeof out->err);
    json_decref(doc);
}

static void expect_parse_error(const char *text, const char *message) {
    struct parsed p;
    parse_request(text, &p);
    if (p.rc != -1)
        fail_msg("mutate_parse accepted %s", text);
    assert_string_equal(p.err, message);
    mutate_request_free(&p.req);
}

static void parse_reads_every_cmd(void **state) {
    (void)state;
    static const struct {
        const char *name;
        enum mutate_cmd cmd;
    } cases[] = {{"clear", MUTATE_CLEAR},
                 {"kill", MUTATE_KILL},
                 {"discard", MUTATE_DISCARD},
                 {"requeue", MUTATE_REQUEUE}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"cmd\":\"%s\",\"target\":\"dead\"}", cases[i].name);
        struct parsed p;
        parse_request(text, &p);
        assert_int_equal(p.rc, 0);
        assert_int_equal(p.req.cmd, cases[i].cmd);
        mutate_request_free(&p.req);
    }
}

static void parse_reads_every_target(void **state) {
    (void)state;
    static const struct {
        const char *name;
        enum job_state target;
    } cases[] = {{"retries", JOB_RETRY}, {"scheduled", JOB_SCHEDULED}, {"dead", JOB_DEAD}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"cmd\":\"kill\",\"target\":\"%s\"}", cases[i].name);
        struct parsed p;
        parse_request(text, &p);
        assert_int_equal(p.rc, 0);
        assert_int_equal(p.req.target, cases[i].target);
        mutate_request_free(&p.req);
    }
}

static void parse_without_filter(void **state) {
    (void)state;
    struct parsed p;
    parse_request("{\"cmd\":\"discard\",\"target\":\"retries\"}", &p);
    assert_int_equal(p.rc, 0);
    assert_false(p.req.has_filter);
    assert_null(p.req.jobtype);
    assert_null(p.req.pattern);
    assert_null(p.req.jids);
    assert_int_equal(p.req.njids, 0);
    mutate_request_free(&p.req);
}

static void parse_null_filter_is_absent(void **state) {
    (void)state;
    struct parsed p;
    parse_request("{\"cmd\":\"discard\",\"target\":\"retries\",\"filter\":null}", &p);
    assert_int_equal(p.rc, 0);
    assert_false(p.req.has_filter);
    mutate_request_free(&p.req);
}

static void parse_empty_filter_is_present(void **state) {
    (void)state;
    struct parsed p;
    parse_request("{\"cmd\":\"discard\",\"target\":\"retries\",\"filter\":{}}", &p);
    assert_int_equal(p.rc, 0);
    assert_true(p.req.has_filter);
    assert_null(p.req.jobtype);
    assert_null(p.req.pattern);
    assert_int_equal(p.req.njids, 0);
    mutate_request_free(&p.req);
}

static void parse_reads_filter_keys(void **state) {
    (void)state;
    struct parsed p;
    parse_request("{\"cmd\":\"kill\",\"target\":\"scheduled\",\"filter\":{\"jobtype\":\"Sync\","
                  "\"regexp\":\"*abc*\",\"jids\":[\"job-a-0001\",\"job-b-0001\"]}}",
                  &p);
    assert_int_equal(p.rc, 0);
    assert_true(p.req.has_filter);
    assert_string_equal(p.req.jobtype, "Sync");
    assert_string_equal(p.req.pattern, "*abc*");
    assert_int_equal(p.req.njids, 2);
    assert_string_equal(p.req.jids[0], "job-a-0001");
    assert_string_equal(p.req.jids[1], "job-b-0001");
    mutate_request_free(&p.req);
}

static void parse_accepts_spaces_inside_json(void **state) {
    (void)state;
    struct parsed p;
    parse_request("{ \"cmd\" : \"kill\", \"target\" : \"dead\", \"filter\" : { \"regexp\" : "
                  "\"*a b*\" } }",
                  &p);
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.req.pattern, "*a b*");
    mutate_request_free(&p.req);
}

static void parse_empty_filter_values_are_absent(void **state) {
    (void)state;
    struct parsed p;
    parse_request("{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"jobtype\":\"\","
                  "\"regexp\":\"\",\"jids\":[]}}",
                  &p);
    assert_int_equal(p.rc, 0);
    assert_true(p.req.has_filter);
    assert_null(p.req.jobtype);
    assert_null(p.req.pattern);
    assert_null(p.req.jids);
    assert_int_equal(p.req.njids, 0);
    mutate_request_free(&p.req);
}

static void parse_null_filter_values_are_absent(void **state) {
    (void)state;
    struct parsed p;
    parse_request("{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"jobtype\":null,"
                  "\"regexp\":null,\"jids\":null}}",
                  &p);
    assert_int_equal(p.rc, 0);
    assert_null(p.req.jobtype);
    assert_null(p.req.pattern);
    assert_int_equal(p.req.njids, 0);
    mutate_request_free(&p.req);
}

static void parse_rejects_unknown_cmd(void **state) {
    (void)state;
    expect_parse_error("{\"cmd\":\"explode\",\"target\":\"dead\"}", "unknown mutate operation");
}

static void parse_rejects_cmd_in_other_case(void **state) {
    (void)state;
    expect_parse_error("{\"cmd\":\"Kill\",\"target\":\"dead\"}", "unknown mutate operation");
}

static void parse_rejects_missing_cmd(void **state) {
    (void)state;
    expect_parse_error("{\"target\":\"dead\"}", "unknown mutate operation");
}

static void parse_rejects_numeric_cmd(void **state) {
    (void)state;
    expect_parse_error("{\"cmd\":1,\"target\":\"dead\"}", "unknown mutate operation");
}

static void parse_rejects_empty_target(void **state) {
    (void)state;
    expect_parse_error("{\"cmd\":\"kill\",\"target\":\"\",\"filter\":{\"jobtype\":\"X\"}}",
                       "invalid target for mutation command");
}

static void parse_rejects_queue_and_working_targets(void **state) {
    (void)state;
    expect_parse_error("{\"cmd\":\"kill\",\"target\":\"queues\"}",
                       "invalid target for mutation command");
    expect_parse_error("{\"cmd\":\"kill\",\"target\":\"working\"}",
                       "invalid target for mutation command");
    expect_parse_error("{\"cmd\":\"kill\",\"target\":\"default\"}",
                       "invalid target for mutation command");
}

static void parse_rejects_missing_target(void **state) {
    (void)state;
    expect_parse_error("{\"cmd\":\"kill\"}", "invalid target for mutation command");
}

static void parse_checks_cmd_before_target(void **state) {
    (void)state;
    expect_parse_error("{\"cmd\":\"explode\",\"target\":\"queues\"}", "unknown mutate operation");
}

static void parse_rejects_non_object(void **state) {
    (void)state;
    expect_parse_error("[\"kill\",\"dead\"]", "invalid MUTATE: the argument must be a JSON object");
    expect_parse_error("\"kill\"", "invalid MUTATE: the argument must be a JSON object");
}

static void parse_rejects_non_object_filter(void **state) {
    (void)state;
    expect_parse_error("{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":\"*\"}",
                       "invalid MUTATE: filter must be an object");
}

static void parse_rejects_wrong_filter_types(void **state) {
    (void)state;
    static const char *const docs[] = {
        "{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"jobtype\":1}}",
        "{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"regexp\":[]}}",
        "{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"jids\":\"job-a-0001\"}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        expect_parse_error(docs[i], "invalid MUTATE: filter.jobtype and filter.regexp must be "
                                    "strings and filter.jids an array of strings");
}

static void parse_rejects_non_string_jid_and_frees(void **state) {
    (void)state;
    struct parsed p;
    parse_request("{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"jobtype\":\"T\","
                  "\"regexp\":\"*\",\"jids\":[\"job-a-0001\",2]}}",
                  &p);
    assert_int_equal(p.rc, -1);
    assert_string_equal(p.err, "invalid MUTATE: filter.jids must contain only strings");
    /* The partial request was released, so nothing is left to free or leak. */
    assert_null(p.req.jobtype);
    assert_null(p.req.pattern);
    assert_null(p.req.jids);
    assert_int_equal(p.req.njids, 0);
    mutate_request_free(&p.req);
}

static void free_accepts_zeroed_request(void **state) {
    (void)state;
    struct mutate_request req;
    memset(&req, 0, sizeof req);
    mutate_request_free(&req);
    mutate_request_free(&req);
    assert_null(req.jids);
}

/* ---- mutate_matches ---- */

struct stored_job {
    char *text;
    json_t *doc;
};

static struct stored_job store_job(const char *text) {
    struct stored_job j;
    j.text = (char *)text;
    j.doc = json_loads(text, 0, NULL);
    if (!j.doc)
        fail_msg("test job does not parse: %s", text);
    return j;
}

static bool matches(const char *request, const struct stored_job *job) {
    struct parsed p;
    parse_request(request, &p);
    if (p.rc != 0)
        fail_msg("request rejected: %s: %s", request, p.err);
    bool result = mutate_matches(&p.req, job->text, strlen(job->text), job->doc);
    mutate_request_free(&p.req);
    return result;
}

#define JOB_A "{\"jid\":\"job-a-0001\",\"jobtype\":\"Sync\",\"queue\":\"critical\",\"args\":[1]}"
#define JOB_B "{\"jid\":\"job-b-0001\",\"jobtype\":\"Mail\",\"queue\":\"default\"," \
              "\"args\":[\"job-a-0001\",\"\\\"jobtype\\\":\\\"Sync\\\"\"]}"

static void matches_everything_without_filter(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A), b = store_job(JOB_B);
    assert_true(matches("{\"cmd\":\"discard\",\"target\":\"retries\"}", &a));
    assert_true(matches("{\"cmd\":\"discard\",\"target\":\"retries\"}", &b));
    json_decref(a.doc);
    json_decref(b.doc);
}

static void matches_everything_with_empty_filter(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A);
    assert_true(matches("{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{}}", &a));
    json_decref(a.doc);
}

static void clear_ignores_filter(void **state) {
    (void)state;
    struct stored_job b = store_job(JOB_B);
    assert_true(matches("{\"cmd\":\"clear\",\"target\":\"dead\",\"filter\":{\"jobtype\":\"Sync\","
                        "\"jids\":[\"nothing-like-it\"]}}",
                        &b));
    json_decref(b.doc);
}

static void jids_select_listed_jobs(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A), b = store_job(JOB_B);
    const char *req = "{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jids\":"
                      "[\"job-x-0001\",\"job-a-0001\"]}}";
    assert_true(matches(req, &a));
    assert_false(matches(req, &b));
    json_decref(a.doc);
    json_decref(b.doc);
}

static void jids_win_over_jobtype_and_regexp(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A), b = store_job(JOB_B);
    const char *req = "{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jids\":"
                      "[\"job-a-0001\"],\"jobtype\":\"Mail\",\"regexp\":\"*Mail*\"}}";
    assert_true(matches(req, &a));
    assert_false(matches(req, &b));
    json_decref(a.doc);
    json_decref(b.doc);
}

static void jids_compare_parsed_jid_not_text(void **state) {
    (void)state;
    /* Job B carries job A's jid as an argument; only its own jid counts. */
    struct stored_job b = store_job(JOB_B);
    assert_false(matches("{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jids\":"
                         "[\"job-a-0001\"]}}",
                         &b));
    json_decref(b.doc);
}

static void jobtype_compares_parsed_field(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A), b = store_job(JOB_B);
    const char *req = "{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jobtype\":\"Sync\"}}";
    assert_true(matches(req, &a));
    /* Job B's args contain the text "jobtype":"Sync", but its jobtype is Mail. */
    assert_false(matches(req, &b));
    json_decref(a.doc);
    json_decref(b.doc);
}

static void jobtype_must_match_exactly(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A);
    assert_false(matches("{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jobtype\":"
                         "\"Syn\"}}",
                         &a));
    assert_false(matches("{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jobtype\":"
                         "\"sync\"}}",
                         &a));
    json_decref(a.doc);
}

static void regexp_globs_stored_text(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A), b = store_job(JOB_B);
    const char *req = "{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"regexp\":"
                      "\"*\\\"queue\\\":\\\"critical\\\"*\"}}";
    assert_true(matches(req, &a));
    assert_false(matches(req, &b));
    json_decref(a.doc);
    json_decref(b.doc);
}

static void regexp_must_cover_whole_text(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A);
    assert_false(matches("{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"regexp\":"
                         "\"critical\"}}",
                         &a));
    json_decref(a.doc);
}

static void jobtype_and_regexp_both_required(void **state) {
    (void)state;
    struct stored_job a = store_job(JOB_A);
    assert_true(matches("{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jobtype\":"
                        "\"Sync\",\"regexp\":\"*critical*\"}}",
                        &a));
    assert_false(matches("{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jobtype\":"
                         "\"Sync\",\"regexp\":\"*default*\"}}",
                         &a));
    assert_false(matches("{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jobtype\":"
                         "\"Mail\",\"regexp\":\"*critical*\"}}",
                         &a));
    json_decref(a.doc);
}

static void unparsed_job_matches_only_by_text(void **state) {
    (void)state;
    const char *text = "not json but job-a-0001";
    struct parsed p;
    parse_request("{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"jids\":[\"job-a-0001\"]}}",
                  &p);
    assert_false(mutate_matches(&p.req, text, strlen(text), NULL));
    mutate_request_free(&p.req);
    parse_request("{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"jobtype\":\"Sync\"}}", &p);
    assert_false(mutate_matches(&p.req, text, strlen(text), NULL));
    mutate_request_free(&p.req);
    parse_request("{\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":{\"regexp\":\"*job-a*\"}}", &p);
    assert_true(mutate_matches(&p.req, text, strlen(text), NULL));
    mutate_request_free(&p.req);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glob_literal_matches_whole_text),
        cmocka_unit_test(glob_is_case_sensitive),
        cmocka_unit_test(glob_empty_pattern),
        cmocka_unit_test(glob_star_matches_anything),
        cmocka_unit_test(glob_star_inside_pattern),
        cmocka_unit_test(glob_star_backtracks),
        cmocka_unit_test(glob_many_stars_fail_fast),
        cmocka_unit_test(glob_question_mark_matches_one_byte),
        cmocka_unit_test(glob_star_then_question_mark),
        cmocka_unit_test(glob_class_lists_bytes),
        cmocka_unit_test(glob_class_ranges),
        cmocka_unit_test(glob_class_reversed_range),
        cmocka_unit_test(glob_class_dash_at_end_is_literal),
        cmocka_unit_test(glob_class_negated_with_caret),
        cmocka_unit_test(glob_class_negated_with_bang),
        cmocka_unit_test(glob_class_negated_range),
        cmocka_unit_test(glob_class_escaped_bracket),
        cmocka_unit_test(glob_unclosed_class_runs_to_end),
        cmocka_unit_test(glob_star_then_class),
        cmocka_unit_test(glob_escapes_special_bytes),
        cmocka_unit_test(glob_trailing_backslash_is_literal),
        cmocka_unit_test(glob_uses_lengths_not_nul),
        cmocka_unit_test(glob_over_job_text),
        cmocka_unit_test(parse_reads_every_cmd),
        cmocka_unit_test(parse_reads_every_target),
        cmocka_unit_test(parse_without_filter),
        cmocka_unit_test(parse_null_filter_is_absent),
        cmocka_unit_test(parse_empty_filter_is_present),
        cmocka_unit_test(parse_reads_filter_keys),
        cmocka_unit_test(parse_accepts_spaces_inside_json),
        cmocka_unit_test(parse_empty_filter_values_are_absent),
        cmocka_unit_test(parse_null_filter_values_are_absent),
        cmocka_unit_test(parse_rejects_unknown_cmd),
        cmocka_unit_test(parse_rejects_cmd_in_other_case),
        cmocka_unit_test(parse_rejects_missing_cmd),
        cmocka_unit_test(parse_rejects_numeric_cmd),
        cmocka_unit_test(parse_rejects_empty_target),
        cmocka_unit_test(parse_rejects_queue_and_working_targets),
        cmocka_unit_test(parse_rejects_missing_target),
        cmocka_unit_test(parse_checks_cmd_before_target),
        cmocka_unit_test(parse_rejects_non_object),
        cmocka_unit_test(parse_rejects_non_object_filter),
        cmocka_unit_test(parse_rejects_wrong_filter_types),
        cmocka_unit_test(parse_rejects_non_string_jid_and_frees),
        cmocka_unit_test(free_accepts_zeroed_request),
        cmocka_unit_test(matches_everything_without_filter),
        cmocka_unit_test(matches_everything_with_empty_filter),
        cmocka_unit_test(clear_ignores_filter),
        cmocka_unit_test(jids_select_listed_jobs),
        cmocka_unit_test(jids_win_over_jobtype_and_regexp),
        cmocka_unit_test(jids_compare_parsed_jid_not_text),
        cmocka_unit_test(jobtype_compares_parsed_field),
        cmocka_unit_test(jobtype_must_match_exactly),
        cmocka_unit_test(regexp_globs_stored_text),
        cmocka_unit_test(regexp_must_cover_whole_text),
        cmocka_unit_test(jobtype_and_regexp_both_required),
        cmocka_unit_test(unparsed_job_matches_only_by_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
