/* TRACK SET and TRACK GET, and the tracking record that follows a tracked job's state. */
#include "ent/track.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "util/timefmt.h"

/* How many expired records one tick removes; a full batch makes the tick run again at once. */
#define TRACK_PURGE_BATCH 1000

static const char *const state_names[] = {
    [TRACK_UNKNOWN] = "unknown", [TRACK_ENQUEUED] = "enqueued", [TRACK_WORKING] = "working",
    [TRACK_SUCCESS] = "success", [TRACK_FAILED] = "failed",     [TRACK_DEAD] = "dead",
};

const char *track_state_name(int state) {
    if (state < 0 || state > TRACK_DEAD)
        return "unknown";
    return state_names[state];
}

/* Copies text into out (TRACK_DESC_MAX + 1 bytes), cut at a UTF-8 character boundary. */
static void copy_description(const char *text, size_t len, char *out) {
    if (len > TRACK_DESC_MAX) {
        len = TRACK_DESC_MAX;
        /* Step back over continuation bytes (10xxxxxx) to the start of a character. */
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(out, text, len);
    out[len] = '\0';
}

static int parse_percent(const json_t *value, int *percent, char *err, size_t errlen) {
    *percent = -1;
    if (!value || json_is_null(value))
        return 0;
    if (!json_is_integer(value) || json_integer_value(value) < 0 ||
        json_integer_value(value) > 100) {
        snprintf(err, errlen, "invalid percent: it must be an integer from 0 to 100");
        return -1;
    }
    *percent = (int)json_integer_value(value);
    return 0;
}

static int parse_reserve_until(const json_t *value, double *until, char *err, size_t errlen) {
    *until = 0;
    if (!value || json_is_null(value))
        return 0;
    if (!json_is_string(value)) {
        snprintf(err, errlen,
                 "invalid reserve_until: it must be an RFC 3339 time string such as "
                 "\"2030-01-01T10:00:00Z\"");
        return -1;
    }
    char why[128];
    if (time_parse_rfc3339(json_string_value(value), until, why, sizeof why) != 0) {
        snprintf(err, errlen, "invalid reserve_until \"%.64s\": %s", json_string_value(value),
                 why);
        return -1;
    }
    return 0;
}

int track_parse_set(const json_t *doc, struct track_update *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->percent = -1;
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "TRACK SET takes a JSON object such as "
                              "{\"jid\":\"...\",\"percent\":50,\"desc\":\"...\"}");
        return -1;
    }
    const json_t *jid = json_object_get(doc, "jid");
    if (!json_is_string(jid) || json_string_length(jid) == 0) {
        snprintf(err, errlen, "invalid jid: TRACK SET needs the job's jid as a non-empty string");
        return -1;
    }
    out->jid = json_string_value(jid);
    const json_t *desc = json_object_get(doc, "desc");
    if (desc && !json_is_null(desc) && !json_is_string(desc)) {
        snprintf(err, errlen, "invalid desc: it must be a string or null");
        return -1;
    }
    if (json_is_string(desc)) {
        out->has_description = true;
        copy_description(json_string_value(desc), json_string_length(desc), out->description);
    }
    if (parse_percent(json_object_get(doc, "percent"), &out->percent, err, errlen) != 0 ||
        parse_reserve_until(json_object_get(doc, "reserve_until"), &out->reserve_until, err,
                            errlen) != 0)
        return -1;
    return 0;
}

double track_reserve_deadline(double reserve_until, double now) {
    double latest = now + TRACK_MAX_EXTENSION;
    return reserve_until > latest ? latest : reserve_until;
}

bool track_wanted(const json_t *job) {
    const json_t *track = json_object_get(json_object_get(job, "custom"), "track");
    return json_is_true(track) || (json_is_integer(track) && json_integer_value(track) == 1);
}

json_t *track_document(const char *jid, const struct store_tracking *t) {
    json_t *doc = json_object();
    json_object_set_new(doc, "jid", json_string(jid));
    if (!t) {
        json_object_set_new(doc, "state", json_string("unknown"));
        json_object_set_new(doc, "updated_at", json_string(""));
        return doc;
    }
    char ts[32];
    json_object_set_new(doc, "state", json_string(track_state_name(t->state)));
    json_object_set_new(doc, "updated_at", json_string(time_format_rfc3339(t->updated_at, ts)));
    if (t->percent >= 0)
        json_object_set_new(doc, "percent", json_integer(t->percent));
    if (t->description && t->description[0])
        json_object_set_new(doc, "desc", json_string(t->description));
    return doc;
}

void track_admit(const json_t *job, int *ext) {
    if (track_wanted(job))
        *ext |= JOB_EXT_TRACKED;
}

int track_job_pushed(struct engine *e, const char *jid, double now) {
    return store_tracking_put_state(e->store, jid, TRACK_ENQUEUED, now, 0, true);
}

int track_job_event(struct engine *e, const struct store_job *job, enum job_event ev,
                    double now) {
    int state;
    bool finished = false;
    switch (ev) {
    case JOB_EVENT_STARTED:
        state = TRACK_WORKING;
        break;
    case JOB_EVENT_ACKED:
        state = TRACK_SUCCESS;
        finished = true;
        break;
    case JOB_EVENT_RETRYING:
        state = TRACK_FAILED;
        break;
    case JOB_EVENT_DIED:
        state = TRACK_DEAD;
        finished = true;
        break;
    case JOB_EVENT_DROPPED:
        /* A dead job that is deleted stays "dead"; any other drop ends without success. */
        state = job->state == JOB_DEAD ? TRACK_DEAD : TRACK_FAILED;
        finished = true;
        break;
    case JOB_EVENT_REQUEUED:
        state = TRACK_ENQUEUED;
        break;
    default:
        return 0;
    }
    double expires_at = finished ? now + (double)e->cfg->tracking_ttl_seconds : 0;
    return store_tracking_put_state(e->store, job->jid, state, now, expires_at, false);
}

int track_set(struct engine *e, const struct track_update *u, double now) {
    if (u->reserve_until > 0) {
        double until = track_reserve_deadline(u->reserve_until, now);
        int rc = store_extend_reservation(e->store, u->jid, until);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            char ts[40];
            log_info("reservation_extended", "jid=%s until=%s", u->jid,
                     time_format_rfc3339(until, ts));
        }
    }
    if (u->percent < 0 && !u->has_description)
        return 0;
    struct store_tracking t = {0};
    int rc = store_tracking_get(e->store, u->jid, now, &t);
    if (rc > 0) {
        /* A record with an expiry belongs to a finished job: an update restarts its time. */
        double expires_at = t.expires_at > 0 ? now + (double)e->cfg->tracking_ttl_seconds : 0;
        rc = store_tracking_set_progress(e->store, u->jid, u->percent,
                                         u->has_description ? u->description : NULL, now,
                                         expires_at);
    }
    store_tracking_clear(&t);
    return rc < 0 ? -1 : 0;
}

int track_lookup(struct engine *e, const char *jid, double now, struct store_tracking *out) {
    return store_tracking_get(e->store, jid, now, out);
}

json_t *track_get(struct engine *e, const char *jid, double now) {
    struct store_tracking t = {0};
    int rc = store_tracking_get(e->store, jid, now, &t);
    json_t *doc = rc < 0 ? NULL : track_document(jid, rc > 0 ? &t : NULL);
    store_tracking_clear(&t);
    return doc;
}

int track_tick(struct engine *e, double now) {
    double at = 0;
    int rc = store_tracking_earliest(e->store, &at);
    if (rc <= 0 || at > now)
        return rc < 0 ? -1 : 0;
    int removed = store_tracking_purge(e->store, now, TRACK_PURGE_BATCH);
    if (removed > 0)
        log_debug("tracking_expired", "removed=%d", removed);
    return removed;
}

int track_next_deadline(struct engine *e, double *at) {
    return store_tracking_earliest(e->store, at);
}
