/* Unique-job options, lock keys and the lock rules applied at PUSH and at each job event. */
#include "ent/unique.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/unique.h"
#include "util/log.h"

/* How many lapsed locks one tick removes; a full batch makes the tick run again at once. */
#define UNIQUE_PURGE_BATCH 1000

static int parse_unique_for(const json_t *value, double *seconds, char *err, size_t errlen) {
    if (json_is_string(value)) {
        snprintf(err, errlen,
                 "invalid custom.unique_for \"%.32s\": it must be a number of seconds above 0, "
                 "not a string",
                 json_string_value(value));
        return -1;
    }
    if (!json_is_number(value) || !(json_number_value(value) > 0) ||
        !isfinite(json_number_value(value))) {
        snprintf(err, errlen,
                 "invalid custom.unique_for: it must be a number of seconds above 0");
        return -1;
    }
    *seconds = json_number_value(value);
    return 0;
}

static int parse_unique_until(const json_t *value, bool *until_start, char *err,
                              size_t errlen) {
    *until_start = false;
    if (!value || json_is_null(value))
        return 0;
    const char *text = json_string_value(value);
    if (text && strcmp(text, "success") == 0)
        return 0;
    if (text && strcmp(text, "start") == 0) {
        *until_start = true;
        return 0;
    }
    snprintf(err, errlen, "invalid custom.unique_until: it must be \"success\" or \"start\"");
    return -1;
}

int unique_parse(const json_t *job, double now, double at, struct unique_spec *out, char *err,
                 size_t errlen) {
    memset(out, 0, sizeof *out);
    const json_t *custom = json_object_get(job, "custom");
    const json_t *unique_for = json_object_get(custom, "unique_for");
    if (!unique_for || json_is_null(unique_for))
        return 0;
    double seconds = 0;
    if (parse_unique_for(unique_for, &seconds, err, errlen) != 0 ||
        parse_unique_until(json_object_get(custom, "unique_until"), &out->until_start, err,
                           errlen) != 0)
        return -1;
    if (unique_key(job, out->key) != 0) {
        snprintf(err, errlen, "invalid job: its arguments cannot be encoded as JSON");
        return -1;
    }
    /* A scheduled job holds its lock from PUSH until unique_for after it is due. */
    out->expires_at = (at > now ? at : now) + seconds;
    out->wanted = true;
    return 0;
}

int unique_key(const json_t *job, char key[UNIQUE_KEY_BYTES]) {
    json_t *identity = json_pack("[OOO]", json_object_get(job, "queue"),
                                 json_object_get(job, "jobtype"), json_object_get(job, "args"));
    if (!identity)
        return -1;
    char *text = json_dumps(identity, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(identity);
    if (!text)
        return -1;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = EVP_Digest(text, strlen(text), digest, &len, EVP_sha256(), NULL);
    free(text);
    if (!ok || len != 32)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < len; i++) {
        key[2 * i] = hex[digest[i] >> 4];
        key[2 * i + 1] = hex[digest[i] & 15];
    }
    key[2 * len] = '\0';
    return 0;
}

int unique_admit(struct engine *e, const json_t *job, const struct job_info *info, double now,
                 int *ext, char *err, size_t errlen) {
    struct unique_spec spec;
    if (unique_parse(job, now, info->at, &spec, err, errlen) != 0)
        return 1;
    if (!spec.wanted)
        return 0;
    char holder[128] = "";
    int rc = store_unique_held(e->store, spec.key, now, holder, sizeof holder);
    if (rc < 0) {
        snprintf(err, errlen, "storage failure, job %s not stored: %s", info->jid,
                 store_error(e->store));
        return -1;
    }
    if (rc > 0) {
        log_debug("job_not_unique", "jid=%s queue=%s holder=%s", info->jid, info->queue, holder);
        snprintf(err, errlen, "Job not unique");
        return ENGINE_PUSH_NOT_UNIQUE;
    }
    if (store_unique_take(e->store, spec.key, info->jid, spec.until_start, spec.expires_at) !=
        0) {
        snprintf(err, errlen, "storage failure, job %s not stored: %s", info->jid,
                 store_error(e->store));
        return -1;
    }
    *ext |= JOB_EXT_UNIQUE;
    return 0;
}

int unique_job_event(struct engine *e, const struct store_job *job, enum job_event ev,
                     double now) {
    (void)now;
    switch (ev) {
    case JOB_EVENT_STARTED:
        return store_unique_release(e->store, job->jid, true, NULL);
    case JOB_EVENT_ACKED:
    case JOB_EVENT_DIED:
    case JOB_EVENT_DROPPED:
        return store_unique_release(e->store, job->jid, false, NULL);
    case JOB_EVENT_RETRYING:
    case JOB_EVENT_REQUEUED:
        /* The job will run again, so it keeps its lock (until the lock lapses). */
        return 0;
    }
    return 0;
}

int unique_tick(struct engine *e, double now) {
    double at = 0;
    int rc = store_unique_earliest(e->store, &at);
    if (rc <= 0 || at > now)
        return rc < 0 ? -1 : 0;
    int removed = store_unique_purge(e->store, now, UNIQUE_PURGE_BATCH);
    if (removed > 0)
        log_debug("unique_locks_lapsed", "removed=%d", removed);
    return removed;
}

int unique_next_deadline(struct engine *e, double *at) {
    return store_unique_earliest(e->store, at);
}
