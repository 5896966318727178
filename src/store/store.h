/* The storage engine: one SQLite database in WAL mode holding every job, queue, counter and
 * daily statistic. The only module that knows SQL. Every write runs inside the transaction
 * that the server opens for one loop iteration (store_begin) and commits once (group commit).
 * All functions run on the loop thread. Strings in a store_job are owned by it. */
#ifndef FABRIK_STORE_H
#define FABRIK_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/job.h"

struct store;

struct store_job {
    int64_t id;           /* row id: insertion order inside a priority */
    char *jid;
    char *queue;
    enum job_state state;
    int priority;
    int reserve_for;      /* seconds, already clamped */
    double at;            /* due time (scheduled, retry), reservation expiry (working),
                             death time (dead) */
    double enqueued_at;   /* when it last entered its queue, 0 if never */
    double reserved_at;   /* when it was fetched (working only) */
    char *wid;            /* worker holding the reservation, NULL otherwise */
    char *payload;        /* job JSON */
    char *jobtype;        /* the payload's jobtype, copied into a column */
    double expires_at;    /* when the job expires unless it runs first; 0 = never */
    int ext;              /* enum job_ext bits: the extensions that track this job */
    char *bid;            /* the batch of a member or callback job, NULL otherwise */
};

void store_job_clear(struct store_job *job);

/* Opens or creates <dir>/fabrik.db, migrates it forward and prepares every statement.
 * Returns 0, or -1 with a message in err; refuses a file written by a newer schema. */
int store_open(struct store **out, const char *dir, enum durability durability, char *err,
               size_t errlen);
void store_close(struct store *s);

/* Begins the iteration's transaction if none is open. Returns 0 or -1. */
int store_begin(struct store *s);
/* Commits the open transaction (no-op without one). Returns 0, or -1 after which the
 * transaction is rolled back. */
int store_commit(struct store *s);
void store_rollback(struct store *s);
bool store_in_tx(const struct store *s);
/* The last SQLite error text, for replies and logs. */
const char *store_error(const struct store *s);

/* Inserts job (id is ignored) and sets job->id. Returns 0 or -1. */
int store_insert_job(struct store *s, struct store_job *job);
/* Reserves the next unexpired job of queue (highest priority, then oldest) for wid until
 * now + reserve_for. Returns 1 with out filled, 0 when the queue is empty, -1 on error. */
int store_take_next(struct store *s, const char *queue, double now, const char *wid,
                    struct store_job *out);
/* Finds the latest reservation of jid. Returns 1, 0 when none, -1 on error. */
int store_find_working(struct store *s, const char *jid, struct store_job *out);
/* Loads one job by id. Returns 1, 0 when gone, -1 on error. */
int store_get_job(struct store *s, int64_t id, struct store_job *out);
int store_delete_job(struct store *s, int64_t id);
/* Moves a job to state with the given times; payload NULL keeps the stored JSON. */
int store_move_job(struct store *s, int64_t id, enum job_state state, double at,
                   double enqueued_at, const char *payload);

/* Collects up to max ids of jobs in state whose time is <= until, earliest first.
 * Returns the count, or -1. */
int store_due_ids(struct store *s, enum job_state state, double until, int64_t *ids, int max);
/* Earliest time of a job in state. Returns 1 with *at set, 0 when none, -1 on error. */
int store_earliest(struct store *s, enum job_state state, double *at);
/* Calls fn for every job in state (time order) with a borrowed row, which is valid only
 * during the call; fn must not write to the store. fn returns nonzero to stop. */
int store_scan(struct store *s, enum job_state state,
               int (*fn)(void *ctx, const struct store_job *job), void *ctx);
/* enqueued_at of the job FETCH would take next from queue. Returns 1, 0 if empty, -1. */
int store_queue_head(struct store *s, const char *queue, double *enqueued_at);
/* Deletes every queued job of queue; sets *removed. */
/* Calls fn with each queued job of queue that has extension bits (borrowed rows); fn returning
 * non-zero stops the scan. Returns 0 or -1. */
int store_scan_queue_ext(struct store *s, const char *queue,
                         int (*fn)(void *ctx, const struct store_job *job), void *ctx);
int store_clear_queue(struct store *s, const char *queue, int64_t *removed);

/* The queue registry table: name and paused flag. */
int store_put_queue(struct store *s, const char *name, bool paused);
int store_delete_queue(struct store *s, const char *name);
int store_load_queues(struct store *s, void (*fn)(void *ctx, const char *name, bool paused),
                      void *ctx);
/* Calls fn with each queue's number of queued jobs. */
int store_count_queued(struct store *s, void (*fn)(void *ctx, const char *queue, int64_t n),
                       void *ctx);
/* Counts jobs per state into counts[0..4]. */
int store_count_states(struct store *s, int64_t counts[5]);

/* Adds to the lifetime and daily (UTC day of now) processed and failure counters. */
int store_add_counters(struct store *s, double now, int64_t processed, int64_t failures);
int store_load_counters(struct store *s, int64_t *processed, int64_t *failures);

/* A filtered, paged listing for the web UI. NULL filters match everything; search is a
 * case-insensitive substring of the job JSON. Queued jobs are listed in FETCH order, the
 * others by time (newest first when newest_first). */
struct store_query {
    enum job_state state;
    const char *queue;
    const char *jobtype;
    const char *errtype;
    const char *search;
    bool newest_first;
    int64_t offset, limit;
};

/* Calls fn with each matching job (borrowed row, valid during the call). Returns 0 or -1. */
int store_list(struct store *s, const struct store_query *q,
               int (*fn)(void *ctx, const struct store_job *job), void *ctx);
/* Counts the jobs matching q (offset and limit ignored). */
int store_count(struct store *s, const struct store_query *q, int64_t *count);
/* Distinct values of a field ("jobtype", "queue" or "errtype") among the newest 10,000 jobs of
 * state; fn gets each value. Returns 0 or -1. */
int store_distinct(struct store *s, enum job_state state, const char *field,
                   void (*fn)(void *ctx, const char *value), void *ctx);
/* Daily counters from day `since` ("YYYY-MM-DD") on, oldest first. */
int store_history(struct store *s, const char *since,
                  void (*fn)(void *ctx, const char *day, int64_t processed, int64_t failures),
                  void *ctx);

/* Collects up to max ids of queued, scheduled or retry jobs that expired by `until`,
 * earliest first. Returns the count, or -1. */
int store_expired_ids(struct store *s, double until, int64_t *ids, int max);
/* The earliest expiry of a queued, scheduled or retry job. Returns 1, 0 when none, -1. */
int store_earliest_expiry(struct store *s, double *at);

/* The scheduled time of a cron entry's last run. Returns 1 with *last_run set, 0 when the
 * entry never ran, -1 on error. */
int store_cron_last_run(struct store *s, const char *key, double *last_run);
/* Records a cron entry's last run; joins the iteration's transaction like every write. */
int store_cron_set_run(struct store *s, const char *key, double last_run);

/* Removes dead jobs that died before `before`, then the oldest beyond max_keep. */
int store_trim_dead(struct store *s, double before, int64_t max_keep, int64_t *removed);
/* Deletes every job, queue and counter. */
int store_flush(struct store *s);

/* An online copy of the database into another file, taken a few pages per step so the loop
 * keeps serving between steps (SQLite's backup API). */
struct store_backup;

/* Starts a copy into path, an existing empty file that the caller created. Returns 0 with
 * *out (freed with store_backup_free), or -1 with a message in err. */
int store_backup_begin(struct store *s, const char *path, struct store_backup **out, char *err,
                       size_t errlen);
/* Copies up to `pages` more pages; call it with no transaction open, so the copy contains
 * committed changes only. Returns 1 when the copy is complete and its file closed (not yet
 * fsynced), 0 when pages remain, -1 with a message in err. */
int store_backup_step(struct store_backup *b, int pages, char *err, size_t errlen);
/* Pages copied so far and the database's size in pages, both as of the last step. */
void store_backup_progress(const struct store_backup *b, int64_t *copied, int64_t *total);
/* Stops an unfinished copy and releases b; the file stays for the caller to remove. Accepts
 * NULL. */
void store_backup_free(struct store_backup *b);

#endif
