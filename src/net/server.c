/* The event loop: listener, connections, line framing, group commit and timers. */
#include "net/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ent/statsd.h"
#include "net/hasher.h"
#include "web/web.h"
#include "proto/proto.h"
#include "util/log.h"
#include "util/timefmt.h"

#define HANDSHAKE_SECONDS 2.0
#define REAP_AFTER_SECONDS 60.0
#define HOUSEKEEPING_SECONDS 1.0
/* At shutdown, how long to keep sending replies that were already committed. */
#define DRAIN_SECONDS 2
/* When a store error breaks the timer work, try again after this long. */
#define TIMER_RETRY_SECONDS 1.0

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void process_input(struct conn *c);

/* ---- replies ------------------------------------------------------------------------- */

static void mark_dirty(struct conn *c) {
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = c->srv->dirty;
        c->srv->dirty = c;
    }
}

struct buf *conn_reply(struct conn *c, bool needs_commit) {
    if (c->nspans == c->capspans) {
        c->capspans = c->capspans ? c->capspans * 2 : 4;
        c->spans = xrealloc(c->spans, c->capspans * sizeof *c->spans);
    }
    c->spans[c->nspans++] = (struct reply_span){.start = c->out.len, .needs_commit = needs_commit};
    mark_dirty(c);
    return &c->out;
}

void server_fail_tx(struct server *s, const char *why) {
    if (!s->tx_failed)
        snprintf(s->tx_error, sizeof s->tx_error, "%s", why);
    s->tx_failed = true;
}

/* After a failed commit, replaces each acknowledgement of this iteration with an error. */
static void fail_acknowledgements(struct conn *c, const char *why) {
    struct buf fresh = {0};
    for (size_t i = 0; i < c->nspans; i++) {
        size_t start = c->spans[i].start;
        size_t end = i + 1 < c->nspans ? c->spans[i + 1].start : c->out.len;
        if (c->spans[i].needs_commit)
            resp_errorf(&fresh, "storage failure, nothing was changed: %s", why);
        else
            buf_append(&fresh, c->out.data + start, end - start);
    }
    buf_free(&c->out);
    c->out = fresh;
}

/* ---- connection lifetime ------------------------------------------------------------- */

/* Schedules c's buffered input for the next iteration (after a blocking FETCH or a delayed
 * handshake, pipelined commands may be waiting). */
static void conn_resume_later(struct conn *c) {
    struct server *s = c->srv;
    if (c->resume_input)
        return;
    c->resume_input = true;
    if (s->nresumed == s->capresumed) {
        s->capresumed = s->capresumed ? s->capresumed * 2 : 16;
        s->resumed = xrealloc(s->resumed, s->capresumed * sizeof *s->resumed);
    }
    s->resumed[s->nresumed++] = c;
}

static void waitlist_remove(struct server *s, const char *queue, struct conn *c) {
    struct waitlist *w = NULL;
    HASH_FIND_STR(s->waitlists, queue, w);
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        if (w->conns[i] == c) {
            memmove(&w->conns[i], &w->conns[i + 1], (w->n - i - 1) * sizeof *w->conns);
            w->n--;
            break;
        }
    }
    if (w->n == 0) {
        HASH_DEL(s->waitlists, w);
        free(w->queue);
        free(w->conns);
        free(w);
    }
}

/* Ends a blocking FETCH: leaves every wait list and stops the timer. */
static void conn_unpark(struct conn *c) {
    for (int i = 0; i < c->npark; i++) {
        waitlist_remove(c->srv, c->park_queues[i], c);
        free(c->park_queues[i]);
    }
    free(c->park_queues);
    c->park_queues = NULL;
    c->npark = 0;
    if (c->park_timer)
        event_del(c->park_timer);
    if (c->state == CONN_PARKED) {
        c->state = CONN_READY;
        conn_resume_later(c);
    }
}

void conn_close(struct conn *c) {
    if (c->state == CONN_CLOSED)
        return;
    struct server *s = c->srv;
    conn_unpark(c);
    c->state = CONN_CLOSED;
    if (c->worker) {
        worker_detach(&s->workers, c->worker);
        c->worker = NULL;
    }
    if (c->counted) {
        s->open_connections--;
        c->counted = false;
    }
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
    if (c->handshake_timer)
        event_del(c->handshake_timer);
    HASH_DEL(s->by_id, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = s->closed;
    s->closed = c;
    log_debug("conn_closed", "conn=%llu peer=%s", (unsigned long long)c->id, c->peer);
}

static void conn_free(struct conn *c) {
    bufferevent_free(c->bev);
    if (c->handshake_timer)
        event_free(c->handshake_timer);
    if (c->park_timer)
        event_free(c->park_timer);
    free(c->pending_hello);
    free(c->spans);
    buf_free(&c->out);
    free(c);
}

static void close_when_drained(struct bufferevent *bev, void *arg) {
    (void)bev;
    conn_close(arg);
}

void conn_close_after_flush(struct conn *c) {
    c->close_after_flush = true;
    mark_dirty(c);
}

/* ---- blocking FETCH ------------------------------------------------------------------ */

static void park_timeout_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->state != CONN_PARKED)
        return;
    conn_unpark(c);
    resp_null(conn_reply(c, false));
}

void conn_park(struct conn *c, char *const *queues, int n, double timeout) {
    struct server *s = c->srv;
    c->state = CONN_PARKED;
    c->park_queues = n ? xcalloc((size_t)n, sizeof *c->park_queues) : NULL;
    for (int i = 0; i < n; i++) {
        c->park_queues[c->npark++] = xstrdup(queues[i]);
        struct waitlist *w = NULL;
        HASH_FIND_STR(s->waitlists, queues[i], w);
        if (!w) {
            w = xcalloc(1, sizeof *w);
            w->queue = xstrdup(queues[i]);
            HASH_ADD_KEYPTR(hh, s->waitlists, w->queue, strlen(w->queue), w);
        }
        bool present = false;
        for (size_t j = 0; j < w->n; j++)
            present |= w->conns[j] == c;
        if (present)
            continue;
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 8;
            w->conns = xrealloc(w->conns, w->cap * sizeof *w->conns);
        }
        w->conns[w->n++] = c;
    }
    if (!c->park_timer)
        c->park_timer = evtimer_new(s->base, park_timeout_cb, c);
    struct timeval tv = {.tv_sec = (time_t)timeout,
                         .tv_usec = (suseconds_t)((timeout - floor(timeout)) * 1e6)};
    evtimer_add(c->park_timer, &tv);
}

static int waiting_cb(void *ctx, const char *queue) {
    struct server *s = ctx;
    struct waitlist *w = NULL;
    HASH_FIND_STR(s->waitlists, queue, w);
    return w ? (int)w->n : 0;
}

static void touched_cb(void *ctx, const char *queue) {
    struct server *s = ctx;
    struct waitlist *w = NULL;
    HASH_FIND_STR(s->waitlists, queue, w);
    if (!w)
        return;
    for (size_t i = 0; i < s->ntouched; i++) {
        if (strcmp(s->touched[i], queue) == 0)
            return;
    }
    if (s->ntouched == s->captouched) {
        s->captouched = s->captouched ? s->captouched * 2 : 8;
        s->touched = xrealloc(s->touched, s->captouched * sizeof *s->touched);
    }
    s->touched[s->ntouched++] = xstrdup(queue);
}

/* Hands jobs from queues that gained some this iteration to the fetchers blocked on them,
 * oldest fetcher first. Each fetcher takes from its own list in its own order. A fetcher that
 * gets nothing (its worker's throttle slots are full, say) does not stop the ones behind it. */
static void wake_fetchers(struct server *s) {
    for (size_t i = 0; i < s->ntouched && !s->tx_failed; i++) {
        struct waitlist *w = NULL;
        HASH_FIND_STR(s->waitlists, s->touched[i], w);
        if (!w || w->n == 0)
            continue;
        /* Unparking edits the wait list, so walk a copy. */
        size_t n = w->n;
        struct conn **waiting = xmalloc(n * sizeof *waiting);
        memcpy(waiting, w->conns, n * sizeof *waiting);
        for (size_t k = 0; k < n && !s->tx_failed; k++) {
            struct conn *c = waiting[k];
            if (engine_queue_size(&s->engine, s->touched[i]) <= 0)
                break;
            if (c->state != CONN_PARKED)
                continue;
            struct store_job job = {0};
            int rc = engine_fetch(&s->engine, c->park_queues, c->npark,
                                  c->worker ? c->worker->wid : NULL, &job);
            if (rc < 0) {
                server_fail_tx(s, store_error(s->store));
            } else if (rc > 0) {
                conn_unpark(c);
                resp_bulk(conn_reply(c, true), job.payload, strlen(job.payload));
                store_job_clear(&job);
            }
        }
        free(waiting);
    }
    for (size_t i = 0; i < s->ntouched; i++)
        free(s->touched[i]);
    s->ntouched = 0;
}

/* ---- iteration end: commit, then replies ---------------------------------------------- */

const double commit_bucket_bounds[COMMIT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                     0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

/* Commits the open transaction and records how long it took. */
static int timed_commit(struct server *s) {
    if (!store_in_tx(s->store))
        return 0;
    double start = time_mono();
    int rc = engine_commit(&s->engine);
    double took = time_mono() - start;
    int bucket = 0;
    while (bucket < COMMIT_BUCKETS && took > commit_bucket_bounds[bucket])
        bucket++;
    s->commit_buckets[bucket]++;
    s->commit_count++;
    s->commit_seconds += took;
    return rc;
}

int server_commit_now(struct server *s) {
    if (s->tx_failed)
        return -1;
    if (timed_commit(s) != 0) {
        server_fail_tx(s, store_error(s->store));
        return -1;
    }
    return 0;
}

int server_signal_workers(struct server *s, const char *wid, enum worker_state state) {
    int changed = 0;
    struct worker *w, *tmp;
    HASH_ITER(hh, s->workers.by_wid, w, tmp) {
        if (strcmp(wid, "*") != 0 && strcmp(wid, w->wid) != 0)
            continue;
        if (worker_signal(w, state)) {
            changed++;
            log_info("worker_state", "wid=%s state=%s source=web", w->wid,
                     worker_state_name(w->state));
        }
    }
    return changed;
}

/* Hands a connection's replies to the kernel. A plain socket with nothing queued gets them
 * at once with one send(), which saves the two epoll_ctl calls a bufferevent write costs;
 * whatever the socket does not take, and every TLS reply, goes through the bufferevent. */
static void write_replies(struct conn *c) {
    const char *data = c->out.data;
    size_t len = c->out.len;
    struct evbuffer *pending = bufferevent_get_output(c->bev);
    if (!c->tls && evbuffer_get_length(pending) == 0) {
        ssize_t n = send(bufferevent_getfd(c->bev), data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
    }
    if (len > 0)
        bufferevent_write(c->bev, data, len);
}

static void flush_replies(struct server *s) {
    struct conn *c = s->dirty;
    s->dirty = NULL;
    while (c) {
        struct conn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state != CONN_CLOSED) {
            if (c->out.len > 0)
                write_replies(c);
            if (c->close_after_flush) {
                bufferevent_disable(c->bev, EV_READ);
                if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
                    conn_close(c);
                else
                    bufferevent_setcb(c->bev, NULL, close_when_drained, conn_event_cb, c);
            }
        }
        buf_reset(&c->out);
        c->nspans = 0;
        c->dirty = false;
        c = next;
    }
}

static void arm_deadline(struct server *s) {
    struct engine *e = &s->engine;
    if (!e->deadline_changed)
        return;
    e->deadline_changed = false;
    evtimer_del(s->deadline_timer);
    if (e->next_deadline == 0)
        return;
    double delay = e->next_deadline - engine_now(e);
    if (delay < 0)
        delay = 0;
    if (delay > 3600)
        delay = 3600;   /* re-evaluate at least hourly, for the dead-set trim */
    struct timeval tv = {.tv_sec = (time_t)delay,
                         .tv_usec = (suseconds_t)((delay - floor(delay)) * 1e6) + 1000};
    evtimer_add(s->deadline_timer, &tv);
}

static void end_iteration(struct server *s) {
    if (!s->tx_failed)
        wake_fetchers(s);
    else
        s->ntouched = 0;

    if (s->tx_failed || timed_commit(s) != 0) {
        const char *why = s->tx_failed ? s->tx_error : store_error(s->store);
        if (s->tx_failed)
            engine_abort(&s->engine);
        log_error("commit_failed", "error=\"%s\"", why);
        for (struct conn *c = s->dirty; c; c = c->dirty_next)
            fail_acknowledgements(c, why);
        s->tx_failed = false;
        s->engine.next_deadline = engine_now(&s->engine) + TIMER_RETRY_SECONDS;
        s->engine.deadline_changed = true;
    }
    flush_replies(s);
    arm_deadline(s);

    for (size_t i = 0; i < s->nresumed; i++) {
        struct conn *c = s->resumed[i];
        c->resume_input = false;
        if (c->state == CONN_READY) {
            bufferevent_enable(c->bev, EV_READ);
            bufferevent_trigger(c->bev, EV_READ,
                                BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
        }
    }
    s->nresumed = 0;
    while (s->closed) {
        struct conn *c = s->closed;
        s->closed = c->next;
        conn_free(c);
    }
}

/* ---- statsd export --------------------------------------------------------------------- */

/* Sends the statsd gauges when they are due on the server clock, then every pending metric. */
static void statsd_export(struct server *s) {
    if (!s->statsd)
        return;
    struct statsd_server_figures figures = {
        .connections = s->open_connections,
        .workers = worker_count(&s->workers),
        .commands = s->command_count,
        .uptime_seconds = time_wall() - s->started,
    };
    statsd_report(s->statsd, &s->engine, &figures, engine_now(&s->engine));
}

static void statsd_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    statsd_export(arg);
}

/* Makes exporter the server's statsd exporter (NULL turns statsd off; at start-up it is already
 * s->statsd): the engine reports jobs to it, the previous one sends what it still has, and
 * the flush timer runs only while there is an exporter. */
static void statsd_install(struct server *s, struct statsd *exporter) {
    if (s->statsd != exporter) {
        statsd_adopt(exporter, s->statsd);
        statsd_close(s->statsd);
        s->statsd = exporter;
    }
    s->engine.on_pushed = exporter ? statsd_on_pushed : NULL;
    s->engine.on_finished = exporter ? statsd_on_finished : NULL;
    s->engine.observer_ctx = exporter;
    if (!exporter) {
        if (s->statsd_timer)
            evtimer_del(s->statsd_timer);
        return;
    }
    statsd_log_config(exporter);
    if (!s->statsd_timer)
        s->statsd_timer = event_new(s->base, -1, EV_PERSIST, statsd_timer_cb, s);
    struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)(STATSD_FLUSH_SECONDS * 1e6)};
    evtimer_add(s->statsd_timer, &tv);
}

/* Applies the [statsd] table of the reloaded config, which reload_config has checked. Only
 * resolving the location can still fail, and then the previous exporter stays. */
static void statsd_reload(struct server *s) {
    struct statsd *exporter = NULL;
    char err[1024];
    if (statsd_setup(&exporter, s->cfg.document, err, sizeof err) != 0) {
        log_error("reload_failed", "error=\"%s; keeping the previous statsd settings\"", err);
        return;
    }
    if (!exporter && s->statsd)
        log_info("statsd_disabled", "%s", "");
    statsd_install(s, exporter);
}

/* ---- timers --------------------------------------------------------------------------- */

static void reap_workers(struct server *s, double now) {
    struct worker *w, *tmp;
    HASH_ITER(hh, s->workers.by_wid, w, tmp) {
        if (now - w->last_beat < REAP_AFTER_SECONDS)
            continue;
        log_info("worker_reaped", "wid=%s hostname=%s silent_seconds=%.0f", w->wid, w->hostname,
                 now - w->last_beat);
        /* Closing the last connection frees the record, so detach them all first. */
        w->connections++;
        for (struct conn *c = s->conns, *next; c; c = next) {
            next = c->next;
            if (c->worker == w) {
                c->worker = NULL;
                w->connections--;
                conn_close(c);
            }
        }
        worker_remove(&s->workers, w);
        s->workers.reaped++;
    }
}

int server_run_timers(struct server *s) {
    double now = engine_now(&s->engine);
    reap_workers(s, now);
    /* One tick moves at most a batch per set; repeat while work stays due, so the caller
     * sees every due timer done (bounded, to keep the loop responsive). */
    for (int round = 0; round < 1000; round++) {
        if (engine_tick(&s->engine, now) != 0) {
            server_fail_tx(s, store_error(s->store));
            return -1;
        }
        double next = s->engine.next_deadline;
        if (next == 0 || next > now)
            break;
    }
    /* The statsd gauges follow the server clock, so DEBUG CLOCK sends them when due. */
    statsd_export(s);
    return 0;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct server *s = arg;
    if (engine_tick(&s->engine, engine_now(&s->engine)) != 0)
        server_fail_tx(s, store_error(s->store));
    s->engine.deadline_changed = true;
}

static void housekeeping_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct server *s = arg;
    reap_workers(s, engine_now(&s->engine));
}

/* ---- input ---------------------------------------------------------------------------- */

static void reply_too_long(struct conn *c, bool is_push) {
    size_t limit = c->srv->cfg.max_line_bytes;
    if (is_push)
        resp_errorf(conn_reply(c, false),
                    "job too large: the command line exceeds max_line_bytes (%zu bytes); "
                    "send smaller jobs or raise [fabrik] max_line_bytes",
                    limit);
    else
        resp_errorf(conn_reply(c, false),
                    "command line too long: it exceeds max_line_bytes (%zu bytes)", limit);
}

static bool starts_with_push(struct evbuffer *in) {
    unsigned char head[5] = {0};
    evbuffer_copyout(in, head, sizeof head);
    return memcmp(head, "PUSH", 4) == 0 && (head[4] == ' ' || head[4] == 'B');
}

/* Handles one complete line of len bytes (LF removed). */
static void handle_line(struct conn *c, const char *line, size_t len) {
    if (c->state == CONN_HANDSHAKE)
        cmd_hello(c->srv, c, line, len);
    else
        cmd_dispatch(c->srv, c, line, len);
}

static void process_input(struct conn *c) {
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t max = c->srv->cfg.max_line_bytes;
    while (c->state == CONN_READY || c->state == CONN_HANDSHAKE) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            break;
        size_t eol_len = 0;
        struct evbuffer_ptr from;
        bool resume = c->scanned > 0 && c->scanned < avail &&
                      evbuffer_ptr_set(in, &from, c->scanned, EVBUFFER_PTR_SET) == 0;
        struct evbuffer_ptr eol =
            evbuffer_search_eol(in, resume ? &from : NULL, &eol_len, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
            c->scanned = avail;
            /* No end of line yet: an over-long line is dropped as it arrives, so it never
             * occupies more than max_line_bytes plus one read. */
            if (c->discarding || avail > max) {
                if (!c->discarding) {
                    c->discarding = true;
                    c->discard_is_push = starts_with_push(in);
                }
                evbuffer_drain(in, avail);
                c->scanned = 0;
            }
            break;
        }
        c->scanned = 0;
        size_t n = (size_t)eol.pos;
        if (c->discarding || n > max) {
            bool is_push = c->discarding ? c->discard_is_push : starts_with_push(in);
            evbuffer_drain(in, n + eol_len);
            c->discarding = false;
            if (c->state == CONN_HANDSHAKE) {
                conn_close(c);
                return;
            }
            reply_too_long(c, is_push);
            continue;
        }
        char *line = (char *)evbuffer_pullup(in, (ev_ssize_t)(n + eol_len));
        handle_line(c, line, n);
        evbuffer_drain(in, n + eol_len);
    }
    /* A parked connection keeps reading, so a disconnect is noticed, but stops buffering
     * beyond one line. */
    if (c->state == CONN_PARKED && evbuffer_get_length(in) > max)
        bufferevent_disable(c->bev, EV_READ);
}

static void conn_read_cb(struct bufferevent *bev, void *arg) {
    (void)bev;
    struct conn *c = arg;
    if (c->state == CONN_CLOSED)
        return;
    process_input(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    struct conn *c = arg;
    if (what & BEV_EVENT_ERROR) {
        unsigned long ssl_err = bufferevent_get_openssl_error(c->bev);
        if (ssl_err)
            log_debug("tls_error", "conn=%llu peer=%s error=\"%s\"",
                      (unsigned long long)c->id, c->peer, ERR_reason_error_string(ssl_err));
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_close(c);
}

static void handshake_timeout_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->state == CONN_HANDSHAKE || c->state == CONN_AUTH_WAIT) {
        log_info("handshake_timeout", "conn=%llu peer=%s", (unsigned long long)c->id, c->peer);
        conn_close(c);
    }
}

static void hash_done(void *ctx, uint64_t conn_id, const char *hash_hex) {
    struct server *s = ctx;
    struct conn *c = NULL;
    HASH_FIND(hh, s->by_id, &conn_id, sizeof conn_id, c);
    if (!c)
        return;
    memcpy(c->expected, hash_hex, AUTH_HASH_HEX);
    c->expected_ready = true;
    if (c->state == CONN_AUTH_WAIT && c->pending_hello) {
        char *line = c->pending_hello;
        c->pending_hello = NULL;
        c->state = CONN_HANDSHAKE;
        cmd_hello(s, c, line, strlen(line));
        free(line);
        if (c->state == CONN_READY)
            conn_resume_later(c);
    }
}

/* ---- accept --------------------------------------------------------------------------- */

static void send_greeting(struct conn *c) {
    struct server *s = c->srv;
    struct buf *out = conn_reply(c, false);
    if (!s->cfg.password) {
        resp_simple(out, "HI {\"v\":2}");
        return;
    }
    if (auth_challenge(c->salt, &c->iterations) != 0) {
        log_error("random_failed", "conn=%llu", (unsigned long long)c->id);
        conn_close(c);
        return;
    }
    char text[96];
    snprintf(text, sizeof text, "HI {\"v\":2,\"i\":%d,\"s\":\"%s\"}", c->iterations, c->salt);
    resp_simple(out, text);
    hasher_submit(s->hasher, c->id, s->cfg.password, c->salt, c->iterations);
}

static void accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
                      struct sockaddr *addr, int socklen, void *arg) {
    (void)listener;
    struct server *s = arg;
    if (s->stopping) {
        evutil_closesocket(fd);
        return;
    }
    struct bufferevent *bev;
    if (s->tls_ctx) {
        SSL *ssl = SSL_new(s->tls_ctx);
        bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
    } else {
        bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    struct conn *c = xcalloc(1, sizeof *c);
    c->tls = s->tls_ctx != NULL;
    c->id = ++s->next_conn_id;
    c->srv = s;
    c->bev = bev;
    c->state = CONN_HANDSHAKE;
    /* Numeric host and port always fit: at most 45 characters of IPv6 text and 5 digits. */
    char host[48] = "?", port[8] = "?";
    getnameinfo(addr, (socklen_t)socklen, host, sizeof host, port, sizeof port,
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(c->peer, sizeof c->peer, "%.47s:%.7s", host, port);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    HASH_ADD(hh, s->by_id, id, sizeof c->id, c);

    evutil_make_socket_nonblocking(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_setcb(bev, conn_read_cb, NULL, conn_event_cb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    c->handshake_timer = evtimer_new(s->base, handshake_timeout_cb, c);
    struct timeval tv = {.tv_sec = (time_t)HANDSHAKE_SECONDS};
    evtimer_add(c->handshake_timer, &tv);
    log_debug("conn_opened", "conn=%llu peer=%s", (unsigned long long)c->id, c->peer);
    send_greeting(c);
}

static void accept_error_cb(struct evconnlistener *listener, void *arg) {
    (void)listener;
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("accept_failed", "error=\"%s\"", evutil_socket_error_to_string(err));
}

/* ---- start-up and signals ------------------------------------------------------------- */

static void *tls_context_new(const struct config *cfg) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        log_error("tls_config_failed", "cert=%s key=%s error=\"%s\"", cfg->tls_cert_path,
                  cfg->tls_key_path, ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Opens the FWP listener on a "host:port" binding (empty host: every interface). */
static int listen_on(struct server *s, const char *binding, char *err, size_t errlen) {
    char host[256], port[16];
    int port_number;
    if (config_parse_binding(binding, host, sizeof host, &port_number) != 0) {
        snprintf(err, errlen, "invalid binding \"%s\": expected host:port", binding);
        return -1;
    }
    snprintf(port, sizeof port, "%d", port_number);
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                    .ai_flags = EVUTIL_AI_PASSIVE};
    struct evutil_addrinfo *ai = NULL;
    int rc = evutil_getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "cannot resolve binding \"%s\": %s", binding,
                 evutil_gai_strerror(rc));
        return -1;
    }
    s->listener = evconnlistener_new_bind(s->base, accept_cb, s,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                          ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (!s->listener) {
        snprintf(err, errlen, "cannot listen on %s: %s", binding, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(s->listener, accept_error_cb);
    return 0;
}

static void reload_config(struct server *s) {
    struct config fresh = {0};
    char err[1024];
    char quoted[4 * 400 + 1];
    if (config_reload(&s->cfg, &fresh, err, sizeof err) != 0) {
        log_error("reload_failed", "error=\"%s\"", log_sample(quoted, err, strlen(err), 400));
        config_free(&fresh);
        return;
    }
    if (engine_check_config(&s->engine, fresh.document, err, sizeof err) != 0) {
        log_error("reload_failed", "error=\"%s\"", log_sample(quoted, err, strlen(err), 400));
        config_free(&fresh);
        return;
    }
    if (statsd_check(fresh.document, err, sizeof err) != 0) {
        log_error("reload_failed", "error=\"%s\"", log_sample(quoted, err, strlen(err), 400));
        config_free(&fresh);
        return;
    }
    void *tls = NULL;
    if (fresh.tls_cert_path) {
        tls = tls_context_new(&fresh);
        if (!tls) {
            log_error("reload_failed", "error=\"TLS files could not be loaded; keeping the "
                                      "previous configuration\"");
            config_free(&fresh);
            return;
        }
    }
    /* Last, because they cannot be undone: the throttles take over the slots in use, and
     * cron replaces its entries. */
    if (engine_reload_throttles(&s->engine, fresh.document, err, sizeof err) != 0 ||
        engine_reload_cron(&s->engine, fresh.document, err, sizeof err) != 0) {
        log_error("reload_failed", "error=\"%s\"", log_sample(quoted, err, strlen(err), 400));
        if (tls)
            SSL_CTX_free(tls);
        config_free(&fresh);
        return;
    }
    config_free(&s->cfg);
    s->cfg = fresh;
    memset(&fresh, 0, sizeof fresh);
    if (s->tls_ctx)
        SSL_CTX_free(s->tls_ctx);
    s->tls_ctx = tls;
    log_set_level(s->cfg.log_level);
    log_info("config_reloaded", "%s", "");
    config_log(&s->cfg);
    statsd_reload(s);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    struct server *s = arg;
    if (sig == SIGHUP) {
        reload_config(s);
        return;
    }
    log_info("shutdown_requested", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
    s->stopping = true;
    event_base_loopbreak(s->base);
}

static int64_t rss_megabytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    long pages = 0, resident = 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return (int64_t)resident * sysconf(_SC_PAGESIZE) / (1024 * 1024);
}

json_t *server_info(struct server *s) {
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "description", "fabrik",
                     "faktory_version", "1.10.0", "fabrik_version", FABRIK_VERSION, "uptime",
                     (json_int_t)(time_wall() - s->started), "connections",
                     (json_int_t)s->open_connections, "command_count",
                     (json_int_t)s->command_count, "used_memory_mb",
                     (json_int_t)rss_megabytes());
}

json_t *server_info_document(struct server *s) {
    double now = engine_now(&s->engine);
    char ts[32];
    time_format_rfc3339(now, ts);
    char clock[16];
    snprintf(clock, sizeof clock, "%.8s UTC", ts + 11);
    json_t *doc = json_object();
    json_object_set_new(doc, "now", json_string(ts));
    json_object_set_new(doc, "server_utc_time", json_string(clock));
    json_object_set_new(doc, "faktory", engine_info(&s->engine, worker_count(&s->workers),
                                                    s->workers.reaped));
    json_object_set_new(doc, "server", server_info(s));
    return doc;
}

static int setup_events(struct server *s, char *err, size_t errlen) {
    static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        s->signal_events[i] = evsignal_new(s->base, signals[i], signal_cb, s);
        evsignal_add(s->signal_events[i], NULL);
    }
    s->deadline_timer = evtimer_new(s->base, deadline_cb, s);
    s->housekeeping_timer = event_new(s->base, -1, EV_PERSIST, housekeeping_cb, s);
    struct timeval tv = {.tv_sec = (time_t)HOUSEKEEPING_SECONDS};
    evtimer_add(s->housekeeping_timer, &tv);
    s->hasher = hasher_new(s->base, hash_done, s);
    if (!s->hasher) {
        snprintf(err, errlen, "cannot start the password hashing thread");
        return -1;
    }
    return 0;
}

static void log_startup(struct server *s) {
    const int64_t *n = s->engine.set_size;
    log_info("started",
             "version=%s fwp=%s web=%s data_dir=%s durability=%s tls=%s password=%s "
             "queued=%lld scheduled=%lld retries=%lld working=%lld dead=%lld queues=%u",
             FABRIK_VERSION, s->cfg.fwp_bind, s->cfg.web_bind, s->cfg.data_dir,
             s->cfg.durability == DURABILITY_FSYNC ? "fsync" : "os",
             s->tls_ctx ? "on" : "off", s->cfg.password ? "set" : "unset",
             (long long)n[JOB_QUEUED], (long long)n[JOB_SCHEDULED], (long long)n[JOB_RETRY],
             (long long)n[JOB_WORKING], (long long)n[JOB_DEAD],
             engine_queue_count(&s->engine));
    log_info("listening", "fwp=%s web=%s", s->cfg.fwp_bind,
             s->web ? s->cfg.web_bind : "disabled");
}

static int server_start(struct server *s, char *err, size_t errlen) {
    /* An invalid [statsd], [throttles] or [[cron]] table stops the start before storage
     * opens, so a typo never migrates or locks a database. */
    if (statsd_setup(&s->statsd, s->cfg.document, err, errlen) != 0)
        return -1;
    struct engine check = {.cfg = &s->cfg};
    if (engine_check_config(&check, s->cfg.document, err, errlen) != 0)
        return -1;
    if (store_open(&s->store, s->cfg.data_dir, s->cfg.durability, err, errlen) != 0)
        return -1;
    if (engine_open(&s->engine, &s->cfg, s->store, err, errlen) != 0)
        return -1;
    s->engine.on_enqueue = touched_cb;
    s->engine.waiting = waiting_cb;
    s->engine.ctx = s;

    struct event_config *ecfg = event_config_new();
    s->base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (!s->base) {
        snprintf(err, errlen, "cannot create the event loop");
        return -1;
    }
    if (s->cfg.tls_cert_path && !(s->tls_ctx = tls_context_new(&s->cfg))) {
        snprintf(err, errlen, "cannot load TLS files %s and %s", s->cfg.tls_cert_path,
                 s->cfg.tls_key_path);
        return -1;
    }
    if (setup_events(s, err, errlen) != 0 || listen_on(s, s->cfg.fwp_bind, err, errlen) != 0 ||
        web_start(s, err, errlen) != 0)
        return -1;
    statsd_install(s, s->statsd);
    s->started = time_wall();
    return 0;
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

static bool output_pending(struct server *s) {
    for (struct conn *c = s->conns; c; c = c->next) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
            return true;
    }
    return false;
}

/* Stops taking work, answers blocked fetchers, and keeps the loop running until every
 * committed reply has been written (at most DRAIN_SECONDS), so no client misses the answer
 * to a change that is already on disk. */
static void drain_connections(struct server *s) {
    evconnlistener_disable(s->listener);
    evtimer_del(s->deadline_timer);
    evtimer_del(s->housekeeping_timer);
    for (struct conn *c = s->conns; c; c = c->next) {
        bufferevent_disable(c->bev, EV_READ);
        if (c->state == CONN_PARKED) {
            conn_unpark(c);
            resp_null(conn_reply(c, false));
        }
        c->state = CONN_DRAINING;
    }
    end_iteration(s);

    bool expired = false;
    struct event *timeout = evtimer_new(s->base, drain_timeout_cb, &expired);
    struct timeval tv = {.tv_sec = DRAIN_SECONDS};
    evtimer_add(timeout, &tv);
    while (!expired && output_pending(s)) {
        if (event_base_loop(s->base, EVLOOP_ONCE) < 0)
            break;
    }
    event_free(timeout);
}

static void server_stop(struct server *s) {
    while (s->conns)
        conn_close(s->conns);
    while (s->closed) {
        struct conn *c = s->closed;
        s->closed = c->next;
        conn_free(c);
    }
    if (s->store && store_in_tx(s->store) && engine_commit(&s->engine) != 0)
        log_error("commit_failed", "error=\"%s\"", store_error(s->store));
    hasher_free(s->hasher);
    web_stop(s);
    if (s->listener)
        evconnlistener_free(s->listener);
    for (size_t i = 0; i < sizeof s->signal_events / sizeof s->signal_events[0]; i++) {
        if (s->signal_events[i])
            event_free(s->signal_events[i]);
    }
    if (s->deadline_timer)
        event_free(s->deadline_timer);
    if (s->housekeeping_timer)
        event_free(s->housekeeping_timer);
    statsd_install(s, NULL);   /* sends the metrics still pending */
    if (s->statsd_timer)
        event_free(s->statsd_timer);
    if (s->tls_ctx)
        SSL_CTX_free(s->tls_ctx);
    if (s->base)
        event_base_free(s->base);
    engine_close(&s->engine);
    worker_registry_free(&s->workers);
    store_close(s->store);
    for (size_t i = 0; i < s->ntouched; i++)
        free(s->touched[i]);
    free(s->touched);
    free(s->resumed);
    config_free(&s->cfg);
}

int server_run(struct config *cfg) {
    struct server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    signal(SIGPIPE, SIG_IGN);

    char err[1024];
    int status = 0;
    if (server_start(s, err, sizeof err) != 0) {
        char quoted[4 * 400 + 1];
        log_error("start_failed", "error=\"%s\"", log_sample(quoted, err, strlen(err), 400));
        status = 1;
    } else {
        log_startup(s);
        s->engine.deadline_changed = true;
        arm_deadline(s);
        while (!s->stopping) {
            if (event_base_loop(s->base, EVLOOP_ONCE) < 0)
                break;
            end_iteration(s);
        }
        drain_connections(s);
        log_info("stopped", "%s", "");
    }
    server_stop(s);
    free(s);
    return status;
}
