/* The job model: validation and normalisation of pushed jobs, the failure record and retry
 * policy, and MUTATE filters. Pure functions of their inputs and `now`; no I/O, no SQL. */
#ifndef FABRIK_JOB_H
#define FABRIK_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a job is; stored as an integer column, so the values never change. */
enum job_state {
    JOB_QUEUED = 0,
    JOB_SCHEDULED = 1,
    JOB_RETRY = 2,
    JOB_WORKING = 3,
    JOB_DEAD = 4,
};

/* The extensions a job takes part in, stored with the job (jobs.ext) so that moving a plain
 * job costs no lookup in their tables. */
enum job_ext {
    JOB_EXT_BATCH = 1,      /* a member of a batch: custom.bid */
    JOB_EXT_CALLBACK = 2,   /* a batch's callback job */
    JOB_EXT_UNIQUE = 4,     /* holds a unique lock: custom.unique_for */
    JOB_EXT_TRACKED = 8,    /* has a tracking record: custom.track */
};

#define JOB_DEFAULT_RETRY 25
#define JOB_DEFAULT_PRIORITY 5
#define JOB_DEFAULT_RESERVE 1800
#define JOB_MIN_RESERVE 60
#define JOB_MAX_RESERVE 86400
#define JOB_MIN_JID_BYTES 8
#define JOB_MAX_QUEUE_BYTES 128
#define JOB_FAIL_ERRTYPE_BYTES 100
#define JOB_FAIL_MESSAGE_BYTES 1000
#define JOB_FAIL_BACKTRACE_LINES 50

/* What the server needs to know about a validated job; strings are borrowed from the job. */
struct job_info {
    const char *jid;
    const char *queue;
    int priority;
    double at;   /* due time when scheduled, 0 when it runs now */
    double expires_at;   /* from custom.expires_at or custom.expires_in; 0 = never */
};

/* Validates a pushed job object and normalises it in place: queue defaults to "default",
 * retry to 25, empty "at" is removed, created_at is set when missing, enqueued_at is set to now
 * (or removed for a scheduled job), priority is clamped to 1..9, and custom.expires_at or
 * custom.expires_in (seconds from now; expires_at wins) sets info->expires_at. Messages for
 * the checks that
 * Faktory has are Faktory's own text, because clients and PUSHB results show them.
 * Returns 0 with info filled, or -1 with the reply text (without "-ERR ") in err. */
int job_prepare(json_t *job, double now, struct job_info *info, char *err, size_t errlen);

/* Whether name is a non-empty queue name of [a-zA-Z0-9._-] characters (length is not checked). */
bool job_queue_name_valid(const char *name);

/* Sets enqueued_at to now, as every move into a queue does. */
void job_set_enqueued(json_t *job, double now);

/* The reservation length in seconds: reserve_for, 0 or missing as 1800, clamped to 60..86400. */
int job_reserve_seconds(const json_t *job);

/* A cleansed FAIL report: errtype and message trimmed, "unknown" when empty, cut to 100 and
 * 1000 bytes at a UTF-8 boundary; backtrace cut to 50 lines (owned reference). */
struct job_failure_report {
    char errtype[JOB_FAIL_ERRTYPE_BYTES + 1];
    char message[JOB_FAIL_MESSAGE_BYTES + 1];
    json_t *backtrace;
};

/* Parses a FAIL argument. Returns 0, or -1 with the reply text in err. jid_out is borrowed
 * from doc. */
int job_parse_failure(json_t *doc, const char **jid_out, struct job_failure_report *report,
                      char *err, size_t errlen);

enum job_fail_outcome { JOB_FAIL_DISCARD, JOB_FAIL_RETRY, JOB_FAIL_DEAD };

/* Records a failure in the job's "failure" object as Faktory does (retry_count, remaining,
 * failed_at kept from the first failure, next_at, message, errtype, backtrace) and decides
 * what happens next. random is any uniformly distributed value. *next_at is set for a retry. */
enum job_fail_outcome job_record_failure(json_t *job, const struct job_failure_report *report,
                                         double now, uint32_t random, double *next_at);

/* Seconds until the next attempt after the failure numbered retry_count (0 for the first):
 * retry_count^4 + 15 + (random % 30) * (retry_count + 1), capped at 365 days. */
double job_retry_delay(int64_t retry_count, uint32_t random);

/* Redis-style glob: '*', '?', '[...]' with '^' or '!' negation and ranges, '\' escapes. */
bool job_glob_match(const char *pattern, size_t plen, const char *text, size_t tlen);

/* A parsed MUTATE request. */
enum mutate_cmd { MUTATE_CLEAR, MUTATE_KILL, MUTATE_DISCARD, MUTATE_REQUEUE };

struct mutate_request {
    enum mutate_cmd cmd;
    enum job_state target;
    bool has_filter;       /* a "filter" key was present; clear ignores the filter */
    char *jobtype;         /* owned, NULL when absent */
    char *pattern;         /* owned glob, NULL when absent */
    char **jids;           /* owned array, NULL when absent or empty */
    size_t njids;
};

/* Parses a MUTATE document. Returns 0, or -1 with the reply text in err. */
int mutate_parse(const json_t *doc, struct mutate_request *req, char *err, size_t errlen);

/* Whether a stored job matches the request's filter: jids (if any) win over the other keys and
 * are compared with the parsed jid; jobtype is compared with the parsed field; the glob runs
 * over the stored JSON text. */
bool mutate_matches(const struct mutate_request *req, const char *text, size_t len,
                    const json_t *job);

void mutate_request_free(struct mutate_request *req);

#endif
