/* Worker records keyed by wid. */
#include "core/worker.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

struct worker *worker_find(struct worker_registry *reg, const char *wid) {
    struct worker *w = NULL;
    HASH_FIND_STR(reg->by_wid, wid, w);
    return w;
}

struct worker *worker_attach(struct worker_registry *reg, const char *wid, const char *hostname,
                             int64_t pid, const json_t *labels, double now) {
    struct worker *w = worker_find(reg, wid);
    if (!w) {
        w = xcalloc(1, sizeof *w);
        w->wid = xstrdup(wid);
        w->hostname = xstrdup(hostname ? hostname : "");
        w->pid = pid;
        w->labels = labels ? json_deep_copy(labels) : json_array();
        w->started = now;
        w->last_beat = now;
        HASH_ADD_KEYPTR(hh, reg->by_wid, w->wid, strlen(w->wid), w);
    }
    w->connections++;
    return w;
}

static void worker_free(struct worker *w) {
    free(w->wid);
    free(w->hostname);
    json_decref(w->labels);
    free(w);
}

void worker_detach(struct worker_registry *reg, struct worker *w) {
    if (--w->connections <= 0) {
        HASH_DEL(reg->by_wid, w);
        worker_free(w);
    }
}

void worker_remove(struct worker_registry *reg, struct worker *w) {
    HASH_DEL(reg->by_wid, w);
    worker_free(w);
}

bool worker_signal(struct worker *w, enum worker_state state) {
    if (state <= w->state)
        return false;
    w->state = state;
    return true;
}

int worker_parse_state(const char *text, enum worker_state *out) {
    if (!text)
        return -1;
    if (strcmp(text, "quiet") == 0) {
        *out = WORKER_QUIET;
        return 0;
    }
    if (strcmp(text, "terminate") == 0) {
        *out = WORKER_TERMINATE;
        return 0;
    }
    return -1;
}

const char *worker_state_name(enum worker_state state) {
    static const char *const names[] = {"running", "quiet", "terminate"};
    return names[state];
}

int64_t worker_count(const struct worker_registry *reg) {
    return (int64_t)HASH_COUNT(reg->by_wid);
}

void worker_registry_free(struct worker_registry *reg) {
    struct worker *w, *tmp;
    HASH_ITER(hh, reg->by_wid, w, tmp) {
        HASH_DEL(reg->by_wid, w);
        worker_free(w);
    }
}
