/* Job state transitions over the store, with in-memory mirrors of sizes and counters. */
#include "engine/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "ent/batch.h"
#include "ent/track.h"
#include "ent/unique.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

struct queue {
    char *name;
    int64_t size;
    bool paused;
    UT_hash_handle hh;
};

/* How many due jobs one tick moves per set; the rest wait for the next tick, which the server
 * runs at once, so one huge backlog cannot stall the loop for long. */
#define TICK_BATCH 1000
/* Dead-set trimming runs at most this often (seconds). */
#define DEAD_TRIM_INTERVAL 60.0

double engine_now(const struct engine *e) {
    return time_wall() + e->clock_offset;
}

static uint32_t next_random(struct engine *e) {
    /* xorshift64*: retry jitter needs spread, not secrecy. */
    uint64_t x = e->random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    e->random_state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static struct queue *queue_find(const struct engine *e, const char *name) {
    struct queue *q = NULL;
    HASH_FIND_STR(e->queues, name, q);
    return q;
}

static struct queue *queue_add(struct engine *e, const char *name, bool paused) {
    struct queue *q = queue_find(e, name);
    if (q)
        return q;
    q = xcalloc(1, sizeof *q);
    q->name = xstrdup(name);
    q->paused = paused;
    HASH_ADD_KEYPTR(hh, e->queues, q->name, strlen(q->name), q);
    return q;
}

static void queue_drop(struct engine *e, struct queue *q) {
    HASH_DEL(e->queues, q);
    free(q->name);
    free(q);
}

/* Registers a queue in memory and in the store when its first job arrives. */
static int queue_ensure(struct engine *e, const char *name, struct queue **out) {
    struct queue *q = queue_find(e, name);
    if (!q) {
        if (store_put_queue(e->store, name, false) != 0)
            return -1;
        q = queue_add(e, name, false);
    }
    *out = q;
    return 0;
}

static void load_queue_cb(void *ctx, const char *name, bool paused) {
    queue_add(ctx, name, paused);
}

static void count_queue_cb(void *ctx, const char *name, int64_t n) {
    struct engine *e = ctx;
    struct queue *q = queue_find(e, name);
    if (!q)
        q = queue_add(e, name, false);
    q->size = n;
}

static void clear_registry(struct engine *e) {
    struct queue *q, *tmp;
    HASH_ITER(hh, e->queues, q, tmp) {
        queue_drop(e, q);
    }
}

static int rebuild_slot(void *ctx, const struct store_job *job) {
    struct engine *e = ctx;
    struct throttle *t = throttle_find(&e->throttles, job->queue);
    if (t)
        throttle_take(t, job->id, job->jid, job->wid, job->reserved_at, false);
    return 0;
}

/* The latest scheduled time of entry at or before now, where `first` is due; several missed
 * runs collapse into this one. It looks back over a window that doubles until it contains a run,
 * so a minutely entry after months of downtime costs a few calls, not one per missed run. */
static double latest_due(const struct cron_entry *c, double first, double now) {
    for (double window = 60; ; window *= 2) {
        double from = now - window;
        bool reached_first = from < first;
        if (reached_first)
            from = first - 1;
        double run = cron_next(&c->expr, c->timezone, from);
        if (run > 0 && run <= now) {
            for (;;) {
                double next = cron_next(&c->expr, c->timezone, run);
                if (next == 0 || next > now)
                    return run;
                run = next;
            }
        }
        if (reached_first)
            return first;
    }
}

/* Sets each cron entry's next run from its stored last run. An entry that never ran starts
 * from now. Runs missed while the server was down are run once (catch_up = "once", the
 * default) or not at all ("skip"). */
static int restore_cron(struct engine *e) {
    double now = engine_now(e);
    for (size_t i = 0; i < e->cron.n; i++) {
        struct cron_entry *c = &e->cron.entries[i];
        double last = 0;
        int rc = store_cron_last_run(e->store, c->key, &last);
        if (rc < 0)
            return -1;
        c->last_run = rc > 0 ? last : 0;
        c->next_run = cron_next(&c->expr, c->timezone, rc > 0 ? last : now);
        if (c->next_run > 0 && c->next_run <= now && c->catch_up == CRON_CATCH_UP_SKIP)
            c->next_run = cron_next(&c->expr, c->timezone, now);
    }
    return 0;
}

/* Rebuilds every mirror from the store: after start-up and after a rolled-back iteration.
 * Throttle slots come back from the reservations, so slots in use match the working set. */
static int reload(struct engine *e) {
    clear_registry(e);
    throttle_clear(&e->throttles);
    e->tx_processed = e->tx_failures = 0;
    if (store_load_queues(e->store, load_queue_cb, e) != 0 ||
        store_count_queued(e->store, count_queue_cb, e) != 0 ||
        store_count_states(e->store, e->set_size) != 0 ||
        store_load_counters(e->store, &e->processed, &e->failures) != 0 ||
        (e->throttles.by_queue && store_scan(e->store, JOB_WORKING, rebuild_slot, e) != 0) ||
        restore_cron(e) != 0)
        return -1;
    double expiry = 0;
    int rc = store_earliest_expiry(e->store, &expiry);
    if (rc < 0)
        return -1;
    e->next_expiry = rc > 0 ? expiry : 0;
    e->next_deadline = 0;
    e->deadline_changed = true;
    return 0;
}

int engine_open(struct engine *e, const struct config *cfg, struct store *store, char *err,
                size_t errlen) {
    e->cfg = cfg;
    e->store = store;
    e->random_state = (uint64_t)(time_wall() * 1e6) | 1;
    if (throttle_parse(cfg->document, &e->throttles, err, errlen) != 0)
        return -1;
    char conf_dir[4096];
    snprintf(conf_dir, sizeof conf_dir, "%s/conf.d", cfg->config_dir ? cfg->config_dir : ".");
    if (cron_load(cfg->document, conf_dir, &e->cron, err, errlen) != 0)
        return -1;
    if (reload(e) != 0) {
        snprintf(err, errlen, "cannot load state: %s", store_error(store));
        return -1;
    }
    e->next_deadline = engine_now(e);   /* run one tick at start-up */
    return 0;
}

void engine_close(struct engine *e) {
    clear_registry(e);
    throttle_set_free(&e->throttles);
    cron_set_free(&e->cron);
    jobstats_free(&e->jobstats);
}

int engine_check_config(struct engine *e, const json_t *document, char *err, size_t errlen) {
    struct throttle_set throttles;
    if (throttle_parse(document, &throttles, err, errlen) != 0)
        return -1;
    throttle_set_free(&throttles);
    char conf_dir[4096];
    snprintf(conf_dir, sizeof conf_dir, "%s/conf.d",
             e->cfg->config_dir ? e->cfg->config_dir : ".");
    struct cron_set cron;
    if (cron_load(document, conf_dir, &cron, err, errlen) != 0)
        return -1;
    cron_set_free(&cron);
    return 0;
}

int engine_reload_cron(struct engine *e, const json_t *document, char *err, size_t errlen) {
    char conf_dir[4096];
    snprintf(conf_dir, sizeof conf_dir, "%s/conf.d",
             e->cfg->config_dir ? e->cfg->config_dir : ".");
    struct cron_set fresh;
    if (cron_load(document, conf_dir, &fresh, err, errlen) != 0)
        return -1;
    cron_set_free(&e->cron);
    e->cron = fresh;
    if (restore_cron(e) != 0) {
        snprintf(err, errlen, "cannot read cron runs: %s", store_error(e->store));
        return -1;
    }
    /* A tick now runs what is due and recomputes the timer from the new entries. */
    e->next_deadline = engine_now(e);
    e->deadline_changed = true;
    log_info("cron_loaded", "entries=%zu", e->cron.n);
    return 0;
}

/* Pushes one job of a cron entry. Returns 0 or -1 (store failure). */
static int cron_push(struct engine *e, const struct cron_entry *c, const char *reason) {
    json_t *job = cron_make_job(c);
    char err[512];
    int rc = engine_push(e, job, err, sizeof err);
    if (rc == 0)
        log_info("cron_enqueued", "jid=%s queue=%s jobtype=%s schedule=\"%s\" reason=%s",
                 json_string_value(json_object_get(job, "jid")),
                 json_string_value(json_object_get(job, "queue")),
                 json_string_value(json_object_get(job, "jobtype")), c->schedule, reason);
    else if (rc == ENGINE_PUSH_NOT_UNIQUE)
        /* A unique cron job whose previous run still holds its lock: the lock works as
         * intended, so this is news, not an error. */
        log_info("cron_skipped_not_unique", "schedule=\"%s\" source=\"%s\" jobtype=%s",
                 c->schedule, c->source,
                 json_string_value(json_object_get(job, "jobtype")));
    else
        log_error("cron_push_failed", "schedule=\"%s\" source=\"%s\" error=\"%s\"",
                  c->schedule, c->source, err);
    json_decref(job);
    return rc < 0 ? -1 : 0;
}

int engine_cron_run_now(struct engine *e, const char *key) {
    for (size_t i = 0; i < e->cron.n; i++) {
        if (strcmp(e->cron.entries[i].key, key) == 0)
            return cron_push(e, &e->cron.entries[i], "run_now") == 0 ? 1 : -1;
    }
    return 0;
}

/* Runs every cron entry that is due: one job per entry, however many runs were missed; the
 * last run is stored in the same transaction as the job, so a crash repeats nothing. */
static int tick_cron(struct engine *e, double now) {
    for (size_t i = 0; i < e->cron.n; i++) {
        struct cron_entry *c = &e->cron.entries[i];
        if (c->next_run == 0 || c->next_run > now)
            continue;
        double due = latest_due(c, c->next_run, now);
        if (cron_push(e, c, "schedule") != 0 || store_cron_set_run(e->store, c->key, due) != 0)
            return -1;
        c->last_run = due;
        c->next_run = cron_next(&c->expr, c->timezone, due);
    }
    return 0;
}

int engine_reload_throttles(struct engine *e, const json_t *document, char *err,
                            size_t errlen) {
    struct throttle_set fresh;
    if (throttle_parse(document, &fresh, err, errlen) != 0)
        return -1;
    /* A queue whose throttle goes away is free at once. */
    struct throttle *old, *next;
    HASH_ITER(hh, e->throttles.by_queue, old, next) {
        if (!throttle_find(&fresh, old->queue) && e->on_enqueue)
            e->on_enqueue(e->ctx, old->queue);
    }
    throttle_adopt(&fresh, &e->throttles);
    e->throttles = fresh;
    /* A raised limit may let waiting fetchers in at once. */
    struct throttle *t, *tmp;
    HASH_ITER(hh, e->throttles.by_queue, t, tmp) {
        if (e->on_enqueue)
            e->on_enqueue(e->ctx, t->queue);
    }
    e->deadline_changed = true;
    return 0;
}

/* Counts a finished job for /metrics and calls the observer (statsd), if any. */
static void notify_finished(struct engine *e, const struct store_job *job, bool success,
                            double now) {
    const char *type = job->jobtype ? job->jobtype : "";
    double run = job->reserved_at > 0 && now > job->reserved_at ? now - job->reserved_at : 0;
    jobstats_finished(&e->jobstats, type, job->queue, success, run);
    if (e->on_finished)
        e->on_finished(e->observer_ctx, type, job->queue, success, run);
}

/* Frees the throttle slot a job held, and wakes fetchers waiting for it. */
static void release_slot(struct engine *e, const char *queue, int64_t job_id) {
    if (throttle_release(&e->throttles, queue, job_id) && e->on_enqueue)
        e->on_enqueue(e->ctx, queue);
}

/* Tells the extensions a job takes part in what happened to it, inside the transaction of the
 * change itself, so a crash keeps both or neither. A plain job (ext 0) costs nothing here. */
static int job_event(struct engine *e, const struct store_job *job, enum job_event ev,
                     double now) {
    if (job->ext == 0)
        return 0;
    if ((job->ext & (JOB_EXT_BATCH | JOB_EXT_CALLBACK)) && batch_job_event(e, job, ev, now) != 0)
        return -1;
    if ((job->ext & JOB_EXT_UNIQUE) && unique_job_event(e, job, ev, now) != 0)
        return -1;
    if ((job->ext & JOB_EXT_TRACKED) && track_job_event(e, job, ev, now) != 0)
        return -1;
    return 0;
}

int engine_commit(struct engine *e) {
    if (!store_in_tx(e->store))
        return 0;
    if (store_add_counters(e->store, engine_now(e), e->tx_processed, e->tx_failures) != 0 ||
        store_commit(e->store) != 0) {
        engine_abort(e);
        return -1;
    }
    e->tx_processed = e->tx_failures = 0;
    return 0;
}

void engine_abort(struct engine *e) {
    store_rollback(e->store);
    if (reload(e) != 0)
        log_error("engine_reload_failed", "error=\"%s\"", store_error(e->store));
}

/* Lowers the timer deadline when a new due time comes before it. */
static void note_deadline(struct engine *e, double at) {
    if (e->next_deadline == 0 || at < e->next_deadline) {
        e->next_deadline = at;
        e->deadline_changed = true;
    }
}

/* Arms the expiry timer for a job with an expiry that enters a queue, the scheduled set or
 * the retry set. */
static void note_expiry(struct engine *e, double expires_at) {
    if (expires_at <= 0)
        return;
    note_deadline(e, expires_at);
    if (e->next_expiry == 0 || expires_at < e->next_expiry)
        e->next_expiry = expires_at;
}

static void count_move(struct engine *e, enum job_state from, enum job_state to) {
    e->set_size[from]--;
    e->set_size[to]++;
}

/* Bookkeeping after a job entered queue: size, registry and blocked fetchers. */
static int note_enqueued(struct engine *e, const char *name) {
    struct queue *q;
    if (queue_ensure(e, name, &q) != 0)
        return -1;
    q->size++;
    if (e->on_enqueue && !q->paused)
        e->on_enqueue(e->ctx, name);
    return 0;
}

int engine_push(struct engine *e, json_t *job, char *err, size_t errlen) {
    return engine_push_ext(e, job, NULL, 0, err, errlen);
}

int engine_push_ext(struct engine *e, json_t *job, const char *bid, int ext, char *err,
                    size_t errlen) {
    double now = engine_now(e);
    struct job_info info;
    if (job_prepare(job, now, &info, err, errlen) != 0)
        return 1;
    int rc = batch_admit(e, job, &bid, &ext, err, errlen);
    if (rc != 0)
        return rc;
    rc = unique_admit(e, job, &info, now, &ext, err, errlen);
    if (rc != 0)
        return rc;
    track_admit(job, &ext);
    char *payload = json_dumps(job, JSON_COMPACT);
    if (!payload) {
        snprintf(err, errlen, "cannot encode job %s", info.jid);
        return 1;
    }
    struct store_job row = {
        .jid = (char *)info.jid,
        .queue = (char *)info.queue,
        .state = info.at > 0 ? JOB_SCHEDULED : JOB_QUEUED,
        .priority = info.priority,
        .reserve_for = job_reserve_seconds(job),
        .at = info.at,
        .enqueued_at = info.at > 0 ? 0 : now,
        .payload = payload,
        .jobtype = (char *)json_string_value(json_object_get(job, "jobtype")),
        .expires_at = info.expires_at,
        .ext = ext,
        .bid = (char *)bid,
    };
    rc = store_insert_job(e->store, &row);
    free(payload);
    if (rc == 0 && (ext & JOB_EXT_BATCH))
        rc = batch_add_member(e, bid, info.jid, now);
    if (rc == 0 && (ext & JOB_EXT_TRACKED))
        rc = track_job_pushed(e, info.jid, now);
    if (rc != 0) {
        snprintf(err, errlen, "storage failure, job %s not stored: %s", info.jid,
                 store_error(e->store));
        return -1;
    }
    e->set_size[row.state]++;
    note_expiry(e, info.expires_at);
    jobstats_pushed(&e->jobstats, row.jobtype, info.queue);
    if (e->on_pushed)
        e->on_pushed(e->observer_ctx, row.jobtype, info.queue);
    if (row.state == JOB_SCHEDULED) {
        note_deadline(e, info.at);
    } else if (note_enqueued(e, info.queue) != 0) {
        snprintf(err, errlen, "storage failure: %s", store_error(e->store));
        return -1;
    }
    log_debug("job_pushed", "jid=%s queue=%s state=%s", info.jid, info.queue,
              row.state == JOB_SCHEDULED ? "scheduled" : "queued");
    return 0;
}

static int remove_expired(struct engine *e, double now);

/* Called when the store has no job for a queue whose size claims some: the rest are
 * expired jobs the timer has not removed yet. Removes every expired job, then sets the size
 * from the store. Returns the new size, or -1. */
static int64_t resync_queue(struct engine *e, struct queue *q, double now) {
    int removed;
    do {
        removed = remove_expired(e, now);
    } while (removed == TICK_BATCH);
    if (removed < 0)
        return -1;
    struct store_query query = {.state = JOB_QUEUED, .queue = q->name};
    int64_t count = 0;
    if (store_count(e->store, &query, &count) != 0)
        return -1;
    q->size = count;
    return count;
}

int engine_fetch(struct engine *e, char *const *queues, int nqueues, const char *wid,
                 struct store_job *out) {
    double now = engine_now(e);
    /* The timer removes expired jobs at their expiry; if one is due and the timer has not run
     * yet, remove it now so queue sizes stay exact (FETCH never hands one out either way). */
    if (e->next_expiry > 0 && e->next_expiry <= now && remove_expired(e, now) < 0)
        return -1;
    for (int i = 0; i < nqueues; i++) {
        struct queue *q = queue_find(e, queues[i]);
        if (!q || q->paused || q->size <= 0)
            continue;
        struct throttle *t = throttle_find(&e->throttles, q->name);
        if (t && !throttle_available(t, wid, now))
            continue;
        int rc = store_take_next(e->store, q->name, now, wid, out);
        if (rc == 0 && (rc = resync_queue(e, q, now)) > 0)
            rc = store_take_next(e->store, q->name, now, wid, out);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue;
        q->size--;
        count_move(e, JOB_QUEUED, JOB_WORKING);
        note_deadline(e, out->at);
        if (t) {
            throttle_take(t, out->id, out->jid, wid, now, true);
            note_deadline(e, throttle_next_deadline(&e->throttles, now));
        }
        log_debug("job_fetched", "jid=%s queue=%s wid=%s", out->jid, out->queue,
                  wid ? wid : "");
        if (job_event(e, out, JOB_EVENT_STARTED, now) != 0) {
            store_job_clear(out);
            return -1;
        }
        return 1;
    }
    return 0;
}

/* Whether a reservation belongs to another worker than wid: the sender's own reservation
 * expired and the job was handed to someone else. A side without a wid matches anyone. */
static bool held_by_other(const struct store_job *job, const char *wid, const char *verb) {
    if (!wid || !wid[0] || !job->wid || !job->wid[0] || strcmp(job->wid, wid) == 0)
        return false;
    log_info("late_reply_ignored", "verb=%s jid=%s wid=%s holder=%s queue=%s", verb, job->jid,
             wid, job->wid, job->queue);
    return true;
}

int engine_ack(struct engine *e, const char *jid, const char *wid) {
    struct store_job job = {0};
    int rc = store_find_working(e->store, jid, &job);
    if (rc <= 0)
        return rc;
    if (held_by_other(&job, wid, "ACK")) {
        store_job_clear(&job);
        return 0;
    }
    double now = engine_now(e);
    rc = store_delete_job(e->store, job.id);
    if (rc == 0)
        rc = job_event(e, &job, JOB_EVENT_ACKED, now);
    if (rc == 0) {
        release_slot(e, job.queue, job.id);
        notify_finished(e, &job, true, now);
        e->set_size[JOB_WORKING]--;
        e->processed++;
        e->tx_processed++;
        log_debug("job_acked", "jid=%s queue=%s", jid, job.queue);
    }
    store_job_clear(&job);
    return rc;
}

/* Applies a failure to a working job row: counters, failure record and the next state. */
static int fail_job(struct engine *e, struct store_job *job,
                    const struct job_failure_report *report, double now) {
    release_slot(e, job->queue, job->id);
    notify_finished(e, job, false, now);
    e->processed++;
    e->failures++;
    e->tx_processed++;
    e->tx_failures++;

    json_error_t jerr;
    json_t *doc = json_loads(job->payload, 0, &jerr);
    if (!json_is_object(doc)) {
        /* A stored payload always parses; if one does not, keep the job visible in the
         * dead set rather than dropping it. */
        json_decref(doc);
        log_error("job_payload_corrupt", "jid=%s error=\"%s\"", job->jid, jerr.text);
        count_move(e, JOB_WORKING, JOB_DEAD);
        if (store_move_job(e->store, job->id, JOB_DEAD, now, job->enqueued_at, NULL) != 0)
            return -1;
        return job_event(e, job, JOB_EVENT_DIED, now);
    }

    double next_at = 0;
    enum job_fail_outcome outcome = job_record_failure(doc, report, now, next_random(e),
                                                       &next_at);
    int rc;
    if (outcome == JOB_FAIL_DISCARD) {
        e->set_size[JOB_WORKING]--;
        rc = store_delete_job(e->store, job->id);
        if (rc == 0)
            rc = job_event(e, job, JOB_EVENT_DROPPED, now);
        log_info("job_discarded", "jid=%s queue=%s errtype=\"%s\"", job->jid, job->queue,
                 report->errtype);
    } else {
        enum job_state to = outcome == JOB_FAIL_RETRY ? JOB_RETRY : JOB_DEAD;
        char *payload = json_dumps(doc, JSON_COMPACT);
        rc = store_move_job(e->store, job->id, to, to == JOB_RETRY ? next_at : now,
                            job->enqueued_at, payload);
        free(payload);
        if (rc == 0)
            rc = job_event(e, job, to == JOB_RETRY ? JOB_EVENT_RETRYING : JOB_EVENT_DIED, now);
        count_move(e, JOB_WORKING, to);
        if (to == JOB_RETRY) {
            note_deadline(e, next_at);
            note_expiry(e, job->expires_at);
        }
        log_debug("job_failed", "jid=%s queue=%s errtype=\"%s\" next=%s", job->jid, job->queue,
                  report->errtype, to == JOB_RETRY ? "retry" : "dead");
    }
    json_decref(doc);
    return rc;
}

int engine_fail(struct engine *e, const char *jid, const char *wid,
                const struct job_failure_report *report) {
    struct store_job job = {0};
    int rc = store_find_working(e->store, jid, &job);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return 1;
    if (held_by_other(&job, wid, "FAIL")) {
        store_job_clear(&job);
        return 1;
    }
    rc = fail_job(e, &job, report, engine_now(e));
    store_job_clear(&job);
    return rc;
}

/* Moves one due scheduled or retry job into its queue with a fresh enqueued_at. The move is a
 * single UPDATE, so a failure leaves the job where it was. */
static int enqueue_due(struct engine *e, int64_t id, double now) {
    struct store_job job = {0};
    int rc = store_get_job(e->store, id, &job);
    if (rc <= 0)
        return rc;
    json_t *doc = json_loads(job.payload, 0, NULL);
    char *payload = NULL;
    if (json_is_object(doc)) {
        job_set_enqueued(doc, now);
        payload = json_dumps(doc, JSON_COMPACT);
    }
    rc = store_move_job(e->store, id, JOB_QUEUED, 0, now, payload);
    if (rc == 0)
        rc = job_event(e, &job, JOB_EVENT_REQUEUED, now);
    if (rc == 0) {
        count_move(e, job.state, JOB_QUEUED);
        note_expiry(e, job.expires_at);
        rc = note_enqueued(e, job.queue);
    }
    free(payload);
    json_decref(doc);
    store_job_clear(&job);
    return rc;
}

/* Removes queued, scheduled and retry jobs whose expiry passed (working jobs run on, and dead
 * jobs stay for inspection). Returns how many were removed, or -1. */
static int remove_expired(struct engine *e, double now) {
    int64_t ids[TICK_BATCH];
    int n = store_expired_ids(e->store, now, ids, TICK_BATCH);
    for (int i = 0; i < n; i++) {
        struct store_job job = {0};
        int rc = store_get_job(e->store, ids[i], &job);
        if (rc > 0) {
            rc = store_delete_job(e->store, job.id);
            if (rc == 0)
                rc = job_event(e, &job, JOB_EVENT_DROPPED, now);
            if (rc == 0) {
                e->set_size[job.state]--;
                if (job.state == JOB_QUEUED) {
                    struct queue *q = queue_find(e, job.queue);
                    if (q)
                        q->size--;
                }
                e->tasks.jobs_expired++;
                log_info("job_expired", "jid=%s queue=%s state=%s", job.jid, job.queue,
                         job.state == JOB_QUEUED ? "queued"
                         : job.state == JOB_SCHEDULED ? "scheduled" : "retry");
            }
        }
        store_job_clear(&job);
        if (rc < 0)
            return -1;
    }
    if (n < TICK_BATCH) {
        double at = 0;
        int rc = store_earliest_expiry(e->store, &at);
        if (rc < 0)
            return -1;
        e->next_expiry = rc > 0 ? at : 0;
    }
    return n;
}

/* Moves due jobs of one set; returns how many moved or -1. */
static int tick_set(struct engine *e, enum job_state state, double now) {
    int64_t ids[TICK_BATCH];
    int n = store_due_ids(e->store, state, now, ids, TICK_BATCH);
    for (int i = 0; i < n; i++) {
        if (enqueue_due(e, ids[i], now) != 0)
            return -1;
    }
    return n;
}

static int tick_reservations(struct engine *e, double now) {
    int64_t ids[TICK_BATCH];
    int n = store_due_ids(e->store, JOB_WORKING, now, ids, TICK_BATCH);
    struct job_failure_report report = {.errtype = "ReservationExpired",
                                        .message = "Faktory job reservation expired"};
    for (int i = 0; i < n; i++) {
        struct store_job job = {0};
        int rc = store_get_job(e->store, ids[i], &job);
        if (rc > 0) {
            log_info("reservation_expired", "jid=%s queue=%s wid=%s", job.jid, job.queue,
                     job.wid ? job.wid : "");
            rc = fail_job(e, &job, &report, now);
        }
        store_job_clear(&job);
        if (rc < 0)
            return -1;
    }
    return n;
}

static int tick_dead(struct engine *e, double now) {
    if (now - e->last_dead_trim < DEAD_TRIM_INTERVAL &&
        e->set_size[JOB_DEAD] <= e->cfg->dead_max)
        return 0;
    e->last_dead_trim = now;
    int64_t removed = 0;
    double before = now - (double)e->cfg->dead_ttl_days * 86400;
    if (store_trim_dead(e->store, before, e->cfg->dead_max, &removed) != 0)
        return -1;
    if (removed > 0) {
        e->set_size[JOB_DEAD] -= removed;
        e->tasks.dead_removed += removed;
        log_info("dead_trimmed", "removed=%lld", (long long)removed);
    }
    return 0;
}

/* Recomputes the earliest time any timer work is due. */
static int compute_deadline(struct engine *e) {
    static const enum job_state timed[] = {JOB_SCHEDULED, JOB_RETRY, JOB_WORKING};
    e->next_deadline = 0;
    for (size_t i = 0; i < sizeof timed / sizeof timed[0]; i++) {
        double at;
        int rc = store_earliest(e->store, timed[i], &at);
        if (rc < 0)
            return -1;
        if (rc > 0 && (e->next_deadline == 0 || at < e->next_deadline))
            e->next_deadline = at;
    }
    if (e->next_expiry > 0 && (e->next_deadline == 0 || e->next_expiry < e->next_deadline))
        e->next_deadline = e->next_expiry;
    double slots = throttle_next_deadline(&e->throttles, engine_now(e));
    if (slots > 0 && (e->next_deadline == 0 || slots < e->next_deadline))
        e->next_deadline = slots;
    for (size_t i = 0; i < e->cron.n; i++) {
        double at = e->cron.entries[i].next_run;
        if (at > 0 && (e->next_deadline == 0 || at < e->next_deadline))
            e->next_deadline = at;
    }
    double batches = 0;
    int rc = batch_next_deadline(e, &batches);
    if (rc < 0)
        return -1;
    if (rc > 0 && (e->next_deadline == 0 || batches < e->next_deadline))
        e->next_deadline = batches;
    double locks = 0, records = 0;
    if ((rc = unique_next_deadline(e, &locks)) < 0)
        return -1;
    if (rc > 0 && (e->next_deadline == 0 || locks < e->next_deadline))
        e->next_deadline = locks;
    if ((rc = track_next_deadline(e, &records)) < 0)
        return -1;
    if (rc > 0 && (e->next_deadline == 0 || records < e->next_deadline))
        e->next_deadline = records;
    e->deadline_changed = true;
    return 0;
}

static void slot_freed(void *ctx, const char *queue) {
    struct engine *e = ctx;
    if (e->on_enqueue)
        e->on_enqueue(e->ctx, queue);
}

int engine_tick(struct engine *e, double now) {
    e->tasks.cycles++;
    double t0 = time_mono();
    int sched = tick_set(e, JOB_SCHEDULED, now);
    double t1 = time_mono();
    int retries = sched < 0 ? -1 : tick_set(e, JOB_RETRY, now);
    double t2 = time_mono();
    int expired = retries < 0 ? -1 : tick_reservations(e, now);
    int removed = expired < 0 ? -1 : remove_expired(e, now);
    if (sched < 0 || retries < 0 || expired < 0 || removed < 0 || tick_dead(e, now) != 0)
        return -1;
    if (tick_cron(e, now) != 0)
        return -1;
    int batches = batch_tick(e, now);
    if (batches < 0)
        return -1;
    /* Lapsed unique locks and expired tracking records. */
    int locks = unique_tick(e, now);
    int records = locks < 0 ? -1 : track_tick(e, now);
    if (locks < 0 || records < 0)
        return -1;
    int slots = throttle_expire(&e->throttles, now, slot_freed, e);
    if (slots > 0)
        log_info("throttle_slots_timed_out", "slots=%d", slots);
    e->tasks.scheduled_enqueued += sched;
    e->tasks.retries_enqueued += retries;
    e->tasks.reservations_expired += expired;
    e->tasks.scheduled_wall += t1 - t0;
    e->tasks.retries_wall += t2 - t1;
    if (compute_deadline(e) != 0)
        return -1;
    /* A full batch means more is due now: come back at once. */
    if (sched == TICK_BATCH || retries == TICK_BATCH || expired == TICK_BATCH ||
        removed == TICK_BATCH || batches > 0 || locks > 0 || records > 0)
        e->next_deadline = now;
    return 0;
}

struct mutate_scan {
    const struct mutate_request *req;
    int64_t *ids;
    size_t n, cap;
};

static int mutate_collect(void *ctx, const struct store_job *job) {
    struct mutate_scan *scan = ctx;
    json_t *doc = json_loads(job->payload, 0, NULL);
    bool match = mutate_matches(scan->req, job->payload, strlen(job->payload), doc);
    json_decref(doc);
    if (!match)
        return 0;
    if (scan->n == scan->cap) {
        scan->cap = scan->cap ? scan->cap * 2 : 64;
        scan->ids = xrealloc(scan->ids, scan->cap * sizeof *scan->ids);
    }
    scan->ids[scan->n++] = job->id;
    return 0;
}

/* Deletes a waiting or dead job, or moves it to the dead set (kill). */
static int remove_job(struct engine *e, const struct store_job *job, bool kill, double now) {
    if (kill) {
        if (store_move_job(e->store, job->id, JOB_DEAD, now, job->enqueued_at, NULL) != 0)
            return -1;
        count_move(e, job->state, JOB_DEAD);
        return job_event(e, job, JOB_EVENT_DIED, now);
    }
    if (store_delete_job(e->store, job->id) != 0)
        return -1;
    e->set_size[job->state]--;
    if (job->state == JOB_QUEUED) {
        struct queue *q = queue_find(e, job->queue);
        if (q)
            q->size--;
    }
    return job_event(e, job, JOB_EVENT_DROPPED, now);
}

/* Applies one MUTATE action to a matched job. */
static int mutate_one(struct engine *e, const struct mutate_request *req, int64_t id,
                      double now) {
    if (req->cmd == MUTATE_REQUEUE)
        return enqueue_due(e, id, now);
    if (req->cmd == MUTATE_KILL && req->target == JOB_DEAD)
        return 0;
    struct store_job job = {0};
    int rc = store_get_job(e->store, id, &job);
    if (rc > 0)
        rc = remove_job(e, &job, req->cmd == MUTATE_KILL, now);
    store_job_clear(&job);
    return rc;
}

int engine_mutate(struct engine *e, const struct mutate_request *req) {
    struct mutate_scan scan = {.req = req};
    if (store_scan(e->store, req->target, mutate_collect, &scan) != 0) {
        free(scan.ids);
        return -1;
    }
    double now = engine_now(e);
    int rc = 0;
    for (size_t i = 0; i < scan.n && rc == 0; i++)
        rc = mutate_one(e, req, scan.ids[i], now);
    free(scan.ids);
    return rc;
}

/* Calls fn for each named queue, or for every registered one when names[0] is "*". */
static int each_queue(struct engine *e, char *const *names, int n,
                      int (*fn)(struct engine *e, struct queue *q, void *arg), void *arg) {
    if (n > 0 && strcmp(names[0], "*") == 0) {
        struct queue *q, *tmp;
        HASH_ITER(hh, e->queues, q, tmp) {
            if (fn(e, q, arg) != 0)
                return -1;
        }
        return 0;
    }
    for (int i = 0; i < n; i++) {
        struct queue *q = queue_find(e, names[i]);
        if (q && fn(e, q, arg) != 0)
            return -1;
    }
    return 0;
}

static int set_paused(struct engine *e, struct queue *q, void *arg) {
    bool paused = *(bool *)arg;
    if (q->paused == paused)
        return 0;
    if (store_put_queue(e->store, q->name, paused) != 0)
        return -1;
    q->paused = paused;
    log_info(paused ? "queue_paused" : "queue_resumed", "queue=%s", q->name);
    if (!paused && q->size > 0 && e->on_enqueue)
        e->on_enqueue(e->ctx, q->name);
    return 0;
}

int engine_pause_queues(struct engine *e, char *const *names, int n, bool paused) {
    return each_queue(e, names, n, set_paused, &paused);
}

struct queue_removal {
    struct engine *e;
    double now;
    int rc;
};

static int drop_queued(void *ctx, const struct store_job *job) {
    struct queue_removal *r = ctx;
    r->rc = job_event(r->e, job, JOB_EVENT_DROPPED, r->now);
    return r->rc;
}

static int remove_queue(struct engine *e, struct queue *q, void *arg) {
    (void)arg;
    int64_t removed = 0;
    /* Jobs that extensions follow are removed one by one, so each gets its event; the rest
     * go in one statement. */
    struct queue_removal r = {.e = e, .now = engine_now(e)};
    if (store_scan_queue_ext(e->store, q->name, drop_queued, &r) != 0 || r.rc != 0 ||
        store_clear_queue(e->store, q->name, &removed) != 0 ||
        store_delete_queue(e->store, q->name) != 0)
        return -1;
    e->set_size[JOB_QUEUED] -= removed;
    log_info("queue_removed", "queue=%s jobs=%lld", q->name, (long long)removed);
    queue_drop(e, q);
    return 0;
}

int engine_remove_queues(struct engine *e, char *const *names, int n) {
    return each_queue(e, names, n, remove_queue, NULL);
}

int engine_queue_latency(struct engine *e, const char *name, double *seconds) {
    *seconds = 0;
    double enqueued;
    int rc = store_queue_head(e->store, name, &enqueued);
    if (rc < 0)
        return -1;
    if (rc > 0 && enqueued > 0) {
        double age = engine_now(e) - enqueued;
        *seconds = age > 0 ? age : 0;
    }
    return 0;
}

int engine_job_action(struct engine *e, int64_t id, enum job_state state,
                      enum engine_action action) {
    struct store_job job = {0};
    int rc = store_get_job(e->store, id, &job);
    if (rc <= 0)
        return rc;
    double now = engine_now(e);
    bool allowed = job.state == state && job.state != JOB_WORKING &&
                   (action == ENGINE_DELETE || job.state != JOB_QUEUED) &&
                   (action != ENGINE_KILL || job.state != JOB_DEAD);
    if (!allowed) {
        rc = 0;
    } else if (action == ENGINE_RETRY) {
        rc = enqueue_due(e, id, now) == 0 ? 1 : -1;
    } else {
        rc = remove_job(e, &job, action == ENGINE_KILL, now) == 0 ? 1 : -1;
    }
    if (rc > 0)
        log_info("job_changed", "jid=%s queue=%s action=%s source=web", job.jid, job.queue,
                 action == ENGINE_RETRY ? "retry" : action == ENGINE_KILL ? "kill" : "delete");
    store_job_clear(&job);
    return rc;
}

int engine_flush(struct engine *e) {
    if (store_flush(e->store) != 0)
        return -1;
    clear_registry(e);
    throttle_clear(&e->throttles);
    e->next_expiry = 0;
    memset(e->set_size, 0, sizeof e->set_size);
    e->processed = e->failures = 0;
    e->tx_processed = e->tx_failures = 0;
    log_info("flushed", "%s", "");
    return 0;
}

bool engine_queue_paused(const struct engine *e, const char *name) {
    struct queue *q = queue_find(e, name);
    return q && q->paused;
}

int64_t engine_queue_size(const struct engine *e, const char *name) {
    struct queue *q = queue_find(e, name);
    return q ? q->size : 0;
}

bool engine_queue_exists(const struct engine *e, const char *name) {
    return queue_find(e, name) != NULL;
}

static int compare_queue_names(struct queue *a, struct queue *b);

void engine_each_queue(struct engine *e,
                       void (*fn)(void *ctx, const char *name, int64_t size, bool paused),
                       void *ctx) {
    HASH_SORT(e->queues, compare_queue_names);
    struct queue *q, *tmp;
    HASH_ITER(hh, e->queues, q, tmp) {
        fn(ctx, q->name, q->size, q->paused);
    }
}

unsigned engine_queue_count(const struct engine *e) {
    return HASH_COUNT(e->queues);
}

static int compare_queue_names(struct queue *a, struct queue *b) {
    return strcmp(a->name, b->name);
}

static json_t *task_scanner(int64_t cycles, int64_t enqueued, int64_t size, double wall) {
    return json_pack("{s:I, s:I, s:I, s:f}", "cycles", (json_int_t)cycles, "enqueued",
                     (json_int_t)enqueued, "size", (json_int_t)size, "wall_time_sec", wall);
}

json_t *engine_info(struct engine *e, int64_t workers, int64_t workers_reaped) {
    HASH_SORT(e->queues, compare_queue_names);
    json_t *queues = json_object();
    int64_t enqueued = 0, count = 0;
    struct queue *q, *tmp;
    HASH_ITER(hh, e->queues, q, tmp) {
        json_object_set_new(queues, q->name, json_integer(q->size));
        enqueued += q->size;
        count++;
    }
    json_t *sets = json_pack("{s:I, s:I, s:I, s:I}", "dead", (json_int_t)e->set_size[JOB_DEAD],
                             "retries", (json_int_t)e->set_size[JOB_RETRY], "scheduled",
                             (json_int_t)e->set_size[JOB_SCHEDULED], "working",
                             (json_int_t)e->set_size[JOB_WORKING]);
    struct engine_tasks *t = &e->tasks;
    json_t *tasks = json_object();
    json_object_set_new(tasks, "Busy",
                        json_pack("{s:I, s:I}", "reaped", (json_int_t)t->reservations_expired,
                                  "size", (json_int_t)e->set_size[JOB_WORKING]));
    json_object_set_new(tasks, "Dead", task_scanner(t->cycles, t->dead_removed,
                                                    e->set_size[JOB_DEAD], t->dead_wall));
    json_object_set_new(tasks, "Retries", task_scanner(t->cycles, t->retries_enqueued,
                                                       e->set_size[JOB_RETRY], t->retries_wall));
    json_object_set_new(tasks, "Scheduled",
                        task_scanner(t->cycles, t->scheduled_enqueued,
                                     e->set_size[JOB_SCHEDULED], t->scheduled_wall));
    json_object_set_new(tasks, "Workers", json_pack("{s:I, s:I}", "reaped",
                                                    (json_int_t)workers_reaped, "size",
                                                    (json_int_t)workers));
    json_t *doc = json_object();
    json_object_set_new(doc, "queues", queues);
    json_object_set_new(doc, "sets", sets);
    json_object_set_new(doc, "tasks", tasks);
    json_object_set_new(doc, "total_failures", json_integer(e->failures));
    json_object_set_new(doc, "total_processed", json_integer(e->processed));
    json_object_set_new(doc, "total_enqueued", json_integer(enqueued));
    json_object_set_new(doc, "total_queues", json_integer(count));
    if (e->throttles.by_queue)
        json_object_set_new(doc, "throttles", engine_throttles(e, 100));
    return doc;
}

json_t *engine_throttles(struct engine *e, size_t max_holders) {
    json_t *throttles = json_object();
    struct throttle *t, *tmp;
    HASH_ITER(hh, e->throttles.by_queue, t, tmp) {
        json_t *entry = throttle_describe(t, max_holders);
        json_object_set_new(entry, "waiting",
                            json_integer(e->waiting ? e->waiting(e->ctx, t->queue) : 0));
        json_object_set_new(throttles, t->queue, entry);
    }
    return throttles;
}
