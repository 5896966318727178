/* Batches: groups of jobs whose callback jobs run when every member has run (complete), when
 * every member succeeded (success), or when the first member dies (death). Every rule runs
 * inside the transaction of the job change that triggers it, and a callback job is inserted
 * in that same transaction, so a callback is enqueued exactly once even across a crash. */
#ifndef FABRIK_ENT_BATCH_H
#define FABRIK_ENT_BATCH_H

#include <jansson.h>

#include "engine/engine.h"
#include "store/batches.h"

/* "b-" and 22 random characters, plus the terminating NUL. */
#define BATCH_ID_BYTES 25
/* A batch never committed is removed this long after its creation, without callbacks. */
#define BATCH_OPEN_SECONDS 1800.0
#define BATCH_DESCRIPTION_MAX 1000

/* BATCH NEW: validates doc ({"description", "parent_bid", "complete", "success", "death"})
 * and stores a new open batch. Returns 0 with the bid; 1 with the reply text in err; -1 when
 * the store failed. */
int batch_new(struct engine *e, const json_t *doc, char bid[BATCH_ID_BYTES], char *err,
              size_t errlen);
/* Whether bid names a batch: 1, 0, or -1 on a store failure. */
int batch_exists(struct engine *e, const char *bid);
/* BATCH COMMIT: from now on the batch's callbacks may run; an empty batch runs them at once.
 * Committing again changes nothing. Returns 1, 0 when there is no such batch, -1. */
int batch_commit(struct engine *e, const char *bid);
/* The BATCH STATUS document (owned), or NULL with *rc 0 (no such batch) or -1. */
json_t *batch_status(struct engine *e, const char *bid, int *rc);
/* The status document of a loaded batch, with fabrik's extra fields when `full`. */
json_t *batch_describe(const struct store_batch *b, bool full);

/* Push admission: a job whose custom.bid names a batch joins it (*bid and JOB_EXT_BATCH in
 * *ext). Returns 0; 1 with the reply text in err (bad or unknown bid); -1. */
int batch_admit(struct engine *e, json_t *job, const char **bid, int *ext, char *err,
                size_t errlen);
/* Counts a stored job as a member of bid (once per jid). Returns 0 or -1. */
int batch_add_member(struct engine *e, const char *bid, const char *jid, double now);
/* Applies what happened to a member or callback job to its batch. Returns 0 or -1. */
int batch_job_event(struct engine *e, const struct store_job *job, enum job_event ev,
                    double now);

/* Removes batches never committed within BATCH_OPEN_SECONDS and finished batches older than
 * batch_ttl_days. Returns 1 when more are due than one call removes, 0, or -1. */
int batch_tick(struct engine *e, double now);
/* The next time batch_tick has work. Returns 1 with *at, 0 when none, -1. */
int batch_next_deadline(struct engine *e, double *at);

#endif
