/* Job validation, failure records, retry policy and MUTATE filters. */
#include "core/job.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/timefmt.h"

static const char *json_type_name(json_type type) {
    switch (type) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a fractional number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* Field types of the Faktory job struct. A value of another type makes the whole job invalid,
 * as in Faktory, where decoding fails; null counts as absent for every field. */
static const struct {
    const char *name;
    json_type type;
} job_fields[] = {
    {"jid", JSON_STRING},          {"jobtype", JSON_STRING},     {"args", JSON_ARRAY},
    {"queue", JSON_STRING},        {"at", JSON_STRING},          {"retry", JSON_INTEGER},
    {"reserve_for", JSON_INTEGER}, {"backtrace", JSON_INTEGER},  {"created_at", JSON_STRING},
    {"enqueued_at", JSON_STRING},  {"failure", JSON_OBJECT},     {"custom", JSON_OBJECT},
    {"priority", JSON_INTEGER},
};

static int check_field_types(const json_t *job, char *err, size_t errlen) {
    for (size_t i = 0; i < sizeof job_fields / sizeof job_fields[0]; i++) {
        const json_t *v = json_object_get(job, job_fields[i].name);
        if (!v || json_is_null(v) || json_typeof(v) == job_fields[i].type)
            continue;
        snprintf(err, errlen, "invalid JSON: field \"%s\" must be %s, not %s",
                 job_fields[i].name, json_type_name(job_fields[i].type),
                 json_type_name(json_typeof(v)));
        return -1;
    }
    return 0;
}

bool job_queue_name_valid(const char *name) {
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return name[0] != '\0';
}

/* Checks a queue name; err gets Faktory's text for a name outside the allowed characters. */
static int check_queue(const char *queue, char *err, size_t errlen) {
    size_t len = strlen(queue);
    if (len > JOB_MAX_QUEUE_BYTES) {
        snprintf(err, errlen,
                 "cannot get \"%.32s...\" queue: queue names must be at most %d bytes, not %zu",
                 queue, JOB_MAX_QUEUE_BYTES, len);
        return -1;
    }
    if (!job_queue_name_valid(queue)) {
        snprintf(err, errlen,
                 "cannot get \"%s\" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z", queue);
        return -1;
    }
    return 0;
}

static const char *get_string(const json_t *job, const char *key) {
    const json_t *v = json_object_get(job, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void job_set_enqueued(json_t *job, double now) {
    char ts[32];
    json_object_set_new(job, "enqueued_at", json_string(time_format_rfc3339(now, ts)));
}

static int check_required(const json_t *job, char *err, size_t errlen) {
    const char *jid = get_string(job, "jid");
    if (!jid || strlen(jid) < JOB_MIN_JID_BYTES) {
        /* Faktory's text first, since clients show it; then the rule it does not state. */
        snprintf(err, errlen,
                 "jobs must have a reasonable jid parameter: a string of at least %d "
                 "characters, unique per job",
                 JOB_MIN_JID_BYTES);
        return -1;
    }
    const char *type = get_string(job, "jobtype");
    if (!type || !type[0]) {
        snprintf(err, errlen, "jobs must have a jobtype parameter");
        return -1;
    }
    if (!json_is_array(json_object_get(job, "args"))) {
        snprintf(err, errlen, "jobs must have an args parameter");
        return -1;
    }
    json_int_t reserve = json_integer_value(json_object_get(job, "reserve_for"));
    if (reserve > JOB_MAX_RESERVE) {
        snprintf(err, errlen, "jobs cannot be reserved for more than one day");
        return -1;
    }
    return 0;
}

/* Reads "at": absent or empty means now (an empty string is removed so no client sees it). */
static int prepare_at(json_t *job, double now, double *at, char *err, size_t errlen) {
    *at = 0;
    const char *text = get_string(job, "at");
    if (!text || !text[0]) {
        json_object_del(job, "at");
        return 0;
    }
    double when;
    char why[128];
    if (time_parse_rfc3339(text, &when, why, sizeof why) != 0) {
        snprintf(err, errlen, "invalid timestamp for 'at': \"%.64s\": %s", text, why);
        return -1;
    }
    if (when > now)
        *at = when;
    return 0;
}

static int prepare_queue(json_t *job, char *err, size_t errlen) {
    const char *queue = get_string(job, "queue");
    if (!queue || !queue[0]) {
        json_object_set_new(job, "queue", json_string("default"));
        return 0;
    }
    return check_queue(queue, err, errlen);
}

/* Reads the expiry of an expiring job: custom.expires_at (RFC 3339) wins over
 * custom.expires_in (seconds from now, above 0). *out is 0 when the job never expires. */
static int prepare_expiry(const json_t *job, double now, double *out, char *err,
                          size_t errlen) {
    *out = 0;
    const json_t *custom = json_object_get(job, "custom");
    const json_t *at = json_object_get(custom, "expires_at");
    const json_t *in = json_object_get(custom, "expires_in");
    if (at && !json_is_null(at)) {
        char why[128];
        if (!json_is_string(at)) {
            snprintf(err, errlen,
                     "invalid custom.expires_at: it must be an RFC 3339 time string such as "
                     "\"2030-01-01T10:00:00Z\"");
            return -1;
        }
        if (time_parse_rfc3339(json_string_value(at), out, why, sizeof why) != 0) {
            snprintf(err, errlen, "invalid custom.expires_at \"%.64s\": %s",
                     json_string_value(at), why);
            return -1;
        }
        /* 0 means "never expires" in storage; a time at or before 1970 is long past anyway. */
        if (*out <= 0)
            *out = 1;
        return 0;
    }
    if (in && !json_is_null(in)) {
        if (!json_is_number(in) || !(json_number_value(in) > 0)) {
            snprintf(err, errlen,
                     "invalid custom.expires_in: it must be a number of seconds above 0%s",
                     json_is_string(in) ? ", not a string" : "");
            return -1;
        }
        *out = now + json_number_value(in);
    }
    return 0;
}

static int prepare_priority(json_t *job) {
    json_t *v = json_object_get(job, "priority");
    if (!json_is_integer(v))
        return JOB_DEFAULT_PRIORITY;
    json_int_t p = json_integer_value(v);
    if (p < 1 || p > 9) {
        p = p < 1 ? 1 : 9;
        json_object_set_new(job, "priority", json_integer(p));
    }
    return (int)p;
}

int job_prepare(json_t *job, double now, struct job_info *info, char *err, size_t errlen) {
    if (!json_is_object(job)) {
        snprintf(err, errlen, "invalid JSON: a job must be a JSON object");
        return -1;
    }
    if (check_field_types(job, err, errlen) != 0 || check_required(job, err, errlen) != 0)
        return -1;

    double at, expires_at;
    if (prepare_at(job, now, &at, err, errlen) != 0 || prepare_queue(job, err, errlen) != 0 ||
        prepare_expiry(job, now, &expires_at, err, errlen) != 0)
        return -1;

    if (!json_is_integer(json_object_get(job, "retry")))
        json_object_set_new(job, "retry", json_integer(JOB_DEFAULT_RETRY));
    const char *created = get_string(job, "created_at");
    if (!created || !created[0]) {
        char ts[32];
        json_object_set_new(job, "created_at", json_string(time_format_rfc3339(now, ts)));
    }
    if (at > 0)
        json_object_del(job, "enqueued_at");
    else
        job_set_enqueued(job, now);

    info->jid = get_string(job, "jid");
    info->queue = get_string(job, "queue");
    info->priority = prepare_priority(job);
    info->at = at;
    info->expires_at = expires_at;
    return 0;
}

int job_reserve_seconds(const json_t *job) {
    json_int_t r = json_integer_value(json_object_get(job, "reserve_for"));
    if (r <= 0)
        return JOB_DEFAULT_RESERVE;
    if (r < JOB_MIN_RESERVE)
        return JOB_MIN_RESERVE;
    if (r > JOB_MAX_RESERVE)
        return JOB_MAX_RESERVE;
    return (int)r;
}

/* Copies src into dst (capacity max+1) with surrounding whitespace trimmed, cut to at most max
 * bytes without splitting a UTF-8 sequence; "unknown" when nothing is left. */
static void cleanse_text(char *dst, size_t max, const char *src) {
    if (!src)
        src = "";
    while (*src == ' ' || *src == '\t' || *src == '\n' || *src == '\r')
        src++;
    size_t len = strlen(src);
    while (len > 0 && (src[len - 1] == ' ' || src[len - 1] == '\t' || src[len - 1] == '\n' ||
                       src[len - 1] == '\r'))
        len--;
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    if (len == 0) {
        strcpy(dst, "unknown");
        return;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

int job_parse_failure(json_t *doc, const char **jid_out, struct job_failure_report *report,
                      char *err, size_t errlen) {
    memset(report, 0, sizeof *report);
    const json_t *jid = json_object_get(doc, "jid");
    const json_t *bt = json_object_get(doc, "backtrace");
    const json_t *et = json_object_get(doc, "errtype");
    const json_t *msg = json_object_get(doc, "message");
    bool types_ok = (!jid || json_is_string(jid) || json_is_null(jid)) &&
                    (!bt || json_is_array(bt) || json_is_null(bt)) &&
                    (!et || json_is_string(et) || json_is_null(et)) &&
                    (!msg || json_is_string(msg) || json_is_null(msg));
    if (!types_ok) {
        snprintf(err, errlen,
                 "invalid FAIL: jid, errtype and message must be strings and backtrace an array "
                 "of strings");
        return -1;
    }
    if (!json_is_string(jid) || !json_string_value(jid)[0]) {
        snprintf(err, errlen, "missing JID");
        return -1;
    }
    *jid_out = json_string_value(jid);
    cleanse_text(report->errtype, JOB_FAIL_ERRTYPE_BYTES, json_string_value(et));
    cleanse_text(report->message, JOB_FAIL_MESSAGE_BYTES, json_string_value(msg));

    report->backtrace = json_array();
    size_t i;
    json_t *line;
    json_array_foreach(bt, i, line) {
        if (i >= JOB_FAIL_BACKTRACE_LINES)
            break;
        if (json_is_string(line))
            json_array_append(report->backtrace, line);
    }
    return 0;
}

double job_retry_delay(int64_t retry_count, uint32_t random) {
    double count = (double)retry_count;
    double delay = count * count * count * count + 15 + (double)(random % 30) * (count + 1);
    const double max_delay = 365.0 * 86400;
    return delay > max_delay ? max_delay : delay;
}

enum job_fail_outcome job_record_failure(json_t *job, const struct job_failure_report *report,
                                         double now, uint32_t random, double *next_at) {
    json_int_t retry = json_integer_value(json_object_get(job, "retry"));
    if (!json_is_integer(json_object_get(job, "retry")))
        retry = JOB_DEFAULT_RETRY;

    json_t *failure = json_object_get(job, "failure");
    char ts[32];
    json_int_t count = 0;
    json_int_t remaining = retry;
    const char *failed_at = NULL;
    if (json_is_object(failure)) {
        /* A client may push its own failure object; saturate instead of overflowing. */
        json_int_t previous = json_integer_value(json_object_get(failure, "retry_count"));
        count = previous < 0 ? 0 : previous == INT64_MAX ? INT64_MAX : previous + 1;
        remaining = json_integer_value(json_object_get(failure, "remaining"));
        if (remaining > 0)
            remaining--;
        failed_at = json_string_value(json_object_get(failure, "failed_at"));
    }

    /* Key order follows Faktory's failure struct, since clients have seen it that way. */
    json_t *fresh = json_object();
    json_object_set_new(fresh, "failed_at",
                        json_string(failed_at ? failed_at : time_format_rfc3339(now, ts)));
    enum job_fail_outcome outcome;
    if (retry == 0) {
        outcome = JOB_FAIL_DISCARD;
    } else if (count < retry) {
        outcome = JOB_FAIL_RETRY;
        *next_at = now + job_retry_delay(count, random);
        json_object_set_new(fresh, "next_at", json_string(time_format_rfc3339(*next_at, ts)));
    } else {
        outcome = JOB_FAIL_DEAD;
    }
    json_object_set_new(fresh, "message", json_string(report->message));
    json_object_set_new(fresh, "errtype", json_string(report->errtype));
    if (report->backtrace && json_array_size(report->backtrace) > 0)
        json_object_set(fresh, "backtrace", report->backtrace);
    json_object_set_new(fresh, "retry_count", json_integer(count));
    json_object_set_new(fresh, "remaining", json_integer(remaining));
    json_object_set_new(job, "failure", fresh);
    return outcome;
}

/* Matches one bracket class at *pp against c; advances *pp past the closing bracket. */
static bool glob_class(const char **pp, const char *end, char c) {
    const char *p = *pp + 1;
    bool negate = p < end && (*p == '^' || *p == '!');
    if (negate)
        p++;
    bool match = false;
    while (p < end && *p != ']') {
        if (*p == '\\' && p + 1 < end) {
            p++;
            match |= *p == c;
            p++;
        } else if (p + 2 < end && p[1] == '-' && p[2] != ']') {
            char lo = p[0] < p[2] ? p[0] : p[2];
            char hi = p[0] < p[2] ? p[2] : p[0];
            match |= c >= lo && c <= hi;
            p += 3;
        } else {
            match |= *p == c;
            p++;
        }
    }
    *pp = p < end ? p + 1 : p;
    return negate ? !match : match;
}

bool job_glob_match(const char *pattern, size_t plen, const char *text, size_t tlen) {
    const char *p = pattern, *pend = pattern + plen;
    const char *t = text, *tend = text + tlen;
    const char *star_p = NULL, *star_t = NULL;
    while (t < tend) {
        if (p < pend && *p == '*') {
            while (p < pend && *p == '*')
                p++;
            if (p == pend)
                return true;
            star_p = p;
            star_t = t;
            continue;
        }
        if (p < pend) {
            const char *next = p;
            bool ok;
            if (*p == '?') {
                ok = true;
                next = p + 1;
            } else if (*p == '[') {
                ok = glob_class(&next, pend, *t);
            } else if (*p == '\\' && p + 1 < pend) {
                ok = p[1] == *t;
                next = p + 2;
            } else {
                ok = *p == *t;
                next = p + 1;
            }
            if (ok) {
                p = next;
                t++;
                continue;
            }
        }
        if (!star_p)
            return false;
        p = star_p;
        t = ++star_t;
    }
    while (p < pend && *p == '*')
        p++;
    return p == pend;
}

static int parse_target(const char *target, enum job_state *out) {
    if (!target)
        return -1;
    if (strcmp(target, "retries") == 0)
        *out = JOB_RETRY;
    else if (strcmp(target, "scheduled") == 0)
        *out = JOB_SCHEDULED;
    else if (strcmp(target, "dead") == 0)
        *out = JOB_DEAD;
    else
        return -1;
    return 0;
}

static int parse_cmd(const char *cmd, enum mutate_cmd *out) {
    static const char *const names[] = {"clear", "kill", "discard", "requeue"};
    for (int i = 0; cmd && i < 4; i++) {
        if (strcmp(cmd, names[i]) == 0) {
            *out = (enum mutate_cmd)i;
            return 0;
        }
    }
    return -1;
}

static int parse_filter(const json_t *filter, struct mutate_request *req, char *err,
                        size_t errlen) {
    if (!filter || json_is_null(filter))
        return 0;
    if (!json_is_object(filter)) {
        snprintf(err, errlen, "invalid MUTATE: filter must be an object");
        return -1;
    }
    req->has_filter = true;
    const json_t *type = json_object_get(filter, "jobtype");
    const json_t *re = json_object_get(filter, "regexp");
    const json_t *jids = json_object_get(filter, "jids");
    if ((type && !json_is_string(type) && !json_is_null(type)) ||
        (re && !json_is_string(re) && !json_is_null(re)) ||
        (jids && !json_is_array(jids) && !json_is_null(jids))) {
        snprintf(err, errlen,
                 "invalid MUTATE: filter.jobtype and filter.regexp must be strings and "
                 "filter.jids an array of strings");
        return -1;
    }
    if (json_is_string(type) && json_string_value(type)[0])
        req->jobtype = xstrdup(json_string_value(type));
    if (json_is_string(re) && json_string_value(re)[0])
        req->pattern = xstrdup(json_string_value(re));
    if (json_array_size(jids) > 0) {
        req->jids = xcalloc(json_array_size(jids), sizeof *req->jids);
        size_t i;
        json_t *v;
        json_array_foreach(jids, i, v) {
            if (!json_is_string(v)) {
                snprintf(err, errlen, "invalid MUTATE: filter.jids must contain only strings");
                return -1;
            }
            req->jids[req->njids++] = xstrdup(json_string_value(v));
        }
    }
    return 0;
}

int mutate_parse(const json_t *doc, struct mutate_request *req, char *err, size_t errlen) {
    memset(req, 0, sizeof *req);
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "invalid MUTATE: the argument must be a JSON object");
        return -1;
    }
    if (parse_cmd(json_string_value(json_object_get(doc, "cmd")), &req->cmd) != 0) {
        snprintf(err, errlen, "unknown mutate operation");
        return -1;
    }
    if (parse_target(json_string_value(json_object_get(doc, "target")), &req->target) != 0) {
        snprintf(err, errlen, "invalid target for mutation command");
        return -1;
    }
    if (parse_filter(json_object_get(doc, "filter"), req, err, errlen) != 0) {
        mutate_request_free(req);
        return -1;
    }
    return 0;
}

bool mutate_matches(const struct mutate_request *req, const char *text, size_t len,
                    const json_t *job) {
    if (req->cmd == MUTATE_CLEAR || !req->has_filter)
        return true;
    if (req->njids > 0) {
        const char *jid = json_string_value(json_object_get(job, "jid"));
        for (size_t i = 0; jid && i < req->njids; i++) {
            if (strcmp(req->jids[i], jid) == 0)
                return true;
        }
        return false;
    }
    if (req->jobtype) {
        const char *type = json_string_value(json_object_get(job, "jobtype"));
        if (!type || strcmp(type, req->jobtype) != 0)
            return false;
    }
    if (req->pattern && !job_glob_match(req->pattern, strlen(req->pattern), text, len))
        return false;
    return true;
}

void mutate_request_free(struct mutate_request *req) {
    free(req->jobtype);
    free(req->pattern);
    for (size_t i = 0; i < req->njids; i++)
        free(req->jids[i]);
    free(req->jids);
    memset(req, 0, sizeof *req);
}
