/* The server: one event loop that owns every connection, timer and the storage transaction
 * of the current iteration. Command handlers (proto/cmd.c) see connections through this header,
 * which includes no libevent header; only the files in src/net touch libevent.
 *
 * One loop iteration: libevent runs every ready callback (commands append replies to their
 * connection's buffer and write into one open transaction), then server_end_iteration wakes
 * blocked fetchers, commits once, and only then hands the replies to the sockets. */
#ifndef FABRIK_SERVER_H
#define FABRIK_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>

#include "config/config.h"
#include "core/worker.h"
#include "engine/engine.h"
#include "proto/auth.h"
#include "util/buf.h"

struct bufferevent;
struct event;
struct event_base;
struct evconnlistener;
struct server;
struct web;
struct statsd;

/* Buckets (upper bounds in seconds) of the commit-time histogram behind /metrics. */
#define COMMIT_BUCKETS 12
extern const double commit_bucket_bounds[COMMIT_BUCKETS];

enum conn_state {
    CONN_HANDSHAKE,   /* greeting sent, waiting for HELLO */
    CONN_AUTH_WAIT,   /* HELLO received, waiting for the password hash from the hasher thread */
    CONN_READY,
    CONN_PARKED,      /* inside a blocking FETCH */
    CONN_DRAINING,    /* shutting down: pending replies are sent, no command is read */
    CONN_CLOSED,      /* freed at the end of the iteration */
};

/* A span of the output buffer written by one command; needs_commit marks a reply that
 * acknowledges a write, which becomes an error when the iteration's commit fails. */
struct reply_span {
    size_t start;
    bool needs_commit;
};

struct conn {
    uint64_t id;
    struct server *srv;
    struct bufferevent *bev;
    char peer[64];
    enum conn_state state;
    bool counted;             /* counted among open connections past the handshake */
    bool close_after_flush;
    bool tls;                 /* replies go through OpenSSL, never straight to the socket */
    int bad_commands;         /* malformed commands so far, to rate-limit their log lines */
    struct worker *worker;    /* NULL for producers */

    /* Password challenge. */
    char salt[AUTH_SALT_HEX];
    int iterations;
    char expected[AUTH_HASH_HEX];
    bool expected_ready;
    char *pending_hello;      /* HELLO line held until the hash is ready */
    struct event *handshake_timer;

    /* Replies of this iteration. */
    struct buf out;
    struct reply_span *spans;
    size_t nspans, capspans;
    bool dirty;
    struct conn *dirty_next;

    /* A line over max_line_bytes is skipped up to its end; this remembers that. */
    bool discarding;
    bool discard_is_push;
    /* Bytes at the start of the input already searched for an end of line, so a long line
     * arriving in many reads is searched once, not once per read. */
    size_t scanned;

    /* Blocking FETCH. */
    char **park_queues;
    int npark;
    struct event *park_timer;
    bool resume_input;        /* process buffered input again next iteration */

    struct conn *next, *prev; /* every connection */
    UT_hash_handle hh;        /* by id, for hasher results */
};

/* Connections blocked in FETCH on one queue, oldest first. */
struct waitlist {
    char *queue;
    struct conn **conns;
    size_t n, cap;
    UT_hash_handle hh;
};

struct server {
    struct config cfg;
    struct store *store;
    struct engine engine;
    struct worker_registry workers;

    struct event_base *base;
    struct evconnlistener *listener;
    void *tls_ctx;            /* SSL_CTX for new connections, NULL without TLS */
    struct event *signal_events[4];
    struct event *deadline_timer;
    struct event *housekeeping_timer;
    struct event *hash_done_event;
    struct hasher *hasher;

    struct conn *conns;       /* list of every connection */
    struct conn *by_id;       /* hash by id */
    struct conn *dirty;       /* connections with replies to flush */
    struct conn *closed;      /* connections to free at the end of the iteration */
    struct conn **resumed;    /* unparked connections whose buffered input waits */
    size_t nresumed, capresumed;
    struct waitlist *waitlists;
    char **touched;           /* queues that gained jobs this iteration */
    size_t ntouched, captouched;

    uint64_t next_conn_id;
    int open_connections;     /* past the handshake */
    uint64_t command_count;
    double started;
    bool tx_failed;           /* a write failed this iteration: roll it back */
    char tx_error[256];
    bool stopping;

    struct web *web;          /* the HTTP server, NULL when the web port is disabled */
    uint64_t commit_buckets[COMMIT_BUCKETS + 1];  /* last slot: slower than every bound */
    uint64_t commit_count;
    double commit_seconds;

    struct statsd *statsd;        /* the metrics exporter, NULL when statsd is not configured */
    struct event *statsd_timer;   /* flushes metrics every 100 ms while statsd is configured */
};

/* Runs the server until SIGTERM or SIGINT. cfg is moved into the server (zeroed on return).
 * Returns the process exit status. */
int server_run(struct config *cfg);

/* Starts a reply on c and returns the buffer to append it to. needs_commit: the reply
 * acknowledges a write of this iteration (see struct reply_span). */
struct buf *conn_reply(struct conn *c, bool needs_commit);

/* Marks the iteration's transaction as failed; its acknowledgements will become errors. */
void server_fail_tx(struct server *s, const char *why);

/* Parks c in a blocking FETCH on queues (copied) for timeout seconds; with no queues it
 * only waits, as a quiet worker does. */
void conn_park(struct conn *c, char *const *queues, int n, double timeout);

/* Closes c now (END) or after its pending replies are sent. */
void conn_close(struct conn *c);
void conn_close_after_flush(struct conn *c);

/* Runs every timer that is due at the engine's current clock (DEBUG CLOCK uses it). */
int server_run_timers(struct server *s);

/* The "server" part of INFO, and the whole INFO document (both owned by the caller). */
json_t *server_info(struct server *s);
json_t *server_info_document(struct server *s);

/* Commits the iteration's open transaction now, for an HTTP request that must not answer
 * before its change is on disk. Returns 0, or -1 after which the iteration counts as failed. */
int server_commit_now(struct server *s);

/* Moves one worker (or every worker when wid is "*") to state; returns how many changed. */
int server_signal_workers(struct server *s, const char *wid, enum worker_state state);

/* The handshake and command dispatch (proto/cmd.c). */
void cmd_hello(struct server *s, struct conn *c, const char *line, size_t len);
void cmd_dispatch(struct server *s, struct conn *c, const char *line, size_t len);

#endif
