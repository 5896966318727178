/* FWP command handlers: the HELLO handshake and one function per command, found through a
 * table. Handlers validate input, call the engine and append exactly one reply (or none for
 * END and a blocking FETCH). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ent/batch.h"
#include "ent/track.h"
#include "net/server.h"
#include "proto/proto.h"
#include "util/log.h"
#include "util/timefmt.h"

#define FETCH_WAIT_SECONDS 2.0
#define MAX_QUEUE_NAMES 256
/* How much of a bad argument an error reply or log line repeats. */
#define SAMPLE_BYTES 200

typedef void (*cmd_fn)(struct server *s, struct conn *c, const struct proto_command *cmd);

/* Parses the argument as one JSON value; on failure appends "-ERR <prefix><reason>". */
static json_t *parse_json_arg(struct conn *c, const struct proto_command *cmd,
                              const char *prefix) {
    json_error_t jerr;
    json_t *doc = json_loadb(cmd->args, cmd->args_len, 0, &jerr);
    if (!doc)
        resp_errorf(conn_reply(c, false), "%s%s at position %d", prefix, jerr.text,
                    jerr.position);
    return doc;
}

/* Appends "-ERR <what> <first bytes of the argument>" as Faktory's "invalid ACK {...}". */
static void reply_invalid(struct conn *c, const char *what, const struct proto_command *cmd) {
    int n = cmd->args_len > SAMPLE_BYTES ? SAMPLE_BYTES : (int)cmd->args_len;
    resp_errorf(conn_reply(c, false), "%s %.*s%s", what, n, cmd->args,
                cmd->args_len > SAMPLE_BYTES ? "..." : "");
}

/* Marks the iteration's transaction as failed and replies with the store's error, so the
 * command's change is rolled back and the client learns why. */
static void reply_storage_failure(struct server *s, struct conn *c) {
    server_fail_tx(s, store_error(s->store));
    resp_errorf(conn_reply(c, false), "storage failure: %s", store_error(s->store));
}

static bool require_args(struct conn *c, const struct proto_command *cmd, const char *form) {
    if (cmd->has_args && cmd->args_len > 0)
        return true;
    resp_errorf(conn_reply(c, false), "%s requires an argument: %s", cmd->verb, form);
    return false;
}

/* Splits text on single spaces into at most max owned names; empty names are kept out. */
static int split_names(const char *text, size_t len, char **names, int max) {
    int n = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != ' ')
            j++;
        if (j > i) {
            if (n == max)
                return -1;
            names[n++] = xstrndup(text + i, j - i);
        }
        i = j + 1;
    }
    return n;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
}

/* ---- handshake ------------------------------------------------------------------------ */

struct hello {
    int64_t v;
    const char *wid, *hostname, *pwdhash;
    int64_t pid;
    const json_t *labels;
};

/* Reads the HELLO fields; wrong types fail the handshake as Faktory's decoder does. */
static int parse_hello(const json_t *doc, struct hello *h) {
    memset(h, 0, sizeof *h);
    if (!json_is_object(doc))
        return -1;
    const json_t *v = json_object_get(doc, "v");
    const json_t *pid = json_object_get(doc, "pid");
    const json_t *labels = json_object_get(doc, "labels");
    static const char *const strings[] = {"wid", "hostname", "pwdhash", "username"};
    for (size_t i = 0; i < 4; i++) {
        const json_t *f = json_object_get(doc, strings[i]);
        if (f && !json_is_string(f) && !json_is_null(f))
            return -1;
    }
    if ((v && !json_is_null(v) && !json_is_integer(v)) ||
        (pid && !json_is_null(pid) && !json_is_integer(pid)))
        return -1;
    h->v = json_integer_value(v);
    if (h->v < 0 || h->v > 255)
        return -1;
    if (labels && !json_is_null(labels)) {
        if (!json_is_array(labels))
            return -1;
        size_t i;
        const json_t *l;
        json_array_foreach(labels, i, l) {
            if (!json_is_string(l))
                return -1;
        }
        h->labels = labels;
    }
    h->pid = json_integer_value(pid);
    h->wid = json_string_value(json_object_get(doc, "wid"));
    h->hostname = json_string_value(json_object_get(doc, "hostname"));
    h->pwdhash = json_string_value(json_object_get(doc, "pwdhash"));
    return 0;
}

/* Checks the password; returns 1 when the hash from the thread is still being computed. */
static int check_password(struct server *s, struct conn *c, const struct hello *h) {
    if (!s->cfg.password)
        return 0;
    char expected[AUTH_HASH_HEX];
    if (h->v < 2) {
        /* Clients without "v" (or below 2) hash once; Faktory accepts them that way. */
        auth_hash(s->cfg.password, c->salt, 1, expected);
    } else if (!c->expected_ready) {
        return 1;
    } else {
        memcpy(expected, c->expected, sizeof expected);
    }
    return auth_matches(expected, h->pwdhash) ? 0 : -1;
}

static void finish_hello(struct server *s, struct conn *c, const struct hello *h) {
    if (h->wid && h->wid[0])
        c->worker = worker_attach(&s->workers, h->wid, h->hostname, h->pid, h->labels,
                                  engine_now(&s->engine));
    c->state = CONN_READY;
    c->counted = true;
    s->open_connections++;
    resp_ok(conn_reply(c, false));
    if (s->open_connections > s->cfg.max_connections) {
        log_warn("too_many_connections", "conn=%llu peer=%s connections=%d max=%d",
                 (unsigned long long)c->id, c->peer, s->open_connections,
                 s->cfg.max_connections);
        resp_errorf(conn_reply(c, false), "too many connections: %d", s->open_connections);
        conn_close_after_flush(c);
        return;
    }
    log_debug("hello", "conn=%llu peer=%s wid=%s", (unsigned long long)c->id, c->peer,
              h->wid ? h->wid : "");
}

void cmd_hello(struct server *s, struct conn *c, const char *line, size_t len) {
    if (len > 0 && line[len - 1] == '\r')
        len--;
    /* Anything but "HELLO {...}" closes the connection without a reply, as Faktory does. */
    if (len < 7 || memcmp(line, "HELLO {", 7) != 0) {
        log_info("handshake_rejected", "conn=%llu peer=%s reason=\"no HELLO\"",
                 (unsigned long long)c->id, c->peer);
        conn_close(c);
        return;
    }
    json_t *doc = json_loadb(line + 6, len - 6, 0, NULL);
    struct hello h;
    if (!doc || parse_hello(doc, &h) != 0) {
        log_info("handshake_rejected", "conn=%llu peer=%s reason=\"invalid HELLO JSON\"",
                 (unsigned long long)c->id, c->peer);
        json_decref(doc);
        conn_close(c);
        return;
    }
    int rc = check_password(s, c, &h);
    if (rc == 1) {
        c->state = CONN_AUTH_WAIT;
        c->pending_hello = xstrndup(line, len);
    } else if (rc < 0) {
        log_warn("auth_failed", "conn=%llu peer=%s", (unsigned long long)c->id, c->peer);
        resp_error(conn_reply(c, false), "Invalid password");
        conn_close_after_flush(c);
        c->state = CONN_AUTH_WAIT;   /* read no more commands */
    } else {
        finish_hello(s, c, &h);
    }
    json_decref(doc);
}

/* ---- jobs ----------------------------------------------------------------------------- */

static void cmd_push(struct server *s, struct conn *c, const struct proto_command *cmd) {
    if (!require_args(c, cmd, "PUSH {\"jid\":\"...\",\"jobtype\":\"...\",\"args\":[]}"))
        return;
    if (cmd->args_len > s->cfg.max_job_bytes) {
        resp_errorf(conn_reply(c, false),
                    "job too large: %zu bytes exceeds max_job_bytes (%zu); send a smaller job "
                    "or raise [fabrik] max_job_bytes",
                    cmd->args_len, s->cfg.max_job_bytes);
        return;
    }
    json_t *job = parse_json_arg(c, cmd, "invalid JSON: ");
    if (!job)
        return;
    char err[512];
    int rc = engine_push(&s->engine, job, err, sizeof err);
    if (rc == 0) {
        resp_ok(conn_reply(c, true));
    } else if (rc == ENGINE_PUSH_NOT_UNIQUE) {
        /* Clients tell this code apart from -ERR (Ruby returns :NOTUNIQUE, for one). */
        resp_coded_error(conn_reply(c, false), "NOTUNIQUE", err);
    } else {
        if (rc < 0)
            server_fail_tx(s, err);
        resp_error(conn_reply(c, false), err);
    }
    json_decref(job);
}

static void cmd_pushb(struct server *s, struct conn *c, const struct proto_command *cmd) {
    if (!require_args(c, cmd, "PUSHB [{job}, ...]"))
        return;
    json_t *jobs = parse_json_arg(c, cmd, "invalid JSON: ");
    if (!jobs)
        return;
    if (!json_is_array(jobs)) {
        resp_error(conn_reply(c, false), "invalid JSON: PUSHB takes an array of jobs");
        json_decref(jobs);
        return;
    }
    json_t *result = json_object();
    size_t i;
    json_t *job;
    bool failed = false;
    json_array_foreach(jobs, i, job) {
        char err[512];
        const char *jid = json_string_value(json_object_get(job, "jid"));
        char *payload_len_check = NULL;
        int rc;
        if (json_is_object(job) &&
            (payload_len_check = json_dumps(job, JSON_COMPACT)) != NULL &&
            strlen(payload_len_check) > s->cfg.max_job_bytes) {
            snprintf(err, sizeof err, "job too large: exceeds max_job_bytes (%zu)",
                     s->cfg.max_job_bytes);
            rc = 1;
        } else {
            rc = engine_push(&s->engine, job, err, sizeof err);
        }
        free(payload_len_check);
        if (rc < 0) {
            server_fail_tx(s, err);
            resp_error(conn_reply(c, false), err);
            failed = true;
            break;
        }
        if (rc == ENGINE_PUSH_NOT_UNIQUE)
            json_object_set_new(result, jid ? jid : "", json_sprintf("NOTUNIQUE %s", err));
        else if (rc > 0)
            json_object_set_new(result, jid ? jid : "", json_string(err));
    }
    if (!failed) {
        char *text = json_dumps(result, JSON_COMPACT);
        resp_bulk(conn_reply(c, true), text, strlen(text));
        free(text);
    }
    json_decref(result);
    json_decref(jobs);
}

static void cmd_fetch(struct server *s, struct conn *c, const struct proto_command *cmd) {
    char *names[MAX_QUEUE_NAMES];
    int n = split_names(cmd->args, cmd->args_len, names, MAX_QUEUE_NAMES);
    if (n < 0) {
        free_names(names, MAX_QUEUE_NAMES);
        resp_errorf(conn_reply(c, false), "FETCH takes at most %d queue names",
                    MAX_QUEUE_NAMES);
        return;
    }
    if (n == 0 && !cmd->has_args) {
        resp_error(conn_reply(c, false), "must call fetch with at least one queue");
        return;
    }
    if (c->worker && c->worker->state != WORKER_RUNNING) {
        /* A quiet or terminating worker gets no jobs: wait as Faktory does, then nothing. */
        conn_park(c, NULL, 0, FETCH_WAIT_SECONDS);
        free_names(names, n);
        return;
    }
    struct store_job job = {0};
    int rc = engine_fetch(&s->engine, names, n, c->worker ? c->worker->wid : NULL, &job);
    if (rc < 0) {
        reply_storage_failure(s, c);
    } else if (rc > 0) {
        resp_bulk(conn_reply(c, true), job.payload, strlen(job.payload));
        store_job_clear(&job);
    } else {
        conn_park(c, names, n, FETCH_WAIT_SECONDS);
    }
    free_names(names, n);
}

static void cmd_ack(struct server *s, struct conn *c, const struct proto_command *cmd) {
    if (!require_args(c, cmd, "ACK {\"jid\":\"...\"}"))
        return;
    json_t *doc = json_loadb(cmd->args, cmd->args_len, 0, NULL);
    const char *jid = json_string_value(json_object_get(doc, "jid"));
    if (!json_is_object(doc) || !jid) {
        reply_invalid(c, "invalid ACK, expected {\"jid\":\"...\"}:", cmd);
    } else if (engine_ack(&s->engine, jid, c->worker ? c->worker->wid : NULL) != 0) {
        reply_storage_failure(s, c);
    } else {
        resp_ok(conn_reply(c, true));
    }
    json_decref(doc);
}

static void cmd_fail(struct server *s, struct conn *c, const struct proto_command *cmd) {
    if (!require_args(c, cmd, "FAIL {\"jid\":\"...\",\"errtype\":\"...\",\"message\":\"...\"}"))
        return;
    json_t *doc = json_loadb(cmd->args, cmd->args_len, 0, NULL);
    if (!json_is_object(doc)) {
        reply_invalid(c, "invalid FAIL", cmd);
        json_decref(doc);
        return;
    }
    const char *jid = NULL;
    struct job_failure_report report;
    char err[256];
    if (job_parse_failure(doc, &jid, &report, err, sizeof err) != 0) {
        resp_error(conn_reply(c, false), err);
    } else {
        int rc = engine_fail(&s->engine, jid, c->worker ? c->worker->wid : NULL, &report);
        if (rc < 0) {
            reply_storage_failure(s, c);
        } else if (rc > 0) {
            resp_errorf(conn_reply(c, false), "Job not found %s", jid);
        } else {
            resp_ok(conn_reply(c, true));
        }
    }
    json_decref(report.backtrace);
    json_decref(doc);
}

/* ---- workers -------------------------------------------------------------------------- */

static void cmd_beat(struct server *s, struct conn *c, const struct proto_command *cmd) {
    if (!require_args(c, cmd, "BEAT {\"wid\":\"...\"}"))
        return;
    json_t *doc = json_loadb(cmd->args, cmd->args_len, 0, NULL);
    const json_t *wid = json_object_get(doc, "wid");
    const json_t *state = json_object_get(doc, "current_state");
    const json_t *rss = json_object_get(doc, "rss_kb");
    if (!json_is_object(doc) || (wid && !json_is_string(wid) && !json_is_null(wid)) ||
        (state && !json_is_string(state) && !json_is_null(state)) ||
        (rss && !json_is_integer(rss) && !json_is_null(rss))) {
        reply_invalid(c, "invalid BEAT", cmd);
        json_decref(doc);
        return;
    }
    const char *id = json_string_value(wid);
    struct worker *w = id ? worker_find(&s->workers, id) : NULL;
    if (!w) {
        resp_errorf(conn_reply(c, false), "unknown worker %s", id ? id : "");
        json_decref(doc);
        return;
    }
    w->last_beat = engine_now(&s->engine);
    if (json_is_integer(rss))
        w->rss_kb = json_integer_value(rss);
    enum worker_state wanted;
    if (worker_parse_state(json_string_value(state), &wanted) == 0 && worker_signal(w, wanted))
        log_info("worker_state", "wid=%s state=%s source=beat", w->wid,
                 worker_state_name(w->state));
    if (w->state == WORKER_RUNNING) {
        resp_ok(conn_reply(c, false));
    } else {
        char body[40];
        int n = snprintf(body, sizeof body, "{\"state\":\"%s\"}", worker_state_name(w->state));
        resp_bulk(conn_reply(c, false), body, (size_t)n);
    }
    json_decref(doc);
}

/* ---- administration ------------------------------------------------------------------- */

static void cmd_info(struct server *s, struct conn *c, const struct proto_command *cmd) {
    (void)cmd;
    json_t *doc = server_info_document(s);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9));
    resp_bulk(conn_reply(c, false), text, strlen(text));
    free(text);
    json_decref(doc);
}

static void cmd_flush(struct server *s, struct conn *c, const struct proto_command *cmd) {
    (void)cmd;
    if (engine_flush(&s->engine) != 0) {
        reply_storage_failure(s, c);
        return;
    }
    resp_ok(conn_reply(c, true));
}

static void cmd_end(struct server *s, struct conn *c, const struct proto_command *cmd) {
    (void)s;
    (void)cmd;
    conn_close(c);
}

static void cmd_mutate(struct server *s, struct conn *c, const struct proto_command *cmd) {
    if (!require_args(c, cmd, "MUTATE {\"cmd\":\"...\",\"target\":\"...\",\"filter\":{...}}"))
        return;
    json_t *doc = parse_json_arg(c, cmd, "invalid MUTATE: ");
    if (!doc)
        return;
    struct mutate_request req;
    char err[256];
    if (mutate_parse(doc, &req, err, sizeof err) != 0) {
        resp_error(conn_reply(c, false), err);
    } else if (engine_mutate(&s->engine, &req) != 0) {
        reply_storage_failure(s, c);
    } else {
        resp_ok(conn_reply(c, true));
    }
    mutate_request_free(&req);
    json_decref(doc);
}

static void queue_latency(struct server *s, struct conn *c, char **names, int n) {
    if (n > 0 && strcmp(names[0], "*") == 0) {
        resp_error(conn_reply(c, false), "QUEUE LATENCY does not support wildcards");
        return;
    }
    json_t *doc = json_object();
    for (int i = 0; i < n; i++) {
        double seconds;
        if (engine_queue_latency(&s->engine, names[i], &seconds) != 0) {
            resp_errorf(conn_reply(c, false), "QUEUE: %s", store_error(s->store));
            json_decref(doc);
            return;
        }
        json_object_set_new(doc, names[i],
                            seconds > 0 ? json_real(seconds) : json_integer(0));
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
    resp_bulk(conn_reply(c, false), text, strlen(text));
    free(text);
    json_decref(doc);
}

static void cmd_queue(struct server *s, struct conn *c, const struct proto_command *cmd) {
    static const char usage[] = "QUEUE PAUSE|RESUME|REMOVE <queue>... or *, or QUEUE LATENCY "
                                "<queue>...";
    if (!require_args(c, cmd, usage))
        return;
    char *names[MAX_QUEUE_NAMES + 1];
    int n = split_names(cmd->args, cmd->args_len, names, MAX_QUEUE_NAMES + 1);
    if (n <= 0) {
        free_names(names, n < 0 ? MAX_QUEUE_NAMES + 1 : 0);
        resp_errorf(conn_reply(c, false), "QUEUE takes a subcommand and at most %d names: %s",
                    MAX_QUEUE_NAMES, usage);
        return;
    }
    const char *sub = names[0];
    char **queues = names + 1;
    int nq = n - 1;
    bool latency = strcasecmp(sub, "LATENCY") == 0;
    bool known = latency || strcasecmp(sub, "PAUSE") == 0 || strcasecmp(sub, "RESUME") == 0 ||
                 strcasecmp(sub, "REMOVE") == 0;
    if (!known) {
        char upper[32];
        size_t i = 0;
        for (; sub[i] && i < sizeof upper - 1; i++)
            upper[i] = (char)(sub[i] >= 'a' && sub[i] <= 'z' ? sub[i] - 32 : sub[i]);
        upper[i] = '\0';
        resp_errorf(conn_reply(c, false), "no such QUEUE subcommand: %s", upper);
    } else if (latency) {
        queue_latency(s, c, queues, nq);
    } else if (nq == 0) {
        resp_errorf(conn_reply(c, false), "QUEUE %s requires at least one queue name or *",
                    sub);
    } else {
        int rc = strcasecmp(sub, "REMOVE") == 0
                     ? engine_remove_queues(&s->engine, queues, nq)
                     : engine_pause_queues(&s->engine, queues, nq,
                                           strcasecmp(sub, "PAUSE") == 0);
        if (rc != 0) {
            reply_storage_failure(s, c);
        } else {
            resp_ok(conn_reply(c, true));
        }
    }
    free_names(names, n);
}

static void batch_new_reply(struct server *s, struct conn *c, const char *json, size_t len) {
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, 0, &jerr);
    if (!doc) {
        resp_errorf(conn_reply(c, false), "invalid JSON: %s at position %d", jerr.text,
                    jerr.position);
        return;
    }
    char bid[BATCH_ID_BYTES], err[512];
    int rc = batch_new(&s->engine, doc, bid, err, sizeof err);
    if (rc < 0)
        reply_storage_failure(s, c);
    else if (rc > 0)
        resp_error(conn_reply(c, false), err);
    else
        resp_bulk(conn_reply(c, true), bid, strlen(bid));
    json_decref(doc);
}

/* BATCH NEW <json> | OPEN <bid> | COMMIT <bid> | STATUS <bid>. Every reply waits for the
 * iteration's commit, so STATUS never shows a change that could still roll back. */
static void cmd_batch(struct server *s, struct conn *c, const struct proto_command *cmd) {
    static const char usage[] = "BATCH NEW {json} | OPEN <bid> | COMMIT <bid> | STATUS <bid>";
    if (!require_args(c, cmd, usage))
        return;
    const char *space = memchr(cmd->args, ' ', cmd->args_len);
    size_t sub_len = space ? (size_t)(space - cmd->args) : cmd->args_len;
    const char *arg = space ? space + 1 : "";
    size_t arg_len = space ? cmd->args_len - sub_len - 1 : 0;
    char sub[16] = "";
    if (sub_len < sizeof sub)
        memcpy(sub, cmd->args, sub_len);
    if (strcasecmp(sub, "NEW") == 0) {
        if (arg_len == 0)
            resp_error(conn_reply(c, false), "BATCH NEW requires a JSON object: " "BATCH NEW "
                                             "{\"description\":\"...\",\"success\":{job}}");
        else
            batch_new_reply(s, c, arg, arg_len);
        return;
    }
    bool open = strcasecmp(sub, "OPEN") == 0, commit = strcasecmp(sub, "COMMIT") == 0,
         status = strcasecmp(sub, "STATUS") == 0;
    if (!open && !commit && !status) {
        int n = sub_len > 40 ? 40 : (int)sub_len;
        resp_errorf(conn_reply(c, false), "no such BATCH subcommand: %.*s; use %s", n, cmd->args,
                    usage);
        return;
    }
    if (arg_len == 0 || arg_len >= 128 || memchr(arg, ' ', arg_len)) {
        resp_errorf(conn_reply(c, false), "BATCH %s requires one batch id, as BATCH NEW returned",
                    sub);
        return;
    }
    char bid[128];
    memcpy(bid, arg, arg_len);
    bid[arg_len] = '\0';
    int rc;
    json_t *doc = NULL;
    if (status)
        doc = batch_status(&s->engine, bid, &rc);
    else
        rc = commit ? batch_commit(&s->engine, bid) : batch_exists(&s->engine, bid);
    if (rc < 0) {
        reply_storage_failure(s, c);
    } else if (rc == 0) {
        resp_errorf(conn_reply(c, false), "no such batch %s", bid);
    } else if (status) {
        char *text = json_dumps(doc, JSON_COMPACT);
        resp_bulk(conn_reply(c, true), text, strlen(text));
        free(text);
    } else if (commit) {
        resp_ok(conn_reply(c, true));
    } else {
        resp_bulk(conn_reply(c, true), bid, strlen(bid));
    }
    json_decref(doc);
}

/* TRACK SET {"jid":...,"percent":...,"desc":...,"reserve_until":...}: +OK once committed. */
static void track_set_cmd(struct server *s, struct conn *c, const char *arg, size_t len) {
    json_error_t jerr;
    json_t *doc = json_loadb(arg, len, 0, &jerr);
    if (!doc) {
        resp_errorf(conn_reply(c, false), "invalid JSON: %s at position %d", jerr.text,
                    jerr.position);
        return;
    }
    struct track_update update;
    char err[256];
    if (track_parse_set(doc, &update, err, sizeof err) != 0) {
        resp_error(conn_reply(c, false), err);
    } else if (track_set(&s->engine, &update, engine_now(&s->engine)) != 0) {
        reply_storage_failure(s, c);
    } else {
        resp_ok(conn_reply(c, true));
    }
    json_decref(doc);
}

/* TRACK GET <jid>: the tracking document as a bulk string. */
static void track_get_cmd(struct server *s, struct conn *c, const char *arg, size_t len) {
    if (len == 0 || memchr(arg, ' ', len)) {
        resp_error(conn_reply(c, false), "TRACK GET takes one jid: TRACK GET <jid>");
        return;
    }
    char *jid = xstrndup(arg, len);
    json_t *doc = track_get(&s->engine, jid, engine_now(&s->engine));
    if (!doc) {
        resp_errorf(conn_reply(c, false), "storage failure: %s", store_error(s->store));
    } else {
        char *text = json_dumps(doc, JSON_COMPACT);
        resp_bulk(conn_reply(c, false), text, strlen(text));
        free(text);
    }
    json_decref(doc);
    free(jid);
}

static void cmd_track(struct server *s, struct conn *c, const struct proto_command *cmd) {
    static const char form[] = "TRACK SET {\"jid\":\"...\",\"percent\":50} or TRACK GET <jid>";
    if (!require_args(c, cmd, form))
        return;
    const char *space = memchr(cmd->args, ' ', cmd->args_len);
    size_t sub_len = space ? (size_t)(space - cmd->args) : cmd->args_len;
    const char *arg = space ? space + 1 : cmd->args + cmd->args_len;
    size_t arg_len = cmd->args_len - (size_t)(arg - cmd->args);
    if (sub_len == 3 && strncasecmp(cmd->args, "SET", 3) == 0 && arg_len > 0)
        track_set_cmd(s, c, arg, arg_len);
    else if (sub_len == 3 && strncasecmp(cmd->args, "GET", 3) == 0)
        track_get_cmd(s, c, arg, arg_len);
    else
        resp_errorf(conn_reply(c, false), "TRACK takes %s", form);
}

/* DEBUG CLOCK <seconds>: development only, for tests of timed behaviour. */
static void cmd_debug(struct server *s, struct conn *c, const struct proto_command *cmd) {
    char *end = NULL;
    const char *arg = cmd->args_len > 6 ? cmd->args + 6 : "";
    double seconds = strncmp(cmd->args, "CLOCK ", cmd->args_len < 6 ? cmd->args_len : 6) == 0 &&
                             cmd->args_len > 6
                         ? strtod(arg, &end)
                         : NAN;
    if (isnan(seconds) || !end || end != cmd->args + cmd->args_len || seconds < 0 ||
        seconds > 1e9) {
        resp_error(conn_reply(c, false),
                   "DEBUG takes CLOCK <seconds>, a non-negative number of seconds");
        return;
    }
    s->engine.clock_offset += seconds;
    log_info("debug_clock", "advanced_seconds=%.3f offset_seconds=%.3f", seconds,
             s->engine.clock_offset);
    if (server_run_timers(s) != 0) {
        resp_errorf(conn_reply(c, false), "storage failure: %s", store_error(s->store));
        return;
    }
    resp_ok(conn_reply(c, true));
}

static const struct {
    const char *verb;
    cmd_fn fn;
    bool development_only;
} commands[] = {
    {"PUSH", cmd_push, false},     {"PUSHB", cmd_pushb, false}, {"FETCH", cmd_fetch, false},
    {"ACK", cmd_ack, false},       {"FAIL", cmd_fail, false},   {"BEAT", cmd_beat, false},
    {"INFO", cmd_info, false},     {"FLUSH", cmd_flush, false}, {"END", cmd_end, false},
    {"MUTATE", cmd_mutate, false}, {"QUEUE", cmd_queue, false}, {"BATCH", cmd_batch, false},
    {"TRACK", cmd_track, false},   {"DEBUG", cmd_debug, true},
};

void cmd_dispatch(struct server *s, struct conn *c, const char *line, size_t len) {
    struct proto_command cmd;
    char err[128];
    if (proto_parse_line(line, len, &cmd, err, sizeof err) != 0) {
        char sample[4 * 40 + 1];
        /* The first few per connection at info; the rest only at debug, so a client that
         * sends junk in a loop cannot flood the log. */
        if (++c->bad_commands <= 5 || log_threshold >= LOG_DEBUG)
            log_write(c->bad_commands <= 5 ? LOG_INFO : LOG_DEBUG, "bad_command",
                      "conn=%llu peer=%s error=\"%s\" sample=\"%s\"", (unsigned long long)c->id,
                      c->peer, err, log_sample(sample, line, len, 40));
        resp_error(conn_reply(c, false), err);
        return;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].verb, cmd.verb) != 0)
            continue;
        if (commands[i].development_only && strcmp(s->cfg.environment, "development") != 0)
            break;
        s->command_count++;
        log_debug("command", "conn=%llu verb=%s wid=%s", (unsigned long long)c->id, cmd.verb,
                  c->worker ? c->worker->wid : "");
        commands[i].fn(s, c, &cmd);
        return;
    }
    resp_errorf(conn_reply(c, false), "unknown command %s", cmd.verb);
}
