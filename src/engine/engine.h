/* The engine moves jobs between states (queued, scheduled, retry, working, dead) through the
 * store, and keeps the in-memory mirrors that INFO needs without counting rows: queue sizes,
 * set sizes and lifetime counters. It knows neither sockets nor SQL: FWP handlers, timers and
 * the web UI all call it, on the loop thread, inside the iteration's open transaction.
 *
 * Error convention: functions return 0 on success and -1 when the store failed; the caller
 * then answers -ERR and the server rolls the whole iteration back (engine_abort). */
#ifndef FABRIK_ENGINE_H
#define FABRIK_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/job.h"
#include "ent/cron.h"
#include "ent/jobstats.h"
#include "ent/throttle.h"
#include "store/store.h"

/* One registered queue. */
struct queue;

/* Counters of the periodic work, shown in INFO's "tasks". */
struct engine_tasks {
    int64_t scheduled_enqueued, retries_enqueued, dead_removed, reservations_expired;
    int64_t jobs_expired;        /* jobs removed because their custom.expires_at passed */
    int64_t cycles;
    double scheduled_wall, retries_wall, dead_wall;
};

struct engine {
    const struct config *cfg;
    struct store *store;
    struct queue *queues;        /* registry by name (uthash) */
    int64_t set_size[5];         /* jobs per state, including the open transaction */
    int64_t processed, failures; /* lifetime totals, including the open transaction */
    int64_t tx_processed, tx_failures; /* the open transaction's share, written at commit */
    struct engine_tasks tasks;
    double clock_offset;         /* seconds added to the wall clock (DEBUG CLOCK) */
    double next_deadline;        /* earliest scheduled, retry or reservation time, 0 = none */
    double next_expiry;          /* earliest expires_at of a waiting job, 0 = none */
    bool deadline_changed;       /* next_deadline moved earlier since the timer was armed */
    double last_dead_trim;
    uint64_t random_state;
    struct throttle_set throttles;
    struct cron_set cron;
    struct jobstats jobstats;    /* per job type and queue, since start, for /metrics */
    /* Optional observer of finished jobs (statsd export); NULL when nobody listens, so the
     * hot path parses nothing extra. */
    void (*on_finished)(void *ctx, const char *jobtype, const char *queue, bool success,
                        double run_seconds);
    void (*on_pushed)(void *ctx, const char *jobtype, const char *queue);
    void *observer_ctx;
    /* Called when a queue gains a job or a throttle slot frees, so blocked fetchers can be
     * woken. */
    void (*on_enqueue)(void *ctx, const char *queue);
    /* Returns how many fetchers wait on queue, for INFO's throttle view (may be NULL). */
    int (*waiting)(void *ctx, const char *queue);
    void *ctx;
};

/* An event in a job's life, passed to the extensions that follow jobs (enum job_ext). */
enum job_event {
    JOB_EVENT_STARTED,    /* handed to a worker by FETCH */
    JOB_EVENT_ACKED,
    JOB_EVENT_RETRYING,   /* failed, and waits in the retry set */
    JOB_EVENT_DIED,       /* entered the dead set: retries used up, or killed */
    JOB_EVENT_DROPPED,    /* gone without success: failed with retry 0, discarded, deleted,
                             expired or its queue removed */
    JOB_EVENT_REQUEUED,   /* entered its queue again from the scheduled, retry or dead set */
};

/* Loads queues and counters from the store and the throttles from cfg. Returns 0, or -1 with
 * a message in err. */
int engine_open(struct engine *e, const struct config *cfg, struct store *store, char *err,
                size_t errlen);
void engine_close(struct engine *e);

/* The server's clock: wall time plus the test offset. */
double engine_now(const struct engine *e);

/* Commits the iteration's transaction together with the counter deltas. On failure the
 * transaction is rolled back and the mirrors are reloaded; returns -1. */
int engine_commit(struct engine *e);
/* Rolls the open transaction back and reloads the mirrors from the store. */
void engine_abort(struct engine *e);

/* Validates and stores a pushed job (takes no ownership of job, but normalises it in place).
 * Returns 0; 1 when the job is invalid (err contains the reply text without "-ERR "); -1 when
 * the store failed (err contains the reason). */
int engine_push(struct engine *e, json_t *job, char *err, size_t errlen);

/* engine_push's return when custom.unique_for requests a lock that another job has; err
 * contains "Job not unique", which FWP sends as "-NOTUNIQUE Job not unique". */
#define ENGINE_PUSH_NOT_UNIQUE 2

/* engine_push for jobs the server makes itself (batch callbacks): the row carries bid and
 * the extension bits ext in addition to those the job's own fields ask for. */
int engine_push_ext(struct engine *e, json_t *job, const char *bid, int ext, char *err,
                    size_t errlen);

/* Reserves the next job from the first of queues that is registered, unpaused and not empty.
 * Returns 1 with out filled (owned), 0 when nothing is available, -1 on a store failure. */
int engine_fetch(struct engine *e, char *const *queues, int nqueues, const char *wid,
                 struct store_job *out);

/* Acknowledges the latest reservation of jid, sent by worker wid (NULL when the connection
 * sent none). An unknown jid, or a reservation that another worker has now (a late ACK
 * after the sender's reservation expired and the job ran again), is a success that changes
 * nothing. Returns 0 or -1. */
int engine_ack(struct engine *e, const char *jid, const char *wid);

/* Records a failure of jid's latest reservation, sent by worker wid, and moves the job to
 * retry, dead or nowhere. Returns 0; 1 when jid has no reservation or another worker has
 * it now; -1 on a store failure. */
int engine_fail(struct engine *e, const char *jid, const char *wid,
                const struct job_failure_report *report);

/* Runs everything due at now: scheduled and retry jobs into their queues, expired
 * reservations as failures, removal of expired jobs, dead-set trimming, cron, throttle slot
 * timeouts. Recomputes next_deadline. Returns 0 or -1. */
int engine_tick(struct engine *e, double now);

/* Applies a MUTATE request. Returns 0 or -1. */
int engine_mutate(struct engine *e, const struct mutate_request *req);

/* Queue operations by name; "*" as the first name means every registered queue. Unknown
 * names are ignored, as in Faktory. Return 0 or -1. */
int engine_pause_queues(struct engine *e, char *const *names, int n, bool paused);
int engine_remove_queues(struct engine *e, char *const *names, int n);
/* Seconds since the next job of queue was enqueued; 0 for an empty or unknown queue. */
int engine_queue_latency(struct engine *e, const char *name, double *seconds);

/* An action of the web UI on one job. */
enum engine_action {
    ENGINE_RETRY,    /* scheduled, retry or dead: into its queue now */
    ENGINE_DELETE,   /* any state but working: removed */
    ENGINE_KILL,     /* scheduled or retry: into the dead set */
};

/* Applies action to job id if it is in state. Returns 1 when applied, 0 when the job is gone
 * or in another state, -1 on a store failure. */
int engine_job_action(struct engine *e, int64_t id, enum job_state state,
                      enum engine_action action);

/* Checks the throttles and cron entries of document without applying them, so a reload can
 * be refused as a whole. Returns 0, or -1 with err. */
int engine_check_config(struct engine *e, const json_t *document, char *err, size_t errlen);

/* Replaces the throttles with those of document (SIGHUP), keeping the slots in use of every
 * queue that stays throttled. Returns 0, or -1 with err (the old throttles stay). */
int engine_reload_throttles(struct engine *e, const json_t *document, char *err, size_t errlen);

/* Replaces the cron entries with those of document (SIGHUP). Entries whose definition is
 * unchanged keep their schedule state. Returns 0, or -1 with err (the old entries stay). */
int engine_reload_cron(struct engine *e, const json_t *document, char *err, size_t errlen);

/* Pushes a job of cron entry `key` now, outside its schedule (the web UI's "run now").
 * Returns 1 when pushed, 0 when there is no such entry, -1 on a store failure. */
int engine_cron_run_now(struct engine *e, const char *key);

/* Removes every job, queue and counter. Returns 0 or -1. */
int engine_flush(struct engine *e);

/* Every throttle by queue: limits, slots in use with at most max_holders holders listed,
 * counters, and waiting fetchers (owned by the caller). */
json_t *engine_throttles(struct engine *e, size_t max_holders);

/* The "faktory" object of INFO (owned by the caller). */
json_t *engine_info(struct engine *e, int64_t workers, int64_t workers_reaped);

/* Whether a queue is registered and paused / its current size. */
bool engine_queue_paused(const struct engine *e, const char *name);
int64_t engine_queue_size(const struct engine *e, const char *name);
/* Whether name is a registered queue. */
bool engine_queue_exists(const struct engine *e, const char *name);
/* Calls fn for every registered queue, sorted by name. */
void engine_each_queue(struct engine *e,
                       void (*fn)(void *ctx, const char *name, int64_t size, bool paused),
                       void *ctx);
/* Number of registered queues. */
unsigned engine_queue_count(const struct engine *e);

#endif
