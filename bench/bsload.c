/* bsload: a load driver for beanstalkd, written for fabrik's benchmark comparison. It runs the
 * same workloads as fwpload with beanstalkd's text protocol (put, reserve, delete, bury): one
 * thread and one blocking TCP connection to 127.0.0.1 per client, one command in flight per
 * connection. It prints the same JSON fields as fwpload so that bench/run reads both alike. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

/* reserve-with-timeout waits this long, so that a consumer notices the end of a run. */
#define RESERVE_WAIT_SECONDS 1
#define REPLY_TIMEOUT_SECONDS 30
#define PROGRESS_AFTER_SECONDS 3.0
#define MAX_CONNECTIONS 512
#define MAX_BODY_BYTES 65535
/* As in fwpload's cycle mode: the job whose sequence number ends in 99 modulo 100 fails. */
#define FAIL_EVERY 100
/* Time-to-run of each job: long enough that no job is released during a run. */
#define JOB_TTR_SECONDS 120
#define LATENCY_PARK_NS 2000000L

enum mode { MODE_PUSH, MODE_WORK, MODE_CYCLE, MODE_LATENCY, MODE_FREE_PORT };

static const char *const mode_names[] = {"push", "work", "cycle", "latency", "free-port"};

struct options {
    enum mode mode;
    int port;
    long jobs;
    int connections;
    const char *tube;
    double timeout_seconds;
    bool json;
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: bsload MODE [options]\n"
            "\n"
            "Load driver for a beanstalkd server on 127.0.0.1.\n"
            "\n"
            "modes:\n"
            "  push       put --jobs jobs over --connections producer connections\n"
            "  work       reserve and delete --jobs jobs that are already ready\n"
            "  cycle      half of --connections put --jobs jobs while the other half\n"
            "             reserve and delete them; 1%% of the jobs are buried instead\n"
            "  latency    one consumer waits in reserve while one producer puts one job at\n"
            "             a time; --jobs sets the number of put-to-pickup samples\n"
            "  free-port  print a TCP port on 127.0.0.1 that is free at this moment\n"
            "\n"
            "options:\n"
            "  -p, --port N           server port on 127.0.0.1 (default 11300)\n"
            "  -n, --jobs N           jobs to process (default 100000; latency: 1000)\n"
            "  -c, --connections N    connections, one thread each, 1 to %d (default 10;\n"
            "                         cycle needs 2; latency always uses 2)\n"
            "  -t, --tube NAME        tube name (default bsload)\n"
            "      --timeout SECONDS  abort the run after this many seconds (default 600)\n"
            "      --json             print the result as one JSON object on stdout\n"
            "  -h, --help             show this help\n"
            "\n"
            "Exit status: 0 when every job was processed without an error reply, 1 when the\n"
            "run failed or fell short, 2 for invalid arguments.\n",
            MAX_CONNECTIONS);
}

static int parse_number(const char *flag, const char *text, double min, double max,
                        double *out) {
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "bsload: invalid %s \"%s\": expected a number from %g to %g\n", flag,
                text, min, max);
        return -1;
    }
    *out = value;
    return 0;
}

static int parse_mode(const char *text, enum mode *out) {
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++) {
        if (strcmp(text, mode_names[i]) == 0) {
            *out = (enum mode)i;
            return 0;
        }
    }
    fprintf(stderr, "bsload: unknown mode \"%s\": use push, work, cycle, latency or "
                    "free-port (see --help)\n", text);
    return -1;
}

/* Applies option ch. Returns 0, 1 after --help, or -1 after printing an error. */
static int apply_option(int ch, char **argv, struct options *opt) {
    double value = 0;
    switch (ch) {
    case 'p':
        if (parse_number("--port", optarg, 1, 65535, &value) != 0)
            return -1;
        opt->port = (int)value;
        return 0;
    case 'n':
        if (parse_number("--jobs", optarg, 1, 1e9, &value) != 0)
            return -1;
        opt->jobs = (long)value;
        return 0;
    case 'c':
        if (parse_number("--connections", optarg, 1, MAX_CONNECTIONS, &value) != 0)
            return -1;
        opt->connections = (int)value;
        return 0;
    case 't':
        /* beanstalkd allows 200 bytes; the name goes into command lines as it is. */
        if (strlen(optarg) == 0 || strlen(optarg) > 200 || strpbrk(optarg, " \r\n")) {
            fprintf(stderr, "bsload: invalid --tube \"%s\": use 1 to 200 bytes without "
                            "spaces or line breaks\n", optarg);
            return -1;
        }
        opt->tube = optarg;
        return 0;
    case 'T':
        return parse_number("--timeout", optarg, 0.001, 86400, &opt->timeout_seconds);
    case 'j':
        opt->json = true;
        return 0;
    case 'h':
        usage(stdout);
        return 1;
    case ':':
        fprintf(stderr, "bsload: option %s requires a value\n", argv[optind - 1]);
        return -1;
    default:
        fprintf(stderr, "bsload: unknown option %s (see --help)\n", argv[optind - 1]);
        return -1;
    }
}

static int parse_options(int argc, char **argv, struct options *opt) {
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"jobs", required_argument, NULL, 'n'},
        {"connections", required_argument, NULL, 'c'},
        {"tube", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.port = 11300, .jobs = -1, .connections = 10, .tube = "bsload",
                            .timeout_seconds = 600};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":p:n:c:t:h", longopts, NULL)) != -1) {
        int rc = apply_option(ch, argv, opt);
        if (rc != 0)
            return rc;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "bsload: expected exactly one MODE (see --help)\n");
        return -1;
    }
    if (parse_mode(argv[optind], &opt->mode) != 0)
        return -1;
    if (opt->jobs < 0)
        opt->jobs = opt->mode == MODE_LATENCY ? 1000 : 100000;
    if (opt->mode == MODE_LATENCY)
        opt->connections = 2;
    if (opt->mode == MODE_CYCLE && opt->connections < 2) {
        fprintf(stderr, "bsload: cycle mode needs --connections 2 or more (half put, half "
                        "reserve), got %d\n", opt->connections);
        return -1;
    }
    return 0;
}

/* ---- one beanstalkd connection -------------------------------------------------------- */

struct bs_conn {
    int fd;
    char in[MAX_BODY_BYTES + 512];
    size_t in_start, in_end;  /* unparsed received bytes are in[in_start, in_end) */
    char out[MAX_BODY_BYTES + 512];
    char error[256];          /* why the last failed call failed */
};

static int bs_fail(struct bs_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bs_fail(struct bs_conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    return -1;
}

static int bs_fill(struct bs_conn *c) {
    if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    if (c->in_end == sizeof c->in)
        return bs_fail(c, "reply larger than %zu bytes", sizeof c->in);
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_end, sizeof c->in - c->in_end, 0);
        if (n > 0) {
            c->in_end += (size_t)n;
            return 0;
        }
        if (n == 0)
            return bs_fail(c, "the server closed the connection");
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return bs_fail(c, "no reply within %d s", REPLY_TIMEOUT_SECONDS);
        return bs_fail(c, "recv failed: %s", strerror(errno));
    }
}

/* Reads one reply line and returns it NUL-terminated without its CRLF, or NULL with c->error
 * set. The line stays valid until the next read on c. */
static char *bs_read_line(struct bs_conn *c) {
    for (;;) {
        char *start = c->in + c->in_start;
        size_t avail = c->in_end - c->in_start;
        char *lf = avail > 0 ? memchr(start, '\n', avail) : NULL;
        if (lf) {
            *lf = '\0';
            if (lf > start && lf[-1] == '\r')
                lf[-1] = '\0';
            c->in_start += (size_t)(lf - start) + 1;
            return start;
        }
        if (bs_fill(c) != 0)
            return NULL;
    }
}

/* Reads a job body of len bytes and its CRLF, and returns it NUL-terminated, or NULL. */
static char *bs_read_body(struct bs_conn *c, size_t len) {
    if (len > MAX_BODY_BYTES) {
        bs_fail(c, "job body of %zu bytes is larger than %d", len, MAX_BODY_BYTES);
        return NULL;
    }
    /* Move the rest to the front first, so that the body fits in the buffer. */
    if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    while (c->in_end - c->in_start < len + 2) {
        if (bs_fill(c) != 0)
            return NULL;
    }
    char *body = c->in + c->in_start;
    if (body[len] != '\r' || body[len + 1] != '\n') {
        bs_fail(c, "job body not followed by CRLF");
        return NULL;
    }
    body[len] = '\0';
    c->in_start += len + 2;
    return body;
}

static int bs_send(struct bs_conn *c, size_t len) {
    if (bench_send_all(c->fd, c->out, len) != 0)
        return bs_fail(c, "send failed: %s", strerror(errno));
    return 0;
}

static size_t bs_format(struct bs_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t bs_format(struct bs_conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->out, sizeof c->out, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof c->out)
        abort();   /* the commands are short and their formats fixed */
    return (size_t)n;
}

/* Sends a command and checks that its reply line starts with expect. */
static int bs_command(struct bs_conn *c, size_t len, const char *expect) {
    if (bs_send(c, len) != 0)
        return -1;
    char *line = bs_read_line(c);
    if (!line)
        return -1;
    if (strncmp(line, expect, strlen(expect)) != 0)
        return bs_fail(c, "expected %s, got \"%.100s\"", expect, line);
    return 0;
}

/* Connects and selects tube for put (use) and reserve (watch, then ignore "default"). */
static int bs_open(struct bs_conn *c, int port, const char *tube) {
    c->in_start = c->in_end = 0;
    c->error[0] = '\0';
    c->fd = bench_connect_loopback(port, REPLY_TIMEOUT_SECONDS);
    if (c->fd < 0)
        return bs_fail(c, "connect to 127.0.0.1:%d failed: %s", port, strerror(errno));
    if (bs_command(c, bs_format(c, "use %s\r\n", tube), "USING ") != 0 ||
        bs_command(c, bs_format(c, "watch %s\r\n", tube), "WATCHING ") != 0)
        return -1;
    if (strcmp(tube, "default") != 0 &&
        bs_command(c, bs_format(c, "ignore default\r\n"), "WATCHING ") != 0)
        return -1;
    return 0;
}

static void bs_close(struct bs_conn *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* ---- run state ------------------------------------------------------------------------ */

enum cmd_kind { CMD_PUT, CMD_RESERVE, CMD_DELETE, CMD_BURY, CMD_PICKUP, CMD_KINDS };

/* PICKUP is the time from sending put until the waiting consumer has the job. */
static const char *const cmd_names[] = {"PUT", "RESERVE", "DELETE", "BURY", "PICKUP"};

struct pickup {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool consumer_waiting;
    long seq;                 /* sequence number of the last job the consumer received */
    uint64_t at_ns;
};

struct run {
    const struct options *opt;
    char prefix[32];          /* marks this run's jobs among those of earlier runs */
    atomic_long next_seq, pushed, claimed, done, failed, samples, foreign, errors;
    atomic_int producers_running, threads_running;
    atomic_bool stop, queue_empty;
    pthread_barrier_t start;
    pthread_mutex_t mu;       /* guards first_error */
    char first_error[512];
    struct pickup pickup;
};

enum role { ROLE_PRODUCER, ROLE_CONSUMER, ROLE_LATENCY_PRODUCER, ROLE_LATENCY_CONSUMER };

struct client {
    struct run *run;
    int index;
    enum role role;
    struct bs_conn *conn;
    struct histogram hist[CMD_KINDS];
    pthread_t thread;
    uint64_t finished_ns;
};

static void run_note_error(struct run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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

/* Sends the command in c->conn->out and reads the reply line, recording the round trip.
 * Returns the line, or NULL after an I/O error, which stops the run. */
static char *client_call(struct client *c, enum cmd_kind kind, size_t len) {
    uint64_t started = bench_now_ns();
    char *line = NULL;
    if (bs_send(c->conn, len) == 0)
        line = bs_read_line(c->conn);
    if (!line) {
        if (!atomic_load(&c->run->stop))
            run_note_error(c->run, "%s on connection %d: %s", cmd_names[kind], c->index,
                           c->conn->error);
        atomic_store(&c->run->stop, true);
        return NULL;
    }
    hist_add(&c->hist[kind], bench_now_ns() - started);
    return line;
}

static void client_error(struct client *c, enum cmd_kind kind, const char *line) {
    atomic_fetch_add(&c->run->errors, 1);
    run_note_error(c->run, "%s: unexpected reply \"%.200s\"", cmd_names[kind], line);
}

static bool job_should_fail(const struct run *run, long seq) {
    return run->opt->mode == MODE_CYCLE && seq % FAIL_EVERY == FAIL_EVERY - 1;
}

/* Puts job seq. The body has the size and shape of fwpload's job JSON. */
static int client_put(struct client *c, long seq) {
    struct run *run = c->run;
    char body[256];
    int blen = snprintf(body, sizeof body,
                        "{\"jid\":\"%s-%ld\",\"jobtype\":\"fwpload\",\"queue\":\"%s\","
                        "\"args\":[%ld]}", run->prefix, seq, run->opt->tube, seq);
    size_t len = bs_format(c->conn, "put 0 0 %d %d\r\n%s\r\n", JOB_TTR_SECONDS, blen, body);
    char *line = client_call(c, CMD_PUT, len);
    if (!line)
        return -1;
    if (strncmp(line, "INSERTED ", 9) != 0) {
        client_error(c, CMD_PUT, line);
        return 0;
    }
    atomic_fetch_add(&run->pushed, 1);
    return 0;
}

static void producer_loop(struct client *c) {
    struct run *run = c->run;
    while (!atomic_load(&run->stop)) {
        long seq = atomic_fetch_add(&run->next_seq, 1);
        if (seq >= run->opt->jobs || client_put(c, seq) != 0)
            break;
    }
}

/* Returns the sequence number in a job body of this run, or -1 for another run's job. */
static long job_sequence(const struct run *run, const char *body) {
    const char *jid = strstr(body, "\"jid\":\"");
    if (!jid)
        return -1;
    jid += 7;
    size_t plen = strlen(run->prefix);
    if (strncmp(jid, run->prefix, plen) != 0 || jid[plen] != '-')
        return -1;
    return strtol(jid + plen + 1, NULL, 10);
}

/* Deletes the reserved job id, or buries it when the cycle workload marks it for failure. */
static int client_finish_job(struct client *c, unsigned long long id, long seq) {
    struct run *run = c->run;
    bool fail = seq >= 0 && job_should_fail(run, seq);
    enum cmd_kind kind = fail ? CMD_BURY : CMD_DELETE;
    size_t len = fail ? bs_format(c->conn, "bury %llu 0\r\n", id)
                      : bs_format(c->conn, "delete %llu\r\n", id);
    char *line = client_call(c, kind, len);
    if (!line)
        return -1;
    if (strcmp(line, fail ? "BURIED" : "DELETED") != 0) {
        client_error(c, kind, line);
        return 0;
    }
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

/* Parses a RESERVED reply line and reads the body. Returns 1 with *id and *body set, 0 for
 * TIMED_OUT, or -1 after an error (counted, or the run stopped). */
static int client_reserved(struct client *c, const char *line, unsigned long long *id,
                           char **body) {
    unsigned long long bytes = 0;
    if (strcmp(line, "TIMED_OUT") == 0)
        return 0;
    if (sscanf(line, "RESERVED %llu %llu", id, &bytes) != 2) {
        client_error(c, CMD_RESERVE, line);
        return -1;
    }
    *body = bs_read_body(c->conn, (size_t)bytes);
    if (!*body) {
        run_note_error(c->run, "RESERVE on connection %d: %s", c->index, c->conn->error);
        atomic_store(&c->run->stop, true);
        return -1;
    }
    return 1;
}

/* Reserves and finishes jobs until opt->jobs are claimed, like fwpload's fetchers. */
static void consumer_loop(struct client *c) {
    struct run *run = c->run;
    while (!atomic_load(&run->stop)) {
        if (atomic_fetch_add(&run->claimed, 1) >= run->opt->jobs)
            break;
        bool producers_done = atomic_load(&run->producers_running) == 0;
        size_t len = bs_format(c->conn, "reserve-with-timeout %d\r\n",
                               producers_done ? 0 : RESERVE_WAIT_SECONDS);
        char *line = client_call(c, CMD_RESERVE, len);
        if (!line)
            break;
        unsigned long long id = 0;
        char *body = NULL;
        int rc = client_reserved(c, line, &id, &body);
        if (rc == 0 && producers_done) {
            atomic_store(&run->queue_empty, true);
            break;
        }
        if (rc <= 0) {
            atomic_fetch_sub(&run->claimed, 1);
            if (atomic_load(&run->stop))
                break;
            continue;
        }
        if (client_finish_job(c, id, job_sequence(run, body)) != 0)
            break;
    }
}

static void pickup_publish(struct run *run, bool waiting, long seq, uint64_t at_ns) {
    struct pickup *p = &run->pickup;
    pthread_mutex_lock(&p->mu);
    p->consumer_waiting = waiting;
    if (!waiting) {
        p->seq = seq;
        p->at_ns = at_ns;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits until the consumer waits in reserve (want_seq < 0) or has received job want_seq. */
static int pickup_wait(struct run *run, long want_seq) {
    struct pickup *p = &run->pickup;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    while (want_seq < 0 ? !p->consumer_waiting : p->seq != want_seq) {
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

static void latency_producer_loop(struct client *c) {
    struct run *run = c->run;
    const struct timespec park = {.tv_nsec = LATENCY_PARK_NS};
    for (long seq = 0; seq < run->opt->jobs && !atomic_load(&run->stop); seq++) {
        if (pickup_wait(run, -1) != 0)
            break;
        nanosleep(&park, NULL);
        uint64_t started = bench_now_ns();
        if (client_put(c, seq) != 0 || pickup_wait(run, seq) != 0)
            break;
        hist_add(&c->hist[CMD_PICKUP], run->pickup.at_ns - started);
        atomic_fetch_add(&run->samples, 1);
    }
}

static void latency_consumer_loop(struct client *c) {
    struct run *run = c->run;
    long last = -1;
    while (!atomic_load(&run->stop) && last != run->opt->jobs - 1) {
        size_t len = bs_format(c->conn, "reserve-with-timeout %d\r\n", RESERVE_WAIT_SECONDS);
        if (bs_send(c->conn, len) != 0)
            break;
        pickup_publish(run, true, 0, 0);
        char *line = bs_read_line(c->conn);
        uint64_t arrived = bench_now_ns();
        unsigned long long id = 0;
        char *body = NULL;
        int rc = line ? client_reserved(c, line, &id, &body) : -1;
        if (!line) {
            run_note_error(run, "RESERVE on the latency consumer: %s", c->conn->error);
            atomic_store(&run->stop, true);
        }
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        long seq = job_sequence(run, body);
        pickup_publish(run, false, seq, arrived);
        if (seq >= 0)
            last = seq;
        if (client_finish_job(c, id, seq) != 0)
            break;
    }
    if (last != run->opt->jobs - 1)
        atomic_store(&run->stop, true);
}

static void *client_main(void *arg) {
    struct client *c = arg;
    struct run *run = c->run;
    pthread_barrier_wait(&run->start);
    switch (c->role) {
    case ROLE_PRODUCER:
        producer_loop(c);
        atomic_fetch_sub(&run->producers_running, 1);
        break;
    case ROLE_CONSUMER:
        consumer_loop(c);
        break;
    case ROLE_LATENCY_PRODUCER:
        latency_producer_loop(c);
        break;
    case ROLE_LATENCY_CONSUMER:
        latency_consumer_loop(c);
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
        return ROLE_PRODUCER;
    case MODE_WORK:
        return ROLE_CONSUMER;
    case MODE_CYCLE:
        return index < opt->connections / 2 ? ROLE_PRODUCER : ROLE_CONSUMER;
    default:
        return index == 0 ? ROLE_LATENCY_PRODUCER : ROLE_LATENCY_CONSUMER;
    }
}

static void run_init(struct run *run, const struct options *opt) {
    memset(run, 0, sizeof *run);
    run->opt = opt;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(run->prefix, sizeof run->prefix, "bsload%08lx%04x",
             (unsigned long)(ts.tv_sec ^ ts.tv_nsec) & 0xffffffffUL,
             (unsigned)getpid() & 0xffffu);
    pthread_mutex_init(&run->mu, NULL);
    pthread_mutex_init(&run->pickup.mu, NULL);
    pthread_cond_init(&run->pickup.cv, NULL);
    run->pickup.seq = -1;
}

static long progress_count(struct run *run) {
    switch (run->opt->mode) {
    case MODE_PUSH:
        return atomic_load(&run->pushed);
    case MODE_LATENCY:
        return atomic_load(&run->samples);
    default:
        return atomic_load(&run->done);
    }
}

static void monitor(struct run *run, struct client *clients, uint64_t started) {
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
            atomic_store(&run->stop, true);
            for (int i = 0; i < run->opt->connections; i++)
                shutdown(clients[i].conn->fd, SHUT_RDWR);
        }
        if (now < next_report)
            continue;
        long count = progress_count(run);
        if (elapsed >= PROGRESS_AFTER_SECONDS)
            fprintf(stderr, "bsload: %s %.0f s: %ld of %ld jobs, %ld jobs/s in the last "
                            "second\n", mode_names[run->opt->mode], elapsed, count,
                    run->opt->jobs, count - last_count);
        last_count = count;
        next_report += 1000000000ull;
    }
}

/* Reads the tube's job counts with stats-tube into a JSON object, or returns NULL. */
static json_t *tube_counts(const struct options *opt) {
    struct bs_conn *c = calloc(1, sizeof *c);
    json_t *doc = NULL;
    if (!c)
        abort();
    if (bs_open(c, opt->port, opt->tube) == 0 &&
        bs_send(c, bs_format(c, "stats-tube %s\r\n", opt->tube)) == 0) {
        char *line = bs_read_line(c);
        unsigned long long bytes = 0;
        char *yaml = line && sscanf(line, "OK %llu", &bytes) == 1 ? bs_read_body(c, bytes)
                                                                   : NULL;
        const char *keys[] = {"current-jobs-ready", "current-jobs-reserved",
                              "current-jobs-buried", "current-jobs-delayed"};
        doc = yaml ? json_object() : NULL;
        for (size_t i = 0; doc && i < sizeof keys / sizeof keys[0]; i++) {
            const char *at = strstr(yaml, keys[i]);
            if (at)
                json_object_set_new(doc, keys[i] + 13,
                                    json_integer(strtoll(at + strlen(keys[i]) + 1, NULL, 10)));
        }
    }
    bs_close(c);
    free(c);
    return doc;
}

static int report(struct run *run, struct client *clients, double seconds, double cpu) {
    const struct options *opt = run->opt;
    struct histogram *merged = calloc(CMD_KINDS, sizeof *merged);
    if (!merged)
        abort();
    for (int i = 0; i < opt->connections; i++) {
        for (int k = 0; k < CMD_KINDS; k++)
            hist_merge(&merged[k], &clients[i].hist[k]);
    }
    long jobs = progress_count(run);
    const char *shortfall = NULL;
    if (jobs < opt->jobs)
        shortfall = atomic_load(&run->queue_empty)
                        ? "the tube ran empty before the requested number of jobs was reserved"
                        : "the run stopped early or commands failed (see first_error)";
    json_t *commands = json_object();
    for (int k = 0; k < CMD_KINDS; k++) {
        if (merged[k].total > 0)
            json_object_set_new(commands, cmd_names[k], hist_json(&merged[k]));
    }
    free(merged);
    json_t *doc = json_pack(
        "{s:s, s:i, s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:I, s:o, s:s?, s:s?}", "mode",
        mode_names[opt->mode], "connections", opt->connections, "jobs_requested",
        (json_int_t)opt->jobs, "jobs", (json_int_t)jobs, "seconds", seconds, "jobs_per_sec",
        seconds > 0 ? (double)jobs / seconds : 0.0, "driver_cpu_seconds", cpu, "failed",
        (json_int_t)atomic_load(&run->failed), "other_runs_jobs",
        (json_int_t)atomic_load(&run->foreign), "errors", (json_int_t)atomic_load(&run->errors),
        "commands", commands, "first_error", run->first_error[0] ? run->first_error : NULL,
        "shortfall", shortfall);
    json_t *after = tube_counts(opt);
    if (after)
        json_object_set_new(doc, "server_after", after);
    char *text = json_dumps(doc, (opt->json ? JSON_COMPACT : JSON_INDENT(2)) |
                                     JSON_REAL_PRECISION(7));
    printf("%s\n", text);
    free(text);
    json_decref(doc);
    if (run->first_error[0])
        fprintf(stderr, "bsload: first error: %s\n", run->first_error);
    if (shortfall)
        fprintf(stderr, "bsload: %ld of %ld jobs: %s\n", jobs, opt->jobs, shortfall);
    bool ok = !shortfall && atomic_load(&run->errors) == 0 && !atomic_load(&run->stop);
    return ok ? 0 : 1;
}

static int run_workload(const struct options *opt) {
    struct run run;
    run_init(&run, opt);
    struct client *clients = calloc((size_t)opt->connections, sizeof *clients);
    if (!clients)
        abort();
    int status = 1;
    int opened = 0;
    for (; opened < opt->connections; opened++) {
        struct client *c = &clients[opened];
        c->run = &run;
        c->index = opened;
        c->role = role_for(opt, opened);
        c->conn = calloc(1, sizeof *c->conn);
        if (!c->conn)
            abort();
        if (c->role == ROLE_PRODUCER)
            run.producers_running++;
        if (bs_open(c->conn, opt->port, opt->tube) != 0) {
            fprintf(stderr, "bsload: connection %d of %d: %s\n", opened + 1, opt->connections,
                    c->conn->error);
            opened++;
            goto out;
        }
    }

    pthread_barrier_init(&run.start, NULL, (unsigned)opt->connections + 1);
    atomic_store(&run.threads_running, opt->connections);
    for (int i = 0; i < opt->connections; i++)
        pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
    pthread_barrier_wait(&run.start);
    double cpu_before = bench_cpu_seconds();
    uint64_t started = bench_now_ns();
    monitor(&run, clients, started);
    uint64_t finished = started;
    for (int i = 0; i < opt->connections; i++) {
        pthread_join(clients[i].thread, NULL);
        if (clients[i].finished_ns > finished)
            finished = clients[i].finished_ns;
    }
    double cpu = bench_cpu_seconds() - cpu_before;
    pthread_barrier_destroy(&run.start);
    status = report(&run, clients, bench_seconds_between(started, finished), cpu);
out:
    for (int i = 0; i < opened; i++) {
        bs_close(clients[i].conn);
        free(clients[i].conn);
    }
    free(clients);
    return status;
}

int main(int argc, char **argv) {
    struct options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (opt.mode == MODE_FREE_PORT)
        return bench_print_free_port("bsload");
    return run_workload(&opt);
}
