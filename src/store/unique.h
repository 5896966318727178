/* Unique-job locks in SQLite: one row per lock key (a hash of job type, arguments and queue)
 * naming the job that holds it and when the lock lapses. The rules (who may take a lock, what
 * releases it) live in ent/unique.c; this file only reads and writes rows, inside the
 * iteration's transaction like every store write. */
#ifndef FABRIK_STORE_UNIQUE_H
#define FABRIK_STORE_UNIQUE_H

#include <stdbool.h>

#include "store/store.h"

/* Whether a lock on key is held at now (a row whose expiry is later than now). Returns 1 with
 * the holder's jid copied into holder (holder_len bytes, may be NULL), 0 when the key is free,
 * -1 on error. */
int store_unique_held(struct store *s, const char *key, double now, char *holder,
                      size_t holder_len);
/* Takes the lock on key for jid until expires_at, replacing a lapsed lock on the same key.
 * until_start marks a lock that FETCH releases. Returns 0 or -1. */
int store_unique_take(struct store *s, const char *key, const char *jid, bool until_start,
                      double expires_at);
/* Releases the locks held by jid; with only_until_start, only those FETCH releases.
 * Sets *released (may be NULL) to the number of locks removed. Returns 0 or -1. */
int store_unique_release(struct store *s, const char *jid, bool only_until_start,
                         int *released);
/* Removes up to max locks that lapsed at or before now. Returns the count, or -1. */
int store_unique_purge(struct store *s, double now, int max);
/* The earliest expiry of any lock. Returns 1 with *at set, 0 when there is none, -1. */
int store_unique_earliest(struct store *s, double *at);
/* Number of locks still held at now, for the web UI and tests. Returns 0 or -1. */
int store_unique_count(struct store *s, double now, int64_t *count);

#endif
