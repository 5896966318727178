/* statsd export against the real server. Each case binds a UDP socket on 127.0.0.1 and starts
 * the server with a [statsd] table (or DD_DOGSTATSD_URL) pointing at it. It then drives jobs
 * over FWP and checks the names, values, types and tags of the DogStatsD lines that arrive.
 * The 30-second gauges follow the server clock, so DEBUG CLOCK brings them without waiting. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PACKETS 4096
#define WAIT_MS 5000

/* ---- a UDP socket that receives the metrics ---- */

struct sink {
    int fd;
    int port;
    char *packets[MAX_PACKETS];
    size_t sizes[MAX_PACKETS];
    int npackets;
    int cleared;   /* packets before this index are ignored by the queries */
};

static struct sink *sink_open(void) {
    struct sink *s = th_keep(calloc(1, sizeof *s));
    s->fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (s->fd < 0) {
        th_fail("cannot open a UDP socket: %s", strerror(errno));
    }
    /* Gauges arrive in bursts; a large buffer keeps the kernel from dropping any. */
    int size = 4 * 1024 * 1024;
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(s->fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&addr, &len) != 0) {
        th_fail("cannot bind a UDP socket on 127.0.0.1: %s", strerror(errno));
    }
    s->port = ntohs(addr.sin_port);
    return s;
}

/* Reads every packet that arrives within wait_ms. Returns how many arrived. */
static int sink_read(struct sink *s, int wait_ms) {
    int count = 0;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    while (poll(&p, 1, wait_ms) == 1) {
        char data[65536];
        ssize_t n = recv(s->fd, data, sizeof data - 1, 0);
        if (n <= 0) {
            break;
        }
        if (s->npackets == MAX_PACKETS) {
            th_fail("more than %d statsd packets arrived", MAX_PACKETS);
        }
        data[n] = '\0';
        s->packets[s->npackets] = th_keep(strdup(data));
        s->sizes[s->npackets] = (size_t)n;
        s->npackets++;
        count++;
        wait_ms = 50;   /* then read what follows the first packet closely */
    }
    return count;
}

/* Makes later queries ignore everything received so far. */
static void sink_clear(struct sink *s) {
    sink_read(s, 100);
    s->cleared = s->npackets;
}

/* One parsed line: "name:value|type" with an optional "|#tags". */
struct metric {
    char name[256];
    double value;
    char type[8];
    char tags[1024];
};

static bool parse_metric(const char *line, size_t len, struct metric *m) {
    char text[2048];
    if (len >= sizeof text) {
        return false;
    }
    memcpy(text, line, len);
    text[len] = '\0';

    char *colon = strchr(text, ':');
    char *bar = colon ? strchr(colon, '|') : NULL;
    if (!colon || !bar || (size_t)(colon - text) >= sizeof m->name) {
        return false;
    }
    *colon = '\0';
    *bar = '\0';
    memcpy(m->name, text, (size_t)(colon - text) + 1);
    char *end = NULL;
    m->value = strtod(colon + 1, &end);
    if (end != bar) {
        return false;
    }

    char *type = bar + 1;
    char *tags = strstr(type, "|#");
    if (tags) {
        *tags = '\0';
        if (strlen(tags + 2) >= sizeof m->tags) {
            return false;
        }
        memcpy(m->tags, tags + 2, strlen(tags + 2) + 1);
    } else {
        m->tags[0] = '\0';
    }
    if (strlen(type) >= sizeof m->type) {
        return false;
    }
    memcpy(m->type, type, strlen(type) + 1);
    return true;
}

/* Calls fn for every line received since the last sink_clear; fails on a malformed line. */
static void sink_each(struct sink *s, void (*fn)(void *ctx, const struct metric *m), void *ctx) {
    for (int i = s->cleared; i < s->npackets; i++) {
        const char *p = s->packets[i];
        while (*p) {
            size_t len = strcspn(p, "\n");
            struct metric m;
            if (!parse_metric(p, len, &m)) {
                th_fail("malformed statsd line \"%.*s\" in packet %d", (int)len, p, i);
            }
            fn(ctx, &m);
            p += len;
            if (*p == '\n') {
                p++;
            }
        }
    }
}

struct query {
    const char *name;
    const char *type;
    const char *tags;
    double sum;
    double last;
    int count;
};

static void match_metric(void *ctx, const struct metric *m) {
    struct query *q = ctx;
    if (strcmp(m->name, q->name) == 0 && strcmp(m->type, q->type) == 0 &&
        (!q->tags || strcmp(m->tags, q->tags) == 0)) {
        q->sum += m->value;
        q->last = m->value;
        q->count++;
    }
}

/* Lines with this name, type and tags (any tags when tags is NULL). */
static struct query sink_query(struct sink *s, const char *name, const char *type,
                               const char *tags) {
    struct query q = {.name = name, .type = type, .tags = tags};
    sink_each(s, match_metric, &q);
    return q;
}

/* Reads packets until the lines with this name, type and tags add up to at least sum, or
 * WAIT_MS pass. Returns the sum reached. */
static double sink_wait_sum(struct sink *s, const char *name, const char *type,
                            const char *tags, double sum) {
    double deadline = th_now() + WAIT_MS / 1000.0;
    for (;;) {
        struct query q = sink_query(s, name, type, tags);
        if (q.sum >= sum || th_now() >= deadline) {
            return q.sum;
        }
        sink_read(s, 100);
    }
}

/* Reads packets until count lines with this name, type and tags exist, or WAIT_MS pass.
 * Returns the number of such lines. */
static int sink_wait_count(struct sink *s, const char *name, const char *type,
                           const char *tags, int count) {
    double deadline = th_now() + WAIT_MS / 1000.0;
    for (;;) {
        struct query q = sink_query(s, name, type, tags);
        if (q.count >= count || th_now() >= deadline) {
            return q.count;
        }
        sink_read(s, 100);
    }
}

/* Checks the last line with this name, type and tags has the expected value. */
#define SINK_EQ(s, name, type, tags, expected)                                          \
    do {                                                                                \
        struct query q_ = sink_query((s), (name), (type), (tags));                      \
        if (q_.count == 0) {                                                            \
            th_fail("no %s|%s line with tags \"%s\" arrived", (name), (type), (tags));  \
        }                                                                               \
        if (q_.last != (double)(expected)) {                                            \
            th_fail("%s|%s with tags \"%s\" is %g, expected %g", (name), (type), (tags), \
                    q_.last, (double)(expected));                                       \
        }                                                                               \
    } while (0)

static const char *statsd_toml(struct sink *s, const char *extra) {
    return th_fmt("[statsd]\nlocation = \"127.0.0.1:%d\"\n%s", s->port, extra ? extra : "");
}

static void push_job(struct th_conn *c, const char *jid, const char *jobtype, const char *queue,
                     const char *extra) {
    TH_OK(c, "PUSH {\"jid\":\"%s\",\"jobtype\":\"%s\",\"args\":[],\"queue\":\"%s\"%s%s}", jid,
          jobtype, queue, extra ? "," : "", extra ? extra : "");
}

static void fail_job(struct th_conn *c, const char *jid) {
    TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"m\"}", jid);
}

/* ---- cases ---- */

static void job_counters_and_run_time(void) {
    struct sink *sink = sink_open();
    struct th_server_opts opts = {
        .toml = statsd_toml(sink, "tags = [\"env:test\", \"team:jobs\"]\n"),
    };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);

    for (int i = 1; i <= 3; i++) {
        push_job(c, th_fmt("job-email-%04d", i), "SendEmail", "critical", NULL);
    }
    push_job(c, "job-report-0001", "Report", "default", NULL);

    /* Run times follow the server clock: 2.5 s pass between FETCH and ACK. */
    TH_FETCH_JID(c, "critical", "job-email-0001");
    TH_CLOCK(c, 2.5);
    TH_OK(c, "ACK {\"jid\":\"job-email-0001\"}");
    TH_FETCH_JID(c, "critical", "job-email-0002");
    TH_OK(c, "ACK {\"jid\":\"job-email-0002\"}");
    TH_FETCH_JID(c, "critical", "job-email-0003");
    fail_job(c, "job-email-0003");

    const char *email = "jobtype:SendEmail,queue:critical,env:test,team:jobs";
    TH_EQ_INT(sink_wait_sum(sink, "faktory.jobs.pushed", "c", email, 3), 3);
    TH_EQ_INT(sink_wait_sum(sink, "faktory.jobs.succeeded", "c", email, 2), 2);
    TH_EQ_INT(sink_wait_sum(sink, "faktory.jobs.failed", "c", email, 1), 1);
    TH_EQ_INT(sink_wait_sum(sink, "faktory.jobs.pushed", "c",
                            "jobtype:Report,queue:default,env:test,team:jobs", 1),
              1);

    const char *success = "jobtype:SendEmail,queue:critical,status:success,env:test,team:jobs";
    const char *failure = "jobtype:SendEmail,queue:critical,status:failure,env:test,team:jobs";
    TH_EQ_INT(sink_wait_count(sink, "faktory.jobs.run_time", "ms", success, 2), 2);
    TH_EQ_INT(sink_wait_count(sink, "faktory.jobs.run_time", "ms", failure, 1), 1);
    struct query slow = sink_query(sink, "faktory.jobs.run_time", "ms", success);
    /* The slow job took 2500 ms of server clock, the other one almost nothing. */
    TH_RANGE(slow.sum, 2500, 4500);
    struct query failed = sink_query(sink, "faktory.jobs.run_time", "ms", failure);
    TH_RANGE(failed.last, 0, 2000);
    TH_EQ_INT(sink_query(sink, "faktory.jobs.succeeded", "c", NULL).sum, 2);
    TH_EQ_INT(sink_query(sink, "faktory.jobs.failed", "c", NULL).sum, 1);

    /* A job pushed right before the shutdown is still reported. */
    push_job(c, "job-report-0002", "Report", "default", NULL);
    th_server_stop(srv);
    TH_EQ_INT(sink_wait_sum(sink, "faktory.jobs.pushed", "c",
                            "jobtype:Report,queue:default,env:test,team:jobs", 2),
              2);
}

static int gauge_reports(struct sink *sink) {
    return sink_query(sink, "faktory.processed", "g", "").count;
}

static void gauges_follow_server_clock(void) {
    struct sink *sink = sink_open();
    struct th_server_opts opts = {.toml = statsd_toml(sink, "queueLatency = [\"critical\"]\n")};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_worker(srv, "wid-statsd-gauges");

    /* The first gauges leave at start-up. A queue in queueLatency is reported before it
     * exists. */
    TH_EQ_INT(sink_wait_count(sink, "faktory.processed", "g", "", 1), 1);
    SINK_EQ(sink, "faktory.processed", "g", "", 0);
    SINK_EQ(sink, "faktory.enqueued", "g", "", 0);
    SINK_EQ(sink, "faktory.queue.latency", "g", "queue:critical", 0);

    for (int i = 1; i <= 3; i++) {
        push_job(c, th_fmt("job-crit-%04d", i), "T", "critical", NULL);
    }
    push_job(c, "job-dies-0001", "T", "low", "\"retry\":-1");
    push_job(c, "job-retries-0001", "T", "low", NULL);
    char at[64];
    th_format_time(TH_SERVER_TIME(c) + 3600, at, sizeof at);
    push_job(c, "job-later-0001", "T", "low", th_fmt("\"at\":\"%s\"", at));

    TH_FETCH_JID(c, "critical", "job-crit-0001");
    TH_OK(c, "ACK {\"jid\":\"job-crit-0001\"}");
    TH_FETCH_JID(c, "low", "job-dies-0001");
    fail_job(c, "job-dies-0001");
    TH_FETCH_JID(c, "low", "job-retries-0001");

    /* 25 s are not enough for the next gauges. */
    TH_CLOCK(c, 25);
    sink_read(sink, 500);
    TH_EQ_INT(gauge_reports(sink), 1);

    /* Failed now, the retry is due 15 to 44 s later, after the next gauges. */
    fail_job(c, "job-retries-0001");
    TH_FETCH_JID(c, "critical", "job-crit-0002");
    TH_OK(c, "BEAT {\"wid\":\"wid-statsd-gauges\"}");
    sink_clear(sink);
    /* DEBUG CLOCK sends the due gauges before it replies, so they are already here; a longer
     * wait would let the real clock bring them instead. */
    TH_CLOCK(c, 6);
    sink_read(sink, 200);
    TH_EQ_INT(gauge_reports(sink), 1);

    SINK_EQ(sink, "faktory.processed", "g", "", 3);
    SINK_EQ(sink, "faktory.failures", "g", "", 2);
    SINK_EQ(sink, "faktory.enqueued", "g", "", 1);
    SINK_EQ(sink, "faktory.scheduled", "g", "", 1);
    SINK_EQ(sink, "faktory.retries", "g", "", 1);
    SINK_EQ(sink, "faktory.dead", "g", "", 1);
    SINK_EQ(sink, "faktory.working", "g", "", 1);
    SINK_EQ(sink, "faktory.connections", "g", "", 1);
    SINK_EQ(sink, "faktory.workers", "g", "", 1);
    SINK_EQ(sink, "faktory.queue.size", "g", "queue:critical", 1);
    SINK_EQ(sink, "faktory.queue.size", "g", "queue:low", 0);
    SINK_EQ(sink, "faktory.queue.paused", "g", "queue:critical", 0);

    /* Latency only for the queues in queueLatency: job-crit-0003 waited 31 s of server clock. */
    struct query latency = sink_query(sink, "faktory.queue.latency", "g", "queue:critical");
    TH_EQ_INT(latency.count, 1);
    TH_RANGE(latency.last, 31, 45);
    TH_EQ_INT(sink_query(sink, "faktory.queue.latency", "g", "queue:low").count, 0);

    /* The gauges agree with INFO. */
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
}

/* Waits until the server log contains text. */
static void wait_log(struct th_server *srv, const char *text) {
    double deadline = th_now() + WAIT_MS / 1000.0;
    while (!th_server_log_contains(srv, text)) {
        if (th_now() >= deadline) {
            th_fail("the server log does not mention %s", text);
        }
        th_sleep_ms(20);
    }
}

static void sighup_changes_namespace(void) {
    struct sink *sink = sink_open();
    struct th_server_opts opts = {.toml = statsd_toml(sink, "namespace = \"one.\"\n")};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    push_job(c, "job-ns-0001", "T", "default", NULL);
    TH_EQ_INT(sink_wait_sum(sink, "one.jobs.pushed", "c", "jobtype:T,queue:default", 1), 1);

    char *path = th_fmt("%s/conf.d/test.toml", srv->config_dir);
    th_write_file(path, statsd_toml(sink, "namespace = \"two.\"\ntags = [\"env:b\"]\n"));
    th_server_signal(srv, SIGHUP);
    wait_log(srv, "namespace=\"two.\"");
    sink_clear(sink);
    push_job(c, "job-ns-0002", "T", "default", NULL);
    TH_EQ_INT(sink_wait_sum(sink, "two.jobs.pushed", "c", "jobtype:T,queue:default,env:b", 1),
              1);
    sink_read(sink, 300);
    TH_EQ_INT(sink_query(sink, "one.jobs.pushed", "c", NULL).count, 0);

    /* An invalid table is logged and the running exporter stays. */
    th_write_file(path, statsd_toml(sink, "namespace = \"three.\"\ntags = [\"host:web1\"]\n"));
    th_server_signal(srv, SIGHUP);
    wait_log(srv, "reload_failed");
    TH_CHECK(th_server_log_contains(srv, "[statsd] tags: \\\"host:web1\\\" is invalid"));
    sink_clear(sink);
    push_job(c, "job-ns-0003", "T", "default", NULL);
    TH_EQ_INT(sink_wait_sum(sink, "two.jobs.pushed", "c", "jobtype:T,queue:default,env:b", 1),
              1);
    TH_EQ_INT(sink_query(sink, "three.jobs.pushed", "c", NULL).count, 0);

    /* Removing the table turns the export off. */
    th_write_file(path, "");
    th_server_signal(srv, SIGHUP);
    wait_log(srv, "statsd_disabled");
    sink_clear(sink);
    push_job(c, "job-ns-0004", "T", "default", NULL);
    TH_CLOCK(c, 31);
    TH_EQ_INT(sink_read(sink, 500), 0);
}

static void env_url_replaces_location(void) {
    struct sink *from_env = sink_open();
    struct sink *from_file = sink_open();
    char *env = th_fmt("DD_DOGSTATSD_URL=udp://127.0.0.1:%d", from_env->port);
    struct th_server_opts opts = {
        .toml = statsd_toml(from_file, "namespace = \"env.\"\n"),
        .env = {env},
    };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    push_job(c, "job-env-0001", "T", "default", NULL);
    /* The variable gives the address; the table's other keys still apply. */
    TH_EQ_INT(sink_wait_sum(from_env, "env.jobs.pushed", "c", "jobtype:T,queue:default", 1), 1);
    TH_EQ_INT(sink_read(from_file, 300), 0);
    TH_CHECK(th_server_log_contains(srv, "source=DD_DOGSTATSD_URL"));
}

static void env_url_without_table(void) {
    struct sink *sink = sink_open();
    char *env = th_fmt("DD_DOGSTATSD_URL=udp://127.0.0.1:%d", sink->port);
    struct th_server_opts opts = {.env = {env}};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    push_job(c, "job-env-0002", "T", "default", NULL);
    TH_EQ_INT(sink_wait_sum(sink, "faktory.jobs.pushed", "c", "jobtype:T,queue:default", 1), 1);
}

/* Counts the lines of one packet. */
static int packet_lines(const char *packet) {
    int lines = 1;
    for (const char *p = packet; *p; p++) {
        lines += *p == '\n';
    }
    return lines;
}

static void packets_respect_limits(void) {
    struct sink *sink = sink_open();
    struct th_server_opts opts = {.toml = statsd_toml(sink, "bufferSize = 3\n")};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    char type[151];
    for (int i = 0; i < 12; i++) {
        memset(type, 'A' + i, 150);
        type[150] = '\0';
        push_job(c, th_fmt("job-limit-%04d", i), type, "default", NULL);
    }
    TH_EQ_INT(sink_wait_sum(sink, "faktory.jobs.pushed", "c", NULL, 12), 12);
    for (int i = sink->cleared; i < sink->npackets; i++) {
        TH_RANGE(packet_lines(sink->packets[i]), 1, 3);
        TH_RANGE(sink->sizes[i], 1, 1400);
        TH_CHECK(sink->packets[i][sink->sizes[i] - 1] != '\n');
    }
}

static void packets_fill_to_byte_limit(void) {
    struct sink *sink = sink_open();
    struct th_server_opts opts = {.toml = statsd_toml(sink, "bufferSize = 1000\n")};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_EQ_INT(sink_wait_count(sink, "faktory.processed", "g", "", 1), 1);
    sink_clear(sink);

    /* One PUSHB of 40 jobs with distinct 150-byte job types: their counters are flushed
     * together, as lines of 197 bytes, so 7 fit in 1400 bytes and an 8th does not. */
    char *jobs = th_fmt("%s", "");
    char type[151];
    for (int i = 0; i < 40; i++) {
        memset(type, 'a' + i % 26, 150);
        type[0] = (char)('A' + i / 26);
        type[150] = '\0';
        jobs = th_fmt("%s%s{\"jid\":\"job-bytes-%04d\",\"jobtype\":\"%s\",\"args\":[]}", jobs,
                      i ? "," : "", i, type);
    }
    TH_EXPECT_RAW(c, "$2\r\n{}\r\n", "PUSHB [%s]", jobs);
    TH_EQ_INT(sink_wait_sum(sink, "faktory.jobs.pushed", "c", NULL, 40), 40);
    int max_lines = 0;
    for (int i = sink->cleared; i < sink->npackets; i++) {
        int lines = packet_lines(sink->packets[i]);
        max_lines = lines > max_lines ? lines : max_lines;
        TH_RANGE(sink->sizes[i], 1, 1400);
    }
    TH_EQ_INT(max_lines, 7);
}

/* ---- start-up failures ---- */

static const char *server_binary;

static int free_tcp_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        th_fail("cannot find a free port: %s", strerror(errno));
    }
    close(fd);
    return ntohs(addr.sin_port);
}

/* Starts the server with toml (or none) and env (or NULL), expects it to exit with status 1
 * within 10 s, and returns its log. */
static char *start_expecting_failure(const char *toml, const char *env) {
    /* A counter, not a port number: the kernel may hand out the same free port twice. */
    static int attempt;
    char *dir = th_fmt("%s/fail-%d", th_case_dir(), ++attempt);
    char *conf_d = th_fmt("%s/config/conf.d", dir);
    char *data = th_fmt("%s/data", dir);
    char *log_path = th_fmt("%s/server.log", dir);
    if (mkdir(dir, 0700) != 0 || mkdir(th_fmt("%s/config", dir), 0700) != 0 ||
        mkdir(conf_d, 0700) != 0 || mkdir(data, 0700) != 0) {
        th_fail("cannot create directories under %s: %s", dir, strerror(errno));
    }
    if (toml) {
        th_write_file(th_fmt("%s/test.toml", conf_d), toml);
    }
    char *bind = th_fmt("127.0.0.1:%d", free_tcp_port());
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        th_fail("fork failed: %s", strerror(errno));
    }
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) {
            _exit(126);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        unsetenv("DD_DOGSTATSD_URL");
        if (env) {
            putenv((char *)env);
        }
        execl(server_binary, server_binary, "-b", bind, "-w", "127.0.0.1:0", "-d", data, "-c",
              th_fmt("%s/config", dir), "-e", "development", "-l", "info", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    double deadline = th_now() + 10;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (th_now() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            th_fail("the server with an invalid statsd config was still running after 10 s");
        }
        th_sleep_ms(20);
    }
    FILE *f = fopen(log_path, "r");
    if (!f) {
        th_fail("cannot read %s", log_path);
    }
    char *text = th_keep(calloc(1, 65536));
    size_t n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1) {
        th_fail("the server exited with status 0x%x, expected exit status 1; log:\n%s",
                (unsigned)status, text);
    }
    if (!strstr(text, "event=start_failed")) {
        th_fail("the log has no start_failed line:\n%s", text);
    }
    return text;
}

static void invalid_config_fails_start(void) {
    th_require_private_server();
    static const struct {
        const char *toml;
        const char *env;
        const char *expected[2];
    } cases[] = {
        {"[statsd]\nnamespace = \"x.\"\n", NULL, {"[statsd] location is required", NULL}},
        {"[statsd]\nlocation = \"localhost\"\n", NULL, {"[statsd] location", "host:port"}},
        {"[statsd]\nlocation = \"127.0.0.1:8125\"\ntags = [\"host:web1\"]\n", NULL,
         {"[statsd] tags", "reserved"}},
        {"[statsd]\nlocation = \"127.0.0.1:8125\"\ntags = [\"service\"]\n", NULL,
         {"[statsd] tags", "reserved"}},
        {"[statsd]\nlocation = \"127.0.0.1:8125\"\ntags = [\"env prod\"]\n", NULL,
         {"[statsd] tags", "only letters"}},
        {"[statsd]\nlocation = \"127.0.0.1:8125\"\nnamespace = \"9x\"\n", NULL,
         {"[statsd] namespace", NULL}},
        {"[statsd]\nlocation = \"127.0.0.1:8125\"\nbufferSize = 0\n", NULL,
         {"[statsd] bufferSize", NULL}},
        {"[statsd]\nlocation = \"127.0.0.1:8125\"\nqueueLatency = [\"bad queue\"]\n", NULL,
         {"[statsd] queueLatency", NULL}},
        {"[statsd]\nlocation = \"127.0.0.1:8125\"\nbuffersize = 10\n", NULL,
         {"[statsd] unknown key", "buffersize"}},
        {NULL, "DD_DOGSTATSD_URL=unix:///tmp/dsd.socket", {"DD_DOGSTATSD_URL", "udp://"}},
        {"[statsd]\nlocation = \"127.0.0.1:8125\"\n", "DD_DOGSTATSD_URL=udp://127.0.0.1",
         {"DD_DOGSTATSD_URL", "host:port"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *log = start_expecting_failure(cases[i].toml, cases[i].env);
        for (int k = 0; k < 2 && cases[i].expected[k]; k++) {
            if (!strstr(log, cases[i].expected[k])) {
                th_fail("config %zu: the log does not mention \"%s\":\n%s", i,
                        cases[i].expected[k], log);
            }
        }
    }
}

int main(int argc, char **argv) {
    /* A variable set in the developer's shell must not redirect these servers' metrics. */
    unsetenv("DD_DOGSTATSD_URL");
    server_binary = getenv("FABRIK_BIN");
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--server") == 0) {
            server_binary = argv[i + 1];
        }
    }
    static const struct th_case cases[] = {
        TH_CASE(job_counters_and_run_time),
        TH_CASE(gauges_follow_server_clock),
        TH_CASE(sighup_changes_namespace),
        TH_CASE(env_url_replaces_location),
        TH_CASE(env_url_without_table),
        TH_CASE(packets_respect_limits),
        TH_CASE(packets_fill_to_byte_limit),
        TH_CASE(invalid_config_fails_start),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
