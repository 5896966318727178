/* Fuzz target for MUTATE: the Redis-style glob, request parsing and filter matching. The input
 * is split in two and used as a glob pattern and a text. It is also parsed as a MUTATE document
 * and matched against a few stored jobs. When it is a JSON object, fixed requests are matched
 * against it as a stored job. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "fuzz_check.h"

static const char *const stored_jobs[] = {
    "{\"jid\":\"job-a-0001\",\"jobtype\":\"QuickbooksSyncJob\",\"args\":[1],\"queue\":\"default\","
    "\"retry\":25}",
    "{\"jid\":\"job-b-0001\",\"jobtype\":\"Mail\",\"args\":[\"job-a-0001\"],\"queue\":\"critical\","
    "\"failure\":{\"retry_count\":0,\"remaining\":25,\"errtype\":\"E\",\"message\":\"m\"}}",
    "not a JSON document",
};

static const char *const fixed_requests[] = {
    "{\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jobtype\":\"QuickbooksSyncJob\"}}",
    "{\"cmd\":\"discard\",\"target\":\"dead\",\"filter\":{\"jids\":[\"job-a-0001\"]}}",
    "{\"cmd\":\"requeue\",\"target\":\"scheduled\",\"filter\":{\"regexp\":\"*a[0-9]?*\"}}",
    "{\"cmd\":\"clear\",\"target\":\"retries\",\"filter\":{\"jobtype\":\"Nope\"}}",
};

/* Whether a pattern has no glob syntax, so it must match only the same bytes. */
static bool is_literal(const char *p, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '*' || p[i] == '?' || p[i] == '[' || p[i] == '\\')
            return false;
    }
    return true;
}

static void check_glob(const char *data, size_t size) {
    if (size == 0)
        return;
    size_t cut = (unsigned char)data[0] % size;
    const char *pattern = data + 1;
    size_t plen = cut;
    const char *text = pattern + plen;
    size_t tlen = size - 1 - plen;

    bool match = job_glob_match(pattern, plen, text, tlen);
    if (is_literal(pattern, plen))
        FUZZ_CHECK(match == (plen == tlen && memcmp(pattern, text, plen) == 0));
    FUZZ_CHECK(job_glob_match("*", 1, text, tlen));
    FUZZ_CHECK(job_glob_match(text, tlen, text, tlen) || !is_literal(text, tlen));
}

/* Checks what mutate_matches must return for a request whatever the stored job is. */
static void check_match(const struct mutate_request *req, const char *text, const json_t *job) {
    bool match = mutate_matches(req, text, strlen(text), job);
    if (req->cmd == MUTATE_CLEAR || !req->has_filter) {
        FUZZ_CHECK(match);
        return;
    }
    if (req->njids > 0) {
        const char *jid = json_string_value(json_object_get(job, "jid"));
        bool listed = false;
        for (size_t i = 0; jid && i < req->njids; i++)
            listed = listed || strcmp(req->jids[i], jid) == 0;
        FUZZ_CHECK(match == listed);
        return;
    }
    if (req->jobtype && match) {
        const char *type = json_string_value(json_object_get(job, "jobtype"));
        FUZZ_CHECK(type && strcmp(type, req->jobtype) == 0);
    }
}

static void check_request(const json_t *doc) {
    struct mutate_request req;
    char err[256];
    err[0] = '\0';
    if (mutate_parse(doc, &req, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(req.jids == NULL && req.jobtype == NULL && req.pattern == NULL);
        return;
    }
    FUZZ_CHECK(req.cmd >= MUTATE_CLEAR && req.cmd <= MUTATE_REQUEUE);
    FUZZ_CHECK(req.target == JOB_RETRY || req.target == JOB_SCHEDULED || req.target == JOB_DEAD);
    FUZZ_CHECK((req.njids == 0) == (req.jids == NULL));
    FUZZ_CHECK(!req.jobtype || req.jobtype[0] != '\0');
    FUZZ_CHECK(!req.pattern || req.pattern[0] != '\0');

    for (size_t i = 0; i < sizeof stored_jobs / sizeof stored_jobs[0]; i++) {
        json_t *job = json_loads(stored_jobs[i], 0, NULL);
        check_match(&req, stored_jobs[i], job);
        json_decref(job);
    }
    mutate_request_free(&req);
}

/* Matches fixed requests against the input taken as a stored job. */
static void check_as_stored_job(json_t *doc) {
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return;
    for (size_t i = 0; i < sizeof fixed_requests / sizeof fixed_requests[0]; i++) {
        json_t *request = json_loads(fixed_requests[i], 0, NULL);
        FUZZ_CHECK(request != NULL);
        struct mutate_request req;
        char err[256];
        FUZZ_CHECK(mutate_parse(request, &req, err, sizeof err) == 0);
        check_match(&req, text, doc);
        mutate_request_free(&req);
        json_decref(request);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_glob((const char *)data, size);

    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, 0, &jerr);
    if (!doc)
        return 0;
    check_request(doc);
    if (json_is_object(doc))
        check_as_stored_job(doc);
    json_decref(doc);
    return 0;
}
