/* Throttle slots and their configuration. */
#include "ent/throttle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "util/buf.h"
#include "util/timefmt.h"

#define MAX_LIMIT 1000000
#define MAX_SECONDS (86400.0 * 365)

static void throttle_free(struct throttle *t) {
    for (size_t i = 0; i < t->nholders; i++) {
        free(t->holders[i].jid);
        free(t->holders[i].wid);
    }
    free(t->holders);
    free(t->starts);
    free(t->queue);
    free(t);
}

void throttle_set_free(struct throttle_set *set) {
    struct throttle *t, *tmp;
    HASH_ITER(hh, set->by_queue, t, tmp) {
        HASH_DEL(set->by_queue, t);
        throttle_free(t);
    }
}

struct throttle *throttle_find(const struct throttle_set *set, const char *queue) {
    struct throttle *t = NULL;
    HASH_FIND_STR(set->by_queue, queue, t);
    return t;
}

/* Reads an optional positive integer limit. Returns 0, or -1 with err set. */
static int read_limit(const json_t *entry, const char *queue, const char *key, int *out,
                      char *err, size_t errlen) {
    const json_t *v = json_object_get(entry, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MAX_LIMIT) {
        /* The example must itself be valid: a rate limit goes with its period, a slot
         * limit with its timeout. */
        bool rate = strcmp(key, "rate_limit") == 0;
        snprintf(err, errlen,
                 "[throttles] %s: %s must be an integer from 1 to %d, as in "
                 "%s = { %s = 5, %s = 60 }",
                 queue, key, MAX_LIMIT, queue, key, rate ? "rate_period" : "timeout");
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* Reads an optional positive number of seconds. Returns 0, or -1 with err set. */
static int read_seconds(const json_t *entry, const char *queue, const char *key, double *out,
                        char *err, size_t errlen) {
    const json_t *v = json_object_get(entry, key);
    if (!v)
        return 0;
    double seconds = json_is_number(v) ? json_number_value(v) : -1;
    if (!(seconds > 0 && seconds <= MAX_SECONDS)) {
        snprintf(err, errlen,
                 "[throttles] %s: %s must be a number of seconds above 0 and at most one year",
                 queue, key);
        return -1;
    }
    *out = seconds;
    return 0;
}

static int check_keys(const json_t *entry, const char *queue, char *err, size_t errlen) {
    static const char *const known[] = {"concurrency", "worker", "timeout", "rate_limit",
                                        "rate_period"};
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)entry, key, v) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok) {
            snprintf(err, errlen,
                     "[throttles] %s: unknown key \"%s\"; the keys are concurrency, worker, "
                     "timeout, rate_limit and rate_period",
                     queue, key);
            return -1;
        }
    }
    return 0;
}

/* Builds one throttle from its TOML entry. Returns NULL with err set. */
static struct throttle *parse_entry(const char *queue, const json_t *entry, char *err,
                                    size_t errlen) {
    if (strlen(queue) > JOB_MAX_QUEUE_BYTES || !job_queue_name_valid(queue)) {
        snprintf(err, errlen,
                 "[throttles] \"%.64s\": queue names must match [a-zA-Z0-9._-]+ and be at most "
                 "128 bytes",
                 queue);
        return NULL;
    }
    if (!json_is_object(entry)) {
        snprintf(err, errlen,
                 "[throttles] %s must be a table, as in %s = { concurrency = 4, timeout = 60 }",
                 queue, queue);
        return NULL;
    }
    struct throttle *t = xcalloc(1, sizeof *t);
    t->queue = xstrdup(queue);
    if (check_keys(entry, queue, err, errlen) != 0 ||
        read_limit(entry, queue, "concurrency", &t->concurrency, err, errlen) != 0 ||
        read_limit(entry, queue, "worker", &t->per_worker, err, errlen) != 0 ||
        read_limit(entry, queue, "rate_limit", &t->rate_limit, err, errlen) != 0 ||
        read_seconds(entry, queue, "timeout", &t->timeout, err, errlen) != 0 ||
        read_seconds(entry, queue, "rate_period", &t->rate_period, err, errlen) != 0)
        goto fail;
    if (!t->concurrency && !t->per_worker && !t->rate_limit) {
        snprintf(err, errlen,
                 "[throttles] %s sets no limit: give concurrency, worker or rate_limit", queue);
        goto fail;
    }
    if ((t->concurrency || t->per_worker) && t->timeout <= 0) {
        snprintf(err, errlen,
                 "[throttles] %s: timeout is required with concurrency or worker; it bounds how "
                 "long a crashed worker can hold a slot, as in timeout = 60",
                 queue);
        goto fail;
    }
    if ((t->rate_limit > 0) != (t->rate_period > 0)) {
        snprintf(err, errlen,
                 "[throttles] %s: rate_limit and rate_period go together, as in "
                 "rate_limit = 100, rate_period = 60",
                 queue);
        goto fail;
    }
    if (t->rate_limit)
        t->starts = xcalloc((size_t)t->rate_limit, sizeof *t->starts);
    return t;

fail:
    throttle_free(t);
    return NULL;
}

int throttle_parse(const json_t *document, struct throttle_set *out, char *err,
                   size_t errlen) {
    out->by_queue = NULL;
    const json_t *table = document ? json_object_get(document, "throttles") : NULL;
    if (!table)
        return 0;
    if (!json_is_object(table)) {
        snprintf(err, errlen, "[throttles] must be a table of queue = { ... } entries");
        return -1;
    }
    const char *queue;
    const json_t *entry;
    json_object_foreach((json_t *)table, queue, entry) {
        struct throttle *t = parse_entry(queue, entry, err, errlen);
        if (!t) {
            throttle_set_free(out);
            return -1;
        }
        HASH_ADD_KEYPTR(hh, out->by_queue, t->queue, strlen(t->queue), t);
    }
    return 0;
}

void throttle_adopt(struct throttle_set *fresh, struct throttle_set *old) {
    struct throttle *o, *tmp;
    HASH_ITER(hh, old->by_queue, o, tmp) {
        struct throttle *n = throttle_find(fresh, o->queue);
        if (n) {
            /* Swap the holder arrays and counters; the rate window is kept when it fits. */
            struct throttle_holder *h = n->holders;
            size_t nh = n->nholders, ch = n->capholders;
            n->holders = o->holders;
            n->nholders = o->nholders;
            n->capholders = o->capholders;
            o->holders = h;
            o->nholders = nh;
            o->capholders = ch;
            n->taken = o->taken;
            n->released = o->released;
            n->timed_out = o->timed_out;
            for (size_t i = 0; n->rate_limit && i < o->nstarts; i++) {
                double start = o->starts[(o->next_start + (size_t)o->rate_limit - o->nstarts + i) %
                                         (size_t)o->rate_limit];
                n->starts[n->next_start] = start;
                n->next_start = (n->next_start + 1) % (size_t)n->rate_limit;
                if (n->nstarts < (size_t)n->rate_limit)
                    n->nstarts++;
            }
        }
    }
    throttle_set_free(old);
}

static int held_by(const struct throttle *t, const char *wid) {
    int n = 0;
    for (size_t i = 0; i < t->nholders; i++)
        n += strcmp(t->holders[i].wid, wid) == 0;
    return n;
}

/* The oldest start still counted in a full rate window, or 0 when the window has room. */
static double window_blocked_since(const struct throttle *t, double now) {
    if (!t->rate_limit || t->nstarts < (size_t)t->rate_limit)
        return 0;
    double oldest = t->starts[t->next_start];   /* the ring is full: next slot is the oldest */
    return oldest > now - t->rate_period ? oldest : 0;
}

bool throttle_available(const struct throttle *t, const char *wid, double now) {
    if (t->concurrency && t->nholders >= (size_t)t->concurrency)
        return false;
    if (t->per_worker && held_by(t, wid ? wid : "") >= t->per_worker)
        return false;
    return window_blocked_since(t, now) == 0;
}

void throttle_take(struct throttle *t, int64_t job_id, const char *jid, const char *wid,
                   double since, bool count_start) {
    if (t->nholders == t->capholders) {
        t->capholders = t->capholders ? t->capholders * 2 : 8;
        t->holders = xrealloc(t->holders, t->capholders * sizeof *t->holders);
    }
    t->holders[t->nholders++] = (struct throttle_holder){
        .job_id = job_id, .jid = xstrdup(jid), .wid = xstrdup(wid ? wid : ""), .since = since};
    t->taken++;
    if (count_start && t->rate_limit) {
        t->starts[t->next_start] = since;
        t->next_start = (t->next_start + 1) % (size_t)t->rate_limit;
        if (t->nstarts < (size_t)t->rate_limit)
            t->nstarts++;
    }
}

static void remove_holder(struct throttle *t, size_t i) {
    free(t->holders[i].jid);
    free(t->holders[i].wid);
    t->holders[i] = t->holders[--t->nholders];
}

bool throttle_release(struct throttle_set *set, const char *queue, int64_t job_id) {
    struct throttle *t = throttle_find(set, queue);
    for (size_t i = 0; t && i < t->nholders; i++) {
        if (t->holders[i].job_id == job_id) {
            remove_holder(t, i);
            t->released++;
            return true;
        }
    }
    return false;
}

int throttle_expire(struct throttle_set *set, double now,
                    void (*freed)(void *ctx, const char *queue), void *ctx) {
    int total = 0;
    struct throttle *t, *tmp;
    HASH_ITER(hh, set->by_queue, t, tmp) {
        int n = 0;
        for (size_t i = 0; t->timeout > 0 && i < t->nholders;) {
            if (t->holders[i].since + t->timeout <= now) {
                remove_holder(t, i);
                n++;
            } else {
                i++;
            }
        }
        t->timed_out += n;
        total += n;
        /* A rate window that has room again also lets fetchers in. */
        bool window_open = t->rate_limit && window_blocked_since(t, now) == 0;
        if ((n > 0 || window_open) && freed)
            freed(ctx, t->queue);
    }
    return total;
}

void throttle_clear(struct throttle_set *set) {
    struct throttle *t, *tmp;
    HASH_ITER(hh, set->by_queue, t, tmp) {
        /* Counted as released, so taken = released + timed_out + in_use stays true. */
        t->released += (int64_t)t->nholders;
        while (t->nholders > 0)
            remove_holder(t, t->nholders - 1);
    }
}

double throttle_next_deadline(const struct throttle_set *set, double now) {
    double next = 0;
    struct throttle *t, *tmp;
    HASH_ITER(hh, set->by_queue, t, tmp) {
        for (size_t i = 0; t->timeout > 0 && i < t->nholders; i++) {
            double at = t->holders[i].since + t->timeout;
            if (next == 0 || at < next)
                next = at;
        }
        double oldest = window_blocked_since(t, now);
        if (oldest > 0 && (next == 0 || oldest + t->rate_period < next))
            next = oldest + t->rate_period;
    }
    return next;
}

json_t *throttle_describe(const struct throttle *t, size_t max_holders) {
    json_t *holders = json_array();
    char ts[32];
    for (size_t i = 0; i < t->nholders && i < max_holders; i++) {
        const struct throttle_holder *h = &t->holders[i];
        json_array_append_new(holders,
                              json_pack("{s:s, s:s, s:s}", "jid", h->jid, "wid", h->wid, "since",
                                        time_format_rfc3339(h->since, ts)));
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "concurrency", json_integer(t->concurrency));
    json_object_set_new(doc, "worker", json_integer(t->per_worker));
    json_object_set_new(doc, "timeout", json_real(t->timeout));
    json_object_set_new(doc, "rate_limit", json_integer(t->rate_limit));
    json_object_set_new(doc, "rate_period", json_real(t->rate_period));
    json_object_set_new(doc, "in_use", json_integer((json_int_t)t->nholders));
    json_object_set_new(doc, "holders", holders);
    json_object_set_new(doc, "taken", json_integer(t->taken));
    json_object_set_new(doc, "released", json_integer(t->released));
    json_object_set_new(doc, "timed_out", json_integer(t->timed_out));
    return doc;
}
