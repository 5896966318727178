/* Job tracking: a job pushed with custom.track = 1 (or true) has a tracking record that
 * follows its state (enqueued, working, success, failed, dead) and keeps the progress that
 * TRACK SET reports (percent, desc). TRACK SET can also extend the job's reservation. Records
 * live in SQLite (store/tracking.h) and change inside the transaction of the job change, so
 * they survive restarts and roll back with a failed iteration. A record is kept while its job
 * can still run. Once the job succeeded, died or was dropped, the record is removed
 * tracking_ttl_seconds after its last update. */
#ifndef FABRIK_ENT_TRACK_H
#define FABRIK_ENT_TRACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"
#include "store/tracking.h"

/* The states TRACK GET reports. They are stored as integers, so the values never change. */
enum track_state {
    TRACK_UNKNOWN = 0,
    TRACK_ENQUEUED = 1,   /* in a queue or the scheduled set */
    TRACK_WORKING = 2,    /* reserved by a worker */
    TRACK_SUCCESS = 3,    /* acknowledged */
    TRACK_FAILED = 4,     /* failed and waiting for a retry, or dropped without success */
    TRACK_DEAD = 5,
};

/* Maximum description length in bytes. A longer one is cut at a UTF-8 character boundary. */
#define TRACK_DESC_MAX 1000
/* How far ahead reserve_until may move a reservation: the longest reserve_for. */
#define TRACK_MAX_EXTENSION 86400.0

/* A parsed TRACK SET request. */
struct track_update {
    const char *jid;                       /* borrowed from the request document */
    int percent;                           /* -1 when absent or null */
    bool has_description;
    char description[TRACK_DESC_MAX + 1];
    double reserve_until;                  /* 0 when absent or null */
};

/* Parses a TRACK SET document. Returns 0, or -1 with the reply text in err. Pure. */
int track_parse_set(const json_t *doc, struct track_update *out, char *err, size_t errlen);

/* The reservation deadline that reserve_until requests, at most TRACK_MAX_EXTENSION after
 * now. Pure. */
double track_reserve_deadline(double reserve_until, double now);

/* Whether a job requests tracking: custom.track is 1 or true. Pure. */
bool track_wanted(const json_t *job);

/* The name of a state as TRACK GET reports it. */
const char *track_state_name(int state);

/* The TRACK GET document of a record, or of an unknown jid when t is NULL (owned). */
json_t *track_document(const char *jid, const struct store_tracking *t);

/* Push admission: sets JOB_EXT_TRACKED in *ext for a job that requests tracking. */
void track_admit(const json_t *job, int *ext);
/* Starts the record of a tracked job that was just stored. Returns 0 or -1. */
int track_job_pushed(struct engine *e, const char *jid, double now);
/* Moves a tracked job's record to the state that ev means. Returns 0 or -1. */
int track_job_event(struct engine *e, const struct store_job *job, enum job_event ev,
                    double now);

/* TRACK SET: stores the progress of a tracked job (nothing for a jid without a record) and
 * moves the reservation of jid's working job to reserve_until when that is later. Returns 0,
 * or -1 when the store failed. */
int track_set(struct engine *e, const struct track_update *u, double now);
/* TRACK GET: the document for jid (owned), or NULL when the store failed. */
json_t *track_get(struct engine *e, const char *jid, double now);
/* The record of jid, for the web UI. Returns 1 with out filled (owned), 0 when none, -1. */
int track_lookup(struct engine *e, const char *jid, double now, struct store_tracking *out);

/* Removes records that expired by now. Returns how many, or -1. */
int track_tick(struct engine *e, double now);
/* The next time track_tick has work. Returns 1 with *at, 0 when none, -1. */
int track_next_deadline(struct engine *e, double *at);

#endif
