/* Fuzz target for the job model. The input is the JSON argument of PUSH, PUSHB or FAIL, parsed
 * with the same jansson flags as the server. Each job object goes through job_prepare and,
 * when accepted, through a few job_record_failure rounds. The document also goes through
 * job_parse_failure. The checks are the invariants the engine and the clients rely on. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "fuzz_check.h"
#include "util/timefmt.h"

/* 2026-01-01T00:00:00Z, fixed so that a crashing input replays the same way. */
#define FUZZ_NOW 1767225600.0

/* Whether s is well-formed UTF-8 (no truncated or stray continuation bytes). */
static bool utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra = 0;
        if (*p < 0x80)
            extra = 0;
        else if ((*p & 0xE0) == 0xC0)
            extra = 1;
        else if ((*p & 0xF0) == 0xE0)
            extra = 2;
        else if ((*p & 0xF8) == 0xF0)
            extra = 3;
        else
            return false;
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xC0) != 0x80)
                return false;
        }
    }
    return true;
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool queue_name_valid(const char *name) {
    size_t len = strlen(name);
    if (len == 0 || len > JOB_MAX_QUEUE_BYTES)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
           len;
}

static void check_prepared(const json_t *job, const struct job_info *info) {
    const char *jid = json_string_value(json_object_get(job, "jid"));
    const char *queue = json_string_value(json_object_get(job, "queue"));
    FUZZ_CHECK(jid != NULL && info->jid == jid);
    FUZZ_CHECK(strlen(jid) >= JOB_MIN_JID_BYTES);
    FUZZ_CHECK(queue != NULL && info->queue == queue);
    FUZZ_CHECK(queue_name_valid(queue));
    FUZZ_CHECK(info->priority >= 1 && info->priority <= 9);
    FUZZ_CHECK(json_is_integer(json_object_get(job, "retry")));
    FUZZ_CHECK(json_is_array(json_object_get(job, "args")));
    const char *created = json_string_value(json_object_get(job, "created_at"));
    FUZZ_CHECK(created != NULL && created[0] != '\0');

    const json_t *at = json_object_get(job, "at");
    FUZZ_CHECK(at == NULL || (json_is_string(at) && json_string_value(at)[0] != '\0'));
    bool has_enqueued = json_object_get(job, "enqueued_at") != NULL;
    if (info->at > 0) {
        FUZZ_CHECK(info->at > FUZZ_NOW);
        FUZZ_CHECK(!has_enqueued);
    } else {
        FUZZ_CHECK(info->at == 0);
        FUZZ_CHECK(has_enqueued);
    }

    int reserve = job_reserve_seconds(job);
    FUZZ_CHECK(reserve >= JOB_MIN_RESERVE && reserve <= JOB_MAX_RESERVE);

    /* The engine stores the compact dump and parses it back for every later state change. */
    char *text = json_dumps(job, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    json_t *back = json_loads(text, 0, NULL);
    FUZZ_CHECK(back != NULL && json_equal(back, job));
    json_decref(back);
    free(text);
}

/* Fails a prepared job a few times and checks each outcome against its retry policy. */
static void check_failures(json_t *job, uint32_t random) {
    json_int_t retry = json_integer_value(json_object_get(job, "retry"));
    const json_t *pushed = json_object_get(job, "failure");
    /* A client may push its own failure object; then the count continues from it. The checks
     * below skip counts near the integer limits, because this harness must not overflow. */
    json_int_t count = 0;
    bool count_known = true;
    if (json_is_object(pushed)) {
        json_int_t stored = json_integer_value(json_object_get(pushed, "retry_count"));
        count_known = stored > -1000000000 && stored < 1000000000;
        count = count_known ? stored + 1 : 0;
    }

    struct job_failure_report report;
    memset(&report, 0, sizeof report);
    strcpy(report.errtype, "FuzzError");
    strcpy(report.message, "fuzz");
    report.backtrace = json_pack("[s]", "fuzz.c:1");

    for (int round = 0; round < 3; round++, count++) {
        double next_at = -1;
        double now = FUZZ_NOW + round * 100.0;
        enum job_fail_outcome outcome = job_record_failure(job, &report, now, random, &next_at);
        const json_t *failure = json_object_get(job, "failure");
        FUZZ_CHECK(json_is_object(failure));
        FUZZ_CHECK(json_is_string(json_object_get(failure, "failed_at")));
        if (outcome == JOB_FAIL_RETRY) {
            FUZZ_CHECK(next_at >= now + 15);
            FUZZ_CHECK(next_at <= now + 365.0 * 86400);
            FUZZ_CHECK(json_is_string(json_object_get(failure, "next_at")));
        } else {
            FUZZ_CHECK(json_object_get(failure, "next_at") == NULL);
        }
        if (count_known) {
            FUZZ_CHECK(json_integer_value(json_object_get(failure, "retry_count")) == count);
            if (retry == 0)
                FUZZ_CHECK(outcome == JOB_FAIL_DISCARD);
            else if (count < retry)
                FUZZ_CHECK(outcome == JOB_FAIL_RETRY);
            else
                FUZZ_CHECK(outcome == JOB_FAIL_DEAD);
        }
        random = random * 1103515245u + 12345u;
    }
    json_decref(report.backtrace);
}

static void check_job(const json_t *original, uint32_t random) {
    json_t *job = json_deep_copy(original);
    FUZZ_CHECK(job != NULL);
    struct job_info info;
    char err[512];
    err[0] = '\0';
    if (job_prepare(job, FUZZ_NOW, &info, err, sizeof err) == 0) {
        check_prepared(job, &info);
        check_failures(job, random);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    json_decref(job);
}

static void check_failure_report(json_t *doc) {
    const char *jid = NULL;
    struct job_failure_report report;
    char err[512];
    err[0] = '\0';
    if (job_parse_failure(doc, &jid, &report, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    FUZZ_CHECK(jid != NULL && jid[0] != '\0');
    size_t elen = strlen(report.errtype), mlen = strlen(report.message);
    FUZZ_CHECK(elen >= 1 && elen <= JOB_FAIL_ERRTYPE_BYTES);
    FUZZ_CHECK(mlen >= 1 && mlen <= JOB_FAIL_MESSAGE_BYTES);
    /* Trimming comes before the cut, so only a cut text (at most 3 bytes short of the limit,
     * for a character boundary) may end in whitespace. */
    FUZZ_CHECK(!is_space(report.errtype[0]));
    FUZZ_CHECK(!is_space(report.message[0]));
    FUZZ_CHECK(!is_space(report.errtype[elen - 1]) || elen + 3 >= JOB_FAIL_ERRTYPE_BYTES);
    FUZZ_CHECK(!is_space(report.message[mlen - 1]) || mlen + 3 >= JOB_FAIL_MESSAGE_BYTES);
    /* jansson only accepts valid UTF-8, so a cut at a character boundary keeps it valid. */
    FUZZ_CHECK(utf8_valid(report.errtype));
    FUZZ_CHECK(utf8_valid(report.message));
    FUZZ_CHECK(json_is_array(report.backtrace));
    FUZZ_CHECK(json_array_size(report.backtrace) <= JOB_FAIL_BACKTRACE_LINES);
    json_decref(report.backtrace);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, 0, &jerr);
    if (!doc)
        return 0;

    uint32_t random = 0;
    for (size_t i = 0; i < size; i++)
        random = random * 31 + data[i];

    if (json_is_array(doc)) {
        size_t i;
        json_t *job;
        json_array_foreach(doc, i, job) {
            check_job(job, random);
        }
    } else {
        check_job(doc, random);
    }
    check_failure_report(doc);
    json_decref(doc);
    return 0;
}
