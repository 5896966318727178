/* Queue throttles: limits on how many jobs of a queue run at once, in the whole server
 * (concurrency) and per worker process (worker), and on how many start per time window
 * (rate_limit per rate_period). A slot is taken when FETCH hands out a job and freed when the
 * job leaves the working state, or at the latest `timeout` seconds after it was taken.
 * In memory only: after a restart the slots are rebuilt from the reservations in storage.
 * NOTE: the rate window is not rebuilt: it starts empty after a restart, and keeps the starts
 * of fetches that a failed commit rolled back.
 * Pure code: the caller passes `now` and decides what to wake. */
#ifndef FABRIK_THROTTLE_H
#define FABRIK_THROTTLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

/* One slot in use: the job that holds it. */
struct throttle_holder {
    int64_t job_id;      /* the job's row id: jids may repeat, row ids do not */
    char *jid;
    char *wid;           /* "" for a fetch from a connection without a wid */
    double since;
};

struct throttle {
    char *queue;
    int concurrency;     /* slots in the whole server; 0 = no such limit */
    int per_worker;      /* slots per worker process (wid); 0 = no such limit */
    double timeout;      /* seconds after which a slot is freed whatever the job does */
    int rate_limit;      /* jobs started per rate_period; 0 = no such limit */
    double rate_period;

    struct throttle_holder *holders;
    size_t nholders, capholders;
    double *starts;      /* ring of the last rate_limit start times */
    size_t nstarts, next_start;
    int64_t taken, released, timed_out;
    UT_hash_handle hh;
};

struct throttle_set {
    struct throttle *by_queue;
};

/* Reads the [throttles] table of the merged TOML document (NULL or absent means none).
 * Returns 0, or -1 with a message in err naming the queue, the key and the fix. */
int throttle_parse(const json_t *document, struct throttle_set *out, char *err, size_t errlen);

/* Moves the slots in use from old to fresh for every queue that fresh still throttles, and
 * frees old's remains. Slots over a lowered limit stay until their jobs finish. */
void throttle_adopt(struct throttle_set *fresh, struct throttle_set *old);

void throttle_set_free(struct throttle_set *set);

/* Finds the throttle of queue, or NULL. */
struct throttle *throttle_find(const struct throttle_set *set, const char *queue);

/* Whether a job of t's queue may start now for worker wid (NULL for none). */
bool throttle_available(const struct throttle *t, const char *wid, double now);

/* Records a slot taken by a job. count_start adds it to the rate window (not when slots are
 * rebuilt from storage after a restart). */
void throttle_take(struct throttle *t, int64_t job_id, const char *jid, const char *wid,
                   double since, bool count_start);

/* Frees the slot held by job_id in queue's throttle. Returns whether one was held, so a slot
 * is never freed twice. */
bool throttle_release(struct throttle_set *set, const char *queue, int64_t job_id);

/* Frees every slot held longer than its throttle's timeout and calls freed(ctx, queue) once
 * per queue that got a slot back or whose rate window has room. Returns the number freed. */
int throttle_expire(struct throttle_set *set, double now,
                    void (*freed)(void *ctx, const char *queue), void *ctx);

/* Frees every slot (FLUSH, or before slots are rebuilt). */
void throttle_clear(struct throttle_set *set);

/* The earliest time a slot times out or a full rate window opens again; 0 when none. */
double throttle_next_deadline(const struct throttle_set *set, double now);

/* The throttle's state for INFO and the web UI: limits, slots in use with their holders
 * (at most max_holders listed), counters. Owned by the caller. */
json_t *throttle_describe(const struct throttle *t, size_t max_holders);

#endif
