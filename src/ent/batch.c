/* Batch rules over the batch rows of store/batches.c.
 *
 * A member job moves through enum batch_member_state, only upwards. Each batch counter changes
 * only when a member's state changes, so a duplicate ACK, a re-run after an expired
 * reservation or a second removal of the same jid never counts twice. The stages:
 *   complete  every member ran at least once (ACK, FAIL, death, discard, deletion, expiry)
 *             and every child batch finished its complete stage;
 *   success   every member succeeded and every child finished its success stage; when the
 *             batch has a complete callback, success waits until that callback succeeded.
 * A stage with a callback is finished when the callback job is ACKed; without one, as soon as
 * its condition holds. A finished stage is carried up to the parent batch. */
#include "ent/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

/* Bits of the stages a batch finished in one step, carried to its parent. */
enum { DONE_COMPLETE = 1, DONE_SUCCESS = 2 };
/* How many batches one tick removes; the next tick, due at once, takes the rest. */
#define TICK_LIMIT 500

static const char *const callback_names[BATCH_CALLBACKS] = {"complete", "success", "death"};

static void new_bid(char bid[BATCH_ID_BYTES]) {
    static const char alphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char random[BATCH_ID_BYTES - 3];
    size_t got = 0;
    while (got < sizeof random) {
        ssize_t n = getrandom(random + got, sizeof random - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    bid[0] = 'b';
    bid[1] = '-';
    for (size_t i = 0; i < sizeof random; i++)
        bid[2 + i] = alphabet[random[i] % 62];
    bid[BATCH_ID_BYTES - 1] = '\0';
}

/* Enqueues one callback job: the declared job with custom._bid and custom._cb set and
 * custom.bid removed, so the callback is no member of any batch. */
static int fire(struct engine *e, struct store_batch *b, enum batch_callback which,
                int *newly_done) {
    json_t *job = json_loads(b->job[which], 0, NULL);
    json_t *custom = json_object_get(job, "custom");
    if (!json_is_object(custom)) {
        custom = json_object();
        json_object_set_new(job, "custom", custom);
    }
    json_object_del(custom, "bid");
    json_object_set_new(custom, "_bid", json_string(b->bid));
    json_object_set_new(custom, "_cb", json_string(callback_names[which]));
    char err[512];
    int rc = engine_push_ext(e, job, b->bid, JOB_EXT_CALLBACK, err, sizeof err);
    if (rc == 0) {
        b->st[which] = 1;
        b->callbacks_live++;
        log_info("batch_callback_enqueued", "bid=%s callback=%s jid=%s queue=%s", b->bid,
                 callback_names[which], json_string_value(json_object_get(job, "jid")),
                 json_string_value(json_object_get(job, "queue")));
    } else if (rc > 0) {
        /* Checked at BATCH NEW, so this needs a job that became invalid since (a past "at"
         * cannot): count the stage as done rather than hold the batch forever. */
        log_error("batch_callback_invalid", "bid=%s callback=%s error=\"%s\"", b->bid,
                  callback_names[which], err);
        b->st[which] = 2;
        if (which == BATCH_COMPLETE && !b->complete_done) {
            b->complete_done = true;
            *newly_done |= DONE_COMPLETE;
        } else if (which == BATCH_SUCCESS && !b->success_done) {
            b->success_done = true;
            *newly_done |= DONE_SUCCESS;
        }
        rc = 0;
    }
    json_decref(job);
    return rc;
}

/* Runs the callbacks a committed batch's counts call for. */
static int run_rules(struct engine *e, struct store_batch *b, int *newly_done) {
    if (b->committed_at <= 0)
        return 0;
    if (b->died > 0 && b->job[BATCH_DEATH] && b->st[BATCH_DEATH] == 0 &&
        fire(e, b, BATCH_DEATH, newly_done) != 0)
        return -1;
    if (!b->complete_done && b->ran == b->total && b->children_complete == b->children) {
        if (!b->job[BATCH_COMPLETE]) {
            b->complete_done = true;
            *newly_done |= DONE_COMPLETE;
        } else if (b->st[BATCH_COMPLETE] == 0 && fire(e, b, BATCH_COMPLETE, newly_done) != 0) {
            return -1;
        }
    }
    if (b->complete_done && !b->success_done && b->acked == b->total &&
        b->children_success == b->children) {
        if (!b->job[BATCH_SUCCESS]) {
            b->success_done = true;
            *newly_done |= DONE_SUCCESS;
        } else if (b->st[BATCH_SUCCESS] == 0 && fire(e, b, BATCH_SUCCESS, newly_done) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Applies the rules to b, records whether it finished, saves it, and carries finished
 * stages and its finished state up through its ancestors. Clears b in every case. */
static int settle(struct engine *e, struct store_batch *b, int newly_done, double now) {
    for (;;) {
        if (run_rules(e, b, &newly_done) != 0)
            break;
        /* Finished: nothing can run for it any more, unless jobs are added or a dead
         * callback is brought back. */
        bool was_finished = b->finished_at > 0;
        bool finished = b->committed_at > 0 && b->acked + b->ended == b->total &&
                        b->callbacks_live == 0 && b->children_finished == b->children;
        if (!finished)
            b->finished_at = 0;
        else if (!was_finished)
            b->finished_at = now;
        b->updated_at = now;
        if (store_batch_update(e->store, b) != 0)
            break;
        if (newly_done)
            log_debug("batch_stage_done", "bid=%s complete=%d success=%d", b->bid,
                      b->complete_done, b->success_done);
        int finished_change = 0;
        if (finished && !was_finished)
            finished_change = 1;
        else if (!finished && was_finished)
            finished_change = -1;
        bool carry = (newly_done || finished_change) && b->parent_bid;
        char *parent = carry ? xstrdup(b->parent_bid) : NULL;
        int carried = newly_done;
        store_batch_clear(b);
        if (!parent)
            return 0;
        int rc = store_batch_get(e->store, parent, b);
        free(parent);
        if (rc <= 0)
            return rc;   /* a removed parent has nothing left to run */
        if (carried & DONE_COMPLETE)
            b->children_complete++;
        if (carried & DONE_SUCCESS)
            b->children_success++;
        b->children_finished += finished_change;
        newly_done = 0;
    }
    store_batch_clear(b);
    return -1;
}

/* Checks one declared callback and stores its JSON (with a jid) in *out. */
static int parse_callback(const json_t *doc, enum batch_callback which, char **out, char *err,
                          size_t errlen) {
    const char *name = callback_names[which];
    const json_t *value = json_object_get(doc, name);
    if (!value || json_is_null(value))
        return 0;
    if (!json_is_object(value)) {
        snprintf(err, errlen, "%s must be a job object such as {\"jobtype\":\"Done\",\"args\":[]}",
                 name);
        return 1;
    }
    json_t *job = json_deep_copy(value);
    const char *jid = json_string_value(json_object_get(job, "jid"));
    if (!jid || !jid[0]) {
        /* Some clients declare callbacks without a jid; the callback needs one now, so its
         * state can follow that job. */
        char fresh[BATCH_ID_BYTES];
        new_bid(fresh);
        json_object_set_new(job, "jid", json_string(fresh + 2));
    }
    json_t *check = json_deep_copy(job);
    struct job_info info;
    char why[400];
    int rc = job_prepare(check, 0, &info, why, sizeof why);
    json_decref(check);
    if (rc != 0) {
        snprintf(err, errlen, "%s callback: %s", name, why);
        json_decref(job);
        return 1;
    }
    *out = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    return 0;
}

/* Reads an optional string field; 1 with err when it is present but no string. */
static int optional_string(const json_t *doc, const char *key, const char **out, char *err,
                           size_t errlen) {
    const json_t *v = json_object_get(doc, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s must be a string", key);
        return 1;
    }
    *out = json_string_value(v);
    return 0;
}

int batch_new(struct engine *e, const json_t *doc, char bid[BATCH_ID_BYTES], char *err,
              size_t errlen) {
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "BATCH NEW takes a JSON object such as "
                              "{\"description\":\"...\",\"complete\":{job},\"success\":{job}}");
        return 1;
    }
    const char *given, *description, *parent_bid;
    if (optional_string(doc, "bid", &given, err, errlen) ||
        optional_string(doc, "description", &description, err, errlen) ||
        optional_string(doc, "parent_bid", &parent_bid, err, errlen))
        return 1;
    if (given && given[0]) {
        snprintf(err, errlen, "bid must be empty or missing: the server assigns batch ids");
        return 1;
    }
    if (description && strlen(description) > BATCH_DESCRIPTION_MAX) {
        snprintf(err, errlen, "description must be at most %d bytes", BATCH_DESCRIPTION_MAX);
        return 1;
    }
    double now = engine_now(e);
    struct store_batch b = {.created_at = now, .updated_at = now};
    int rc = 0;
    for (int i = 0; i < BATCH_CALLBACKS && rc == 0; i++)
        rc = parse_callback(doc, (enum batch_callback)i, &b.job[i], err, errlen);
    struct store_batch parent = {0};
    if (rc == 0 && parent_bid && parent_bid[0]) {
        rc = store_batch_get(e->store, parent_bid, &parent);
        if (rc == 0) {
            snprintf(err, errlen, "no such batch %s (parent_bid)", parent_bid);
            rc = 1;
        } else if (rc > 0) {
            rc = 0;
            b.parent_bid = xstrdup(parent_bid);
        }
    }
    if (rc == 0) {
        new_bid(bid);
        b.bid = xstrdup(bid);
        b.description = xstrdup(description ? description : "");
        for (int i = 0; i < BATCH_CALLBACKS; i++) {
            if (b.job[i]) {
                json_t *job = json_loads(b.job[i], 0, NULL);
                b.jid[i] = xstrdup(json_string_value(json_object_get(job, "jid")));
                json_decref(job);
            }
        }
        rc = store_batch_insert(e->store, &b);
    }
    if (rc == 0 && parent.bid) {
        parent.children++;
        rc = settle(e, &parent, 0, now);
    }
    if (rc == 0)
        log_info("batch_created", "bid=%s parent_bid=%s", bid, b.parent_bid ? b.parent_bid : "");
    store_batch_clear(&parent);
    store_batch_clear(&b);
    return rc;
}

int batch_exists(struct engine *e, const char *bid) {
    return store_batch_exists(e->store, bid);
}

int batch_commit(struct engine *e, const char *bid) {
    struct store_batch b = {0};
    int rc = store_batch_get(e->store, bid, &b);
    if (rc <= 0)
        return rc;
    if (b.committed_at > 0) {
        store_batch_clear(&b);
        return 1;
    }
    double now = engine_now(e);
    b.committed_at = now;
    log_info("batch_committed", "bid=%s jobs=%lld", bid, (long long)b.total);
    return settle(e, &b, 0, now) == 0 ? 1 : -1;
}

static json_t *callback_state(int st) {
    static const char *const names[] = {"", "1", "2"};
    return json_string(names[st >= 0 && st <= 2 ? st : 0]);
}

json_t *batch_describe(const struct store_batch *b, bool full) {
    char ts[40];
    json_t *doc = json_object();
    json_object_set_new(doc, "bid", json_string(b->bid));
    if (b->parent_bid)
        json_object_set_new(doc, "parent_bid", json_string(b->parent_bid));
    if (b->description && b->description[0])
        json_object_set_new(doc, "description", json_string(b->description));
    json_object_set_new(doc, "created_at",
                        json_string(time_format_rfc3339(b->created_at, ts)));
    json_object_set_new(doc, "total", json_integer(b->total));
    json_object_set_new(doc, "pending", json_integer(b->total - b->acked - b->ended));
    json_object_set_new(doc, "failed", json_integer(b->failed));
    json_object_set_new(doc, "complete_st", callback_state(b->st[BATCH_COMPLETE]));
    json_object_set_new(doc, "success_st", callback_state(b->st[BATCH_SUCCESS]));
    if (b->job[BATCH_DEATH])
        json_object_set_new(doc, "death_st", callback_state(b->st[BATCH_DEATH]));
    if (!full)
        return doc;

    json_object_set_new(doc, "committed_at",
                        b->committed_at > 0
                            ? json_string(time_format_rfc3339(b->committed_at, ts))
                            : json_null());
    json_object_set_new(doc, "finished_at",
                        b->finished_at > 0
                            ? json_string(time_format_rfc3339(b->finished_at, ts))
                            : json_null());
    json_object_set_new(doc, "updated_at", json_string(time_format_rfc3339(b->updated_at, ts)));
    json_object_set_new(doc, "succeeded", json_integer(b->acked));
    json_object_set_new(doc, "ended", json_integer(b->ended));
    json_object_set_new(doc, "ran", json_integer(b->ran));
    json_object_set_new(doc, "children", json_integer(b->children));
    json_object_set_new(doc, "complete_done", json_boolean(b->complete_done));
    json_object_set_new(doc, "success_done", json_boolean(b->success_done));

    json_t *callbacks = json_object();
    for (int i = 0; i < BATCH_CALLBACKS; i++) {
        if (!b->job[i])
            continue;
        json_t *cb = json_loads(b->job[i], 0, NULL);
        json_object_set_new(callbacks, callback_names[i],
                            json_pack("{s:o, s:s?, s:o}", "state", callback_state(b->st[i]),
                                      "jid", b->jid[i], "job", cb ? cb : json_null()));
    }
    json_object_set_new(doc, "callbacks", callbacks);
    return doc;
}

json_t *batch_status(struct engine *e, const char *bid, int *rc) {
    struct store_batch b = {0};
    *rc = store_batch_get(e->store, bid, &b);
    if (*rc <= 0)
        return NULL;
    json_t *doc = batch_describe(&b, false);
    store_batch_clear(&b);
    return doc;
}

int batch_admit(struct engine *e, json_t *job, const char **bid, int *ext, char *err,
                size_t errlen) {
    if (*ext & JOB_EXT_CALLBACK)
        return 0;
    const json_t *value = json_object_get(json_object_get(job, "custom"), "bid");
    if (!value || json_is_null(value))
        return 0;
    const char *text = json_string_value(value);
    if (!text) {
        snprintf(err, errlen, "custom.bid must be a string holding a batch id from BATCH NEW");
        return 1;
    }
    if (!text[0])
        return 0;
    int rc = batch_exists(e, text);
    if (rc < 0) {
        snprintf(err, errlen, "storage failure: %s", store_error(e->store));
        return -1;
    }
    if (rc == 0) {
        snprintf(err, errlen, "no such batch %s (custom.bid)", text);
        return 1;
    }
    *bid = text;
    *ext |= JOB_EXT_BATCH;
    return 0;
}

int batch_add_member(struct engine *e, const char *bid, const char *jid, double now) {
    int rc = store_member_add(e->store, bid, jid);
    if (rc <= 0)
        return rc;
    struct store_batch b = {0};
    rc = store_batch_get(e->store, bid, &b);
    if (rc <= 0)
        return rc;
    b.total++;
    return settle(e, &b, 0, now);
}

/* Moves a member to the state ev calls for and adjusts b's counters. Returns 1 when b
 * changed, 0 when nothing did, -1. */
static int member_event(struct engine *e, struct store_batch *b, const struct store_job *job,
                        enum job_event ev) {
    int state;
    bool failed;
    int rc = store_member_get(e->store, b->bid, job->jid, &state, &failed);
    if (rc <= 0)
        return rc;
    int to = state;
    bool to_failed = failed;
    switch (ev) {
    case JOB_EVENT_ACKED:
        to = MEMBER_ACKED;
        break;
    case JOB_EVENT_RETRYING:
        to = state > MEMBER_FAILED ? state : MEMBER_FAILED;
        to_failed = true;
        break;
    case JOB_EVENT_DIED:
        b->died++;
        /* fall through */
    case JOB_EVENT_DROPPED:
        to = state > MEMBER_ENDED ? state : MEMBER_ENDED;
        to_failed = true;
        break;
    case JOB_EVENT_STARTED:
    case JOB_EVENT_REQUEUED:
        return 0;
    }
    if (to == state && to_failed == failed)
        return ev == JOB_EVENT_DIED;
    b->ran += state == MEMBER_PENDING;
    b->acked += to == MEMBER_ACKED && state != MEMBER_ACKED;
    b->ended += (to == MEMBER_ENDED) - (state == MEMBER_ENDED);
    b->failed += to_failed && !failed;
    if (store_member_set(e->store, b->bid, job->jid, to, to_failed) != 0)
        return -1;
    return 1;
}

/* Follows a callback job. Its ACK finishes its stage. A dead or removed callback no longer
 * keeps the batch from finishing, and one brought back from the dead set does again.
 * Returns 1 when b changed, 0 when not. */
static int callback_event(struct store_batch *b, const struct store_job *job,
                          enum job_event ev, int *newly_done) {
    int which = -1;
    for (int i = 0; i < BATCH_CALLBACKS; i++) {
        if (b->jid[i] && strcmp(b->jid[i], job->jid) == 0)
            which = i;
    }
    if (which < 0)
        return 0;
    int live = b->callbacks_live;
    switch (ev) {
    case JOB_EVENT_ACKED:
        if (b->st[which] == 2)
            return 0;
        b->st[which] = 2;
        b->callbacks_live--;
        if (which == BATCH_COMPLETE && !b->complete_done) {
            b->complete_done = true;
            *newly_done |= DONE_COMPLETE;
        } else if (which == BATCH_SUCCESS && !b->success_done) {
            b->success_done = true;
            *newly_done |= DONE_SUCCESS;
        }
        log_info("batch_callback_succeeded", "bid=%s callback=%s jid=%s", b->bid,
                 callback_names[which], job->jid);
        break;
    case JOB_EVENT_DIED:
        b->callbacks_live--;
        break;
    case JOB_EVENT_DROPPED:
        if (job->state != JOB_DEAD)
            b->callbacks_live--;
        break;
    case JOB_EVENT_REQUEUED:
        if (job->state == JOB_DEAD)
            b->callbacks_live++;
        break;
    case JOB_EVENT_STARTED:
    case JOB_EVENT_RETRYING:
        return 0;
    }
    if (b->callbacks_live < 0)
        b->callbacks_live = 0;
    return b->callbacks_live != live || *newly_done != 0;
}

int batch_job_event(struct engine *e, const struct store_job *job, enum job_event ev,
                    double now) {
    bool callback = job->ext & JOB_EXT_CALLBACK;
    /* Starting a job never changes a batch, and neither does a member re-entering its queue
     * or a callback waiting for its retry: skip the lookups on those hot paths. */
    if (!job->bid || ev == JOB_EVENT_STARTED || (!callback && ev == JOB_EVENT_REQUEUED) ||
        (callback && ev == JOB_EVENT_RETRYING))
        return 0;
    struct store_batch b = {0};
    int rc = store_batch_get(e->store, job->bid, &b);
    if (rc <= 0)
        return rc;   /* a removed batch follows nothing */
    int newly_done = 0;
    rc = callback ? callback_event(&b, job, ev, &newly_done) : member_event(e, &b, job, ev);
    if (rc <= 0) {
        store_batch_clear(&b);
        return rc;
    }
    return settle(e, &b, newly_done, now);
}

/* Removes one batch; a child never committed also leaves its parent's count. */
static int remove_batch(struct engine *e, const char *bid, bool expired, double now) {
    struct store_batch b = {0};
    int rc = store_batch_get(e->store, bid, &b);
    if (rc <= 0)
        return rc;
    if (store_batch_delete(e->store, bid) != 0) {
        store_batch_clear(&b);
        return -1;
    }
    if (expired)
        log_info("batch_expired", "bid=%s jobs=%lld reason=\"not committed within %d s\"", bid,
                 (long long)b.total, (int)BATCH_OPEN_SECONDS);
    else
        log_debug("batch_removed", "bid=%s", bid);
    struct store_batch parent = {0};
    rc = expired && b.parent_bid ? store_batch_get(e->store, b.parent_bid, &parent) : 0;
    store_batch_clear(&b);
    if (rc <= 0)
        return rc;
    parent.children--;
    return settle(e, &parent, 0, now);
}

int batch_tick(struct engine *e, double now) {
    char *bids[TICK_LIMIT];
    bool more = false;
    for (int pass = 0; pass < 2; pass++) {
        int n = pass == 0 ? store_batches_open_before(e->store, now - BATCH_OPEN_SECONDS, bids,
                                                      TICK_LIMIT)
                          : store_batches_finished_before(
                                e->store, now - (double)e->cfg->batch_ttl_days * 86400, bids,
                                TICK_LIMIT);
        if (n < 0)
            return -1;
        int rc = 0;
        for (int i = 0; i < n; i++) {
            if (rc == 0)
                rc = remove_batch(e, bids[i], pass == 0, now);
            free(bids[i]);
        }
        if (rc < 0)
            return -1;
        more = more || n == TICK_LIMIT;
    }
    return more;
}

int batch_next_deadline(struct engine *e, double *at) {
    double open = 0, finished = 0;
    int has_open = store_batches_earliest_open(e->store, &open);
    int has_finished = has_open < 0 ? -1 : store_batches_earliest_finished(e->store, &finished);
    if (has_open < 0 || has_finished < 0)
        return -1;
    *at = 0;
    if (has_open)
        *at = open + BATCH_OPEN_SECONDS;
    double removal = finished + (double)e->cfg->batch_ttl_days * 86400;
    if (has_finished && (*at == 0 || removal < *at))
        *at = removal;
    return *at > 0;
}
