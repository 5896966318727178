/* The worker registry: one record per wid, shared by every connection that presented that wid
 * in its HELLO. In memory only; a restart forgets workers, which re-register on reconnect. */
#ifndef FABRIK_WORKER_H
#define FABRIK_WORKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>

/* States only move forward: running -> quiet -> terminate. */
enum worker_state { WORKER_RUNNING = 0, WORKER_QUIET = 1, WORKER_TERMINATE = 2 };

struct worker {
    char *wid;
    char *hostname;
    int64_t pid;
    json_t *labels;      /* array of strings (owned) */
    enum worker_state state;
    double started;      /* first HELLO of this registration */
    double last_beat;    /* last BEAT, or the first HELLO */
    int64_t rss_kb;
    int connections;     /* open connections that carry this wid */
    UT_hash_handle hh;
};

struct worker_registry {
    struct worker *by_wid;
    int64_t reaped;      /* workers removed for missing heartbeats since start */
};

/* Finds a worker by wid, or NULL. */
struct worker *worker_find(struct worker_registry *reg, const char *wid);

/* Registers one more connection for wid, creating the record on first use. hostname and
 * labels may be NULL; labels is copied. Returns the record (owned by the registry). */
struct worker *worker_attach(struct worker_registry *reg, const char *wid, const char *hostname,
                             int64_t pid, const json_t *labels, double now);

/* Drops one connection of w; the record goes when its last connection closes. */
void worker_detach(struct worker_registry *reg, struct worker *w);

/* Removes w whatever its connections; the caller closes them first. */
void worker_remove(struct worker_registry *reg, struct worker *w);

/* Moves w to state if that is forward; returns whether it changed. */
bool worker_signal(struct worker *w, enum worker_state state);

/* Parses "quiet" or "terminate"; anything else returns -1. */
int worker_parse_state(const char *text, enum worker_state *out);
const char *worker_state_name(enum worker_state state);

int64_t worker_count(const struct worker_registry *reg);
void worker_registry_free(struct worker_registry *reg);

#endif
