/* The worker runtime: N worker threads that each FETCH over their own connection and run the
 * registered handler, plus one supervisor thread that sends BEAT, reacts to quiet and
 * terminate, and runs the graceful shutdown.
 *
 * Every field marked "lock" is read and written under worker->lock. A worker thread publishes
 * the jid of the job its handler runs (slot->jid); at the shutdown deadline the supervisor
 * marks such a slot abandoned and FAILs the job itself, and the worker thread then skips its
 * own ACK or FAIL. Both steps happen under the lock, so exactly one of them reports the job. */
#include <errno.h>
#include <execinfo.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_BACKTRACE_FRAMES 32
/* Granularity of the waits that must notice a state change (quiet, shutdown). */
#define POLL_MS 100

enum slot_phase { PHASE_WAITING, PHASE_RUNNING, PHASE_EXITED };

struct slot {
    struct fabrik_worker *worker;
    pthread_t thread;
    bool thread_started;
    struct fabrik_client *client;
    enum slot_phase phase;  /* lock */
    char *jid;              /* lock: the job the handler runs, NULL otherwise */
    bool abandoned;         /* lock: the supervisor FAILed jid at the shutdown deadline */
};

struct handler {
    char *jobtype;
    fabrik_handler_fn fn;
    void *arg;
};

struct fabrik_worker {
    struct fabrik_options conn;     /* strings point into owned copies below */
    char *url, *password, *ca_file, *hostname, *wid;
    char **labels;
    char **queues;
    size_t queue_count;
    unsigned *weights;              /* NULL: strict order */
    int concurrency;
    int beat_interval_ms;
    int shutdown_timeout_ms;
    void (*log)(void *, const char *);
    void *log_arg;

    struct handler *handlers;
    size_t handler_count;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum fabrik_worker_state state; /* lock */
    bool shutdown_requested;        /* lock */
    bool local_quiet;               /* lock: quiet came from fabrik_worker_quiet() */
    double deadline;                /* lock: end of the shutdown timeout, fc_now() seconds */

    struct slot *slots;
    pthread_t supervisor;
    bool supervisor_started;
    struct fabrik_client *beat_client;

    atomic_ulong acked;
    atomic_ulong failed;
};

struct fabrik_task {
    struct slot *slot;
    json_t *job;
    char *json;
    char *args_json;
    char *errtype;
    char *message;
    json_t *backtrace;
};

/* ---- logging ----------------------------------------------------------------------------- */

static void worker_log(struct fabrik_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void worker_log(struct fabrik_worker *w, const char *fmt, ...) {
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (w->log)
        w->log(w->log_arg, line);
    else
        fprintf(stderr, "fabrik-worker: wid=%s %s\n", w->wid, line);
}

/* ---- options and registration ------------------------------------------------------------ */

void fabrik_worker_options_init(struct fabrik_worker_options *opts) {
    memset(opts, 0, sizeof *opts);
    fabrik_options_init(&opts->conn);
    opts->concurrency = 5;
    opts->beat_interval_ms = 15000;
    opts->shutdown_timeout_ms = 25000;
}

static char **copy_string_list(const char *const *list, size_t count) {
    char **out = calloc(count + 1, sizeof *out);
    for (size_t i = 0; out && i < count; i++) {
        out[i] = strdup(list[i]);
        if (!out[i]) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void free_string_list(char **list) {
    for (size_t i = 0; list && list[i]; i++)
        free(list[i]);
    free(list);
}

static int check_queues(const struct fabrik_worker_options *opts) {
    for (size_t i = 0; opts->queues && i < opts->queue_count; i++) {
        if (!opts->queues[i] || !*opts->queues[i] || strpbrk(opts->queues[i], " \r\n"))
            return FABRIK_EINVAL;
        if (opts->weights && opts->weights[i] == 0)
            return FABRIK_EINVAL;
    }
    return opts->queues && opts->queue_count == 0 ? FABRIK_EINVAL : 0;
}

static int copy_options(struct fabrik_worker *w, const struct fabrik_worker_options *opts) {
    w->conn = opts->conn;
    w->url = fc_strdup(opts->conn.url);
    w->password = fc_strdup(opts->conn.password);
    w->ca_file = fc_strdup(opts->conn.ca_file);
    w->hostname = fc_strdup(opts->conn.hostname);
    size_t nlabels = 0;
    while (opts->conn.labels && opts->conn.labels[nlabels])
        nlabels++;
    w->labels = copy_string_list(opts->conn.labels, nlabels);

    char generated[FABRIK_JID_LEN + 1];
    fabrik_jid_generate(generated);
    const char *wid = opts->conn.wid && *opts->conn.wid ? opts->conn.wid : generated;
    w->wid = strdup(wid);

    static const char *const default_queues[] = {"default"};
    const char *const *queues = opts->queues ? opts->queues : default_queues;
    w->queue_count = opts->queues ? opts->queue_count : 1;
    w->queues = copy_string_list(queues, w->queue_count);
    if (opts->weights && opts->queues) {
        w->weights = malloc(w->queue_count * sizeof *w->weights);
        if (w->weights)
            memcpy(w->weights, opts->weights, w->queue_count * sizeof *w->weights);
    }
    if (!w->wid || !w->labels || !w->queues || (opts->weights && opts->queues && !w->weights) ||
        (opts->conn.url && !w->url) || (opts->conn.password && !w->password) ||
        (opts->conn.ca_file && !w->ca_file) || (opts->conn.hostname && !w->hostname))
        return FABRIK_ENOMEM;

    w->conn.url = w->url;
    w->conn.password = w->password;
    w->conn.ca_file = w->ca_file;
    w->conn.hostname = w->hostname;
    w->conn.labels = (const char *const *)w->labels;
    w->conn.wid = w->wid;
    w->concurrency = opts->concurrency > 0 ? opts->concurrency : 5;
    w->beat_interval_ms = opts->beat_interval_ms > 0 ? opts->beat_interval_ms : 15000;
    w->shutdown_timeout_ms = opts->shutdown_timeout_ms >= 0 ? opts->shutdown_timeout_ms : 25000;
    w->log = opts->log;
    w->log_arg = opts->log_arg;
    return 0;
}

int fabrik_worker_new(struct fabrik_worker **out, const struct fabrik_worker_options *opts) {
    if (!out)
        return FABRIK_EINVAL;
    *out = NULL;
    struct fabrik_worker_options defaults;
    if (!opts) {
        fabrik_worker_options_init(&defaults);
        opts = &defaults;
    }
    if (check_queues(opts) != 0)
        return FABRIK_EINVAL;

    /* Reject a bad URL now rather than in the first worker thread. */
    struct fc_settings probe;
    char err[FC_ERRMSG_SIZE];
    int rc = fc_settings_copy(&probe, &opts->conn, err, sizeof err);
    if (rc != 0)
        return rc;
    fc_settings_clear(&probe);

    struct fabrik_worker *w = calloc(1, sizeof *w);
    if (!w)
        return FABRIK_ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    w->state = FABRIK_WORKER_IDLE;
    if (copy_options(w, opts) != 0) {
        fabrik_worker_free(w);
        return FABRIK_ENOMEM;
    }
    *out = w;
    return 0;
}

int fabrik_worker_register(struct fabrik_worker *worker, const char *jobtype,
                           fabrik_handler_fn handler, void *arg) {
    if (!worker || !jobtype || !*jobtype || !handler)
        return FABRIK_EINVAL;
    if (worker->state != FABRIK_WORKER_IDLE)
        return FABRIK_ESTATE;
    for (size_t i = 0; i < worker->handler_count; i++) {
        if (strcmp(worker->handlers[i].jobtype, jobtype) == 0) {
            worker->handlers[i].fn = handler;
            worker->handlers[i].arg = arg;
            return 0;
        }
    }
    struct handler *grown = realloc(worker->handlers,
                                    (worker->handler_count + 1) * sizeof *grown);
    if (!grown)
        return FABRIK_ENOMEM;
    worker->handlers = grown;
    char *copy = strdup(jobtype);
    if (!copy)
        return FABRIK_ENOMEM;
    grown[worker->handler_count++] = (struct handler){copy, handler, arg};
    return 0;
}

static const struct handler *find_handler(const struct fabrik_worker *w, const char *jobtype) {
    for (size_t i = 0; jobtype && i < w->handler_count; i++) {
        if (strcmp(w->handlers[i].jobtype, jobtype) == 0)
            return &w->handlers[i];
    }
    return NULL;
}

/* ---- task accessors ---------------------------------------------------------------------- */

const char *fabrik_task_jid(const struct fabrik_task *task) {
    return json_string_value(json_object_get(task->job, "jid"));
}

const char *fabrik_task_jobtype(const struct fabrik_task *task) {
    return json_string_value(json_object_get(task->job, "jobtype"));
}

const char *fabrik_task_queue(const struct fabrik_task *task) {
    const char *queue = json_string_value(json_object_get(task->job, "queue"));
    return queue ? queue : "default";
}

const char *fabrik_task_json(const struct fabrik_task *task) {
    return task->json;
}

const char *fabrik_task_args(const struct fabrik_task *task) {
    return task->args_json;
}

size_t fabrik_task_arg_count(const struct fabrik_task *task) {
    return json_array_size(json_object_get(task->job, "args"));
}

const char *fabrik_task_arg_string(const struct fabrik_task *task, size_t i) {
    return json_string_value(json_array_get(json_object_get(task->job, "args"), i));
}

int fabrik_task_arg_int(const struct fabrik_task *task, size_t i, long long *value) {
    json_t *arg = json_array_get(json_object_get(task->job, "args"), i);
    if (!json_is_integer(arg) || !value)
        return FABRIK_EINVAL;
    *value = (long long)json_integer_value(arg);
    return 0;
}

static json_t *capture_backtrace(void) {
    void *frames[MAX_BACKTRACE_FRAMES];
    int n = backtrace(frames, MAX_BACKTRACE_FRAMES);
    char **symbols = backtrace_symbols(frames, n);
    json_t *lines = json_array();
    /* Frame 0 is capture_backtrace and frame 1 fabrik_task_fail: the caller starts at 2. */
    for (int i = 2; symbols && i < n; i++)
        json_array_append_new(lines, json_string(symbols[i]));
    free(symbols);
    return lines;
}

static json_t *split_lines(const char *text) {
    json_t *lines = json_array();
    while (*text) {
        size_t len = strcspn(text, "\n");
        json_array_append_new(lines, json_stringn(text, len));
        text += len + (text[len] == '\n');
    }
    return lines;
}

int fabrik_task_fail(struct fabrik_task *task, const char *errtype, const char *message,
                     const char *backtrace) {
    if (!task)
        return FABRIK_EINVAL;
    free(task->errtype);
    free(task->message);
    json_decref(task->backtrace);
    task->errtype = fc_strdup(errtype);
    task->message = fc_strdup(message);
    task->backtrace = backtrace ? split_lines(backtrace) : capture_backtrace();
    return 0;
}

bool fabrik_task_cancelled(const struct fabrik_task *task) {
    struct fabrik_worker *w = task->slot->worker;
    pthread_mutex_lock(&w->lock);
    bool cancelled = task->slot->abandoned;
    pthread_mutex_unlock(&w->lock);
    return cancelled;
}

struct fabrik_client *fabrik_task_client(struct fabrik_task *task) {
    return task->slot->client;
}

static void task_free(struct fabrik_task *task) {
    json_decref(task->job);
    free(task->json);
    free(task->args_json);
    free(task->errtype);
    free(task->message);
    json_decref(task->backtrace);
}

/* ---- FETCH, ACK and FAIL ----------------------------------------------------------------- */

/* Builds "FETCH q1 q2 ...": in the given order, or in a weighted random order. */
static char *fetch_line(const struct fabrik_worker *w) {
    size_t n = w->queue_count;
    size_t order[n];
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    if (w->weights) {
        /* Weighted sampling without replacement: each step picks one of the remaining queues
         * with a probability proportional to its weight. */
        for (size_t pos = 0; pos + 1 < n; pos++) {
            uint64_t total = 0;
            for (size_t i = pos; i < n; i++)
                total += w->weights[order[i]];
            uint64_t pick = fc_random64() % total;
            size_t chosen = pos;
            for (size_t i = pos; i < n; i++) {
                if (pick < w->weights[order[i]]) {
                    chosen = i;
                    break;
                }
                pick -= w->weights[order[i]];
            }
            size_t tmp = order[pos];
            order[pos] = order[chosen];
            order[chosen] = tmp;
        }
    }
    size_t len = 6;
    for (size_t i = 0; i < n; i++)
        len += strlen(w->queues[i]) + 1;
    char *line = malloc(len);
    if (!line)
        return NULL;
    size_t at = (size_t)snprintf(line, len, "FETCH");
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(line + at, len - at, " %s", w->queues[order[i]]);
    return line;
}

/* Sends an ACK or FAIL line, reconnecting a few times, because a lost report would leave the
 * job reserved until its reservation expires. The server replies +OK to an ACK of a jid it no
 * longer has reserved, so resending is safe. A resent FAIL may get "Job not found". */
static int report(struct fabrik_worker *w, struct fabrik_client *c, const char *line) {
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        rc = fabrik_command(c, line, NULL);
        if (rc != FABRIK_ECONNECT && rc != FABRIK_ETIMEDOUT && rc != FABRIK_EPROTOCOL)
            break;
        worker_log(w, "event=report_retry error=\"%s\"", fabrik_client_error(c));
        fc_backoff_sleep(&c->cfg, attempt);
    }
    if (rc != 0)
        worker_log(w, "event=report_failed line=\"%.80s\" error=\"%s\"", line,
                   fabrik_client_error(c));
    return rc;
}

static int send_fail(struct fabrik_worker *w, struct fabrik_client *c, const char *jid,
                     const char *errtype, const char *message, json_t *backtrace) {
    json_t *doc = json_pack("{s:s, s:s, s:s}", "jid", jid, "errtype", errtype, "message",
                            message);
    if (!doc)
        return FABRIK_ENOMEM;
    json_object_set_new(doc, "backtrace", backtrace ? json_incref(backtrace) : json_array());
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char *line = body ? fc_printf("FAIL %s", body) : NULL;
    free(body);
    if (!line)
        return FABRIK_ENOMEM;
    int rc = report(w, c, line);
    free(line);
    atomic_fetch_add(&w->failed, 1);
    return rc;
}

static int send_ack(struct fabrik_worker *w, struct fabrik_client *c, const char *jid) {
    json_t *doc = json_pack("{s:s}", "jid", jid);
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    char *line = body ? fc_printf("ACK %s", body) : NULL;
    free(body);
    if (!line)
        return FABRIK_ENOMEM;
    int rc = report(w, c, line);
    free(line);
    if (rc == 0)
        atomic_fetch_add(&w->acked, 1);
    return rc;
}

/* ---- worker threads ---------------------------------------------------------------------- */

static enum fabrik_worker_state current_state(struct fabrik_worker *w) {
    pthread_mutex_lock(&w->lock);
    enum fabrik_worker_state state = w->state;
    pthread_mutex_unlock(&w->lock);
    return state;
}

/* Sleeps up to ms, waking early when the state changes. */
static void wait_for_change(struct fabrik_worker *w, int ms) {
    pthread_mutex_lock(&w->lock);
    enum fabrik_worker_state before = w->state;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (w->state == before &&
           pthread_cond_timedwait(&w->cond, &w->lock, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&w->lock);
}

static void set_phase(struct slot *slot, enum slot_phase phase, const char *jid) {
    struct fabrik_worker *w = slot->worker;
    pthread_mutex_lock(&w->lock);
    slot->phase = phase;
    free(slot->jid);
    slot->jid = jid ? strdup(jid) : NULL;
    slot->abandoned = false;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Ends the running phase. Returns true when the supervisor has FAILed the job meanwhile. */
static bool finish_running(struct slot *slot) {
    struct fabrik_worker *w = slot->worker;
    pthread_mutex_lock(&w->lock);
    bool abandoned = slot->abandoned;
    slot->phase = PHASE_WAITING;
    free(slot->jid);
    slot->jid = NULL;
    slot->abandoned = false;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return abandoned;
}

static bool past_deadline(struct fabrik_worker *w) {
    pthread_mutex_lock(&w->lock);
    bool past = w->state >= FABRIK_WORKER_STOPPING && fc_now() >= w->deadline;
    pthread_mutex_unlock(&w->lock);
    return past;
}

static void run_task(struct slot *slot, struct fabrik_task *task, const char *jid) {
    struct fabrik_worker *w = slot->worker;
    const char *jobtype = fabrik_task_jobtype(task);

    /* A job that arrives after the shutdown deadline (its FETCH was already waiting on the
     * server) goes back through FAIL at once, so that it is retried by another worker. */
    if (past_deadline(w)) {
        send_fail(w, slot->client, jid, "ShutdownTimeout", "worker shut down before the job "
                                                           "started", NULL);
        return;
    }
    const struct handler *h = find_handler(w, jobtype);
    if (!h) {
        char message[256];
        snprintf(message, sizeof message, "no handler registered for job type \"%s\"",
                 jobtype ? jobtype : "");
        send_fail(w, slot->client, jid, "UnknownJobType", message, NULL);
        return;
    }

    set_phase(slot, PHASE_RUNNING, jid);
    int rc = h->fn(task, h->arg);
    if (finish_running(slot))
        return;
    if (rc == 0) {
        send_ack(w, slot->client, jid);
        return;
    }
    char fallback[128];
    snprintf(fallback, sizeof fallback, "handler for %s returned %d", jobtype, rc);
    send_fail(w, slot->client, jid, task->errtype && *task->errtype ? task->errtype :
                                    "HandlerError",
              task->message && *task->message ? task->message : fallback, task->backtrace);
}

static int prepare_task(struct fabrik_task *task, struct slot *slot, char *payload) {
    memset(task, 0, sizeof *task);
    task->slot = slot;
    task->json = payload;
    task->job = json_loads(payload, 0, NULL);
    const char *jid = json_string_value(json_object_get(task->job, "jid"));
    if (!json_is_object(task->job) || !jid)
        return FABRIK_EPROTOCOL;
    json_t *args = json_object_get(task->job, "args");
    task->args_json = json_dumps(args ? args : json_array(), JSON_COMPACT | JSON_ENCODE_ANY);
    return task->args_json ? 0 : FABRIK_ENOMEM;
}

static void fetch_once(struct slot *slot, int *failures) {
    struct fabrik_worker *w = slot->worker;
    char *line = fetch_line(w);
    char *payload = NULL;
    int rc = line ? fabrik_command(slot->client, line, &payload) : FABRIK_ENOMEM;
    free(line);
    if (rc != 0) {
        if (*failures == 0)
            worker_log(w, "event=fetch_failed error=\"%s\"", fabrik_client_error(slot->client));
        fc_backoff_sleep(&slot->client->cfg, (*failures)++);
        return;
    }
    if (*failures > 0)
        worker_log(w, "event=reconnected after_failures=%d", *failures);
    *failures = 0;
    if (!payload)
        return;

    struct fabrik_task task;
    if (prepare_task(&task, slot, payload) != 0) {
        worker_log(w, "event=bad_job payload=\"%.120s\"", payload);
    } else {
        char *jid = strdup(fabrik_task_jid(&task));
        if (jid)
            run_task(slot, &task, jid);
        free(jid);
    }
    task_free(&task);
}

static void *worker_thread(void *arg) {
    struct slot *slot = arg;
    struct fabrik_worker *w = slot->worker;
    int failures = 0;
    for (;;) {
        enum fabrik_worker_state state = current_state(w);
        if (state >= FABRIK_WORKER_STOPPING)
            break;
        if (state == FABRIK_WORKER_QUIET) {
            wait_for_change(w, POLL_MS * 5);
            continue;
        }
        fetch_once(slot, &failures);
    }
    set_phase(slot, PHASE_EXITED, NULL);
    return NULL;
}

/* ---- supervisor: heartbeat and shutdown -------------------------------------------------- */

static long resident_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void request_shutdown(struct fabrik_worker *w) {
    pthread_mutex_lock(&w->lock);
    if (!w->shutdown_requested && w->state != FABRIK_WORKER_STOPPED) {
        w->shutdown_requested = true;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
}

static void apply_beat_reply(struct fabrik_worker *w, const char *reply) {
    if (!reply || strcmp(reply, "OK") == 0)
        return;
    json_t *doc = json_loads(reply, 0, NULL);
    const char *state = json_string_value(json_object_get(doc, "state"));
    if (state && strcmp(state, "quiet") == 0) {
        pthread_mutex_lock(&w->lock);
        if (w->state == FABRIK_WORKER_RUNNING) {
            w->state = FABRIK_WORKER_QUIET;
            pthread_cond_broadcast(&w->cond);
            worker_log(w, "event=quiet source=server");
        }
        pthread_mutex_unlock(&w->lock);
    } else if (state && strcmp(state, "terminate") == 0) {
        worker_log(w, "event=terminate source=server");
        request_shutdown(w);
    }
    json_decref(doc);
}

static void beat(struct fabrik_worker *w) {
    pthread_mutex_lock(&w->lock);
    bool quiet = w->local_quiet;
    pthread_mutex_unlock(&w->lock);
    json_t *doc = json_pack("{s:s, s:I}", "wid", w->wid, "rss_kb", (json_int_t)resident_kb());
    if (quiet)
        json_object_set_new(doc, "current_state", json_string("quiet"));
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char *line = body ? fc_printf("BEAT %s", body) : NULL;
    free(body);
    char *reply = NULL;
    int rc = line ? fabrik_command(w->beat_client, line, &reply) : FABRIK_ENOMEM;
    free(line);
    if (rc == 0) {
        apply_beat_reply(w, reply);
    } else {
        worker_log(w, "event=beat_failed error=\"%s\"", fabrik_client_error(w->beat_client));
        /* "unknown worker" means the server reaped this wid or restarted: a fresh HELLO on
         * the next BEAT registers it again. */
        fc_disconnect(w->beat_client);
    }
    free(reply);
}

/* Waits until the next beat is due or a shutdown is requested. Returns true for shutdown. */
static bool wait_beat_or_shutdown(struct fabrik_worker *w, double due) {
    pthread_mutex_lock(&w->lock);
    while (!w->shutdown_requested && fc_now() < due) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        double left = due - fc_now();
        long ms = left > 0 ? (long)(left * 1000) + 1 : 1;
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cond, &w->lock, &until);
    }
    bool stop = w->shutdown_requested;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

static bool any_phase(struct fabrik_worker *w, enum slot_phase phase) {
    for (int i = 0; i < w->concurrency; i++) {
        if (w->slots[i].thread_started && w->slots[i].phase == phase)
            return true;
    }
    return false;
}

static void timed_wait(struct fabrik_worker *w, int ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&w->cond, &w->lock, &until);
}

/* FAILs every job whose handler still runs. Called with the lock held; releases it while it
 * sends each FAIL. */
static void abandon_running(struct fabrik_worker *w) {
    for (int i = 0; i < w->concurrency; i++) {
        struct slot *slot = &w->slots[i];
        if (slot->phase != PHASE_RUNNING || !slot->jid || slot->abandoned)
            continue;
        slot->abandoned = true;
        char *jid = strdup(slot->jid);
        pthread_mutex_unlock(&w->lock);
        if (jid) {
            worker_log(w, "event=shutdown_fail jid=%s", jid);
            send_fail(w, w->beat_client, jid, "ShutdownTimeout",
                      "worker shutdown timeout exceeded", NULL);
        }
        free(jid);
        pthread_mutex_lock(&w->lock);
    }
}

/* The graceful shutdown: stop fetching, give running jobs until the deadline, FAIL the rest,
 * then wait until no thread can receive a job any more. */
static void drain(struct fabrik_worker *w) {
    pthread_mutex_lock(&w->lock);
    w->state = FABRIK_WORKER_STOPPING;
    w->deadline = fc_now() + w->shutdown_timeout_ms / 1000.0;
    pthread_cond_broadcast(&w->cond);
    while (fc_now() < w->deadline &&
           (any_phase(w, PHASE_RUNNING) || any_phase(w, PHASE_WAITING)))
        timed_wait(w, POLL_MS);
    abandon_running(w);
    /* Threads still waiting on a FETCH get their reply within the server's 2-second FETCH
     * wait and the I/O timeout, and FAIL a job that arrives this late themselves. */
    while (any_phase(w, PHASE_WAITING))
        timed_wait(w, POLL_MS);
    w->state = FABRIK_WORKER_STOPPED;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    worker_log(w, "event=stopped acked=%lu failed=%lu", atomic_load(&w->acked),
               atomic_load(&w->failed));
}

static void *supervisor_thread(void *arg) {
    struct fabrik_worker *w = arg;
    double due = fc_now() + w->beat_interval_ms / 1000.0;
    while (!wait_beat_or_shutdown(w, due)) {
        beat(w);
        due = fc_now() + w->beat_interval_ms / 1000.0;
    }
    drain(w);
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static int open_worker_client(struct fabrik_worker *w, struct fabrik_client **out,
                              bool connect_now) {
    struct fabrik_options opts = w->conn;
    /* Worker threads reconnect in their own loop, where they can notice a shutdown. */
    opts.reconnect_attempts = connect_now ? opts.reconnect_attempts : 0;
    char err[FC_ERRMSG_SIZE];
    if (connect_now) {
        int rc = fabrik_client_open(out, &opts, err, sizeof err);
        if (rc != 0)
            worker_log(w, "event=connect_failed error=\"%s\"", err);
        return rc;
    }
    int rc = fc_client_new(out, &opts, err, sizeof err);
    if (rc == 0)
        (*out)->ever_connected = true;
    return rc;
}

static int start_threads(struct fabrik_worker *w) {
    w->slots = calloc((size_t)w->concurrency, sizeof *w->slots);
    if (!w->slots)
        return FABRIK_ENOMEM;
    for (int i = 0; i < w->concurrency; i++) {
        struct slot *slot = &w->slots[i];
        slot->worker = w;
        int rc = open_worker_client(w, &slot->client, false);
        if (rc != 0)
            return rc;
        if (pthread_create(&slot->thread, NULL, worker_thread, slot) != 0)
            return FABRIK_ENOMEM;
        slot->thread_started = true;
    }
    if (pthread_create(&w->supervisor, NULL, supervisor_thread, w) != 0)
        return FABRIK_ENOMEM;
    w->supervisor_started = true;
    return 0;
}

int fabrik_worker_start(struct fabrik_worker *worker) {
    if (!worker)
        return FABRIK_EINVAL;
    if (worker->state != FABRIK_WORKER_IDLE)
        return FABRIK_ESTATE;
    int rc = open_worker_client(worker, &worker->beat_client, true);
    if (rc != 0)
        return rc;
    worker->state = FABRIK_WORKER_RUNNING;
    rc = start_threads(worker);
    if (rc != 0) {
        /* The threads that did start see STOPPING and exit; fabrik_worker_free joins them. */
        pthread_mutex_lock(&worker->lock);
        worker->state = FABRIK_WORKER_STOPPING;
        pthread_cond_broadcast(&worker->cond);
        pthread_mutex_unlock(&worker->lock);
        return rc;
    }
    return 0;
}

void fabrik_worker_quiet(struct fabrik_worker *worker) {
    if (!worker)
        return;
    pthread_mutex_lock(&worker->lock);
    worker->local_quiet = true;
    if (worker->state == FABRIK_WORKER_RUNNING) {
        worker->state = FABRIK_WORKER_QUIET;
        pthread_cond_broadcast(&worker->cond);
    }
    pthread_mutex_unlock(&worker->lock);
}

void fabrik_worker_shutdown(struct fabrik_worker *worker) {
    if (worker)
        request_shutdown(worker);
}

int fabrik_worker_wait(struct fabrik_worker *worker, int timeout_ms) {
    if (!worker)
        return FABRIK_EINVAL;
    double until = timeout_ms >= 0 ? fc_now() + timeout_ms / 1000.0 : 0;
    pthread_mutex_lock(&worker->lock);
    int rc = 0;
    if (worker->state == FABRIK_WORKER_IDLE || !worker->supervisor_started)
        rc = FABRIK_ESTATE;
    while (rc == 0 && worker->state != FABRIK_WORKER_STOPPED) {
        if (timeout_ms >= 0 && fc_now() >= until) {
            rc = FABRIK_ETIMEDOUT;
            break;
        }
        timed_wait(worker, POLL_MS);
    }
    pthread_mutex_unlock(&worker->lock);
    return rc;
}

int fabrik_worker_stop(struct fabrik_worker *worker) {
    fabrik_worker_shutdown(worker);
    return fabrik_worker_wait(worker, -1);
}

int fabrik_worker_run(struct fabrik_worker *worker) {
    if (!worker)
        return FABRIK_EINVAL;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGTSTP);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int rc = fabrik_worker_start(worker);
    while (rc == 0 && fabrik_worker_state(worker) != FABRIK_WORKER_STOPPED) {
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTSTP)
            fabrik_worker_quiet(worker);
        else if (sig == SIGINT || sig == SIGTERM)
            fabrik_worker_shutdown(worker);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

enum fabrik_worker_state fabrik_worker_state(const struct fabrik_worker *worker) {
    return worker ? current_state((struct fabrik_worker *)worker) : FABRIK_WORKER_IDLE;
}

const char *fabrik_worker_wid(const struct fabrik_worker *worker) {
    return worker ? worker->wid : NULL;
}

unsigned long fabrik_worker_acked(const struct fabrik_worker *worker) {
    return worker ? atomic_load(&((struct fabrik_worker *)worker)->acked) : 0;
}

unsigned long fabrik_worker_failed(const struct fabrik_worker *worker) {
    return worker ? atomic_load(&((struct fabrik_worker *)worker)->failed) : 0;
}

void fabrik_worker_free(struct fabrik_worker *worker) {
    if (!worker)
        return;
    if (worker->supervisor_started) {
        fabrik_worker_stop(worker);
        pthread_join(worker->supervisor, NULL);
    }
    for (int i = 0; worker->slots && i < worker->concurrency; i++) {
        if (worker->slots[i].thread_started)
            pthread_join(worker->slots[i].thread, NULL);
        fabrik_client_close(worker->slots[i].client);
        free(worker->slots[i].jid);
    }
    free(worker->slots);
    fabrik_client_close(worker->beat_client);
    for (size_t i = 0; i < worker->handler_count; i++)
        free(worker->handlers[i].jobtype);
    free(worker->handlers);
    free(worker->url);
    free(worker->password);
    free(worker->ca_file);
    free(worker->hostname);
    free(worker->wid);
    free_string_list(worker->labels);
    free_string_list(worker->queues);
    free(worker->weights);
    pthread_mutex_destroy(&worker->lock);
    pthread_cond_destroy(&worker->cond);
    free(worker);
}
