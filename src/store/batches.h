/* Batch rows and their members in SQLite. The rules (when a batch is complete, which callback
 * runs) live in ent/batch.c; this file only reads and writes rows, inside the iteration's
 * transaction like every store write. */
#ifndef FABRIK_STORE_BATCHES_H
#define FABRIK_STORE_BATCHES_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* The callbacks of a batch, in the order of their columns. */
enum batch_callback { BATCH_COMPLETE, BATCH_SUCCESS, BATCH_DEATH, BATCH_CALLBACKS };

/* The state of one member job; a member only moves to a higher state. */
enum batch_member_state {
    MEMBER_PENDING = 0,   /* has not run yet */
    MEMBER_FAILED = 1,    /* ran and failed; may run again */
    MEMBER_ENDED = 2,     /* gone without success: dead, discarded, deleted or expired */
    MEMBER_ACKED = 3,     /* succeeded */
};

struct store_batch {
    char *bid;
    char *parent_bid;            /* NULL for a top-level batch */
    char *description;
    double created_at, updated_at;
    double committed_at;         /* 0 while never committed */
    double finished_at;          /* when nothing could change it any more, 0 before */
    int64_t total;               /* member jobs */
    int64_t ran;                 /* members past MEMBER_PENDING */
    int64_t acked;               /* members in MEMBER_ACKED */
    int64_t ended;               /* members in MEMBER_ENDED */
    int64_t failed;              /* members that failed or were dropped at least once */
    int64_t died;                /* member deaths */
    int64_t children;            /* child batches */
    int64_t children_complete;   /* children whose complete stage is done */
    int64_t children_success;    /* children whose success stage is done */
    int64_t children_finished;   /* children with finished_at set */
    int64_t callbacks_live;      /* callback jobs that exist and are not dead */
    char *job[BATCH_CALLBACKS];  /* callback job JSON, NULL when not declared */
    char *jid[BATCH_CALLBACKS];  /* the callback job's jid */
    int st[BATCH_CALLBACKS];     /* 0 not enqueued, 1 enqueued, 2 succeeded */
    bool complete_done;          /* every member ran and the complete callback, if any, succeeded */
    bool success_done;           /* every member succeeded and the success callback, if any, too */
};

void store_batch_clear(struct store_batch *b);

/* Inserts a new batch row (all counters as given). Returns 0 or -1. */
int store_batch_insert(struct store *s, const struct store_batch *b);
/* Loads a batch. Returns 1 with out filled (owned), 0 when there is none, -1. */
int store_batch_get(struct store *s, const char *bid, struct store_batch *out);
/* Whether bid names a batch, without loading its row: 1, 0, or -1. */
int store_batch_exists(struct store *s, const char *bid);
/* Writes back every column that can change after creation. Returns 0 or -1. */
int store_batch_update(struct store *s, const struct store_batch *b);
/* Deletes a batch and its member rows. Returns 0 or -1. */
int store_batch_delete(struct store *s, const char *bid);

/* Adds jid as a member. Returns 1 when added, 0 when it already was one, -1. */
int store_member_add(struct store *s, const char *bid, const char *jid);
/* Reads a member's state and failed flag. Returns 1, 0 when jid is no member, -1. */
int store_member_get(struct store *s, const char *bid, const char *jid, int *state,
                     bool *failed);
int store_member_set(struct store *s, const char *bid, const char *jid, int state, bool failed);

/* Collects up to max bids of batches never committed and created before `before`. Returns
 * the count (bids owned by the caller), or -1. */
int store_batches_open_before(struct store *s, double before, char **bids, int max);
/* Collects up to max bids of batches finished before `before` that have no unfinished child.
 * Returns the count (bids owned by the caller), or -1. */
int store_batches_finished_before(struct store *s, double before, char **bids, int max);
/* The earliest created_at of a never committed batch, and the earliest finished_at of a
 * finished one. Each returns 1 with *at set, 0 when there is none, -1. */
int store_batches_earliest_open(struct store *s, double *at);
int store_batches_earliest_finished(struct store *s, double *at);

/* A page of batches for the web UI, newest first. status: NULL (all), "open", "pending"
 * (committed, not finished), "finished"; search: a substring of the bid or description. */
struct store_batch_query {
    const char *status;
    const char *search;
    const char *parent_bid;      /* only the children of this batch */
    int64_t offset, limit;
};
int store_batch_list(struct store *s, const struct store_batch_query *q,
                     int (*fn)(void *ctx, const struct store_batch *b), void *ctx);
int store_batch_count(struct store *s, const struct store_batch_query *q, int64_t *count);

/* Calls fn for a page of a batch's members in jid order, with the job row where the job still
 * exists (NULL when it is gone). Returns 0 or -1. */
int store_member_list(struct store *s, const char *bid, int64_t offset, int64_t limit,
                      int (*fn)(void *ctx, const char *jid, int state, bool failed,
                                const struct store_job *job),
                      void *ctx);
/* Finds the oldest job row with this jid that belongs to bid, a member or a callback job.
 * Returns 1 with *id, 0 when there is none, -1. */
int store_batch_job_id(struct store *s, const char *bid, const char *jid, int64_t *id);

#endif
