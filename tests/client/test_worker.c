/* libfabrik worker runtime tests against the real server. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_util.h"

struct counters {
    atomic_int ran;
    atomic_int running;
    atomic_int cancelled_seen;
    int sleep_ms;
    pthread_mutex_t lock;
    char order[512];        /* queue initials in the order the handler ran */
};

static struct counters *counters_new(void) {
    struct counters *c = th_keep(calloc(1, sizeof *c));
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

/* Fails every job whose first argument is a multiple of 5, with a recorded error. */
static int numbered_job(struct fabrik_task *task, void *arg) {
    struct counters *c = arg;
    atomic_fetch_add(&c->ran, 1);
    long long n = 0;
    if (fabrik_task_arg_int(task, 0, &n) != 0)
        return 2;
    if (n % 5 == 0) {
        /* th_fmt is not thread-safe, and handlers run on the worker threads. */
        char message[64];
        snprintf(message, sizeof message, "%lld is a multiple of 5", n);
        fabrik_task_fail(task, "ValueError", message, NULL);
        return 1;
    }
    return 0;
}

static int record_queue(struct fabrik_task *task, void *arg) {
    struct counters *c = arg;
    pthread_mutex_lock(&c->lock);
    size_t len = strlen(c->order);
    if (len + 1 < sizeof c->order) {
        c->order[len] = fabrik_task_queue(task)[0];
        c->order[len + 1] = '\0';
    }
    pthread_mutex_unlock(&c->lock);
    atomic_fetch_add(&c->ran, 1);
    return 0;
}

/* Runs for sleep_ms, or until the runtime cancels the job. */
static int slow_job(struct fabrik_task *task, void *arg) {
    struct counters *c = arg;
    atomic_fetch_add(&c->running, 1);
    double until = th_now() + c->sleep_ms / 1000.0;
    while (th_now() < until) {
        if (fabrik_task_cancelled(task)) {
            atomic_fetch_add(&c->cancelled_seen, 1);
            break;
        }
        th_sleep_ms(10);
    }
    atomic_fetch_sub(&c->running, 1);
    atomic_fetch_add(&c->ran, 1);
    return 0;
}

static void quiet_log(void *arg, const char *line) {
    (void)arg;
    fprintf(stderr, "worker log: %s\n", line);
}

static struct fabrik_worker *worker_for(struct th_server *srv, int concurrency,
                                        const char *const *queues, size_t queue_count,
                                        const unsigned *weights, int shutdown_ms) {
    struct fabrik_worker_options opts;
    fabrik_worker_options_init(&opts);
    ct_options(srv, &opts.conn);
    opts.concurrency = concurrency;
    opts.queues = queues;
    opts.queue_count = queue_count;
    opts.weights = weights;
    opts.beat_interval_ms = 200;
    opts.shutdown_timeout_ms = shutdown_ms;
    opts.log = quiet_log;
    struct fabrik_worker *w = NULL;
    int rc = fabrik_worker_new(&w, &opts);
    if (rc != 0)
        th_fail("fabrik_worker_new failed: %s", fabrik_strerror(rc));
    return w;
}

static json_t *info(struct fabrik_client *c) {
    char *text = NULL;
    CT_OK(c, fabrik_info(c, &text));
    json_t *doc = th_keep_json(json_loads(text, 0, NULL));
    fabrik_free(text);
    return doc;
}

static void push_numbered(struct fabrik_client *c, const char *type, const char *queue, int n) {
    struct fabrik_job *job = fabrik_job_new(type);
    CT_OK(c, fabrik_job_set_queue(job, queue));
    CT_OK(c, fabrik_job_add_arg_int(job, n));
    CT_OK(c, fabrik_push_job(c, job));
    fabrik_job_free(job);
}

static void worker_processes_jobs(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    struct fabrik_client *c = ct_open(srv);
    for (int i = 1; i <= 40; i++)
        push_numbered(c, "Numbered", "default", i);
    push_numbered(c, "NoSuchType", "default", 1);

    struct counters *counts = counters_new();
    struct fabrik_worker *w = worker_for(srv, 4, NULL, 0, NULL, 5000);
    TH_EQ_INT(fabrik_worker_register(w, "Numbered", numbered_job, counts), 0);
    TH_EQ_INT(fabrik_worker_start(w), 0);
    TH_EQ_INT(fabrik_worker_register(w, "Late", numbered_job, counts), FABRIK_ESTATE);
    TH_CHECK(CT_WAIT(fabrik_worker_acked(w) + fabrik_worker_failed(w) == 41, 20000));
    TH_EQ_INT(fabrik_worker_stop(w), 0);
    TH_EQ_INT(fabrik_worker_state(w), FABRIK_WORKER_STOPPED);
    TH_EQ_INT(fabrik_worker_acked(w), 32);
    TH_EQ_INT(fabrik_worker_failed(w), 9);
    TH_EQ_INT(atomic_load(&counts->ran), 40);
    fabrik_worker_free(w);

    json_t *doc = info(c);
    TH_EQ_INT(TH_JINT(doc, "faktory.total_processed"), 41);
    TH_EQ_INT(TH_JINT(doc, "faktory.total_failures"), 9);
    TH_EQ_INT(TH_JINT(doc, "faktory.sets.retries"), 9);
    TH_EQ_INT(TH_JINT(doc, "faktory.sets.working"), 0);

    json_t *retries = NULL;
    TH_EQ_INT(ct_http(srv, "GET", "/api/sets/retries?errtype=ValueError", NULL, &retries), 200);
    TH_EQ_INT(TH_JINT(retries, "total"), 8);
    json_t *job = json_array_get(json_object_get(retries, "jobs"), 0);
    TH_CHECK(strstr(TH_JSTR(job, "failure.message"), "is a multiple of 5") != NULL);
    /* The backtrace comes from backtrace(3) at fabrik_task_fail(). */
    TH_CHECK(json_array_size(th_json_get(job, "failure.backtrace")) > 0);

    TH_EQ_INT(ct_http(srv, "GET", "/api/sets/retries?errtype=UnknownJobType", NULL, &retries),
              200);
    TH_EQ_INT(TH_JINT(retries, "total"), 1);
    fabrik_client_close(c);
}

static void worker_strict_queue_order(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_client *c = ct_open(srv);
    for (int i = 0; i < 10; i++) {
        push_numbered(c, "Q", "low", i);
        push_numbered(c, "Q", "high", i);
    }
    struct counters *counts = counters_new();
    const char *queues[] = {"high", "low"};
    struct fabrik_worker *w = worker_for(srv, 1, queues, 2, NULL, 5000);
    fabrik_worker_register(w, "Q", record_queue, counts);
    TH_EQ_INT(fabrik_worker_start(w), 0);
    TH_CHECK(CT_WAIT(fabrik_worker_acked(w) == 20, 20000));
    fabrik_worker_free(w);
    TH_EQ_STR(counts->order, "hhhhhhhhhhllllllllll");
    fabrik_client_close(c);
}

static void worker_weighted_queues(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_client *c = ct_open(srv);
    for (int i = 0; i < 40; i++) {
        push_numbered(c, "Q", "alpha", i);
        push_numbered(c, "Q", "beta", i);
    }
    struct counters *counts = counters_new();
    const char *queues[] = {"alpha", "beta"};
    const unsigned weights[] = {1, 1};
    struct fabrik_worker *w = worker_for(srv, 1, queues, 2, weights, 5000);
    fabrik_worker_register(w, "Q", record_queue, counts);
    TH_EQ_INT(fabrik_worker_start(w), 0);
    TH_CHECK(CT_WAIT(fabrik_worker_acked(w) == 80, 20000));
    fabrik_worker_free(w);

    /* With equal weights both queues are served from the start: strict order would run all
     * 40 alpha jobs first. The chance that the first 20 are all one queue is 2^-19. */
    char first[21];
    memcpy(first, counts->order, 20);
    first[20] = '\0';
    TH_CHECK(strchr(first, 'a') != NULL);
    TH_CHECK(strchr(first, 'b') != NULL);

    struct fabrik_worker_options opts;
    fabrik_worker_options_init(&opts);
    opts.queues = queues;
    opts.queue_count = 2;
    const unsigned zero[] = {1, 0};
    opts.weights = zero;
    TH_EQ_INT(fabrik_worker_new(&w, &opts), FABRIK_EINVAL);
    fabrik_client_close(c);
}

static int post_signal(struct th_server *srv, const char *wid, const char *signal) {
    return ct_http(srv, "POST", "/api/busy",
                   th_fmt("{\"wid\":\"%s\",\"signal\":\"%s\"}", wid, signal), NULL);
}

static void worker_quiet_and_terminate_from_web(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    struct fabrik_client *c = ct_open(srv);
    struct counters *counts = counters_new();
    struct fabrik_worker *w = worker_for(srv, 2, NULL, 0, NULL, 2000);
    fabrik_worker_register(w, "Numbered", numbered_job, counts);
    TH_EQ_INT(fabrik_worker_start(w), 0);
    push_numbered(c, "Numbered", "default", 1);
    TH_CHECK(CT_WAIT(fabrik_worker_acked(w) == 1, 10000));

    TH_EQ_INT(post_signal(srv, fabrik_worker_wid(w), "quiet"), 200);
    TH_CHECK(CT_WAIT(fabrik_worker_state(w) == FABRIK_WORKER_QUIET, 5000));
    /* A FETCH that was already waiting on the server when the signal arrived may still get a
     * job, as with Faktory. After the server's 2-second FETCH wait no thread fetches again. */
    th_sleep_ms(2500);
    push_numbered(c, "Numbered", "default", 2);
    th_sleep_ms(2500);
    TH_EQ_INT(fabrik_worker_acked(w), 1);
    TH_EQ_INT(TH_JINT(info(c), "faktory.queues.default"), 1);

    TH_EQ_INT(post_signal(srv, fabrik_worker_wid(w), "terminate"), 200);
    TH_EQ_INT(fabrik_worker_wait(w, 10000), 0);
    TH_EQ_INT(fabrik_worker_state(w), FABRIK_WORKER_STOPPED);
    TH_EQ_INT(fabrik_worker_acked(w), 1);
    fabrik_worker_free(w);
    fabrik_client_close(c);
}

static void worker_terminate_fails_running_job(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    struct fabrik_client *c = ct_open(srv);
    struct counters *counts = counters_new();
    counts->sleep_ms = 30000;
    struct fabrik_worker *w = worker_for(srv, 1, NULL, 0, NULL, 500);
    fabrik_worker_register(w, "Slow", slow_job, counts);
    TH_EQ_INT(fabrik_worker_start(w), 0);
    push_numbered(c, "Slow", "default", 1);
    TH_CHECK(CT_WAIT(atomic_load(&counts->running) == 1, 10000));

    TH_EQ_INT(post_signal(srv, fabrik_worker_wid(w), "terminate"), 200);
    TH_EQ_INT(fabrik_worker_wait(w, 10000), 0);
    TH_EQ_INT(fabrik_worker_failed(w), 1);
    TH_EQ_INT(fabrik_worker_acked(w), 0);
    fabrik_worker_free(w);
    /* The handler saw the cancellation and returned; its ACK was skipped. */
    TH_EQ_INT(atomic_load(&counts->cancelled_seen), 1);

    json_t *doc = info(c);
    TH_EQ_INT(TH_JINT(doc, "faktory.total_failures"), 1);
    TH_EQ_INT(TH_JINT(doc, "faktory.sets.retries"), 1);
    json_t *retries = NULL;
    TH_EQ_INT(ct_http(srv, "GET", "/api/sets/retries", NULL, &retries), 200);
    json_t *job = json_array_get(json_object_get(retries, "jobs"), 0);
    TH_EQ_STR(TH_JSTR(job, "failure.errtype"), "ShutdownTimeout");
    TH_EQ_STR(TH_JSTR(job, "failure.message"), "worker shutdown timeout exceeded");
    fabrik_client_close(c);
}

static void worker_shutdown_finishes_jobs(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_client *c = ct_open(srv);
    struct counters *counts = counters_new();
    counts->sleep_ms = 700;
    struct fabrik_worker *w = worker_for(srv, 3, NULL, 0, NULL, 10000);
    fabrik_worker_register(w, "Slow", slow_job, counts);
    TH_EQ_INT(fabrik_worker_start(w), 0);
    for (int i = 0; i < 3; i++)
        push_numbered(c, "Slow", "default", i);
    TH_CHECK(CT_WAIT(atomic_load(&counts->running) == 3, 10000));

    double start = th_now();
    TH_EQ_INT(fabrik_worker_stop(w), 0);
    TH_RANGE(th_now() - start, 0.0, 9.0);
    TH_EQ_INT(fabrik_worker_acked(w), 3);
    TH_EQ_INT(fabrik_worker_failed(w), 0);
    TH_EQ_INT(atomic_load(&counts->cancelled_seen), 0);
    fabrik_worker_free(w);

    json_t *doc = info(c);
    TH_EQ_INT(TH_JINT(doc, "faktory.total_processed"), 3);
    TH_EQ_INT(TH_JINT(doc, "faktory.total_failures"), 0);
    fabrik_client_close(c);
}

static void worker_survives_server_restart(void) {
    struct th_server *srv = th_server_start(NULL);
    struct counters *counts = counters_new();
    struct fabrik_worker *w = worker_for(srv, 2, NULL, 0, NULL, 5000);
    fabrik_worker_register(w, "Numbered", numbered_job, counts);
    TH_EQ_INT(fabrik_worker_start(w), 0);
    th_sleep_ms(300);

    th_server_stop(srv);
    th_sleep_ms(500);
    th_server_restart(srv);
    struct fabrik_client *c = ct_open(srv);
    push_numbered(c, "Numbered", "default", 1);
    push_numbered(c, "Numbered", "default", 2);
    TH_CHECK(CT_WAIT(fabrik_worker_acked(w) == 2, 15000));
    TH_EQ_INT(fabrik_worker_stop(w), 0);
    fabrik_worker_free(w);
    TH_EQ_INT(TH_JINT(info(c), "faktory.total_processed"), 2);
    fabrik_client_close(c);
}

static void worker_rejects_bad_use(void) {
    struct fabrik_worker *w = NULL;
    TH_EQ_INT(fabrik_worker_new(NULL, NULL), FABRIK_EINVAL);
    struct fabrik_worker_options opts;
    fabrik_worker_options_init(&opts);
    opts.conn.url = "http://nowhere";
    TH_EQ_INT(fabrik_worker_new(&w, &opts), FABRIK_EINVAL);
    opts.conn.url = "tcp://127.0.0.1:1";
    const char *bad[] = {"two words"};
    opts.queues = bad;
    opts.queue_count = 1;
    TH_EQ_INT(fabrik_worker_new(&w, &opts), FABRIK_EINVAL);
    opts.queues = NULL;
    opts.queue_count = 0;
    opts.conn.reconnect_attempts = 0;
    TH_EQ_INT(fabrik_worker_new(&w, &opts), 0);
    TH_EQ_INT(fabrik_worker_register(w, "", numbered_job, NULL), FABRIK_EINVAL);
    TH_EQ_INT(fabrik_worker_wait(w, 0), FABRIK_ESTATE);
    /* Nothing listens on port 1. */
    TH_EQ_INT(fabrik_worker_start(w), FABRIK_ECONNECT);
    TH_EQ_INT(strlen(fabrik_worker_wid(w)), FABRIK_JID_LEN);
    fabrik_worker_free(w);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(worker_processes_jobs),
        TH_CASE(worker_strict_queue_order),
        TH_CASE(worker_weighted_queues),
        TH_CASE(worker_quiet_and_terminate_from_web),
        TH_CASE(worker_terminate_fails_running_job),
        TH_CASE(worker_shutdown_finishes_jobs),
        TH_CASE(worker_survives_server_restart),
        TH_CASE(worker_rejects_bad_use),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
