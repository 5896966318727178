/* Unique jobs: a job with custom.unique_for takes a lock keyed on its job type, arguments and
 * queue, and a second job with the same key is rejected while the lock is held. The lock lapses
 * unique_for seconds after the PUSH (after `at` for a scheduled job) and is released earlier
 * when the job succeeds, or when a worker fetches it with custom.unique_until = "start".
 * A job that can no longer run (dead, discarded, deleted, expired or its queue removed)
 * releases its lock too. Locks live in SQLite only (store/unique.h), so a rolled-back
 * iteration or a restart leaves nothing to rebuild. */
#ifndef FABRIK_ENT_UNIQUE_H
#define FABRIK_ENT_UNIQUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"

/* A SHA-256 digest as lowercase hex, plus the terminating NUL. */
#define UNIQUE_KEY_BYTES 65

/* The uniqueness options of a job: custom.unique_for and custom.unique_until. */
struct unique_spec {
    bool wanted;                 /* custom.unique_for is present */
    bool until_start;            /* unique_until = "start": FETCH releases the lock */
    double expires_at;           /* when the lock lapses */
    char key[UNIQUE_KEY_BYTES];
};

/* Reads the unique options of a validated job. at is the job's due time (0 when it runs now).
 * Returns 0 with out filled (out->wanted false when the job has no unique_for), or -1 with the
 * reply text (without "-ERR ") in err. Pure: no I/O. */
int unique_parse(const json_t *job, double now, double at, struct unique_spec *out, char *err,
                 size_t errlen);

/* The lock key of a job: SHA-256 over the compact JSON array [queue, jobtype, args] with
 * object keys sorted, so key order inside the arguments does not matter but every value does
 * (1 and 1.0 differ). Returns 0, or -1 when the job cannot be encoded. */
int unique_key(const json_t *job, char key[UNIQUE_KEY_BYTES]);

/* Push admission: checks and takes the lock of a job with unique_for and sets JOB_EXT_UNIQUE
 * in *ext. Returns 0 when admitted; 1 with the reply text in err when an option is invalid;
 * ENGINE_PUSH_NOT_UNIQUE when another job holds the lock; -1 when the store failed. */
int unique_admit(struct engine *e, const json_t *job, const struct job_info *info, double now,
                 int *ext, char *err, size_t errlen);

/* Releases the lock of a job that started (unique_until = "start"), succeeded or can no
 * longer run. Returns 0 or -1. */
int unique_job_event(struct engine *e, const struct store_job *job, enum job_event ev,
                     double now);

/* Removes locks that lapsed by now. Returns how many, or -1. */
int unique_tick(struct engine *e, double now);
/* The next time unique_tick has work. Returns 1 with *at, 0 when none, -1. */
int unique_next_deadline(struct engine *e, double *at);

#endif
