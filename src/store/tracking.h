/* Job tracking rows in SQLite: the last known state, progress and description of each tracked
 * job, keyed by jid, and the reservation extension that TRACK SET requests. The rules live in
 * ent/track.c; this file only reads and writes rows inside the iteration's transaction. */
#ifndef FABRIK_STORE_TRACKING_H
#define FABRIK_STORE_TRACKING_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* One tracking row. percent is -1 and description NULL when never set. */
struct store_tracking {
    char *jid;
    int state;             /* enum track_state */
    int percent;
    char *description;
    double updated_at;
    double expires_at;     /* 0 while the job can still run */
};

void store_tracking_clear(struct store_tracking *t);

/* Loads jid's row if it has not expired at now. Returns 1 with out filled (owned), 0 when
 * there is none, -1 on error. */
int store_tracking_get(struct store *s, const char *jid, double now, struct store_tracking *out);
/* Inserts or replaces jid's state, updated_at and expires_at. With reset_progress the percent
 * and description are cleared (a new job); otherwise they are kept. Returns 0 or -1. */
int store_tracking_put_state(struct store *s, const char *jid, int state, double updated_at,
                             double expires_at, bool reset_progress);
/* Writes the progress of an existing row: percent < 0 and description NULL keep the stored
 * value. Returns 0 or -1. */
int store_tracking_set_progress(struct store *s, const char *jid, int percent,
                                const char *description, double updated_at, double expires_at);
/* Removes up to max rows that expired at or before now. Returns the count, or -1. */
int store_tracking_purge(struct store *s, double now, int max);
/* The earliest expiry of a row. Returns 1 with *at set, 0 when none expires, -1. */
int store_tracking_earliest(struct store *s, double *at);

/* Moves the reservation deadline of jid's working job to until when that is later. Returns 1
 * when a deadline moved, 0 when no working job has that jid or its deadline is already later,
 * -1 on error. */
int store_extend_reservation(struct store *s, const char *jid, double until);

#endif
