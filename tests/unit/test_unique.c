/* Unit tests of the pure parts of unique jobs and job tracking: the unique options and their
 * errors (unique_parse), the lock key (unique_key), the TRACK SET parser (track_parse_set), the
 * 24-hour cap of reserve_until, custom.track, and the TRACK GET document. Every function takes
 * `now` as an argument, so no clock or store is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ent/track.h"
#include "ent/unique.h"

#define NOW 1800000000.0

/* Parses text as a JSON object, failing the test when it is not one. */
static json_t *parse(const char *text) {
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!json_is_object(doc))
        fail_msg("invalid test JSON %s: %s", text, jerr.text);
    return doc;
}

/* A job of type Sync in queue default with args and custom given as JSON text. */
static json_t *job_with(const char *args, const char *custom) {
    char text[512];
    snprintf(text, sizeof text,
             "{\"jid\":\"jid-00001\",\"jobtype\":\"Sync\",\"queue\":\"default\",\"args\":%s%s%s}",
             args, custom ? ",\"custom\":" : "", custom ? custom : "");
    return parse(text);
}

/* ---- unique_parse ---- */

static void unique_absent_not_wanted(void **state) {
    (void)state;
    static const char *const customs[] = {NULL, "{}", "{\"unique_for\":null}",
                                          "{\"unique_until\":\"start\"}"};
    for (size_t i = 0; i < sizeof customs / sizeof customs[0]; i++) {
        json_t *job = job_with("[1]", customs[i]);
        struct unique_spec spec;
        char err[256] = "";
        assert_int_equal(unique_parse(job, NOW, 0, &spec, err, sizeof err), 0);
        assert_false(spec.wanted);
        json_decref(job);
    }
}

static void unique_lock_span(void **state) {
    (void)state;
    struct unique_spec spec;
    char err[256];
    json_t *job = job_with("[1]", "{\"unique_for\":600}");
    assert_int_equal(unique_parse(job, NOW, 0, &spec, err, sizeof err), 0);
    assert_true(spec.wanted);
    assert_false(spec.until_start);
    assert_float_equal(spec.expires_at, NOW + 600, 1e-6);
    assert_int_equal(strlen(spec.key), 64);

    /* A scheduled job adds its delay; a past `at` adds nothing. */
    assert_int_equal(unique_parse(job, NOW, NOW + 3600, &spec, err, sizeof err), 0);
    assert_float_equal(spec.expires_at, NOW + 4200, 1e-6);
    assert_int_equal(unique_parse(job, NOW, NOW - 50, &spec, err, sizeof err), 0);
    assert_float_equal(spec.expires_at, NOW + 600, 1e-6);
    json_decref(job);

    job = job_with("[1]", "{\"unique_for\":0.25,\"unique_until\":\"start\"}");
    assert_int_equal(unique_parse(job, NOW, 0, &spec, err, sizeof err), 0);
    assert_true(spec.until_start);
    assert_float_equal(spec.expires_at, NOW + 0.25, 1e-6);
    json_decref(job);

    job = job_with("[1]", "{\"unique_for\":5,\"unique_until\":\"success\"}");
    assert_int_equal(unique_parse(job, NOW, 0, &spec, err, sizeof err), 0);
    assert_false(spec.until_start);
    json_decref(job);
}

static void unique_invalid_options(void **state) {
    (void)state;
    static const struct {
        const char *custom;
        const char *message;
    } cases[] = {
        {"{\"unique_for\":\"600\"}",
         "invalid custom.unique_for \"600\": it must be a number of seconds above 0, not a "
         "string"},
        {"{\"unique_for\":0}", "invalid custom.unique_for: it must be a number of seconds above 0"},
        {"{\"unique_for\":-1.5}",
         "invalid custom.unique_for: it must be a number of seconds above 0"},
        {"{\"unique_for\":false}",
         "invalid custom.unique_for: it must be a number of seconds above 0"},
        {"{\"unique_for\":[1]}", "invalid custom.unique_for: it must be a number of seconds above 0"},
        {"{\"unique_for\":60,\"unique_until\":\"never\"}",
         "invalid custom.unique_until: it must be \"success\" or \"start\""},
        {"{\"unique_for\":60,\"unique_until\":true}",
         "invalid custom.unique_until: it must be \"success\" or \"start\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *job = job_with("[1]", cases[i].custom);
        struct unique_spec spec;
        char err[256] = "";
        assert_int_equal(unique_parse(job, NOW, 0, &spec, err, sizeof err), -1);
        assert_string_equal(err, cases[i].message);
        json_decref(job);
    }
}

/* ---- unique_key ---- */

static void key_of(const char *text, char key[UNIQUE_KEY_BYTES]) {
    json_t *job = parse(text);
    assert_int_equal(unique_key(job, key), 0);
    json_decref(job);
}

static void key_identity(void **state) {
    (void)state;
    char base[UNIQUE_KEY_BYTES], other[UNIQUE_KEY_BYTES];
    key_of("{\"jobtype\":\"Sync\",\"queue\":\"q\",\"args\":[{\"a\":1,\"b\":\"x\"}],\"jid\":\"1\"}",
           base);

    /* Key order, spacing, jid and other fields do not change the key. */
    key_of("{ \"jid\" : \"2\", \"args\" : [ { \"b\" : \"x\", \"a\" : 1 } ], \"queue\" : \"q\","
           " \"jobtype\" : \"Sync\", \"priority\": 9 }",
           other);
    assert_string_equal(base, other);

    /* Each part of the identity does. */
    static const char *const different[] = {
        "{\"jobtype\":\"Sync\",\"queue\":\"r\",\"args\":[{\"a\":1,\"b\":\"x\"}]}",
        "{\"jobtype\":\"Other\",\"queue\":\"q\",\"args\":[{\"a\":1,\"b\":\"x\"}]}",
        "{\"jobtype\":\"Sync\",\"queue\":\"q\",\"args\":[{\"a\":2,\"b\":\"x\"}]}",
        "{\"jobtype\":\"Sync\",\"queue\":\"q\",\"args\":[{\"a\":1.0,\"b\":\"x\"}]}",
        "{\"jobtype\":\"Sync\",\"queue\":\"q\",\"args\":[{\"a\":1,\"b\":\"x\"},null]}",
        /* The parts cannot run into each other: "q" + "Sync" is not "qS" + "ync". */
        "{\"jobtype\":\"ync\",\"queue\":\"qS\",\"args\":[{\"a\":1,\"b\":\"x\"}]}",
    };
    for (size_t i = 0; i < sizeof different / sizeof different[0]; i++) {
        key_of(different[i], other);
        assert_string_not_equal(base, other);
    }
}

static void key_is_sha256_hex(void **state) {
    (void)state;
    char key[UNIQUE_KEY_BYTES];
    /* SHA-256 of the text ["default","T",[]]. */
    key_of("{\"jobtype\":\"T\",\"queue\":\"default\",\"args\":[]}", key);
    assert_string_equal(key, "e6cc8512e5fdbe911198da257f339c59daa8b39bd8f319dfda9329e2de4c88f1");
}

/* ---- TRACK SET ---- */

static void track_set_fields(void **state) {
    (void)state;
    json_t *doc = parse("{\"jid\":\"j-1\",\"percent\":55,\"desc\":\"halfway\","
                        "\"reserve_until\":\"2027-01-15T08:00:00Z\",\"other\":1}");
    struct track_update u;
    char err[256];
    assert_int_equal(track_parse_set(doc, &u, err, sizeof err), 0);
    assert_string_equal(u.jid, "j-1");
    assert_int_equal(u.percent, 55);
    assert_true(u.has_description);
    assert_string_equal(u.description, "halfway");
    assert_float_equal(u.reserve_until, NOW, 1e-6);
    json_decref(doc);

    doc = parse("{\"jid\":\"j-1\",\"percent\":null,\"desc\":null,\"reserve_until\":null}");
    assert_int_equal(track_parse_set(doc, &u, err, sizeof err), 0);
    assert_int_equal(u.percent, -1);
    assert_false(u.has_description);
    assert_float_equal(u.reserve_until, 0, 0);
    json_decref(doc);

    doc = parse("{\"jid\":\"j-1\",\"percent\":0,\"desc\":\"\"}");
    assert_int_equal(track_parse_set(doc, &u, err, sizeof err), 0);
    assert_int_equal(u.percent, 0);
    assert_true(u.has_description);
    assert_string_equal(u.description, "");
    json_decref(doc);
}

static void track_set_errors(void **state) {
    (void)state;
    static const struct {
        const char *doc;
        const char *message;
    } cases[] = {
        {"{\"percent\":1}", "invalid jid: TRACK SET needs the job's jid as a non-empty string"},
        {"{\"jid\":\"\"}", "invalid jid: TRACK SET needs the job's jid as a non-empty string"},
        {"{\"jid\":\"j\",\"percent\":101}", "invalid percent: it must be an integer from 0 to 100"},
        {"{\"jid\":\"j\",\"percent\":-1}", "invalid percent: it must be an integer from 0 to 100"},
        {"{\"jid\":\"j\",\"percent\":1.5}", "invalid percent: it must be an integer from 0 to 100"},
        {"{\"jid\":\"j\",\"desc\":[]}", "invalid desc: it must be a string or null"},
        {"{\"jid\":\"j\",\"reserve_until\":5}",
         "invalid reserve_until: it must be an RFC 3339 time string such as "
         "\"2030-01-01T10:00:00Z\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *doc = parse(cases[i].doc);
        struct track_update u;
        char err[256] = "";
        assert_int_equal(track_parse_set(doc, &u, err, sizeof err), -1);
        assert_string_equal(err, cases[i].message);
        json_decref(doc);
    }

    json_t *doc = parse("{\"jid\":\"j\",\"reserve_until\":\"soon\"}");
    struct track_update u;
    char err[256] = "";
    assert_int_equal(track_parse_set(doc, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "invalid reserve_until \"soon\": "));
    json_decref(doc);

    json_t *array = json_array();
    assert_int_equal(track_parse_set(array, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "TRACK SET takes a JSON object"));
    json_decref(array);
}

/* A description is cut to 1000 bytes without splitting a UTF-8 character. */
static void track_description_cut(void **state) {
    (void)state;
    char desc[1100];
    memset(desc, 'a', 998);
    strcpy(desc + 998, "\xe2\x82\xac" "bc");   /* a 3-byte character across byte 1000 */
    json_t *doc = json_pack("{s:s, s:s}", "jid", "j", "desc", desc);
    struct track_update u;
    char err[256];
    assert_int_equal(track_parse_set(doc, &u, err, sizeof err), 0);
    assert_int_equal(strlen(u.description), 998);
    json_decref(doc);

    memset(desc, 'b', 1000);
    desc[1000] = '\0';
    doc = json_pack("{s:s, s:s}", "jid", "j", "desc", desc);
    assert_int_equal(track_parse_set(doc, &u, err, sizeof err), 0);
    assert_int_equal(strlen(u.description), 1000);
    json_decref(doc);
}

static void reserve_deadline_capped(void **state) {
    (void)state;
    assert_float_equal(track_reserve_deadline(NOW + 600, NOW), NOW + 600, 1e-6);
    assert_float_equal(track_reserve_deadline(NOW + 86400, NOW), NOW + 86400, 1e-6);
    assert_float_equal(track_reserve_deadline(NOW + 3 * 86400, NOW), NOW + 86400, 1e-6);
    assert_float_equal(track_reserve_deadline(NOW - 10, NOW), NOW - 10, 1e-6);
}

static void track_flag_values(void **state) {
    (void)state;
    static const struct {
        const char *custom;
        bool tracked;
    } cases[] = {
        {"{\"track\":1}", true},   {"{\"track\":true}", true},  {"{\"track\":0}", false},
        {"{\"track\":false}", false}, {"{\"track\":\"1\"}", false}, {"{\"track\":2}", false},
        {"{}", false},             {NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *job = job_with("[]", cases[i].custom);
        assert_int_equal(track_wanted(job), cases[i].tracked);
        int ext = 0;
        track_admit(job, &ext);
        assert_int_equal(ext, cases[i].tracked ? JOB_EXT_TRACKED : 0);
        json_decref(job);
    }
}

static void track_documents(void **state) {
    (void)state;
    json_t *doc = track_document("j-9", NULL);
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_string_equal(text, "{\"jid\":\"j-9\",\"state\":\"unknown\",\"updated_at\":\"\"}");
    free(text);
    json_decref(doc);

    struct store_tracking t = {.state = TRACK_SUCCESS, .percent = 100,
                               .description = "done", .updated_at = NOW + 0.5};
    doc = track_document("j-9", &t);
    text = json_dumps(doc, JSON_COMPACT);
    assert_string_equal(text, "{\"jid\":\"j-9\",\"state\":\"success\",\"updated_at\":"
                              "\"2027-01-15T08:00:00.5Z\",\"percent\":100,\"desc\":\"done\"}");
    free(text);
    json_decref(doc);

    struct store_tracking bare = {.state = TRACK_ENQUEUED, .percent = -1, .updated_at = NOW};
    doc = track_document("j-9", &bare);
    assert_null(json_object_get(doc, "percent"));
    assert_null(json_object_get(doc, "desc"));
    json_decref(doc);

    assert_string_equal(track_state_name(TRACK_WORKING), "working");
    assert_string_equal(track_state_name(TRACK_FAILED), "failed");
    assert_string_equal(track_state_name(TRACK_DEAD), "dead");
    assert_string_equal(track_state_name(99), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unique_absent_not_wanted),
        cmocka_unit_test(unique_lock_span),
        cmocka_unit_test(unique_invalid_options),
        cmocka_unit_test(key_identity),
        cmocka_unit_test(key_is_sha256_hex),
        cmocka_unit_test(track_set_fields),
        cmocka_unit_test(track_set_errors),
        cmocka_unit_test(track_description_cut),
        cmocka_unit_test(reserve_deadline_capped),
        cmocka_unit_test(track_flag_values),
        cmocka_unit_test(track_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
