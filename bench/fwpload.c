/* fwpload: a load driver for servers that speak the Faktory Work Protocol (FWP), written for
 * fabrik's benchmarks on top of libfabrik. Every connection is one thread with one libfabrik
 * client (a blocking socket to 127.0.0.1) and one command in flight, as in the usual Faktory
 * clients. It reports jobs per second and
 * per-command latency percentiles; bench/run drives it and writes docs/benchmarks.md. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fabrik/fabrik.h>

#include "benchutil.h"

/* The server reaps a worker after 60 s without BEAT, so this driver sends one every 10 s. */
#define BEAT_INTERVAL_NS (10 * 1000000000ull)
/* FETCH blocks at most 2 s on the server, so a reply that takes longer than this is a stall. */
#define REPLY_TIMEOUT_SECONDS 30
#define PROGRESS_AFTER_SECONDS 3.0
#define MAX_CONNECTIONS 512
/* cycle mode FAILs each job whose sequence number ends in 99 modulo 100: 1% of the jobs. */
#define FAIL_EVERY 100
/* latency mode: pause between the worker sending FETCH and the producer's PUSH, so that the
 * FETCH is parked on the server and the sample measures a hand-off to a waiting worker. */
#define LATENCY_PARK_NS 2000000L
/* schedule mode: job i is due at start + --delay + i * SCHEDULE_SPACING_NS, so that the jobs
 * fall due one at a time and each sample measures the timer, not a backlog. */
#define SCHEDULE_SPACING_NS 10000000L

/* ---- options -------------------------------------------------------------------------- */

enum mode { MODE_PUSH, MODE_WORK, MODE_CYCLE, MODE_LATENCY, MODE_SCHEDULE, MODE_FILL,
            MODE_INFO, MODE_FREE_PORT };

static const char *const mode_names[] = {"push",     "work", "cycle",    "latency",
                                          "schedule", "fill", "info",  "free-port"};

struct options {
    enum mode mode;
    int port;
    long jobs;
    int connections;
    const char *queue;
    const char *fallback_queue;   /* work mode: FETCH lists it after queue; NULL for none */
    long payload_bytes;
    long bulk;                /* fill: jobs per PUSHB */
    double delay_seconds;     /* schedule: how far ahead the first job is due */
    double timeout_seconds;
    bool json;
    const char *password;   /* FAKTORY_PASSWORD, or NULL when unset */
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: fwpload MODE [options]\n"
            "\n"
            "Load driver for a Faktory Work Protocol server on 127.0.0.1.\n"
            "\n"
            "modes:\n"
            "  push       push --jobs jobs over --connections producer connections\n"
            "  work       fetch and ACK --jobs jobs that are already queued, over\n"
            "             --connections worker connections\n"
            "  cycle      half of --connections push --jobs jobs while the other half fetch\n"
            "             and ACK them; 1%% of the jobs carry retry 0 and are FAILed\n"
            "  latency    one worker waits in FETCH while one producer pushes one job at a\n"
            "             time; --jobs sets the number of push-to-pickup samples\n"
            "  schedule   one producer pushes --jobs jobs with \"at\" --delay seconds ahead,\n"
            "             10 ms apart, and one worker waiting in FETCH records how late each\n"
            "             arrives (LATE: arrival minus \"at\", from the wall clock)\n"
            "  fill       push --jobs jobs with PUSHB, --bulk jobs per command, and leave them\n"
            "             queued (to measure memory and restart time with many jobs)\n"
            "  info       connect, send INFO and print the job counts of --queue as JSON\n"
            "  free-port  print a TCP port on 127.0.0.1 that is free at this moment\n"
            "\n"
            "options:\n"
            "  -p, --port N           server port on 127.0.0.1 (default 7419)\n"
            "  -n, --jobs N           jobs to process (default 100000; latency: 1000)\n"
            "  -c, --connections N    connections, one thread each, 1 to %d (default 10;\n"
            "                         cycle needs 2; latency always uses 2)\n"
            "  -q, --queue NAME       queue name (default fwpload)\n"
            "      --fallback-queue NAME\n"
            "                         work: FETCH lists NAME after --queue, so a fetcher takes\n"
            "                         its jobs when --queue is empty, paused or throttled;\n"
            "                         the jobs of both queues count toward --jobs\n"
            "      --payload-bytes N  extra string argument of N bytes per job (default 0)\n"
            "      --bulk N           fill: jobs per PUSHB, 1 to 100000 (default 1000)\n"
            "      --delay SECONDS    schedule: how far ahead the first job is due\n"
            "                         (default 3)\n"
            "      --timeout SECONDS  abort the run after this many seconds (default 600)\n"
            "      --json             print the result as one JSON object on stdout\n"
            "  -h, --help             show this help\n"
            "\n"
            "environment:\n"
            "  FAKTORY_PASSWORD       password, when the server asks for one\n"
            "\n"
            "Exit status: 0 when every job was processed without an error reply, 1 when the\n"
            "run failed or fell short, 2 for invalid arguments.\n",
            MAX_CONNECTIONS);
}

static int parse_long(const char *flag, const char *text, long min, long max, long *out) {
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "fwpload: invalid %s \"%s\": expected an integer from %ld to %ld\n",
                flag, text, min, max);
        return -1;
    }
    *out = value;
    return 0;
}

static int parse_seconds(const char *flag, const char *text, double *out) {
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(value > 0) || value > 86400) {
        fprintf(stderr, "fwpload: invalid %s \"%s\": expected seconds above 0, at most 86400\n",
                flag, text);
        return -1;
    }
    *out = value;
    return 0;
}

/* Applies fabrik's rule for queue names: [a-zA-Z0-9._-]+, at most 128 bytes. */
static int check_queue(const char *flag, const char *name) {
    size_t len = strlen(name);
    bool valid = len > 0 && len <= 128 && strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                       "0123456789._-") == len;
    if (!valid) {
        fprintf(stderr, "fwpload: invalid %s \"%s\": use 1 to 128 characters from "
                        "a-z, A-Z, 0-9, '.', '_' and '-'\n", flag, name);
        return -1;
    }
    return 0;
}

static int parse_mode(const char *text, enum mode *out) {
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++) {
        if (strcmp(text, mode_names[i]) == 0) {
            *out = (enum mode)i;
            return 0;
        }
    }
    fprintf(stderr, "fwpload: unknown mode \"%s\": use push, work, cycle, latency or "
                    "free-port (see --help)\n", text);
    return -1;
}

/* Checks the combinations that no single flag can check. */
static int check_options(const struct options *opt, bool jobs_set, bool connections_set) {
    if ((opt->mode == MODE_LATENCY || opt->mode == MODE_SCHEDULE) && connections_set) {
        fprintf(stderr, "fwpload: --connections does not apply to %s mode, which uses "
                        "one producer and one worker\n", mode_names[opt->mode]);
        return -1;
    }
    if (opt->mode == MODE_CYCLE && opt->connections < 2) {
        fprintf(stderr, "fwpload: cycle mode needs --connections 2 or more (half push, "
                        "half fetch), got %d\n", opt->connections);
        return -1;
    }
    if (opt->fallback_queue && opt->mode != MODE_WORK) {
        fprintf(stderr, "fwpload: --fallback-queue applies to work mode only\n");
        return -1;
    }
    if (opt->fallback_queue && strcmp(opt->fallback_queue, opt->queue) == 0) {
        fprintf(stderr, "fwpload: --fallback-queue \"%s\" must differ from --queue\n",
                opt->fallback_queue);
        return -1;
    }
    if (opt->mode == MODE_FREE_PORT && (jobs_set || connections_set)) {
        fprintf(stderr, "fwpload: free-port takes no --jobs or --connections\n");
        return -1;
    }
    return 0;
}

/* Applies option ch with its value optarg. Returns 0, 1 after --help, or -1 after printing an
 * error. */
static int apply_option(int ch, char **argv, struct options *opt, bool *jobs_set,
                        bool *connections_set) {
    long value = 0;
    switch (ch) {
    case 'p':
        if (parse_long("--port", optarg, 1, 65535, &value) != 0)
            return -1;
        opt->port = (int)value;
        return 0;
    case 'n':
        *jobs_set = true;
        return parse_long("--jobs", optarg, 1, 1000000000L, &opt->jobs);
    case 'c':
        if (parse_long("--connections", optarg, 1, MAX_CONNECTIONS, &value) != 0)
            return -1;
        opt->connections = (int)value;
        *connections_set = true;
        return 0;
    case 'q':
        opt->queue = optarg;
        return check_queue("--queue", optarg);
    case 'F':
        opt->fallback_queue = optarg;
        return check_queue("--fallback-queue", optarg);
    case 'P':
        return parse_long("--payload-bytes", optarg, 0, 1000000, &opt->payload_bytes);
    case 'B':
        return parse_long("--bulk", optarg, 1, 100000, &opt->bulk);
    case 'D':
        return parse_seconds("--delay", optarg, &opt->delay_seconds);
    case 'T':
        return parse_seconds("--timeout", optarg, &opt->timeout_seconds);
    case 'j':
        opt->json = true;
        return 0;
    case 'h':
        usage(stdout);
        return 1;
    case ':':
        fprintf(stderr, "fwpload: option %s requires a value\n", argv[optind - 1]);
        return -1;
    default:
        fprintf(stderr, "fwpload: unknown option %s (see --help)\n", argv[optind - 1]);
        return -1;
    }
}

/* Parses argv into opt. Returns 0, 1 after --help, or -1 after printing an error. */
static int parse_options(int argc, char **argv, struct options *opt) {
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"jobs", required_argument, NULL, 'n'},
        {"connections", required_argument, NULL, 'c'},
        {"queue", required_argument, NULL, 'q'},
        {"fallback-queue", required_argument, NULL, 'F'},
        {"payload-bytes", required_argument, NULL, 'P'},
        {"bulk", required_argument, NULL, 'B'},
        {"delay", required_argument, NULL, 'D'},
        {"timeout", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.port = 7419, .jobs = 100000, .connections = 10,
                            .queue = "fwpload", .timeout_seconds = 600,
                            .bulk = 1000, .delay_seconds = 3};
    bool jobs_set = false, connections_set = false;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":p:n:c:q:h", longopts, NULL)) != -1) {
        int rc = apply_option(ch, argv, opt, &jobs_set, &connections_set);
        if (rc != 0)
            return rc;
    }

    if (optind != argc - 1) {
        fprintf(stderr, optind == argc ? "fwpload: missing MODE (see --help)\n"
                                       : "fwpload: expected one MODE, got extra arguments "
                                         "(see --help)\n");
        return -1;
    }
    if (parse_mode(argv[optind], &opt->mode) != 0)
        return -1;
    if (opt->mode == MODE_LATENCY || opt->mode == MODE_SCHEDULE) {
        opt->connections = 2;
        if (!jobs_set)
            opt->jobs = opt->mode == MODE_LATENCY ? 1000 : 200;
    }
    opt->password = getenv("FAKTORY_PASSWORD");
    return check_options(opt, jobs_set, connections_set);
}

/* ---- one FWP connection, through libfabrik ---------------------------------------------- */

/* fabrik_command() returns the text of a simple string and the payload of a bulk string
 * alike, so the driver distinguishes replies by their text. */
enum reply_type { REPLY_TEXT, REPLY_ERROR, REPLY_NIL };

/* One reply. data is NUL-terminated and stays valid until the next command on that
 * connection. For an error, data is the server's message without "-ERR ". */
struct reply {
    enum reply_type type;
    const char *data;
};

struct fwp_conn {
    struct fabrik_client *client;
    char *reply;              /* text of the last reply, freed by the next command */
    char *out;                /* the command being sent, without its line ending */
    size_t out_cap;
    char wid[64];             /* empty for a producer */
    uint64_t last_beat_ns;
    char error[256];          /* why the last failed call failed */
};

static void conn_init(struct fwp_conn *c) {
    memset(c, 0, sizeof *c);
}

/* Sends END, closes the connection and frees what c owns. */
static void conn_close(struct fwp_conn *c) {
    fabrik_client_close(c->client);
    fabrik_free(c->reply);
    free(c->out);
    conn_init(c);
}

static int conn_fail(struct fwp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int conn_fail(struct fwp_conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* Formats a command into c->out, growing it as needed. Returns its length. */
static size_t conn_format(struct fwp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t conn_format(struct fwp_conn *c, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(c->out, c->out_cap, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();   /* only an invalid format string fails, and the formats are fixed */
        if ((size_t)n < c->out_cap)
            return (size_t)n;
        c->out_cap = (size_t)n + 1 > 2 * c->out_cap ? (size_t)n + 1 : 2 * c->out_cap;
        c->out = realloc(c->out, c->out_cap);
        if (!c->out)
            abort();
    }
}

/* Sends the command in c->out and reads its reply into *r. Returns 0, also for an error
 * reply, or -1 with c->error set when the connection failed or the reply was unusable. */
static int conn_call(struct fwp_conn *c, struct reply *r) {
    fabrik_free(c->reply);
    c->reply = NULL;
    int rc = fabrik_command(c->client, c->out, &c->reply);
    if (rc == FABRIK_ESERVER || rc == FABRIK_ENOTUNIQUE || rc == FABRIK_ECODED) {
        *r = (struct reply){.type = REPLY_ERROR, .data = fabrik_client_error(c->client)};
        return 0;
    }
    if (rc != 0)
        return conn_fail(c, "%s: %s", fabrik_strerror(rc), fabrik_client_error(c->client));
    *r = (struct reply){.type = c->reply ? REPLY_TEXT : REPLY_NIL, .data = c->reply};
    return 0;
}

/* Connects to 127.0.0.1:port and completes the HI/HELLO handshake with libfabrik, which also
 * computes the password hash when the server requests one. A non-empty c->wid makes it a
 * worker connection. Returns 0, or -1 with c->error set. Reconnects are off, so a lost
 * connection ends the run. */
static int conn_open(struct fwp_conn *c, int port, const char *password) {
    static const char *const labels[] = {"fwpload", NULL};
    char url[64];
    /* The driver talks to a server on this machine only: the address is fixed. */
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    struct fabrik_options opts;
    fabrik_options_init(&opts);
    opts.url = url;
    opts.password = password;
    opts.wid = c->wid[0] ? c->wid : NULL;
    opts.labels = labels;
    opts.io_timeout_ms = REPLY_TIMEOUT_SECONDS * 1000;
    opts.reconnect_attempts = 0;
    char err[256] = "";
    if (fabrik_client_open(&c->client, &opts, err, sizeof err) != 0)
        return conn_fail(c, "connect to %s failed: %s%s", url, err,
                         password ? "" : " (fwpload reads the password from FAKTORY_PASSWORD)");
    c->last_beat_ns = bench_now_ns();
    return 0;
}

/* ---- shared run state ----------------------------------------------------------------- */

enum cmd_kind {
    CMD_PUSH, CMD_PUSHB, CMD_FETCH, CMD_ACK, CMD_FAIL, CMD_BEAT, CMD_PICKUP, CMD_LATE, CMD_KINDS
};

/* PICKUP and LATE are not commands. PICKUP is the time from sending PUSH until the waiting
 * worker has the job (latency mode), LATE the time from a job's "at" until the worker has it
 * (schedule mode). */
static const char *const cmd_names[] = {"PUSH", "PUSHB", "FETCH", "ACK",
                                        "FAIL", "BEAT",  "PICKUP", "LATE"};

/* Hand-off between the producer and the worker in latency mode. */
struct pickup {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool worker_waiting;      /* the worker has sent FETCH and has no job */
    long seq;                 /* sequence number of the last job the worker received */
    uint64_t at_ns;           /* when it was received */
};

struct run {
    const struct options *opt;
    char jid_prefix[32];      /* makes jids unique across runs against one server */
    char *filler;             /* ,"xxx..." appended to args for --payload-bytes, or "" */
    atomic_long next_seq;     /* next job sequence number to push */
    atomic_long pushed;       /* PUSH replies +OK */
    atomic_long claimed;      /* job slots taken by fetchers, at most opt->jobs */
    atomic_long done;         /* jobs ACKed or FAILed with +OK */
    atomic_long samples;      /* latency mode: push-to-pickup times recorded */
    atomic_long failed;       /* of done, FAILed */
    atomic_long from_fallback; /* jobs fetched from --fallback-queue */
    atomic_long foreign;      /* jobs of other runs that cycle or latency mode ACKed */
    atomic_long errors;       /* error replies of every kind */
    atomic_long early;        /* schedule mode: jobs that arrived before their "at" */
    uint64_t schedule_base_ns; /* schedule mode: CLOCK_REALTIME at the start, in ns */
    atomic_int pushers_running;
    atomic_int threads_running;
    atomic_bool stop;         /* an I/O error or the timeout ends the run */
    atomic_bool queue_empty;  /* a fetcher found the queue empty before the count was reached */
    pthread_barrier_t start;
    pthread_mutex_t mu;       /* guards first_error */
    char first_error[512];
    struct pickup pickup;
};

static void run_note_error(struct run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keeps the first error message of the run. */
static void run_note_error(struct run *run, const char *fmt, ...) {
    pthread_mutex_lock(&run->mu);
    if (run->first_error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(run->first_error, sizeof run->first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&run->mu);
}

/* One connection with its thread and its latency histograms. */
enum role {
    ROLE_PUSHER, ROLE_FETCHER, ROLE_LATENCY_PRODUCER, ROLE_LATENCY_WORKER,
    ROLE_SCHEDULE_PRODUCER, ROLE_SCHEDULE_WORKER, ROLE_FILLER
};

struct client {
    struct run *run;
    int index;
    enum role role;
    struct fwp_conn conn;
    struct histogram hist[CMD_KINDS];
    pthread_t thread;
    uint64_t finished_ns;     /* when the thread's workload ended */
};

/* Sends the len bytes in c->conn.out, reads the reply and records the round trip. Returns 0
 * with *r set, or -1 after an I/O or framing error, which stops the run. An error reply is
 * counted here and returns 0. */
static int client_call(struct client *c, enum cmd_kind kind, size_t len, struct reply *r) {
    (void)len;   /* the command is the NUL-terminated text in c->conn.out */
    uint64_t started = bench_now_ns();
    if (conn_call(&c->conn, r) != 0) {
        if (!atomic_load(&c->run->stop))
            run_note_error(c->run, "%s on connection %d: %s", cmd_names[kind], c->index,
                           c->conn.error);
        atomic_store(&c->run->stop, true);
        return -1;
    }
    hist_add(&c->hist[kind], bench_now_ns() - started);
    if (r->type == REPLY_ERROR) {
        atomic_fetch_add(&c->run->errors, 1);
        run_note_error(c->run, "%s: -%.300s", cmd_names[kind], r->data);
    }
    return 0;
}

/* Returns true for +OK; anything else but an error reply (already counted) is counted here. */
static bool reply_is_ok(struct client *c, enum cmd_kind kind, const struct reply *r) {
    if (r->type == REPLY_TEXT && strcmp(r->data, "OK") == 0)
        return true;
    if (r->type != REPLY_ERROR) {
        atomic_fetch_add(&c->run->errors, 1);
        run_note_error(c->run, "%s: expected +OK, got reply type %d \"%.100s\"",
                       cmd_names[kind], (int)r->type, r->data ? r->data : "");
    }
    return false;
}

/* Sends BEAT when BEAT_INTERVAL_NS has passed since the handshake or the last BEAT. The reply
 * is +OK, or a bulk string with the state the server wants (quiet, terminate). */
static int client_beat(struct client *c) {
    if (bench_now_ns() - c->conn.last_beat_ns < BEAT_INTERVAL_NS)
        return 0;
    struct reply r;
    size_t len = conn_format(&c->conn, "BEAT {\"wid\":\"%s\"}", c->conn.wid);
    if (client_call(c, CMD_BEAT, len, &r) != 0)
        return -1;
    c->conn.last_beat_ns = bench_now_ns();
    if (r.type == REPLY_TEXT && strstr(r.data, "terminate")) {
        run_note_error(c->run, "BEAT: the server asked worker %s to terminate", c->conn.wid);
        atomic_store(&c->run->stop, true);
        return -1;
    }
    return 0;
}

static bool job_should_fail(const struct run *run, long seq) {
    return run->opt->mode == MODE_CYCLE && seq % FAIL_EVERY == FAIL_EVERY - 1;
}

static size_t format_push(struct client *c, long seq) {
    const struct run *run = c->run;
    return conn_format(&c->conn,
                       "PUSH {\"jid\":\"%s-%ld\",\"jobtype\":\"fwpload\",\"queue\":\"%s\","
                       "\"args\":[%ld%s]%s}",
                       run->jid_prefix, seq, run->opt->queue, seq, run->filler,
                       job_should_fail(run, seq) ? ",\"retry\":0" : "");
}

/* Copies the jid of a job payload into jid (size bytes) and returns the job's sequence
 * number, or -1 for a job that this run did not push. Returns -2 without a jid. */
static long job_identify(const struct run *run, const char *payload, char *jid, size_t size) {
    /* The server writes compact JSON, and a "jid":" inside a string value would be escaped. */
    const char *start = strstr(payload, "\"jid\":\"");
    if (!start)
        return -2;
    start += 7;
    const char *end = strchr(start, '"');
    if (!end || (size_t)(end - start) >= size)
        return -2;
    memcpy(jid, start, (size_t)(end - start));
    jid[end - start] = '\0';
    size_t plen = strlen(run->jid_prefix);
    if (strncmp(jid, run->jid_prefix, plen) != 0 || jid[plen] != '-')
        return -1;
    return strtol(jid + plen + 1, NULL, 10);
}

/* ---- the four workloads --------------------------------------------------------------- */

static void pusher_loop(struct client *c) {
    struct run *run = c->run;
    while (!atomic_load(&run->stop)) {
        long seq = atomic_fetch_add(&run->next_seq, 1);
        if (seq >= run->opt->jobs)
            break;
        struct reply r;
        if (client_call(c, CMD_PUSH, format_push(c, seq), &r) != 0)
            break;
        if (reply_is_ok(c, CMD_PUSH, &r))
            atomic_fetch_add(&run->pushed, 1);
    }
}

/* ACKs the fetched job, or FAILs it when the cycle workload marks it for failure. In cycle mode
 * a job that another run pushed is ACKed without counting, and its slot goes back to the
 * fetchers. */
static int client_finish_job(struct client *c, const char *payload) {
    struct run *run = c->run;
    char jid[256];
    long seq = job_identify(run, payload, jid, sizeof jid);
    if (seq == -2) {
        atomic_fetch_add(&run->errors, 1);
        run_note_error(run, "FETCH returned a job without a usable jid: %.200s", payload);
        return 0;
    }

    bool fail = seq >= 0 && job_should_fail(run, seq);
    enum cmd_kind kind = fail ? CMD_FAIL : CMD_ACK;
    size_t len = fail ? conn_format(&c->conn,
                                    "FAIL {\"jid\":\"%s\",\"errtype\":\"fwpload\",\"message\":"
                                    "\"deliberate failure of 1%% of the jobs\","
                                    "\"backtrace\":[]}", jid)
                      : conn_format(&c->conn, "ACK {\"jid\":\"%s\"}", jid);
    struct reply r;
    if (client_call(c, kind, len, &r) != 0)
        return -1;
    if (!reply_is_ok(c, kind, &r))
        return 0;

    if (seq < 0 && run->opt->mode != MODE_WORK) {
        atomic_fetch_add(&run->foreign, 1);
        if (run->opt->mode == MODE_CYCLE)
            atomic_fetch_sub(&run->claimed, 1);
        return 0;
    }
    atomic_fetch_add(&run->done, 1);
    if (fail)
        atomic_fetch_add(&run->failed, 1);
    return 0;
}

static size_t format_fetch(struct client *c) {
    const struct options *opt = c->run->opt;
    if (opt->fallback_queue)
        return conn_format(&c->conn, "FETCH %s %s", opt->queue, opt->fallback_queue);
    return conn_format(&c->conn, "FETCH %s", opt->queue);
}

/* Returns whether the job payload belongs to queue (false for a NULL queue). The server
 * writes compact JSON, so the queue appears as "queue":"name". */
static bool job_in_queue(const char *payload, const char *queue) {
    if (!queue)
        return false;
    char needle[160];
    snprintf(needle, sizeof needle, "\"queue\":\"%s\"", queue);
    return strstr(payload, needle) != NULL;
}

/* Fetches and finishes jobs until opt->jobs are claimed. A fetcher claims a slot before its
 * FETCH, so no thread waits for a job that will never come once the count is reached. */
static void fetcher_loop(struct client *c) {
    struct run *run = c->run;
    while (!atomic_load(&run->stop)) {
        if (atomic_fetch_add(&run->claimed, 1) >= run->opt->jobs)
            break;
        if (client_beat(c) != 0)
            break;
        /* Read before FETCH: if every push was acknowledged before the FETCH was sent, an
         * empty reply means that the queue really is empty. */
        bool pushers_done = atomic_load(&run->pushers_running) == 0;
        struct reply r;
        if (client_call(c, CMD_FETCH, format_fetch(c), &r) != 0)
            break;
        if (r.type == REPLY_NIL && pushers_done) {
            atomic_store(&run->queue_empty, true);
            break;
        }
        if (r.type == REPLY_NIL) {
            atomic_fetch_sub(&run->claimed, 1);
            continue;
        }
        if (r.type != REPLY_TEXT)
            continue;
        if (job_in_queue(r.data, run->opt->fallback_queue))
            atomic_fetch_add(&run->from_fallback, 1);
        if (client_finish_job(c, r.data) != 0)
            break;
    }
}

/* Waits until done(pickup) is true, or the run stops. Returns 0 or -1. */
static int pickup_wait(struct run *run, bool (*done)(const struct pickup *, long), long seq) {
    struct pickup *p = &run->pickup;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    while (!done(p, seq)) {
        if (atomic_load(&run->stop)) {
            rc = -1;
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static bool worker_is_waiting(const struct pickup *p, long seq) {
    (void)seq;
    return p->worker_waiting;
}

static bool job_was_picked(const struct pickup *p, long seq) {
    return p->seq == seq;
}

static void pickup_publish(struct run *run, bool waiting, long seq, uint64_t at_ns) {
    struct pickup *p = &run->pickup;
    pthread_mutex_lock(&p->mu);
    p->worker_waiting = waiting;
    if (!waiting) {
        p->seq = seq;
        p->at_ns = at_ns;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Pushes one job at a time, each once the worker is parked in FETCH, and records how long
 * the job took from the PUSH to the worker. */
static void latency_producer_loop(struct client *c) {
    struct run *run = c->run;
    const struct timespec park = {.tv_nsec = LATENCY_PARK_NS};
    for (long seq = 0; seq < run->opt->jobs && !atomic_load(&run->stop); seq++) {
        if (pickup_wait(run, worker_is_waiting, seq) != 0)
            break;
        nanosleep(&park, NULL);
        size_t len = format_push(c, seq);
        uint64_t started = bench_now_ns();
        struct reply r;
        if (client_call(c, CMD_PUSH, len, &r) != 0)
            break;
        if (!reply_is_ok(c, CMD_PUSH, &r)) {
            atomic_store(&run->stop, true);
            break;
        }
        atomic_fetch_add(&run->pushed, 1);
        if (pickup_wait(run, job_was_picked, seq) != 0)
            break;
        hist_add(&c->hist[CMD_PICKUP], run->pickup.at_ns - started);
        atomic_fetch_add(&run->samples, 1);
    }
}

/* Waits in FETCH, hands each job's arrival time to the producer, then ACKs it. FETCH latency
 * is not recorded here because it is mostly the wait for the next push. */
static void latency_worker_loop(struct client *c) {
    struct run *run = c->run;
    long last = -1;
    while (!atomic_load(&run->stop) && last != run->opt->jobs - 1) {
        struct reply r;
        if (client_beat(c) != 0)
            break;
        conn_format(&c->conn, "FETCH %s", run->opt->queue);
        /* fabrik_command() sends and waits in one call, so the worker reports itself waiting
         * just before it sends FETCH; the producer's pause covers the send. */
        pickup_publish(run, true, 0, 0);
        if (conn_call(&c->conn, &r) != 0) {
            if (!atomic_load(&run->stop))
                run_note_error(run, "FETCH on the latency worker: %s", c->conn.error);
            atomic_store(&run->stop, true);
            break;
        }
        uint64_t arrived = bench_now_ns();
        if (r.type != REPLY_TEXT)
            continue;   /* the 2-second FETCH wait ended without a job */
        char jid[256];
        long seq = job_identify(run, r.data, jid, sizeof jid);
        pickup_publish(run, false, seq, arrived);
        if (seq >= 0)
            last = seq;
        if (client_finish_job(c, r.data) != 0)
            break;
    }
    /* A worker that gives up early must not leave the producer waiting for it. */
    if (last != run->opt->jobs - 1)
        atomic_store(&run->stop, true);
}

/* ---- scheduled jobs and bulk fill ---------------------------------------------------- */

static uint64_t wall_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Returns when job seq of a schedule run is due, in CLOCK_REALTIME nanoseconds. */
static uint64_t schedule_due_ns(const struct run *run, long seq) {
    return run->schedule_base_ns + (uint64_t)(run->opt->delay_seconds * 1e9) +
           (uint64_t)seq * SCHEDULE_SPACING_NS;
}

/* Formats a CLOCK_REALTIME time as RFC 3339 in UTC with microseconds, as "at" takes it. */
static void format_rfc3339(uint64_t ns, char *out, size_t size) {
    time_t seconds = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&seconds, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%06luZ", date, (unsigned long)(ns % 1000000000ull / 1000));
}

static void schedule_producer_loop(struct client *c) {
    struct run *run = c->run;
    for (long seq = 0; seq < run->opt->jobs && !atomic_load(&run->stop); seq++) {
        char at[48];
        format_rfc3339(schedule_due_ns(run, seq), at, sizeof at);
        size_t len = conn_format(&c->conn,
                                 "PUSH {\"jid\":\"%s-%ld\",\"jobtype\":\"fwpload\",\"queue\":"
                                 "\"%s\",\"args\":[%ld],\"at\":\"%s\"}",
                                 run->jid_prefix, seq, run->opt->queue, seq, at);
        struct reply r;
        if (client_call(c, CMD_PUSH, len, &r) != 0)
            break;
        if (reply_is_ok(c, CMD_PUSH, &r))
            atomic_fetch_add(&run->pushed, 1);
        if (wall_now_ns() > schedule_due_ns(run, seq))
            run_note_error(run, "job %ld was due before its PUSH returned, so its lateness "
                                "measures the push: raise --delay", seq);
    }
}

/* Waits in FETCH for the scheduled jobs and records how late each one arrives. */
static void schedule_worker_loop(struct client *c) {
    struct run *run = c->run;
    while (!atomic_load(&run->stop) && atomic_load(&run->samples) < run->opt->jobs) {
        struct reply r;
        if (client_beat(c) != 0)
            break;
        conn_format(&c->conn, "FETCH %s", run->opt->queue);
        if (conn_call(&c->conn, &r) != 0) {
            if (!atomic_load(&run->stop))
                run_note_error(run, "FETCH on the schedule worker: %s", c->conn.error);
            atomic_store(&run->stop, true);
            break;
        }
        uint64_t arrived = wall_now_ns();
        if (r.type != REPLY_TEXT)
            continue;   /* the 2-second FETCH wait ended without a job */
        char jid[256];
        long seq = job_identify(run, r.data, jid, sizeof jid);
        if (seq >= 0) {
            uint64_t due = schedule_due_ns(run, seq);
            if (arrived < due)
                atomic_fetch_add(&run->early, 1);
            hist_add(&c->hist[CMD_LATE], arrived > due ? arrived - due : 0);
            atomic_fetch_add(&run->samples, 1);
        }
        if (client_finish_job(c, r.data) != 0)
            break;
    }
}

/* Pushes jobs with PUSHB, --bulk at a time, and leaves them queued. */
static void filler_loop(struct client *c) {
    struct run *run = c->run;
    const struct options *opt = run->opt;
    char *batch = NULL;
    size_t cap = 0;
    while (!atomic_load(&run->stop)) {
        long first = atomic_fetch_add(&run->next_seq, opt->bulk);
        if (first >= opt->jobs)
            break;
        long count = first + opt->bulk > opt->jobs ? opt->jobs - first : opt->bulk;
        size_t used = 0;
        for (long seq = first; seq < first + count; seq++) {
            if (cap - used < 512 + (size_t)opt->payload_bytes) {
                cap = cap ? 2 * cap : 65536 + (size_t)opt->payload_bytes;
                batch = realloc(batch, cap);
                if (!batch)
                    abort();
            }
            used += (size_t)snprintf(batch + used, cap - used,
                                     "%s{\"jid\":\"%s-%ld\",\"jobtype\":\"fwpload\","
                                     "\"queue\":\"%s\",\"args\":[%ld%s]}",
                                     seq == first ? "" : ",", run->jid_prefix, seq, opt->queue,
                                     seq, run->filler);
        }
        size_t len = conn_format(&c->conn, "PUSHB [%.*s]", (int)used, batch);
        struct reply r;
        if (client_call(c, CMD_PUSHB, len, &r) != 0)
            break;
        if (r.type == REPLY_TEXT && strcmp(r.data, "{}") == 0) {
            atomic_fetch_add(&run->pushed, count);
        } else if (r.type != REPLY_ERROR) {
            atomic_fetch_add(&run->errors, 1);
            run_note_error(run, "PUSHB: expected {}, got \"%.200s\"", r.data ? r.data : "");
        }
    }
    free(batch);
}

static void *client_main(void *arg) {
    struct client *c = arg;
    struct run *run = c->run;
    pthread_barrier_wait(&run->start);
    switch (c->role) {
    case ROLE_PUSHER:
        pusher_loop(c);
        atomic_fetch_sub(&run->pushers_running, 1);
        break;
    case ROLE_FETCHER:
        fetcher_loop(c);
        break;
    case ROLE_LATENCY_PRODUCER:
        latency_producer_loop(c);
        break;
    case ROLE_LATENCY_WORKER:
        latency_worker_loop(c);
        break;
    case ROLE_SCHEDULE_PRODUCER:
        schedule_producer_loop(c);
        break;
    case ROLE_SCHEDULE_WORKER:
        schedule_worker_loop(c);
        break;
    case ROLE_FILLER:
        filler_loop(c);
        break;
    }
    c->finished_ns = bench_now_ns();
    atomic_fetch_sub(&run->threads_running, 1);
    return NULL;
}

/* ---- setup, progress and results ------------------------------------------------------ */

static enum role role_for(const struct options *opt, int index) {
    switch (opt->mode) {
    case MODE_PUSH:
        return ROLE_PUSHER;
    case MODE_WORK:
        return ROLE_FETCHER;
    case MODE_CYCLE:
        return index < opt->connections / 2 ? ROLE_PUSHER : ROLE_FETCHER;
    case MODE_SCHEDULE:
        return index == 0 ? ROLE_SCHEDULE_PRODUCER : ROLE_SCHEDULE_WORKER;
    case MODE_FILL:
        return ROLE_FILLER;
    default:
        return index == 0 ? ROLE_LATENCY_PRODUCER : ROLE_LATENCY_WORKER;
    }
}

static void run_init(struct run *run, const struct options *opt) {
    memset(run, 0, sizeof *run);
    run->opt = opt;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(run->jid_prefix, sizeof run->jid_prefix, "fwpload%08lx%04x",
             (unsigned long)(ts.tv_sec ^ ts.tv_nsec) & 0xffffffffUL,
             (unsigned)getpid() & 0xffffu);
    run->filler = calloc(1, (size_t)opt->payload_bytes + 4);
    if (!run->filler)
        abort();
    if (opt->payload_bytes > 0) {
        run->filler[0] = ',';
        run->filler[1] = '"';
        memset(run->filler + 2, 'x', (size_t)opt->payload_bytes);
        run->filler[opt->payload_bytes + 2] = '"';
    }
    pthread_mutex_init(&run->mu, NULL);
    pthread_mutex_init(&run->pickup.mu, NULL);
    pthread_cond_init(&run->pickup.cv, NULL);
    run->pickup.seq = -1;
    run->schedule_base_ns = wall_now_ns();
}

/* Opens every connection before any thread starts, so the clock covers only the workload. */
static int clients_open(struct client *clients, struct run *run) {
    const struct options *opt = run->opt;
    for (int i = 0; i < opt->connections; i++) {
        struct client *c = &clients[i];
        c->run = run;
        c->index = i;
        c->role = role_for(opt, i);
        conn_init(&c->conn);
        if (c->role == ROLE_FETCHER || c->role == ROLE_LATENCY_WORKER ||
            c->role == ROLE_SCHEDULE_WORKER)
            snprintf(c->conn.wid, sizeof c->conn.wid, "%s-w%d", run->jid_prefix, i);
        if (c->role == ROLE_PUSHER)
            run->pushers_running++;
        if (conn_open(&c->conn, opt->port, opt->password) != 0) {
            fprintf(stderr, "fwpload: connection %d of %d: %s\n", i + 1, opt->connections,
                    c->conn.error);
            return -1;
        }
    }
    return 0;
}

static long progress_count(const struct run *run) {
    switch (run->opt->mode) {
    case MODE_PUSH:
    case MODE_FILL:
        return atomic_load(&run->pushed);
    case MODE_LATENCY:
    case MODE_SCHEDULE:
        return atomic_load(&run->samples);
    default:
        return atomic_load(&run->done);
    }
}

/* Prints progress once a second after PROGRESS_AFTER_SECONDS and enforces --timeout. Returns
 * when every thread has finished. */
static void monitor(struct run *run, uint64_t started) {
    const struct timespec tick = {.tv_nsec = 50000000L};
    uint64_t next_report = started + 1000000000ull;
    long last_count = 0;
    bool timed_out = false;
    while (atomic_load(&run->threads_running) > 0) {
        nanosleep(&tick, NULL);
        uint64_t now = bench_now_ns();
        double elapsed = bench_seconds_between(started, now);
        if (!timed_out && elapsed > run->opt->timeout_seconds) {
            timed_out = true;
            run_note_error(run, "timed out after %.0f s with %ld of %ld jobs done",
                           run->opt->timeout_seconds, progress_count(run), run->opt->jobs);
            /* A thread waiting for a reply checks the flag after the reply arrives: FETCH returns
             * within 2 s, and any other command within the 30 s I/O timeout. */
            atomic_store(&run->stop, true);
        }
        if (now < next_report)
            continue;
        long count = progress_count(run);
        if (elapsed >= PROGRESS_AFTER_SECONDS)
            fprintf(stderr, "fwpload: %s %.0f s: %ld of %ld jobs, %ld jobs/s in the last "
                            "second\n", mode_names[run->opt->mode], elapsed, count,
                    run->opt->jobs, count - last_count);
        last_count = count;
        next_report += 1000000000ull;
    }
}

static long json_long(const json_t *object, const char *key, long missing) {
    const json_t *value = json_object_get(object, key);
    return json_is_integer(value) ? (long)json_integer_value(value) : missing;
}

/* Job counts from INFO after the run. A value of -1 means INFO did not report it. */
struct server_counts {
    bool valid;
    long queue, working, retries, dead, scheduled;
    long fallback_queue;      /* jobs left in --fallback-queue, when one is given */
    /* The throttle of --queue, from fabrik's faktory.throttles; has_throttle is false when
     * the queue has none or the server does not report throttles. */
    bool has_throttle;
    long throttle_in_use, throttle_taken, throttle_released, throttle_timed_out;
};

static void read_throttle(const json_t *faktory, const char *queue, struct server_counts *out) {
    const json_t *t = json_object_get(json_object_get(faktory, "throttles"), queue);
    if (!json_is_object(t))
        return;
    out->has_throttle = true;
    out->throttle_in_use = json_long(t, "in_use", -1);
    out->throttle_taken = json_long(t, "taken", -1);
    out->throttle_released = json_long(t, "released", -1);
    out->throttle_timed_out = json_long(t, "timed_out", -1);
}

static int query_info(const struct options *opt, struct server_counts *out, char *err,
                      size_t errlen) {
    struct fwp_conn c;
    conn_init(&c);
    struct reply r;
    int rc = -1;
    if (conn_open(&c, opt->port, opt->password) != 0 ||
        (conn_format(&c, "INFO"), conn_call(&c, &r)) != 0) {
        snprintf(err, errlen, "%s", c.error);
    } else if (r.type != REPLY_TEXT) {
        snprintf(err, errlen, "INFO returned \"%.200s\"", r.data ? r.data : "");
    } else {
        json_t *doc = json_loads(r.data, 0, NULL);
        const json_t *faktory = json_object_get(doc, "faktory");
        const json_t *sets = json_object_get(faktory, "sets");
        *out = (struct server_counts){
            .valid = true,
            .queue = json_long(json_object_get(faktory, "queues"), opt->queue, 0),
            .working = json_long(sets, "working", -1),
            .retries = json_long(sets, "retries", -1),
            .dead = json_long(sets, "dead", -1),
            .scheduled = json_long(sets, "scheduled", -1),
            .fallback_queue = opt->fallback_queue
                                  ? json_long(json_object_get(faktory, "queues"),
                                              opt->fallback_queue, 0)
                                  : -1,
        };
        read_throttle(faktory, opt->queue, out);
        if (!faktory)
            snprintf(err, errlen, "INFO has no \"faktory\" object");
        rc = faktory ? 0 : -1;
        json_decref(doc);
    }
    conn_close(&c);   /* sends END */
    return rc;
}

struct result {
    long jobs;                /* jobs pushed, finished or sampled, by mode */
    double seconds;
    double cpu_seconds;       /* user and system time of this process */
    struct histogram hist[CMD_KINDS];
    struct server_counts after;
    const char *shortfall;    /* why fewer jobs than requested were processed, or NULL */
};

static double us(uint64_t ns) {
    return (double)ns / 1e3;
}

static json_t *server_after_json(const struct options *opt, const struct server_counts *after) {
    json_t *doc = json_pack("{s:I, s:I, s:I, s:I, s:I}", "queue", (json_int_t)after->queue,
                            "working", (json_int_t)after->working, "retries",
                            (json_int_t)after->retries, "dead", (json_int_t)after->dead,
                            "scheduled", (json_int_t)after->scheduled);
    if (opt->fallback_queue)
        json_object_set_new(doc, "fallback_queue", json_integer(after->fallback_queue));
    if (after->has_throttle)
        json_object_set_new(
            doc, "throttle",
            json_pack("{s:I, s:I, s:I, s:I}", "in_use", (json_int_t)after->throttle_in_use,
                      "taken", (json_int_t)after->throttle_taken, "released",
                      (json_int_t)after->throttle_released, "timed_out",
                      (json_int_t)after->throttle_timed_out));
    return doc;
}

static json_t *result_json(const struct run *run, const struct result *res) {
    const struct options *opt = run->opt;
    json_t *commands = json_object();
    for (int k = 0; k < CMD_KINDS; k++) {
        const struct histogram *h = &res->hist[k];
        if (h->total == 0)
            continue;
        json_object_set_new(commands, cmd_names[k], hist_json(h));
    }
    json_t *doc = json_pack(
        "{s:s, s:i, s:I, s:I, s:i, s:f, s:f, s:f, s:I, s:I, s:I, s:o, s:s?, s:s?}", "mode",
        mode_names[opt->mode], "connections", opt->connections, "jobs_requested",
        (json_int_t)opt->jobs, "jobs", (json_int_t)res->jobs, "payload_bytes",
        (int)opt->payload_bytes, "seconds", res->seconds, "jobs_per_sec",
        res->seconds > 0 ? (double)res->jobs / res->seconds : 0.0, "driver_cpu_seconds",
        res->cpu_seconds, "failed", (json_int_t)atomic_load(&run->failed), "other_runs_jobs",
        (json_int_t)atomic_load(&run->foreign), "errors",
        (json_int_t)atomic_load(&run->errors), "commands", commands, "first_error",
        run->first_error[0] ? run->first_error : NULL, "shortfall", res->shortfall);
    if (opt->mode == MODE_SCHEDULE)
        json_object_set_new(doc, "early_jobs", json_integer((json_int_t)atomic_load(&run->early)));
    if (opt->mode == MODE_FILL)
        json_object_set_new(doc, "bulk", json_integer((json_int_t)opt->bulk));
    if (opt->fallback_queue)
        json_object_set_new(doc, "fallback_jobs",
                            json_integer((json_int_t)atomic_load(&run->from_fallback)));
    if (res->after.valid)
        json_object_set_new(doc, "server_after", server_after_json(opt, &res->after));
    return doc;
}

static void print_text(const struct run *run, const struct result *res) {
    const struct options *opt = run->opt;
    printf("mode         %s\n", mode_names[opt->mode]);
    if (opt->mode == MODE_CYCLE)
        printf("connections  %d (%d pushing, %d fetching)\n", opt->connections,
               opt->connections / 2, opt->connections - opt->connections / 2);
    else
        printf("connections  %d\n", opt->connections);
    printf("jobs         %ld of %ld\n", res->jobs, opt->jobs);
    printf("seconds      %.3f\n", res->seconds);
    printf("jobs/s       %.0f\n", res->seconds > 0 ? (double)res->jobs / res->seconds : 0.0);
    printf("driver cpu   %.2f s\n", res->cpu_seconds);
    printf("errors       %ld\n", atomic_load(&run->errors));
    if (atomic_load(&run->foreign) > 0)
        printf("other runs   %ld jobs pushed by another run were ACKed and not counted\n",
               atomic_load(&run->foreign));
    printf("\n%-8s %10s %10s %10s %10s\n", "command", "count", "p50 us", "p99 us", "max us");
    for (int k = 0; k < CMD_KINDS; k++) {
        const struct histogram *h = &res->hist[k];
        if (h->total > 0)
            printf("%-8s %10llu %10.1f %10.1f %10.1f\n", cmd_names[k],
                   (unsigned long long)h->total, us(hist_quantile(h, 0.50)),
                   us(hist_quantile(h, 0.99)), us(h->max_ns));
    }
    if (opt->fallback_queue)
        printf("fallback     %ld jobs fetched from %s\n", atomic_load(&run->from_fallback),
               opt->fallback_queue);
    if (!res->after.valid)
        return;
    printf("\nafter the run: queue %s %ld, working %ld, retries %ld, dead %ld, "
           "scheduled %ld\n", opt->queue, res->after.queue, res->after.working,
           res->after.retries, res->after.dead, res->after.scheduled);
    if (opt->fallback_queue)
        printf("               queue %s %ld\n", opt->fallback_queue, res->after.fallback_queue);
    if (res->after.has_throttle)
        printf("               throttle of %s: %ld in use, %ld taken, %ld released, "
               "%ld timed out\n", opt->queue, res->after.throttle_in_use,
               res->after.throttle_taken, res->after.throttle_released,
               res->after.throttle_timed_out);
}

/* Returns why the run processed fewer jobs than requested, or NULL. */
static const char *shortfall_reason(const struct run *run, long jobs) {
    if (jobs >= run->opt->jobs)
        return NULL;
    if (atomic_load(&run->queue_empty))
        return "the queue ran empty before the requested number of jobs was fetched";
    if (atomic_load(&run->stop))
        return "the run stopped early (see first_error)";
    return "some commands returned errors (see first_error)";
}

static void collect(struct run *run, struct client *clients, struct result *res) {
    for (int i = 0; i < run->opt->connections; i++) {
        for (int k = 0; k < CMD_KINDS; k++)
            hist_merge(&res->hist[k], &clients[i].hist[k]);
    }
    res->jobs = progress_count(run);
    res->shortfall = shortfall_reason(run, res->jobs);
    char err[300] = "";
    if (query_info(run->opt, &res->after, err, sizeof err) != 0)
        fprintf(stderr, "fwpload: reading INFO after the run failed: %s\n", err);
}

static int report(struct run *run, const struct result *res) {
    if (run->opt->json) {
        json_t *doc = result_json(run, res);
        char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(7));
        printf("%s\n", text);
        free(text);
        json_decref(doc);
    } else {
        print_text(run, res);
    }
    if (run->first_error[0])
        fprintf(stderr, "fwpload: first error: %s\n", run->first_error);
    if (res->shortfall)
        fprintf(stderr, "fwpload: %ld of %ld jobs: %s\n", res->jobs, run->opt->jobs,
                res->shortfall);
    bool ok = !res->shortfall && atomic_load(&run->errors) == 0 && !atomic_load(&run->stop);
    return ok ? 0 : 1;
}

/* Prints the INFO counts of opt->queue as one JSON object. Returns 0, or 1 when the server
 * did not accept the connection or INFO failed. */
static int print_info(const struct options *opt) {
    struct server_counts counts;
    char err[300] = "";
    if (query_info(opt, &counts, err, sizeof err) != 0) {
        fprintf(stderr, "fwpload: INFO failed: %s\n", err);
        return 1;
    }
    json_t *doc = server_after_json(opt, &counts);
    char *text = json_dumps(doc, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(doc);
    return 0;
}

static int run_workload(const struct options *opt) {
    struct run run;
    run_init(&run, opt);
    struct client *clients = calloc((size_t)opt->connections, sizeof *clients);
    struct result *res = calloc(1, sizeof *res);
    if (!clients || !res)
        abort();
    int status = 1;
    if (clients_open(clients, &run) != 0)
        goto out;

    pthread_barrier_init(&run.start, NULL, (unsigned)opt->connections + 1);
    atomic_store(&run.threads_running, opt->connections);
    for (int i = 0; i < opt->connections; i++)
        pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
    pthread_barrier_wait(&run.start);
    double cpu_before = bench_cpu_seconds();
    uint64_t started = bench_now_ns();
    monitor(&run, started);
    /* The run ends when its last thread does, not when the monitor next looks. */
    uint64_t finished = started;
    for (int i = 0; i < opt->connections; i++) {
        pthread_join(clients[i].thread, NULL);
        if (clients[i].finished_ns > finished)
            finished = clients[i].finished_ns;
    }
    res->seconds = bench_seconds_between(started, finished);
    res->cpu_seconds = bench_cpu_seconds() - cpu_before;
    pthread_barrier_destroy(&run.start);

    collect(&run, clients, res);
    status = report(&run, res);
out:
    for (int i = 0; i < opt->connections; i++)
        conn_close(&clients[i].conn);
    free(clients);
    free(res);
    free(run.filler);
    return status;
}

int main(int argc, char **argv) {
    struct options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (opt.mode == MODE_FREE_PORT)
        return bench_print_free_port("fwpload");
    if (opt.mode == MODE_INFO)
        return print_info(&opt);
    return run_workload(&opt);
}
