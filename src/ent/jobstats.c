/* Per job type and queue counters. */
#include "ent/jobstats.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

const double jobstats_bounds[JOBSTATS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,    2.5,   5,    10,  60};

static struct jobstats_entry *find_or_add(struct jobstats *st, const char *jobtype,
                                          const char *queue) {
    if (!jobtype)
        jobtype = "";
    if (!queue)
        queue = "";
    size_t tlen = strlen(jobtype), qlen = strlen(queue);
    char stack[256];
    char *key = tlen + qlen + 2 <= sizeof stack ? stack : xmalloc(tlen + qlen + 2);
    memcpy(key, jobtype, tlen);
    key[tlen] = '\x1f';
    memcpy(key + tlen + 1, queue, qlen + 1);

    struct jobstats_entry *e = NULL;
    HASH_FIND_STR(st->by_key, key, e);
    if (!e && st->count >= JOBSTATS_MAX_PAIRS && strcmp(jobtype, "_other") != 0) {
        if (key != stack)
            free(key);
        return find_or_add(st, "_other", queue);
    }
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->key = xstrdup(key);
        e->jobtype = xstrdup(jobtype);
        e->queue = xstrdup(queue);
        HASH_ADD_KEYPTR(hh, st->by_key, e->key, strlen(e->key), e);
        st->count++;
    }
    if (key != stack)
        free(key);
    return e;
}

void jobstats_pushed(struct jobstats *st, const char *jobtype, const char *queue) {
    find_or_add(st, jobtype, queue)->pushed++;
}

void jobstats_finished(struct jobstats *st, const char *jobtype, const char *queue, bool success,
                       double run_seconds) {
    struct jobstats_entry *e = find_or_add(st, jobtype, queue);
    int outcome = success ? 0 : 1;
    if (success)
        e->succeeded++;
    else
        e->failed++;
    int b = 0;
    while (b < JOBSTATS_BUCKETS && run_seconds > jobstats_bounds[b])
        b++;
    e->buckets[outcome][b]++;
    e->run_seconds[outcome] += run_seconds;
}

void jobstats_free(struct jobstats *st) {
    struct jobstats_entry *e, *tmp;
    HASH_ITER(hh, st->by_key, e, tmp) {
        HASH_DEL(st->by_key, e);
        free(e->key);
        free(e->jobtype);
        free(e->queue);
        free(e);
    }
    st->count = 0;
}
