/* The JSON API under /api/ and the Prometheus metrics; docs/http-api.md is the contract. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <uthash.h>

#include "ent/track.h"
#include "ent/batch.h"
#include "net/server.h"
#include "store/batches.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"
#include "web/web.h"

#define DEFAULT_PER_PAGE 25
#define MAX_PER_PAGE 500
#define MAX_BUSY_JOBS 500
/* A batch's detail lists this many child batches, newest first. */
#define MAX_BATCH_CHILDREN 100

static const char *const state_names[] = {"queued", "scheduled", "retry", "working", "dead"};

static json_t *time_or_null(double t) {
    char ts[32];
    return t > 0 ? json_string(time_format_rfc3339(t, ts)) : json_null();
}

/* The job type as people know it. ActiveJob wraps every Rails job in one Faktory type and
 * names the real class in custom.wrapped, and mailer jobs carry Mailer#method in their
 * arguments. */
static json_t *display_type(const json_t *doc) {
    const char *type = json_string_value(json_object_get(doc, "jobtype"));
    const char *wrapped = json_string_value(
        json_object_get(json_object_get(doc, "custom"), "wrapped"));
    if (!type || strcmp(type, "ActiveJob::QueueAdapters::FaktoryAdapter::JobWrapper") != 0 ||
        !wrapped)
        return json_string(type ? type : "");
    if (strcmp(wrapped, "ActionMailer::DeliveryJob") == 0 ||
        strcmp(wrapped, "ActionMailer::MailDeliveryJob") == 0) {
        const json_t *inner = json_object_get(json_array_get(json_object_get(doc, "args"), 0),
                                              "arguments");
        const char *mailer = json_string_value(json_array_get(inner, 0));
        const char *method = json_string_value(json_array_get(inner, 1));
        if (mailer && method) {
            char text[512];
            snprintf(text, sizeof text, "%s#%s", mailer, method);
            return json_string(text);
        }
    }
    return json_string(wrapped);
}

static json_t *copy_or_null(const json_t *v) {
    return v && !json_is_null(v) ? json_deep_copy(v) : json_null();
}

/* Builds the job object of the contract from a stored row. */
static json_t *job_json(const struct store_job *row) {
    json_t *doc = json_loads(row->payload, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        doc = json_object();
    }
    json_t *job = json_object();
    json_object_set_new(job, "id", json_integer(row->id));
    json_object_set_new(job, "jid", json_string(row->jid ? row->jid : ""));
    json_object_set_new(job, "state", json_string(state_names[row->state]));
    json_object_set_new(job, "queue", json_string(row->queue ? row->queue : ""));
    json_object_set_new(job, "jobtype", copy_or_null(json_object_get(doc, "jobtype")));
    json_object_set_new(job, "display_type", display_type(doc));
    json_object_set_new(job, "args", copy_or_null(json_object_get(doc, "args")));
    json_object_set_new(job, "priority", json_integer(row->priority));
    json_object_set_new(job, "at", time_or_null(row->state == JOB_QUEUED ? 0 : row->at));
    json_object_set_new(job, "enqueued_at", copy_or_null(json_object_get(doc, "enqueued_at")));
    json_object_set_new(job, "created_at", copy_or_null(json_object_get(doc, "created_at")));
    json_object_set_new(job, "wid", row->wid ? json_string(row->wid) : json_null());
    json_object_set_new(job, "failure", copy_or_null(json_object_get(doc, "failure")));
    json_object_set_new(job, "custom", copy_or_null(json_object_get(doc, "custom")));
    json_object_set_new(job, "payload", doc);
    return job;
}


/* Adds "progress" to a job object: the tracking record of a tracked job ({"state",
 * "updated_at", "percent", "desc"}), or null when the job is not tracked or its record is
 * gone. Returns 0, or -1 when the store failed. */
static int add_progress(struct server *s, json_t *job, const struct store_job *row) {
    struct store_tracking t = {0};
    int rc = 0;
    if (row->ext & JOB_EXT_TRACKED)
        rc = track_lookup(&s->engine, row->jid, engine_now(&s->engine), &t);
    json_t *progress = json_null();
    if (rc > 0) {
        json_decref(progress);
        progress = track_document(row->jid, &t);
        json_object_del(progress, "jid");
    }
    json_object_set_new(job, "progress", progress);
    store_tracking_clear(&t);
    return rc < 0 ? -1 : 0;
}

/* A listing of job objects being built by store_list. */
struct job_list {
    struct server *s;
    json_t *jobs;
    bool failed;   /* a progress lookup failed and stopped the listing */
};

static int append_job(void *ctx, const struct store_job *row) {
    struct job_list *list = ctx;
    json_t *job = job_json(row);
    json_array_append_new(list->jobs, job);
    list->failed = add_progress(list->s, job, row) != 0;
    return list->failed;
}

/* store_list into a JSON array of job objects. Returns 0 or -1. */
static int list_jobs(struct server *s, const struct store_query *q, json_t *jobs) {
    struct job_list list = {.s = s, .jobs = jobs};
    int rc = store_list(s->store, q, append_job, &list);
    return rc != 0 || list.failed ? -1 : 0;
}

/* ---- parameters --------------------------------------------------------------------------- */

/* Reads a positive integer query parameter; returns -1 after replying with 400. */
static int64_t int_param(struct web_request *r, const char *name, int64_t fallback, int64_t max) {
    const char *text = evhttp_find_header(&r->query, name);
    if (!text)
        return fallback;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < 1 || v > max) {
        web_reply_error(r, 400, "%s must be an integer from 1 to %lld, not \"%.40s\"", name,
                        (long long)max, text);
        return -1;
    }
    return v;
}

/* Reads page and per_page into q. Returns -1 after replying with 400. */
static int paging(struct web_request *r, struct store_query *q, int64_t *page, int64_t *per) {
    *page = int_param(r, "page", 1, 1000000000);
    if (*page < 0)
        return -1;
    *per = int_param(r, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE);
    if (*per < 0)
        return -1;
    q->limit = *per;
    q->offset = (*page - 1) * *per;
    return 0;
}

static const char *text_param(struct web_request *r, const char *name) {
    const char *v = evhttp_find_header(&r->query, name);
    return v && v[0] ? v : NULL;
}

/* Parses the body as a JSON object; returns NULL after replying with 400. */
static json_t *body_object(struct web_request *r) {
    json_error_t err;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &err);
    if (!json_is_object(doc)) {
        web_reply_error(r, 400, "the request body must be a JSON object: %s",
                        doc ? "got another JSON value" : err.text);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static bool expect_method(struct web_request *r, bool post_allowed) {
    if (r->method == EVHTTP_REQ_GET || r->method == EVHTTP_REQ_HEAD ||
        (post_allowed && r->method == EVHTTP_REQ_POST))
        return true;
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Allow",
                      post_allowed ? "GET, HEAD, POST" : "GET, HEAD");
    web_reply_error(r, 405, "%s accepts %s", r->path, post_allowed ? "GET and POST" : "GET");
    return false;
}

/* Commits a write and answers {"affected": n}, or 503 when the commit failed. */
static void reply_affected(struct web_request *r, int rc, int64_t affected) {
    struct server *s = r->srv;
    if (rc != 0 || server_commit_now(s) != 0) {
        if (rc != 0)
            server_fail_tx(s, store_error(s->store));
        web_reply_error(r, 503, "storage failure, nothing was changed: %s", store_error(s->store));
        return;
    }
    web_reply_json(r, 200, json_pack("{s:I}", "affected", (json_int_t)affected));
}

/* ---- /api/history --------------------------------------------------------------------------- */

struct history {
    json_t *days;
    double start;   /* first day, as a time */
    int ndays;
};

static void history_row(void *ctx, const char *day, int64_t processed, int64_t failures) {
    struct history *h = ctx;
    for (int i = 0; i < h->ndays; i++) {
        json_t *entry = json_array_get(h->days, (size_t)i);
        if (strcmp(json_string_value(json_object_get(entry, "day")), day) == 0) {
            json_object_set_new(entry, "processed", json_integer(processed));
            json_object_set_new(entry, "failures", json_integer(failures));
            return;
        }
    }
}

static void api_history(struct web_request *r) {
    int64_t days = int_param(r, "days", 30, 366);
    if (days < 0)
        return;
    struct server *s = r->srv;
    struct history h = {.days = json_array(), .ndays = (int)days};
    double now = engine_now(&s->engine);
    h.start = now - (double)(days - 1) * 86400;
    for (int i = 0; i < h.ndays; i++) {
        char day[11];
        time_format_day(h.start + (double)i * 86400, day);
        json_array_append_new(h.days, json_pack("{s:s, s:i, s:i}", "day", day, "processed", 0,
                                                "failures", 0));
    }
    char since[11];
    time_format_day(h.start, since);
    if (store_history(s->store, since, history_row, &h) != 0) {
        json_decref(h.days);
        web_reply_error(r, 503, "cannot read the history: %s", store_error(s->store));
        return;
    }
    web_reply_json(r, 200, json_pack("{s:o}", "days", h.days));
}

/* ---- /api/busy ------------------------------------------------------------------------------ */

struct busy_count {
    char *wid;
    int64_t jobs;
    UT_hash_handle hh;
};

static int count_busy(void *ctx, const struct store_job *row) {
    struct busy_count **counts = ctx;
    if (!row->wid)
        return 0;
    struct busy_count *c = NULL;
    HASH_FIND_STR(*counts, row->wid, c);
    if (!c) {
        c = xcalloc(1, sizeof *c);
        c->wid = xstrdup(row->wid);
        HASH_ADD_KEYPTR(hh, *counts, c->wid, strlen(c->wid), c);
    }
    c->jobs++;
    return 0;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int compare_workers(const void *a, const void *b) {
    return strcmp((*(struct worker *const *)a)->wid, (*(struct worker *const *)b)->wid);
}

static json_t *workers_json(struct server *s, struct busy_count *counts) {
    size_t n = (size_t)worker_count(&s->workers), i = 0;
    struct worker **list = xcalloc(n ? n : 1, sizeof *list);
    struct worker *w, *tmp;
    HASH_ITER(hh, s->workers.by_wid, w, tmp) {
        list[i++] = w;
    }
    qsort(list, n, sizeof *list, compare_workers);
    json_t *workers = json_array();
    char started[32], beat[32];
    for (i = 0; i < n; i++) {
        w = list[i];
        struct busy_count *c = NULL;
        HASH_FIND_STR(counts, w->wid, c);
        json_array_append_new(
            workers,
            json_pack("{s:s, s:s, s:I, s:O, s:s, s:i, s:I, s:s, s:s, s:I}", "wid", w->wid,
                      "hostname", w->hostname, "pid", (json_int_t)w->pid, "labels", w->labels,
                      "state", worker_state_name(w->state), "connections", w->connections,
                      "rss_kb", (json_int_t)w->rss_kb, "started_at",
                      time_format_rfc3339(w->started, started), "last_beat_at",
                      time_format_rfc3339(w->last_beat, beat), "busy",
                      (json_int_t)(c ? c->jobs : 0)));
    }
    free(list);
    return workers;
}

static void api_busy_get(struct web_request *r) {
    struct server *s = r->srv;
    struct busy_count *counts = NULL, *c, *tmp;
    json_t *jobs = json_array();
    struct store_query q = {.state = JOB_WORKING, .limit = MAX_BUSY_JOBS};
    int rc = store_scan(s->store, JOB_WORKING, count_busy, &counts);
    if (rc == 0)
        rc = list_jobs(s, &q, jobs);
    if (rc != 0) {
        web_reply_error(r, 503, "cannot read the working set: %s", store_error(s->store));
        json_decref(jobs);
    } else {
        web_reply_json(r, 200, json_pack("{s:o, s:o}", "workers", workers_json(s, counts),
                                         "jobs", jobs));
    }
    HASH_ITER(hh, counts, c, tmp) {
        HASH_DEL(counts, c);
        free(c->wid);
        free(c);
    }
}

static void api_busy_post(struct web_request *r) {
    json_t *doc = body_object(r);
    if (!doc)
        return;
    const char *wid = json_string_value(json_object_get(doc, "wid"));
    const char *signal = json_string_value(json_object_get(doc, "signal"));
    enum worker_state state;
    if (!wid || !wid[0]) {
        web_reply_error(r, 400, "wid is required: a worker id, or \"*\" for every worker");
    } else if (worker_parse_state(signal, &state) != 0) {
        web_reply_error(r, 400, "signal must be \"quiet\" or \"terminate\"");
    } else {
        int changed = server_signal_workers(r->srv, wid, state);
        web_reply_json(r, 200, json_pack("{s:i}", "affected", changed));
    }
    json_decref(doc);
}

/* ---- /api/queues ---------------------------------------------------------------------------- */

static json_t *queue_json(struct server *s, const char *name, int64_t size, bool paused) {
    double latency = 0;
    if (engine_queue_latency(&s->engine, name, &latency) != 0)
        latency = 0;
    return json_pack("{s:s, s:I, s:f, s:b}", "name", name, "size", (json_int_t)size,
                     "latency", latency, "paused", paused);
}

struct queue_list {
    struct server *srv;
    json_t *queues;
};

static void each_queue_json(void *ctx, const char *name, int64_t size, bool paused) {
    struct queue_list *list = ctx;
    json_array_append_new(list->queues, queue_json(list->srv, name, size, paused));
}

static void api_queues(struct web_request *r) {
    if (!expect_method(r, false))
        return;
    struct queue_list list = {.srv = r->srv, .queues = json_array()};
    engine_each_queue(&r->srv->engine, each_queue_json, &list);
    web_reply_json(r, 200, json_pack("{s:o}", "queues", list.queues));
}

static void api_queue_get(struct web_request *r, const char *name) {
    struct server *s = r->srv;
    if (!engine_queue_exists(&s->engine, name)) {
        web_reply_error(r, 404, "no queue named \"%s\"", name);
        return;
    }
    struct store_query q = {.state = JOB_QUEUED, .queue = name};
    int64_t page, per, total = 0;
    if (paging(r, &q, &page, &per) != 0)
        return;
    json_t *jobs = json_array();
    if (list_jobs(s, &q, jobs) != 0 || store_count(s->store, &q, &total) != 0) {
        json_decref(jobs);
        web_reply_error(r, 503, "cannot read queue %s: %s", name, store_error(s->store));
        return;
    }
    json_t *queue = queue_json(s, name, engine_queue_size(&s->engine, name),
                               engine_queue_paused(&s->engine, name));
    web_reply_json(r, 200, json_pack("{s:o, s:o, s:I, s:I, s:I}", "queue", queue, "jobs", jobs,
                                     "page", (json_int_t)page, "per_page", (json_int_t)per,
                                     "total", (json_int_t)total));
}

/* Applies action to each id of the JSON array ids; returns -1 on a store failure, otherwise
 * 0 with *affected counted. Replies with 400 itself (returning -2) when ids is not a list of ids. */
static int act_on_ids(struct web_request *r, const json_t *ids, enum job_state state,
                      enum engine_action action, int64_t *affected) {
    if (!json_is_array(ids) || json_array_size(ids) == 0) {
        web_reply_error(r, 400, "ids must be a non-empty array of job ids (the \"id\" field of "
                                "a listed job)");
        return -2;
    }
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        if (!json_is_integer(id)) {
            web_reply_error(r, 400, "ids must contain only integers");
            return -2;
        }
    }
    json_array_foreach(ids, i, id) {
        int rc = engine_job_action(&r->srv->engine, json_integer_value(id), state, action);
        if (rc < 0)
            return -1;
        *affected += rc;
    }
    return 0;
}

static void api_queue_post(struct web_request *r, const char *name) {
    struct server *s = r->srv;
    json_t *doc = body_object(r);
    if (!doc)
        return;
    const char *action = json_string_value(json_object_get(doc, "action"));
    char *names[] = {(char *)name};
    int64_t affected = 0;
    int rc = 0;
    if (!engine_queue_exists(&s->engine, name)) {
        web_reply_error(r, 404, "no queue named \"%s\"", name);
    } else if (action && (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0)) {
        bool pause = strcmp(action, "pause") == 0;
        affected = engine_queue_paused(&s->engine, name) != pause;
        rc = engine_pause_queues(&s->engine, names, 1, pause);
        reply_affected(r, rc, affected);
    } else if (action && strcmp(action, "clear") == 0) {
        affected = engine_queue_size(&s->engine, name);
        rc = engine_remove_queues(&s->engine, names, 1);
        reply_affected(r, rc, affected);
    } else if (action && strcmp(action, "delete") == 0) {
        rc = act_on_ids(r, json_object_get(doc, "ids"), JOB_QUEUED, ENGINE_DELETE, &affected);
        if (rc != -2)
            reply_affected(r, rc, affected);
    } else {
        web_reply_error(r, 400, "action must be \"pause\", \"resume\", \"clear\" or \"delete\"");
    }
    json_decref(doc);
}

/* ---- /api/sets ------------------------------------------------------------------------------ */

static int parse_set(const char *name, enum job_state *state) {
    if (strcmp(name, "retries") == 0)
        *state = JOB_RETRY;
    else if (strcmp(name, "scheduled") == 0)
        *state = JOB_SCHEDULED;
    else if (strcmp(name, "dead") == 0)
        *state = JOB_DEAD;
    else
        return -1;
    return 0;
}

static void append_value(void *ctx, const char *value) {
    json_array_append_new(ctx, json_string(value));
}

static void api_set_get(struct web_request *r, enum job_state state) {
    struct server *s = r->srv;
    struct store_query q = {.state = state,
                            .queue = text_param(r, "queue"),
                            .jobtype = text_param(r, "jobtype"),
                            .errtype = text_param(r, "errtype"),
                            .search = text_param(r, "q"),
                            .newest_first = state == JOB_DEAD};
    int64_t page, per, total = 0;
    if (paging(r, &q, &page, &per) != 0)
        return;
    json_t *jobs = json_array(), *types = json_array(), *queues = json_array(),
           *errtypes = json_array();
    int rc = list_jobs(s, &q, jobs);
    if (rc == 0)
        rc = store_count(s->store, &q, &total);
    if (rc == 0)
        rc = store_distinct(s->store, state, "jobtype", append_value, types);
    if (rc == 0)
        rc = store_distinct(s->store, state, "queue", append_value, queues);
    if (rc == 0)
        rc = store_distinct(s->store, state, "errtype", append_value, errtypes);
    if (rc != 0) {
        web_reply_error(r, 503, "cannot read the set: %s", store_error(s->store));
        json_decref(jobs);
        json_decref(types);
        json_decref(queues);
        json_decref(errtypes);
        return;
    }
    web_reply_json(r, 200,
                   json_pack("{s:o, s:I, s:I, s:I, s:o, s:o, s:o}", "jobs", jobs, "page",
                             (json_int_t)page, "per_page", (json_int_t)per, "total",
                             (json_int_t)total, "jobtypes", types, "queues", queues, "errtypes",
                             errtypes));
}

static int collect_id(void *ctx, const struct store_job *row) {
    json_array_append_new(ctx, json_integer(row->id));
    return 0;
}

static int parse_action(const char *text, enum engine_action *out) {
    if (!text)
        return -1;
    if (strcmp(text, "retry") == 0)
        *out = ENGINE_RETRY;
    else if (strcmp(text, "delete") == 0)
        *out = ENGINE_DELETE;
    else if (strcmp(text, "kill") == 0)
        *out = ENGINE_KILL;
    else
        return -1;
    return 0;
}

/* Reads an optional string filter from the body; NULL when absent or empty. */
static const char *body_filter(const json_t *doc, const char *key) {
    const char *v = json_string_value(json_object_get(doc, key));
    return v && v[0] ? v : NULL;
}

static void api_set_post(struct web_request *r, enum job_state state) {
    struct server *s = r->srv;
    json_t *doc = body_object(r);
    if (!doc)
        return;
    enum engine_action action;
    int64_t affected = 0;
    if (parse_action(json_string_value(json_object_get(doc, "action")), &action) != 0) {
        web_reply_error(r, 400, "action must be \"retry\", \"delete\" or \"kill\"");
    } else if (action == ENGINE_KILL && state == JOB_DEAD) {
        web_reply_error(r, 400, "jobs in the dead set cannot be killed; retry or delete them");
    } else if (json_is_true(json_object_get(doc, "all"))) {
        /* Collect first, then change: the listing must not see its own writes. */
        struct store_query q = {.state = state,
                                .queue = body_filter(doc, "queue"),
                                .jobtype = body_filter(doc, "jobtype"),
                                .errtype = body_filter(doc, "errtype"),
                                .search = body_filter(doc, "q"),
                                .limit = -1};
        json_t *ids = json_array();
        int rc = store_list(s->store, &q, collect_id, ids);
        if (rc == 0 && json_array_size(ids) > 0)
            rc = act_on_ids(r, ids, state, action, &affected);
        reply_affected(r, rc, affected);
        json_decref(ids);
    } else {
        int rc = act_on_ids(r, json_object_get(doc, "ids"), state, action, &affected);
        if (rc != -2)
            reply_affected(r, rc, affected);
    }
    json_decref(doc);
}

/* ---- /api/jobs/<id> ------------------------------------------------------------------------- */

static void api_job(struct web_request *r, const char *id_text) {
    char *end;
    long long id = strtoll(id_text, &end, 10);
    if (end == id_text || *end || id < 1) {
        web_reply_error(r, 400, "job id must be a positive integer, not \"%.40s\"", id_text);
        return;
    }
    struct store_job row = {0};
    int rc = store_get_job(r->srv->store, id, &row);
    if (rc < 0)
        web_reply_error(r, 503, "cannot read job %lld: %s", id, store_error(r->srv->store));
    else if (rc == 0)
        web_reply_error(r, 404, "job %lld does not exist (it may have run or been deleted)", id);
    if (rc <= 0) {
        store_job_clear(&row);
        return;
    }
    json_t *job = job_json(&row);
    if (add_progress(r->srv, job, &row) != 0) {
        web_reply_error(r, 503, "cannot read the progress of job %lld: %s", id,
                        store_error(r->srv->store));
        json_decref(job);
    } else {
        web_reply_json(r, 200, json_pack("{s:o}", "job", job));
    }
    store_job_clear(&row);
}

/* ---- /api/throttles ---------------------------------------------------------------------- */

/* Lists every throttle with all its holders, sorted by queue name. */
static void api_throttles(struct web_request *r) {
    json_t *by_queue = engine_throttles(&r->srv->engine, SIZE_MAX);
    const char **names = xcalloc(json_object_size(by_queue) + 1, sizeof *names);
    size_t n = 0;
    const char *name;
    json_t *entry;
    json_object_foreach(by_queue, name, entry) {
        names[n++] = name;
    }
    qsort(names, n, sizeof *names, compare_strings);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        entry = json_object_get(by_queue, names[i]);
        json_object_set_new(entry, "queue", json_string(names[i]));
        json_array_append(list, entry);
    }
    free(names);
    json_decref(by_queue);
    web_reply_json(r, 200, json_pack("{s:o}", "throttles", list));
}

/* ---- /api/cron ------------------------------------------------------------------------------ */

static void api_cron_get(struct web_request *r) {
    struct engine *e = &r->srv->engine;
    json_t *list = json_array();
    for (size_t i = 0; i < e->cron.n; i++) {
        const struct cron_entry *c = &e->cron.entries[i];
        json_t *entry = json_object();
        json_object_set_new(entry, "key", json_string(c->key));
        json_object_set_new(entry, "schedule", json_string(c->schedule));
        json_object_set_new(entry, "timezone", json_string(c->timezone ? c->timezone : "UTC"));
        json_object_set_new(entry, "catch_up",
                            json_string(c->catch_up == CRON_CATCH_UP_SKIP ? "skip" : "once"));
        json_object_set_new(entry, "source", json_string(c->source));
        json_object_set_new(entry, "job", json_deep_copy(c->job));
        json_object_set_new(entry, "last_run", time_or_null(c->last_run));
        json_object_set_new(entry, "next_run", time_or_null(c->next_run));
        json_array_append_new(list, entry);
    }
    web_reply_json(r, 200, json_pack("{s:o}", "entries", list));
}

static void api_cron_post(struct web_request *r, const char *key) {
    json_t *doc = body_object(r);
    if (!doc)
        return;
    const char *action = json_string_value(json_object_get(doc, "action"));
    if (!action || strcmp(action, "run") != 0) {
        web_reply_error(r, 400, "action must be \"run\"");
    } else {
        int rc = engine_cron_run_now(&r->srv->engine, key);
        if (rc == 0)
            web_reply_error(r, 404, "no cron entry with key %.64s", key);
        else
            reply_affected(r, rc < 0 ? -1 : 0, 1);
    }
    json_decref(doc);
}

/* ---- /api/backup --------------------------------------------------------------------------- */

/* Pages copied per loop iteration: 4 MiB with SQLite's default page size of 4096 bytes, a
 * few milliseconds of copying between two rounds of FWP work. */
#define BACKUP_STEP_PAGES 1024
#define BACKUP_DIR "backups"

/* One POST /api/backup: the copy advances one step per loop iteration, and the request is
 * replied to when the copy is complete. */
struct backup_task {
    struct server *srv;
    struct evhttp_request *req;
    struct evhttp_connection *conn;   /* NULL once libevent has freed the connection */
    struct store_backup *copy;
    struct event *step_event;
    char name[64];                    /* file name in the backups directory */
    char partial[PATH_MAX];           /* where the copy is written */
    char path[PATH_MAX];              /* where the finished copy is renamed to */
    double started;                   /* monotonic */
};

static void backup_free(struct backup_task *t) {
    if (t->conn)
        evhttp_connection_set_closecb(t->conn, NULL, NULL);
    if (t->step_event)
        event_free(t->step_event);
    store_backup_free(t->copy);
    free(t);
}

static void backup_schedule(struct backup_task *t) {
    /* A zero timeout, not event_active: the step runs in the next loop iteration, after the
     * FWP work that is ready by then. */
    struct timeval now = {0, 0};
    evtimer_add(t->step_event, &now);
}

static void backup_fail(struct backup_task *t, int code, const char *why) {
    unlink(t->partial);
    log_error("backup_failed", "file=%s code=%d error=\"%s\"", t->partial, code, why);
    struct web_request r = {.srv = t->srv, .req = t->req};
    web_reply_error(&r, code, "backup failed: %s", why);
    backup_free(t);
}

/* Logs a backup that failed before its copy began, then replies with the same message. */
static void backup_reject(struct web_request *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void backup_reject(struct web_request *r, int code, const char *fmt, ...) {
    char message[PATH_MAX * 2 + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (code == 409)
        log_warn("backup_failed", "code=%d error=\"%s\"", code, message);
    else
        log_error("backup_failed", "code=%d error=\"%s\"", code, message);
    web_reply_error(r, code, "%s", message);
}

/* Makes a finished copy durable under its final name: the file's data, then its directory
 * entry. Returns 0, or -1 with a message in err. */
static int backup_publish(struct backup_task *t, char *err, size_t errlen) {
    int fd = open(t->partial, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "fsync of %s failed: %s", t->partial, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (rename(t->partial, t->path) != 0) {
        snprintf(err, errlen, "renaming %s to %s failed: %s", t->partial, t->path,
                 strerror(errno));
        return -1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/" BACKUP_DIR, t->srv->cfg.data_dir);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "fsync of %s failed: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static void add_queue_size(void *ctx, const char *name, int64_t size, bool paused) {
    (void)paused;
    json_object_set_new(ctx, name, json_integer(size));
}

/* The job counts of the copy. Called in the step that completed it, with nothing committed
 * since, so the engine's counts are those of the copy. */
static json_t *backup_counts(struct engine *e) {
    json_t *queues = json_object();
    engine_each_queue(e, add_queue_size, queues);
    return json_pack("{s:{s:I, s:I, s:I, s:I, s:I}, s:o, s:I, s:I}", "jobs", "queued",
                     (json_int_t)e->set_size[JOB_QUEUED], "scheduled",
                     (json_int_t)e->set_size[JOB_SCHEDULED], "retries",
                     (json_int_t)e->set_size[JOB_RETRY], "working",
                     (json_int_t)e->set_size[JOB_WORKING], "dead",
                     (json_int_t)e->set_size[JOB_DEAD], "queues", queues, "processed",
                     (json_int_t)e->processed, "failures", (json_int_t)e->failures);
}

static void backup_finish(struct backup_task *t) {
    json_t *doc = backup_counts(&t->srv->engine);
    int64_t pages, total;
    store_backup_progress(t->copy, &pages, &total);
    char err[PATH_MAX * 2 + 128];
    if (backup_publish(t, err, sizeof err) != 0) {
        json_decref(doc);
        backup_fail(t, 500, err);
        return;
    }
    struct stat st;
    int64_t bytes = stat(t->path, &st) == 0 ? (int64_t)st.st_size : 0;
    double seconds = time_mono() - t->started;
    char ts[32];
    time_format_rfc3339(time_wall(), ts);
    json_object_set_new(doc, "name", json_string(t->name));
    json_object_set_new(doc, "file", json_string(t->path));
    json_object_set_new(doc, "bytes", json_integer(bytes));
    json_object_set_new(doc, "pages", json_integer(pages));
    json_object_set_new(doc, "seconds", json_real(seconds));
    json_object_set_new(doc, "created_at", json_string(ts));
    log_info("backup_finished", "file=%s bytes=%lld pages=%lld seconds=%.3f", t->path,
             (long long)bytes, (long long)pages, seconds);
    struct web_request r = {.srv = t->srv, .req = t->req};
    web_reply_json(&r, 200, doc);
    backup_free(t);
}

static void backup_step_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct backup_task *t = arg;
    /* Commit this iteration's writes first, so the copy never contains a change that could
     * still roll back. When the iteration already failed, the rollback runs at the end of the
     * iteration, and the step waits for the next one. */
    if (server_commit_now(t->srv) != 0) {
        backup_schedule(t);
        return;
    }
    char err[PATH_MAX + 256];
    int rc = store_backup_step(t->copy, BACKUP_STEP_PAGES, err, sizeof err);
    if (rc < 0)
        backup_fail(t, 503, err);
    else if (rc == 0)
        backup_schedule(t);
    else
        backup_finish(t);
}

/* libevent frees the HTTP connection: the client went away, or the web port is closing at
 * shutdown. A request that the client left is detached from its connection and still
 * ours, so the copy goes on and the reply frees the request. At shutdown the request goes
 * with its connection, so the copy stops and its file is removed. */
static void backup_conn_closed_cb(struct evhttp_connection *conn, void *arg) {
    (void)conn;
    struct backup_task *t = arg;
    t->conn = NULL;
    if (!evhttp_request_get_connection(t->req))
        return;
    log_warn("backup_aborted", "file=%s reason=\"the web port closed\"", t->partial);
    unlink(t->partial);
    backup_free(t);
}

/* Creates <data dir>/backups/ and an empty, new file for the copy; fills the task's names.
 * Returns 0, or -1 after replying. */
static int backup_create_file(struct web_request *r, struct backup_task *t) {
    const char *data_dir = r->srv->cfg.data_dir;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/" BACKUP_DIR, data_dir);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        backup_reject(r, 500, "cannot create the backup directory %s: %s", dir, strerror(errno));
        return -1;
    }

    /* Millisecond names keep the order of creation; two backups started in the same
     * millisecond meet at O_EXCL and the second gets a 409. */
    double now = time_wall();
    time_t secs = (time_t)now;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    snprintf(t->name, sizeof t->name, "fabrik-%s.%03dZ.db", stamp,
             (int)((now - (double)secs) * 1000) % 1000);
    int n = snprintf(t->path, sizeof t->path, "%s/%s", dir, t->name);
    int m = snprintf(t->partial, sizeof t->partial, "%s/%s.partial", dir, t->name);
    if (n < 0 || m < 0 || (size_t)m >= sizeof t->partial) {
        backup_reject(r, 500, "the backup directory path %s is too long", dir);
        return -1;
    }

    int fd = open(t->partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        int code = errno == EEXIST ? 409 : 500;
        backup_reject(r, code, "cannot create the backup file %s: %s%s", t->partial,
                      strerror(errno), code == 409 ? "; retry in a moment" : "");
        return -1;
    }
    close(fd);
    return 0;
}

static void api_backup_post(struct web_request *r) {
    struct server *s = r->srv;
    struct backup_task *t = xcalloc(1, sizeof *t);
    t->srv = s;
    t->req = r->req;
    t->started = time_mono();
    if (backup_create_file(r, t) != 0) {
        free(t);
        return;
    }
    char err[PATH_MAX + 256];
    if (store_backup_begin(s->store, t->partial, &t->copy, err, sizeof err) != 0) {
        unlink(t->partial);
        backup_reject(r, 500, "%s", err);
        free(t);
        return;
    }
    t->step_event = evtimer_new(s->base, backup_step_cb, t);
    t->conn = evhttp_request_get_connection(r->req);
    evhttp_connection_set_closecb(t->conn, backup_conn_closed_cb, t);
    log_info("backup_started", "file=%s", t->partial);
    backup_schedule(t);
}

/* Lists the finished copies in <data dir>/backups/, by name (the names sort by time). */
static void api_backup_list(struct web_request *r) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/" BACKUP_DIR, r->srv->cfg.data_dir);
    json_t *list = json_array();
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        size_t len = strlen(name);
        char path[PATH_MAX];
        struct stat st;
        int plen = snprintf(path, sizeof path, "%s/%s", dir, name);
        if (plen > 0 && (size_t)plen < sizeof path && strncmp(name, "fabrik-", 7) == 0 && len > 3 && strcmp(name + len - 3, ".db") == 0 &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            char ts[32];
            json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:s}", "name", name, "file",
                                                  path, "bytes", (json_int_t)st.st_size,
                                                  "modified_at",
                                                  time_format_rfc3339((double)st.st_mtime, ts)));
        }
        free(names[i]);
    }
    free(names);
    if (n < 0 && errno != ENOENT) {
        json_decref(list);
        web_reply_error(r, 500, "cannot list %s: %s", dir, strerror(errno));
        return;
    }
    web_reply_json(r, 200, json_pack("{s:s, s:o}", "directory", dir, "backups", list));
}

/* ---- /api/batches --------------------------------------------------------------------------- */

static const char *const member_state_names[] = {"pending", "failed", "ended", "succeeded"};

static int append_batch(void *ctx, const struct store_batch *b) {
    json_array_append_new(ctx, batch_describe(b, true));
    return 0;
}

static void api_batches(struct web_request *r) {
    struct server *s = r->srv;
    const char *status = text_param(r, "status");
    if (status && strcmp(status, "open") != 0 && strcmp(status, "pending") != 0 &&
        strcmp(status, "finished") != 0) {
        web_reply_error(r, 400, "status must be \"open\", \"pending\" or \"finished\", not \"%.40s\"",
                        status);
        return;
    }
    struct store_query paged = {0};
    int64_t page, per, total = 0;
    if (paging(r, &paged, &page, &per) != 0)
        return;
    struct store_batch_query q = {.status = status,
                                  .search = text_param(r, "q"),
                                  .offset = paged.offset,
                                  .limit = paged.limit};
    json_t *batches = json_array();
    if (store_batch_list(s->store, &q, append_batch, batches) != 0 ||
        store_batch_count(s->store, &q, &total) != 0) {
        json_decref(batches);
        web_reply_error(r, 503, "cannot read the batches: %s", store_error(s->store));
        return;
    }
    web_reply_json(r, 200, json_pack("{s:o, s:I, s:I, s:I}", "batches", batches, "page",
                                     (json_int_t)page, "per_page", (json_int_t)per, "total",
                                     (json_int_t)total));
}

/* Adds "current" to each callback of a batch document: the callback job as it is now, or
 * null when it was never enqueued or is gone (it succeeded, or was deleted). */
static int add_callback_jobs(struct server *s, const char *bid, json_t *doc) {
    struct store *store = s->store;
    const char *name;
    json_t *cb;
    json_object_foreach(json_object_get(doc, "callbacks"), name, cb) {
        const char *jid = json_string_value(json_object_get(cb, "jid"));
        int64_t id = 0;
        int rc = jid ? store_batch_job_id(store, bid, jid, &id) : 0;
        struct store_job row = {0};
        if (rc > 0)
            rc = store_get_job(store, id, &row);
        if (rc < 0)
            return -1;
        json_t *current = json_null();
        if (rc > 0) {
            current = job_json(&row);
            rc = add_progress(s, current, &row);
        }
        json_object_set_new(cb, "current", current);
        store_job_clear(&row);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int append_member(void *ctx, const char *jid, int state, bool failed,
                         const struct store_job *job) {
    struct job_list *list = ctx;
    if (state < MEMBER_PENDING || state > MEMBER_ACKED)
        state = MEMBER_PENDING;
    json_t *object = json_null();
    if (job) {
        object = job_json(job);
        list->failed = add_progress(list->s, object, job) != 0;
    }
    json_array_append_new(list->jobs, json_pack("{s:s, s:s, s:b, s:o}", "jid", jid,
                                                "member_state", member_state_names[state],
                                                "failed", failed, "job", object));
    return list->failed;
}

static void api_batch(struct web_request *r, const char *bid) {
    struct server *s = r->srv;
    struct store_query paged = {0};
    int64_t page, per;
    if (paging(r, &paged, &page, &per) != 0)
        return;
    struct store_batch b = {0};
    int rc = store_batch_get(s->store, bid, &b);
    if (rc == 0) {
        web_reply_error(r, 404, "no such batch %.100s", bid);
        return;
    }

    json_t *batch = rc > 0 ? batch_describe(&b, true) : NULL;
    json_t *children = json_array(), *jobs = json_array();
    struct store_batch_query q = {.parent_bid = bid, .limit = MAX_BATCH_CHILDREN};
    if (rc > 0)
        rc = add_callback_jobs(s, bid, batch);
    if (rc >= 0)
        rc = store_batch_list(s->store, &q, append_batch, children);
    struct job_list members = {.s = s, .jobs = jobs};
    if (rc >= 0)
        rc = store_member_list(s->store, bid, paged.offset, paged.limit, append_member,
                               &members);
    if (members.failed)
        rc = -1;

    if (rc < 0) {
        json_decref(batch);
        json_decref(children);
        json_decref(jobs);
        web_reply_error(r, 503, "cannot read batch %.100s: %s", bid, store_error(s->store));
    } else {
        web_reply_json(r, 200, json_pack("{s:o, s:o, s:o, s:I, s:I, s:I}", "batch", batch,
                                         "children", children, "jobs", jobs, "page",
                                         (json_int_t)page, "per_page", (json_int_t)per, "total",
                                         (json_int_t)b.total));
    }
    store_batch_clear(&b);
}

/* ---- routing ------------------------------------------------------------------------------- */

void api_route(struct web_request *r) {
    const char *p = r->path + 4;   /* after "/api" */
    if (strcmp(p, "/info") == 0) {
        if (expect_method(r, false))
            web_reply_json(r, 200, server_info_document(r->srv));
    } else if (strcmp(p, "/history") == 0) {
        if (expect_method(r, false))
            api_history(r);
    } else if (strcmp(p, "/busy") == 0) {
        if (expect_method(r, true))
            r->method == EVHTTP_REQ_POST ? api_busy_post(r) : api_busy_get(r);
    } else if (strcmp(p, "/queues") == 0) {
        api_queues(r);
    } else if (strncmp(p, "/queues/", 8) == 0 && p[8]) {
        if (expect_method(r, true))
            r->method == EVHTTP_REQ_POST ? api_queue_post(r, p + 8) : api_queue_get(r, p + 8);
    } else if (strncmp(p, "/sets/", 6) == 0) {
        enum job_state state;
        if (parse_set(p + 6, &state) != 0)
            web_reply_error(r, 404, "no set named \"%s\": use retries, scheduled or dead",
                            p + 6);
        else if (expect_method(r, true))
            r->method == EVHTTP_REQ_POST ? api_set_post(r, state) : api_set_get(r, state);
    } else if (strcmp(p, "/cron") == 0) {
        if (expect_method(r, false))
            api_cron_get(r);
    } else if (strncmp(p, "/cron/", 6) == 0 && p[6]) {
        if (r->method != EVHTTP_REQ_POST) {
            evhttp_add_header(evhttp_request_get_output_headers(r->req), "Allow", "POST");
            web_reply_error(r, 405, "%s accepts POST", r->path);
        } else {
            api_cron_post(r, p + 6);
        }
    } else if (strcmp(p, "/throttles") == 0) {
        if (expect_method(r, false))
            api_throttles(r);
    } else if (strcmp(p, "/backup") == 0) {
        if (expect_method(r, true))
            r->method == EVHTTP_REQ_POST ? api_backup_post(r) : api_backup_list(r);
    } else if (strcmp(p, "/batches") == 0) {
        if (expect_method(r, false))
            api_batches(r);
    } else if (strncmp(p, "/batches/", 9) == 0 && p[9]) {
        if (expect_method(r, false))
            api_batch(r, p + 9);
    } else if (strncmp(p, "/jobs/", 6) == 0) {
        if (expect_method(r, false))
            api_job(r, p + 6);
    } else {
        web_reply_error(r, 404, "no API endpoint %s; see docs/http-api.md", r->path);
    }
}

/* ---- /metrics ----------------------------------------------------------------------------- */

/* Writes a Prometheus label value with backslash, quote and newline escaped. */
static void label_value(struct buf *out, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_printf(out, "\\%c", *v);
        else if (*v == '\n')
            buf_append_str(out, "\\n");
        else
            buf_append(out, v, 1);
    }
}

struct metrics_ctx {
    struct server *srv;
    struct buf *out;
    int pass;   /* 0 size, 1 latency, 2 paused */
};

static void queue_metric(void *ctx, const char *name, int64_t size, bool paused) {
    struct metrics_ctx *m = ctx;
    static const char *const names[] = {"fabrik_queue_size", "fabrik_queue_latency_seconds",
                                        "fabrik_queue_paused"};
    buf_printf(m->out, "%s{queue=\"", names[m->pass]);
    label_value(m->out, name);
    if (m->pass == 0) {
        buf_printf(m->out, "\"} %lld\n", (long long)size);
    } else if (m->pass == 1) {
        double latency = 0;
        engine_queue_latency(&m->srv->engine, name, &latency);
        buf_printf(m->out, "\"} %.6f\n", latency);
    } else {
        buf_printf(m->out, "\"} %d\n", paused ? 1 : 0);
    }
}

static void sum_queue_sizes(void *ctx, const char *name, int64_t size, bool paused) {
    (void)name;
    (void)paused;
    *(int64_t *)ctx += size;
}

static void metric_header(struct buf *out, const char *name, const char *type, const char *help) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void write_throttle_metrics(struct buf *out, struct engine *e) {
    if (!e->throttles.by_queue)
        return;
    json_t *throttles = engine_throttles(e, 0);
    static const char *const limits[] = {"concurrency", "worker", "rate_limit"};
    metric_header(out, "fabrik_throttle_limit", "gauge",
                  "Configured throttle limits by kind (0 = no such limit).");
    const char *queue;
    json_t *t;
    json_object_foreach(throttles, queue, t) {
        for (size_t i = 0; i < 3; i++) {
            buf_printf(out, "fabrik_throttle_limit{queue=\"");
            label_value(out, queue);
            buf_printf(out, "\",kind=\"%s\"} %lld\n", limits[i],
                       (long long)json_integer_value(json_object_get(t, limits[i])));
        }
    }
    static const char *const gauges[][2] = {
        {"in_use", "Throttle slots in use."},
        {"waiting", "Fetchers waiting on the throttled queue."},
        {"timed_out", "Throttle slots freed by their timeout since start."},
    };
    for (size_t g = 0; g < 3; g++) {
        char name[64];
        snprintf(name, sizeof name, "fabrik_throttle_%s", gauges[g][0]);
        metric_header(out, name, g == 2 ? "counter" : "gauge", gauges[g][1]);
        json_object_foreach(throttles, queue, t) {
            buf_printf(out, "%s{queue=\"", name);
            label_value(out, queue);
            buf_printf(out, "\"} %lld\n",
                       (long long)json_integer_value(json_object_get(t, gauges[g][0])));
        }
    }
    json_decref(throttles);
}

/* Writes {jobtype="...",queue="..."}, with status and le labels when they are not NULL. */
static void job_labels(struct buf *out, const struct jobstats_entry *j, const char *status,
                       const char *le) {
    buf_append_str(out, "{jobtype=\"");
    label_value(out, j->jobtype);
    buf_append_str(out, "\",queue=\"");
    label_value(out, j->queue);
    if (status)
        buf_printf(out, "\",status=\"%s", status);
    if (le)
        buf_printf(out, "\",le=\"%s", le);
    buf_append_str(out, "\"}");
}

static void write_job_metrics(struct buf *out, struct engine *e) {
    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"fabrik_job_pushed_total", "Jobs pushed since start, by job type and queue.",
         offsetof(struct jobstats_entry, pushed)},
        {"fabrik_job_succeeded_total", "Jobs ACKed since start, by job type and queue.",
         offsetof(struct jobstats_entry, succeeded)},
        {"fabrik_job_failed_total",
         "Jobs FAILed (or whose reservation expired) since start, by job type and queue.",
         offsetof(struct jobstats_entry, failed)},
    };
    struct jobstats_entry *j, *tmp;
    for (size_t c = 0; c < 3; c++) {
        metric_header(out, counters[c].name, "counter", counters[c].help);
        HASH_ITER(hh, e->jobstats.by_key, j, tmp) {
            buf_append_str(out, counters[c].name);
            job_labels(out, j, NULL, NULL);
            buf_printf(out, " %lld\n",
                       (long long)*(const int64_t *)((const char *)j + counters[c].offset));
        }
    }
    metric_header(out, "fabrik_job_run_seconds", "histogram",
                  "Time from FETCH to ACK or FAIL, by job type, queue and status.");
    static const char *const statuses[] = {"success", "failure"};
    HASH_ITER(hh, e->jobstats.by_key, j, tmp) {
        for (int s = 0; s < 2; s++) {
            uint64_t cumulative = 0;
            for (int b = 0; b <= JOBSTATS_BUCKETS; b++) {
                cumulative += j->buckets[s][b];
                char le[32] = "+Inf";
                if (b < JOBSTATS_BUCKETS)
                    snprintf(le, sizeof le, "%g", jobstats_bounds[b]);
                buf_append_str(out, "fabrik_job_run_seconds_bucket");
                job_labels(out, j, statuses[s], le);
                buf_printf(out, " %llu\n", (unsigned long long)cumulative);
            }
            buf_append_str(out, "fabrik_job_run_seconds_sum");
            job_labels(out, j, statuses[s], NULL);
            buf_printf(out, " %.6f\n", j->run_seconds[s]);
            buf_append_str(out, "fabrik_job_run_seconds_count");
            job_labels(out, j, statuses[s], NULL);
            buf_printf(out, " %llu\n", (unsigned long long)cumulative);
        }
    }
}

void api_metrics(struct web_request *r) {
    struct server *s = r->srv;
    struct engine *e = &s->engine;
    struct buf out = {0};
    metric_header(&out, "fabrik_jobs_processed_total", "counter", "Jobs ACKed or FAILed.");
    buf_printf(&out, "fabrik_jobs_processed_total %lld\n", (long long)e->processed);
    metric_header(&out, "fabrik_jobs_failed_total", "counter",
                  "Jobs FAILed, including expired reservations.");
    buf_printf(&out, "fabrik_jobs_failed_total %lld\n", (long long)e->failures);
    metric_header(&out, "fabrik_jobs_expired_total", "counter",
                  "Jobs removed unrun because their custom.expires_at passed, since start.");
    buf_printf(&out, "fabrik_jobs_expired_total %lld\n", (long long)e->tasks.jobs_expired);

    static const char *const help[] = {"Jobs waiting in the queue.",
                                       "Age in seconds of the job FETCH would take next.",
                                       "1 when the queue is paused."};
    static const char *const names[] = {"fabrik_queue_size", "fabrik_queue_latency_seconds",
                                        "fabrik_queue_paused"};
    for (int pass = 0; pass < 3; pass++) {
        metric_header(&out, names[pass], "gauge", help[pass]);
        struct metrics_ctx m = {.srv = s, .out = &out, .pass = pass};
        engine_each_queue(e, queue_metric, &m);
    }

    int64_t enqueued = 0;
    engine_each_queue(e, sum_queue_sizes, &enqueued);
    metric_header(&out, "fabrik_jobs_enqueued", "gauge", "Jobs waiting in all queues.");
    buf_printf(&out, "fabrik_jobs_enqueued %lld\n", (long long)enqueued);

    metric_header(&out, "fabrik_set_size", "gauge", "Jobs in each set.");
    static const struct {
        const char *name;
        enum job_state state;
    } sets[] = {{"scheduled", JOB_SCHEDULED}, {"retries", JOB_RETRY}, {"dead", JOB_DEAD},
                {"working", JOB_WORKING}};
    for (size_t i = 0; i < 4; i++)
        buf_printf(&out, "fabrik_set_size{set=\"%s\"} %lld\n", sets[i].name,
                   (long long)e->set_size[sets[i].state]);

    write_throttle_metrics(&out, e);
    write_job_metrics(&out, e);

    metric_header(&out, "fabrik_connections", "gauge", "Open FWP connections past the handshake.");
    buf_printf(&out, "fabrik_connections %d\n", s->open_connections);
    metric_header(&out, "fabrik_workers", "gauge", "Registered worker processes.");
    buf_printf(&out, "fabrik_workers %lld\n", (long long)worker_count(&s->workers));
    metric_header(&out, "fabrik_commands_total", "counter", "FWP commands handled since start.");
    buf_printf(&out, "fabrik_commands_total %llu\n", (unsigned long long)s->command_count);
    metric_header(&out, "fabrik_uptime_seconds", "gauge", "Seconds since the server started.");
    buf_printf(&out, "fabrik_uptime_seconds %.0f\n", time_wall() - s->started);

    metric_header(&out, "fabrik_commit_duration_seconds", "histogram",
                  "Time of each storage commit (one per loop iteration that wrote).");
    uint64_t cumulative = 0;
    for (int i = 0; i < COMMIT_BUCKETS; i++) {
        cumulative += s->commit_buckets[i];
        buf_printf(&out, "fabrik_commit_duration_seconds_bucket{le=\"%g\"} %llu\n",
                   commit_bucket_bounds[i], (unsigned long long)cumulative);
    }
    cumulative += s->commit_buckets[COMMIT_BUCKETS];
    buf_printf(&out, "fabrik_commit_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
               (unsigned long long)cumulative);
    buf_printf(&out, "fabrik_commit_duration_seconds_sum %.6f\n", s->commit_seconds);
    buf_printf(&out, "fabrik_commit_duration_seconds_count %llu\n",
               (unsigned long long)s->commit_count);

    struct evbuffer *body = evbuffer_new();
    evbuffer_add(body, out.data, out.len);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    web_send(r->req, 200, body);
    evbuffer_free(body);
    buf_free(&out);
}
