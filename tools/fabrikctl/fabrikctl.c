/* fabrikctl: the command-line client for fabrik and other FWP servers. FWP commands go
 * through libfabrik; the queue table, the retry, scheduled and dead sets and backups use the
 * HTTP JSON API of fabrik's web port. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fabrik/fabrik.h>

#include "http.h"

/* Exit codes, documented in fabrikctl(1) and docs/fabrikctl.md. */
enum exit_code {
    EXIT_OK = 0,
    EXIT_SERVER = 1,     /* the server rejected the request or returned an error */
    EXIT_USAGE = 2,      /* invalid command line */
    EXIT_CONNECT = 3,    /* cannot connect, TLS failure, timeout, lost connection */
    EXIT_AUTH = 4,       /* password missing or rejected */
};

#define DEFAULT_WEB_URL "http://127.0.0.1:7420"

/* A backup request stays open until the copy is complete, which takes about a second per
 * 250 MB on a virtual disk, so it gets far more time than other requests. */
#define BACKUP_TIMEOUT_SECONDS 3600L

struct ctl {
    const char *url;
    const char *password;
    const char *web_url;
    const char *ca_file;
    bool insecure;
    bool json;
    bool help;
    /* push */
    const char *queue;
    const char *jid;
    const char *at;
    const char *custom;
    const char *args_json;
    double in_seconds;
    bool have_in;
    int priority;
    int retry;
    bool have_retry;
    int reserve_for;
    /* list, retry, kill, discard */
    long page;
    long per_page;
    const char *jobtype;
    const char *errtype;
    const char *search;
    bool all;
    long http_timeout;  /* 0: the default of http.h */

    int argc;           /* positional arguments after the subcommand */
    char **argv;
    struct fabrik_client *client;
};

struct command {
    const char *name;
    int (*run)(struct ctl *ctl);
    const char *usage;
    const char *help;
};

static const struct command *find_command(const char *name);

/* ---- output helpers ---------------------------------------------------------------------- */

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "fabrikctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nRun 'fabrikctl --help' for the commands and options.\n");
    return EXIT_USAGE;
}

static void print_json(const json_t *doc) {
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_ENCODE_ANY);
    printf("%s\n", text ? text : "null");
    free(text);
}

/* Prints a JSON string document as given by the server, re-indented for --json. */
static void print_json_text(const char *text) {
    json_t *doc = json_loads(text, JSON_DECODE_ANY, NULL);
    if (doc)
        print_json(doc);
    else
        printf("%s\n", text);
    json_decref(doc);
}

static int fwp_exit_code(struct ctl *ctl, int rc, const char *what) {
    if (rc == 0)
        return EXIT_OK;
    const char *detail = ctl->client ? fabrik_client_error(ctl->client) : "";
    fprintf(stderr, "fabrikctl: %s failed: %s%s%s\n", what, fabrik_strerror(rc),
            *detail ? ": " : "", detail);
    switch (rc) {
    case FABRIK_EINVAL: return EXIT_USAGE;
    case FABRIK_EAUTH: return EXIT_AUTH;
    case FABRIK_ECONNECT:
    case FABRIK_ETIMEDOUT:
    case FABRIK_ETLS: return EXIT_CONNECT;
    default: return EXIT_SERVER;
    }
}

static int http_exit_code(struct http_client *http, enum http_status status) {
    if (status == HTTP_OK)
        return EXIT_OK;
    fprintf(stderr, "fabrikctl: %s\n", http->error);
    switch (status) {
    case HTTP_AUTH_ERROR: return EXIT_AUTH;
    case HTTP_CONNECT_ERROR: return EXIT_CONNECT;
    case HTTP_URL_ERROR: return EXIT_USAGE;
    default: return EXIT_SERVER;
    }
}

static const char *str_or(const json_t *value, const char *fallback) {
    const char *s = json_string_value(value);
    return s ? s : fallback;
}

/* ---- connections ------------------------------------------------------------------------- */

static int connect_fwp(struct ctl *ctl) {
    struct fabrik_options opts;
    fabrik_options_init(&opts);
    opts.url = ctl->url;
    opts.password = ctl->password;
    opts.ca_file = ctl->ca_file;
    opts.tls_skip_verify = ctl->insecure;
    opts.reconnect_attempts = 0;
    char err[512];
    int rc = fabrik_client_open(&ctl->client, &opts, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "fabrikctl: %s\n", err);
        if (rc == FABRIK_EINVAL)
            return EXIT_USAGE;
        if (rc == FABRIK_EAUTH)
            return EXIT_AUTH;
        return EXIT_CONNECT;
    }
    return EXIT_OK;
}

/* The web API password: --password, else the password in the FWP URL. */
static char *web_password(struct ctl *ctl) {
    if (ctl->password)
        return strdup(ctl->password);
    const char *url = ctl->url ? ctl->url : fabrik_url_from_env();
    struct fabrik_url parsed;
    if (!url || fabrik_url_parse(url, &parsed) != 0)
        return NULL;
    char *password = parsed.password ? strdup(parsed.password) : NULL;
    fabrik_url_clear(&parsed);
    return password;
}

static int http_call(struct ctl *ctl, const char *path, const json_t *body, json_t **out) {
    struct http_client http = {
        .base_url = ctl->web_url,
        .ca_file = ctl->ca_file,
        .timeout_seconds = ctl->http_timeout,
    };
    char *password = web_password(ctl);
    http.password = password;
    enum http_status status = http_request(&http, path, body, out);
    int code = http_exit_code(&http, status);
    free(password);
    return code;
}

/* ---- push -------------------------------------------------------------------------------- */

/* A positional job argument is used as JSON when it parses as JSON (numbers, true, objects,
 * quoted strings) and as a plain string otherwise. */
static int add_positional_args(struct fabrik_job *job, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        json_t *value = json_loads(argv[i], JSON_DECODE_ANY, NULL);
        int rc = value ? fabrik_job_add_arg_json(job, argv[i])
                       : fabrik_job_add_arg_string(job, argv[i]);
        json_decref(value);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int build_job(struct ctl *ctl, struct fabrik_job *job) {
    if (ctl->args_json && fabrik_job_set_args(job, ctl->args_json) != 0)
        return usage_error("--args must be a JSON array, not %s", ctl->args_json);
    if (add_positional_args(job, ctl->argc - 1, ctl->argv + 1) != 0)
        return usage_error("%s", "invalid job argument");
    if (ctl->queue && fabrik_job_set_queue(job, ctl->queue) != 0)
        return usage_error("invalid queue name \"%s\"", ctl->queue);
    if (ctl->jid && fabrik_job_set_jid(job, ctl->jid) != 0)
        return usage_error("invalid jid \"%s\"", ctl->jid);
    if (ctl->priority)
        fabrik_job_set_priority(job, ctl->priority);
    if (ctl->have_retry)
        fabrik_job_set_retry(job, ctl->retry);
    if (ctl->reserve_for)
        fabrik_job_set_reserve_for(job, ctl->reserve_for);
    if (ctl->at)
        fabrik_job_set_at(job, ctl->at);
    if (ctl->have_in)
        fabrik_job_set_in(job, ctl->in_seconds);
    if (ctl->custom) {
        json_t *custom = json_loads(ctl->custom, 0, NULL);
        bool ok = json_is_object(custom) &&
                  fabrik_job_set_field(job, "custom", ctl->custom) == 0;
        json_decref(custom);
        if (!ok)
            return usage_error("--custom must be a JSON object, not %s", ctl->custom);
    }
    return EXIT_OK;
}

static int cmd_push(struct ctl *ctl) {
    if (ctl->argc < 1)
        return usage_error("%s", "push needs a job type: fabrikctl push JOBTYPE [ARG...]");
    struct fabrik_job *job = fabrik_job_new(ctl->argv[0]);
    if (!job)
        return usage_error("invalid job type \"%s\"", ctl->argv[0]);
    int code = build_job(ctl, job);
    if (code == EXIT_OK)
        code = connect_fwp(ctl);
    if (code == EXIT_OK)
        code = fwp_exit_code(ctl, fabrik_push_job(ctl->client, job), "push");
    if (code == EXIT_OK) {
        if (ctl->json)
            printf("{\"jid\":\"%s\"}\n", fabrik_job_jid(job));
        else
            printf("pushed %s\n", fabrik_job_jid(job));
    }
    fabrik_job_free(job);
    return code;
}

/* ---- stats and queues -------------------------------------------------------------------- */

static long long jint(json_t *root, const char *a, const char *b, const char *c) {
    json_t *v = json_object_get(root, a);
    if (b)
        v = json_object_get(v, b);
    if (c)
        v = json_object_get(v, c);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static void print_stats(json_t *info) {
    json_t *server = json_object_get(info, "server");
    printf("%-18s %s %s\n", "server", str_or(json_object_get(server, "description"), "?"),
           str_or(json_object_get(server, "fabrik_version"),
                  str_or(json_object_get(server, "faktory_version"), "")));
    printf("%-18s %lld s\n", "uptime", jint(info, "server", "uptime", NULL));
    printf("%-18s %lld\n", "connections", jint(info, "server", "connections", NULL));
    printf("%-18s %lld\n", "processed", jint(info, "faktory", "total_processed", NULL));
    printf("%-18s %lld\n", "failures", jint(info, "faktory", "total_failures", NULL));
    printf("%-18s %lld\n", "enqueued", jint(info, "faktory", "total_enqueued", NULL));
    printf("%-18s %lld\n", "queues", jint(info, "faktory", "total_queues", NULL));
    json_t *sets = json_object_get(json_object_get(info, "faktory"), "sets");
    const char *names[] = {"scheduled", "retries", "dead", "working"};
    for (size_t i = 0; i < 4; i++)
        printf("%-18s %lld\n", names[i], jint(sets, names[i], NULL, NULL));
    json_t *tasks = json_object_get(json_object_get(info, "faktory"), "tasks");
    printf("%-18s %lld\n", "workers", jint(tasks, "Workers", "size", NULL));
}

static int cmd_stats(struct ctl *ctl) {
    if (ctl->argc > 0)
        return usage_error("stats takes no arguments, got \"%s\"", ctl->argv[0]);
    int code = connect_fwp(ctl);
    if (code != EXIT_OK)
        return code;
    char *text = NULL;
    code = fwp_exit_code(ctl, fabrik_info(ctl->client, &text), "INFO");
    if (code != EXIT_OK)
        return code;
    json_t *info = json_loads(text, 0, NULL);
    if (ctl->json || !info)
        print_json_text(text);
    else
        print_stats(info);
    json_decref(info);
    fabrik_free(text);
    return EXIT_OK;
}

static int cmd_queues(struct ctl *ctl) {
    if (ctl->argc > 0)
        return usage_error("queues takes no arguments, got \"%s\"", ctl->argv[0]);
    json_t *doc = NULL;
    int code = http_call(ctl, "/api/queues", NULL, &doc);
    if (code != EXIT_OK)
        return code;
    json_t *queues = json_object_get(doc, "queues");
    if (ctl->json) {
        print_json(queues ? queues : json_array());
    } else {
        printf("%-32s %10s %12s %s\n", "QUEUE", "SIZE", "LATENCY_S", "PAUSED");
        size_t i;
        json_t *q;
        json_array_foreach(queues, i, q) {
            printf("%-32s %10lld %12.3f %s\n", str_or(json_object_get(q, "name"), "?"),
                   (long long)json_integer_value(json_object_get(q, "size")),
                   json_number_value(json_object_get(q, "latency")),
                   json_is_true(json_object_get(q, "paused")) ? "yes" : "no");
        }
    }
    json_decref(doc);
    return EXIT_OK;
}

static int cmd_queue(struct ctl *ctl) {
    if (ctl->argc < 2)
        return usage_error("%s", "usage: fabrikctl queue pause|resume|clear QUEUE...");
    const char *action = ctl->argv[0];
    int (*op)(struct fabrik_client *, const char *const *, size_t) = NULL;
    const char *past = NULL;
    if (strcmp(action, "pause") == 0) {
        op = fabrik_queue_pause;
        past = "paused";
    } else if (strcmp(action, "resume") == 0) {
        op = fabrik_queue_resume;
        past = "resumed";
    } else if (strcmp(action, "clear") == 0) {
        op = fabrik_queue_remove;
        past = "cleared";
    } else {
        return usage_error("unknown queue action \"%s\": use pause, resume or clear", action);
    }
    int code = connect_fwp(ctl);
    if (code != EXIT_OK)
        return code;
    const char *const *names = (const char *const *)ctl->argv + 1;
    code = fwp_exit_code(ctl, op(ctl->client, names, (size_t)ctl->argc - 1), action);
    if (code != EXIT_OK)
        return code;
    if (ctl->json) {
        printf("{\"ok\":true}\n");
    } else {
        printf("%s", past);
        for (int i = 1; i < ctl->argc; i++)
            printf(" %s", ctl->argv[i]);
        printf("\n");
    }
    return EXIT_OK;
}

/* ---- sets: list, retry, kill, discard ---------------------------------------------------- */

static bool valid_set(const char *set) {
    return strcmp(set, "retries") == 0 || strcmp(set, "scheduled") == 0 ||
           strcmp(set, "dead") == 0;
}

static void append_query(char *path, size_t size, const char *key, const char *value) {
    if (!value)
        return;
    char *escaped = http_escape(value);
    size_t len = strlen(path);
    snprintf(path + len, size - len, "%c%s=%s", strchr(path, '?') ? '&' : '?', key,
             escaped ? escaped : "");
    free(escaped);
}

static void print_job_row(json_t *job) {
    json_t *failure = json_object_get(job, "failure");
    char error[96] = "";
    if (json_is_object(failure))
        snprintf(error, sizeof error, "%s: %s", str_or(json_object_get(failure, "errtype"), ""),
                 str_or(json_object_get(failure, "message"), ""));
    printf("%-26s %-20s %-14s %-28s %s\n", str_or(json_object_get(job, "jid"), "?"),
           str_or(json_object_get(job, "jobtype"), "?"),
           str_or(json_object_get(job, "queue"), "?"), str_or(json_object_get(job, "at"), "-"),
           error);
}

static int cmd_list(struct ctl *ctl) {
    if (ctl->argc != 1 || !valid_set(ctl->argv[0]))
        return usage_error("%s", "usage: fabrikctl list retries|scheduled|dead [options]");
    char path[2048];
    snprintf(path, sizeof path, "/api/sets/%s", ctl->argv[0]);
    char number[32];
    if (ctl->page) {
        snprintf(number, sizeof number, "%ld", ctl->page);
        append_query(path, sizeof path, "page", number);
    }
    if (ctl->per_page) {
        snprintf(number, sizeof number, "%ld", ctl->per_page);
        append_query(path, sizeof path, "per_page", number);
    }
    append_query(path, sizeof path, "jobtype", ctl->jobtype);
    append_query(path, sizeof path, "queue", ctl->queue);
    append_query(path, sizeof path, "errtype", ctl->errtype);
    append_query(path, sizeof path, "q", ctl->search);

    json_t *doc = NULL;
    int code = http_call(ctl, path, NULL, &doc);
    if (code != EXIT_OK)
        return code;
    if (ctl->json) {
        print_json(doc);
    } else {
        printf("%-26s %-20s %-14s %-28s %s\n", "JID", "JOBTYPE", "QUEUE", "AT", "ERROR");
        size_t i;
        json_t *job;
        json_array_foreach(json_object_get(doc, "jobs"), i, job)
            print_job_row(job);
        long long total = jint(doc, "total", NULL, NULL);
        long long page = jint(doc, "page", NULL, NULL);
        long long per_page = jint(doc, "per_page", NULL, NULL);
        long long pages = per_page > 0 ? (total + per_page - 1) / per_page : 1;
        printf("-- page %lld of %lld, %lld job%s in %s\n", page, pages > 0 ? pages : 1, total,
               total == 1 ? "" : "s", ctl->argv[0]);
    }
    json_decref(doc);
    return EXIT_OK;
}

/* retry, kill and discard map to MUTATE requeue, kill and discard. */
static int mutate_set(struct ctl *ctl, const char *verb, const char *mutate_cmd) {
    if (ctl->argc < 1 || !valid_set(ctl->argv[0])) {
        fprintf(stderr, "fabrikctl: usage: fabrikctl %s retries|scheduled|dead JID...|--all\n",
                verb);
        return EXIT_USAGE;
    }
    if (ctl->argc == 1 && !ctl->all)
        return usage_error("%s needs the jids of the jobs, or --all (optionally with "
                           "--jobtype)", verb);
    if (ctl->argc > 1 && ctl->all)
        return usage_error("%s takes either jids or --all, not both", verb);
    if (strcmp(mutate_cmd, "kill") == 0 && strcmp(ctl->argv[0], "dead") == 0)
        return usage_error("kill moves jobs to the dead set, so it takes retries or scheduled, "
                           "not %s", ctl->argv[0]);

    json_t *filter = json_object();
    if (ctl->argc > 1) {
        json_t *jids = json_array();
        for (int i = 1; i < ctl->argc; i++)
            json_array_append_new(jids, json_string(ctl->argv[i]));
        json_object_set_new(filter, "jids", jids);
    }
    if (ctl->jobtype)
        json_object_set_new(filter, "jobtype", json_string(ctl->jobtype));
    char *filter_text = json_dumps(filter, JSON_COMPACT);
    json_decref(filter);

    int code = connect_fwp(ctl);
    if (code == EXIT_OK)
        code = fwp_exit_code(ctl, fabrik_mutate(ctl->client, mutate_cmd, ctl->argv[0],
                                                filter_text), verb);
    free(filter_text);
    /* MUTATE replies +OK whether or not a job matched, so print what was sent, not what
     * changed. */
    if (code == EXIT_OK && ctl->json)
        printf("{\"ok\":true}\n");
    else if (code == EXIT_OK)
        printf("sent %s for %s; the server does not report how many jobs matched "
               "(check with: fabrikctl list %s)\n", verb, ctl->argv[0], ctl->argv[0]);
    return code;
}

static int cmd_retry(struct ctl *ctl) {
    return mutate_set(ctl, "retry", "requeue");
}

static int cmd_kill(struct ctl *ctl) {
    return mutate_set(ctl, "kill", "kill");
}

static int cmd_discard(struct ctl *ctl) {
    return mutate_set(ctl, "discard", "discard");
}

/* ---- batch status, track get ------------------------------------------------------------- */

static void print_fields(json_t *doc) {
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value) {
        char *text = json_is_string(value) ? strdup(json_string_value(value))
                                           : json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%-14s %s\n", key, text ? text : "");
        free(text);
    }
}

static int show_document(struct ctl *ctl, int rc, char *text, const char *what) {
    int code = fwp_exit_code(ctl, rc, what);
    if (code == EXIT_OK) {
        json_t *doc = json_loads(text, 0, NULL);
        if (ctl->json || !json_is_object(doc))
            print_json_text(text);
        else
            print_fields(doc);
        json_decref(doc);
    }
    fabrik_free(text);
    return code;
}

static int cmd_batch(struct ctl *ctl) {
    if (ctl->argc != 2 || strcmp(ctl->argv[0], "status") != 0)
        return usage_error("%s", "usage: fabrikctl batch status BID");
    int code = connect_fwp(ctl);
    if (code != EXIT_OK)
        return code;
    char *text = NULL;
    int rc = fabrik_batch_status(ctl->client, ctl->argv[1], &text);
    return show_document(ctl, rc, text, "BATCH STATUS");
}

static int cmd_track(struct ctl *ctl) {
    if (ctl->argc != 2 || strcmp(ctl->argv[0], "get") != 0)
        return usage_error("%s", "usage: fabrikctl track get JID");
    int code = connect_fwp(ctl);
    if (code != EXIT_OK)
        return code;
    char *text = NULL;
    int rc = fabrik_track_get(ctl->client, ctl->argv[1], &text);
    return show_document(ctl, rc, text, "TRACK GET");
}

/* ---- backup ---------------------------------------------------------------------------- */

static void print_backup(json_t *doc) {
    printf("%-10s %s\n", "file", str_or(json_object_get(doc, "file"), "?"));
    printf("%-10s %lld\n", "bytes", jint(doc, "bytes", NULL, NULL));
    printf("%-10s %.3f\n", "seconds", json_number_value(json_object_get(doc, "seconds")));
    printf("%-10s queued %lld, scheduled %lld, retries %lld, working %lld, dead %lld\n", "jobs",
           jint(doc, "jobs", "queued", NULL), jint(doc, "jobs", "scheduled", NULL),
           jint(doc, "jobs", "retries", NULL), jint(doc, "jobs", "working", NULL),
           jint(doc, "jobs", "dead", NULL));
}

static void print_backup_list(json_t *doc) {
    json_t *backups = json_object_get(doc, "backups");
    printf("%-40s %14s %s\n", "NAME", "BYTES", "MODIFIED");
    size_t i;
    json_t *entry;
    json_array_foreach(backups, i, entry) {
        printf("%-40s %14lld %s\n", str_or(json_object_get(entry, "name"), "?"),
               (long long)json_integer_value(json_object_get(entry, "bytes")),
               str_or(json_object_get(entry, "modified_at"), "?"));
    }
    size_t count = json_array_size(backups);
    printf("-- %zu backup%s in %s\n", count, count == 1 ? "" : "s",
           str_or(json_object_get(doc, "directory"), "?"));
}

static int cmd_backup(struct ctl *ctl) {
    bool list = ctl->argc == 1 && strcmp(ctl->argv[0], "list") == 0;
    if (ctl->argc > 1 || (ctl->argc == 1 && !list))
        return usage_error("backup takes no argument or \"list\", got \"%s\"",
                           ctl->argv[ctl->argc - 1]);

    json_t *doc = NULL;
    int code;
    if (list) {
        code = http_call(ctl, "/api/backup", NULL, &doc);
    } else {
        json_t *body = json_object();
        ctl->http_timeout = BACKUP_TIMEOUT_SECONDS;
        code = http_call(ctl, "/api/backup", body, &doc);
        json_decref(body);
    }
    if (code != EXIT_OK)
        return code;
    if (ctl->json)
        print_json(doc);
    else if (list)
        print_backup_list(doc);
    else
        print_backup(doc);
    json_decref(doc);
    return EXIT_OK;
}

/* ---- help and the command table ---------------------------------------------------------- */

static const char global_help[] =
    "usage: fabrikctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Command-line client for fabrik and other Faktory Work Protocol servers.\n"
    "\n"
    "commands:\n"
    "  push JOBTYPE [ARG...]             push a job\n"
    "  stats                             server statistics (INFO)\n"
    "  queues                            queue sizes, latency and paused state\n"
    "  queue pause|resume|clear QUEUE... pause, resume or delete queues\n"
    "  list retries|scheduled|dead       list the jobs of a set\n"
    "  retry|kill|discard SET JID...     requeue, kill or delete jobs of a set\n"
    "  batch status BID                  show a batch\n"
    "  track get JID                     show a tracked job's progress\n"
    "  backup [list]                     copy the database while it runs, or list copies\n"
    "\n"
    "options:\n"
    "  -u, --url URL        server URL (default: $FAKTORY_URL, else tcp://127.0.0.1:7419)\n"
    "  -p, --password PW    server password (overrides the URL's)\n"
    "  -w, --web-url URL    web API URL (default: $FABRIK_WEB_URL, else "
    "http://127.0.0.1:7420)\n"
    "      --ca-file FILE   CA certificates (PEM) that a TLS server certificate must chain to\n"
    "      --insecure       do not verify the TLS server certificate\n"
    "  -j, --json           print JSON instead of tables\n"
    "  -h, --help           print help; 'fabrikctl COMMAND --help' for one command\n"
    "  -V, --version        print the version\n"
    "\n"
    "exit status: 0 success, 1 server error, 2 usage error, 3 connection error,\n"
    "4 authentication error.\n";

static const struct command commands[] = {
    {"push", cmd_push, "fabrikctl push JOBTYPE [ARG...] [options]",
     "Pushes one job and prints its jid. Each ARG is used as JSON when it parses as JSON\n"
     "(42, true, {\"a\":1}, \"\\\"quoted\\\"\") and as a string otherwise.\n"
     "\n"
     "  -q, --queue NAME      queue (default: default)\n"
     "      --args JSON       the whole args array, e.g. '[1,\"x\"]'; ARGs are appended\n"
     "      --jid JID         job id (default: 24 random hex digits)\n"
     "      --priority N      priority 1..9 (default 5)\n"
     "      --retry N         retries before the job dies (default 25; 0: delete the job at its\n"
     "                        first failure; -1: move it to the dead set then)\n"
     "      --reserve-for S   seconds a worker may hold the job (default 1800)\n"
     "      --at TIME         run at an RFC 3339 time, e.g. 2030-01-02T03:04:05Z\n"
     "      --in SECONDS      run SECONDS from now\n"
     "      --custom JSON     the custom object, e.g. '{\"track\":1}'\n"},
    {"stats", cmd_stats, "fabrikctl stats",
     "Prints the server's INFO: processed and failed jobs, set sizes, workers. With --json,\n"
     "the INFO document as the server sends it.\n"},
    {"queues", cmd_queues, "fabrikctl queues",
     "Lists every queue with its size, latency (age in seconds of the job that FETCH would\n"
     "take next) and whether it is paused. Uses the web API (--web-url).\n"},
    {"queue", cmd_queue, "fabrikctl queue pause|resume|clear QUEUE...",
     "pause stops FETCH from taking jobs of the queues, resume undoes it, clear deletes the\n"
     "queues and every job in them. '*' names every queue.\n"},
    {"list", cmd_list, "fabrikctl list retries|scheduled|dead [options]",
     "Lists one page of a set through the web API (--web-url), sorted by time.\n"
     "\n"
     "      --page N          page number, from 1 (default 1)\n"
     "      --per-page N      jobs per page, 1..500 (default 25)\n"
     "      --jobtype TYPE    only jobs of this type\n"
     "  -q, --queue NAME      only jobs of this queue\n"
     "      --errtype TYPE    only jobs whose last failure has this error type\n"
     "      --search TEXT     only jobs whose JSON contains TEXT (case-insensitive)\n"},
    {"retry", cmd_retry, "fabrikctl retry retries|scheduled|dead (JID...|--all) [--jobtype T]",
     "Moves the jobs back to their queues now (MUTATE requeue).\n"
     "\n"
     "      --all             every job of the set (with --jobtype: every job of that type)\n"
     "      --jobtype TYPE    only jobs of this type\n"},
    {"kill", cmd_kill, "fabrikctl kill retries|scheduled (JID...|--all) [--jobtype T]",
     "Moves the jobs to the dead set (MUTATE kill). Options as for retry.\n"},
    {"discard", cmd_discard, "fabrikctl discard retries|scheduled|dead (JID...|--all) [...]",
     "Deletes the jobs (MUTATE discard). Options as for retry.\n"},
    {"batch", cmd_batch, "fabrikctl batch status BID",
     "Prints a batch's description, parent, job counts (total, pending, failed) and callback\n"
     "states.\n"},
    {"track", cmd_track, "fabrikctl track get JID",
     "Prints the tracked state, percent and description of a job pushed with\n"
     "custom.track = 1.\n"},
    {"backup", cmd_backup, "fabrikctl backup [list]",
     "Makes the server copy its database, while it keeps running, into the backups\n"
     "directory of its data directory, and prints the file, its size, the time the copy took\n"
     "and the job counts the copy contains. 'backup list' lists the finished copies. Uses the\n"
     "web API (--web-url) and waits up to an hour for the copy.\n"},
};

static const struct command *find_command(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

/* ---- option parsing ---------------------------------------------------------------------- */

enum long_only {
    OPT_CA_FILE = 256, OPT_INSECURE, OPT_ARGS, OPT_JID, OPT_PRIORITY, OPT_RETRY, OPT_RESERVE,
    OPT_AT, OPT_IN, OPT_CUSTOM, OPT_PAGE, OPT_PER_PAGE, OPT_JOBTYPE, OPT_ERRTYPE, OPT_SEARCH,
    OPT_ALL,
};

static const struct option long_options[] = {
    {"url", required_argument, NULL, 'u'},
    {"password", required_argument, NULL, 'p'},
    {"web-url", required_argument, NULL, 'w'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"queue", required_argument, NULL, 'q'},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"args", required_argument, NULL, OPT_ARGS},
    {"jid", required_argument, NULL, OPT_JID},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"retry", required_argument, NULL, OPT_RETRY},
    {"reserve-for", required_argument, NULL, OPT_RESERVE},
    {"at", required_argument, NULL, OPT_AT},
    {"in", required_argument, NULL, OPT_IN},
    {"custom", required_argument, NULL, OPT_CUSTOM},
    {"page", required_argument, NULL, OPT_PAGE},
    {"per-page", required_argument, NULL, OPT_PER_PAGE},
    {"jobtype", required_argument, NULL, OPT_JOBTYPE},
    {"errtype", required_argument, NULL, OPT_ERRTYPE},
    {"search", required_argument, NULL, OPT_SEARCH},
    {"all", no_argument, NULL, OPT_ALL},
    {NULL, 0, NULL, 0},
};

static int parse_long(const char *text, const char *option, long min, long max, long *out) {
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (!*text || *end || value < min || value > max) {
        fprintf(stderr, "fabrikctl: %s must be an integer from %ld to %ld, not \"%s\"\n", option,
                min, max, text);
        return EXIT_USAGE;
    }
    *out = value;
    return EXIT_OK;
}

static int parse_number_option(struct ctl *ctl, int opt, const char *arg) {
    long value = 0;
    int code = EXIT_OK;
    switch (opt) {
    case OPT_PRIORITY:
        code = parse_long(arg, "--priority", 1, 9, &value);
        ctl->priority = (int)value;
        break;
    case OPT_RETRY:
        code = parse_long(arg, "--retry", -1, 1000000, &value);
        ctl->retry = (int)value;
        ctl->have_retry = true;
        break;
    case OPT_RESERVE:
        code = parse_long(arg, "--reserve-for", 1, 86400, &value);
        ctl->reserve_for = (int)value;
        break;
    case OPT_PAGE:
        code = parse_long(arg, "--page", 1, 1000000000L, &ctl->page);
        break;
    case OPT_PER_PAGE:
        code = parse_long(arg, "--per-page", 1, 500, &ctl->per_page);
        break;
    case OPT_IN: {
        char *end = NULL;
        ctl->in_seconds = strtod(arg, &end);
        ctl->have_in = true;
        if (!*arg || *end || !isfinite(ctl->in_seconds))
            code = usage_error("--in must be a number of seconds, not \"%s\"", arg);
        break;
    }
    }
    return code;
}

static int parse_option(struct ctl *ctl, int opt, const char *arg) {
    switch (opt) {
    case 'u': ctl->url = arg; break;
    case 'p': ctl->password = arg; break;
    case 'w': ctl->web_url = arg; break;
    case 'j': ctl->json = true; break;
    case 'h': ctl->help = true; break;
    case 'q': ctl->queue = arg; break;
    case OPT_CA_FILE: ctl->ca_file = arg; break;
    case OPT_INSECURE: ctl->insecure = true; break;
    case OPT_ARGS: ctl->args_json = arg; break;
    case OPT_JID: ctl->jid = arg; break;
    case OPT_AT: ctl->at = arg; break;
    case OPT_CUSTOM: ctl->custom = arg; break;
    case OPT_JOBTYPE: ctl->jobtype = arg; break;
    case OPT_ERRTYPE: ctl->errtype = arg; break;
    case OPT_SEARCH: ctl->search = arg; break;
    case OPT_ALL: ctl->all = true; break;
    default: return parse_number_option(ctl, opt, arg);
    }
    return EXIT_OK;
}

static int parse_args(struct ctl *ctl, int argc, char **argv) {
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":u:p:w:jhVq:", long_options, NULL)) != -1) {
        if (opt == 'V') {
            printf("fabrikctl %s\n", FABRIK_CLIENT_VERSION);
            exit(EXIT_OK);
        }
        if (opt == '?')
            return usage_error("unknown option %s", argv[optind - 1]);
        if (opt == ':')
            return usage_error("option %s needs a value", argv[optind - 1]);
        int code = parse_option(ctl, opt, optarg);
        if (code != EXIT_OK)
            return code;
    }
    ctl->argc = argc - optind;
    ctl->argv = argv + optind;
    return EXIT_OK;
}

int main(int argc, char **argv) {
    struct ctl ctl = {0};
    int code = parse_args(&ctl, argc, argv);
    if (code != EXIT_OK)
        return code;
    if (!ctl.web_url)
        ctl.web_url = getenv("FABRIK_WEB_URL") && *getenv("FABRIK_WEB_URL")
                          ? getenv("FABRIK_WEB_URL") : DEFAULT_WEB_URL;

    if (ctl.argc == 0) {
        fputs(global_help, ctl.help ? stdout : stderr);
        return ctl.help ? EXIT_OK : EXIT_USAGE;
    }
    const struct command *cmd = find_command(ctl.argv[0]);
    if (!cmd)
        return usage_error("unknown command \"%s\"", ctl.argv[0]);
    if (ctl.help) {
        printf("usage: %s\n\n%s", cmd->usage, cmd->help);
        return EXIT_OK;
    }
    ctl.argc--;
    ctl.argv++;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    code = cmd->run(&ctl);
    fabrik_client_close(ctl.client);
    curl_global_cleanup();
    return code;
}
