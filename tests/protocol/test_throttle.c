/* Queue throttles against the real server. The cases cover concurrency, per-worker and rate
 * limits with several worker processes (wids), FETCH skipping a throttled queue, and wake-ups
 * when a slot frees. They check slot release on ACK, FAIL, reservation expiry, slot timeout
 * and FLUSH, slots rebuilt after a restart, SIGHUP with raised, lowered and invalid limits,
 * invalid configuration at start-up, and the INFO, /api/throttles and /metrics views.
 * Server time moves with DEBUG CLOCK except where a case measures real timers (restart and
 * rate window wake-ups). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Path of the server binary, for the cases that start it themselves (web port, start-up
 * failures). Taken from --server or FABRIK_BIN, as the harness does. */
static const char *server_binary;

/* ---- INFO helpers ---- */

/* faktory.throttles.<queue> of a fresh INFO; fails the case when it is missing. */
static json_t *throttle_info_at(const char *file, int line, struct th_conn *c,
                                const char *queue) {
    json_t *info = th_info_at(file, line, c);
    json_t *t = json_object_get(th_json_get(info, "faktory.throttles"), queue);
    if (!json_is_object(t)) {
        th_fail_at(file, line, "INFO has no faktory.throttles.%s object", queue);
    }
    return t;
}
#define THROTTLE_INFO(c, queue) throttle_info_at(__FILE__, __LINE__, c, queue)

static long long throttle_field_at(const char *file, int line, struct th_conn *c,
                                   const char *queue, const char *field) {
    return th_json_int_at(file, line, throttle_info_at(file, line, c, queue), field);
}
/* An integer field (in_use, taken, ...) of faktory.throttles.<queue> in a fresh INFO. */
#define THROTTLE_INT(c, queue, field) throttle_field_at(__FILE__, __LINE__, c, queue, field)

/* How many holders of the throttle object t belong to wid. */
static int holders_of_wid(json_t *t, const char *wid) {
    json_t *holders = json_object_get(t, "holders");
    size_t i;
    json_t *h;
    int n = 0;
    json_array_foreach(holders, i, h) {
        n += strcmp(json_string_value(json_object_get(h, "wid")), wid) == 0;
    }
    return n;
}

/* Whether the throttle object t lists jid among its holders. */
static bool holds_jid(json_t *t, const char *jid) {
    json_t *holders = json_object_get(t, "holders");
    size_t i;
    json_t *h;
    json_array_foreach(holders, i, h) {
        if (strcmp(json_string_value(json_object_get(h, "jid")), jid) == 0) {
            return true;
        }
    }
    return false;
}

/* The holder entry of jid in the throttle object t, or NULL. */
static json_t *holder_of(json_t *t, const char *jid) {
    json_t *holders = json_object_get(t, "holders");
    size_t i;
    json_t *h;
    json_array_foreach(holders, i, h) {
        if (strcmp(json_string_value(json_object_get(h, "jid")), jid) == 0) {
            return h;
        }
    }
    return NULL;
}

/* ---- FETCH helpers ---- */

static int probe_counter;

/* Pushes a job to the unthrottled queue "probe" and sends FETCH "<queue> probe". Returns the
 * job FETCH took from queue, or NULL when FETCH skipped queue (its limit reached or it is
 * empty) and handed out a probe job, which is ACKed at once. This distinguishes a blocked queue
 * from an open one without the 2-second wait of an empty FETCH. */
static json_t *fetch_or_skip_at(const char *file, int line, struct th_conn *c,
                                const char *queue) {
    th_push_at(file, line, c, th_fmt("probe-%06d", ++probe_counter), "\"queue\":\"probe\"");
    json_t *job = th_fetch_at(file, line, c, th_fmt("%s probe", queue));
    if (!job) {
        th_fail_at(file, line, "FETCH %s probe returned $-1 although probe had a job", queue);
    }
    const char *from = th_json_str_at(file, line, job, "queue");
    if (strcmp(from, "probe") == 0) {
        th_expect_line_at(file, line, c, "+OK", "ACK {\"jid\":\"%s\"}",
                          th_json_str_at(file, line, job, "jid"));
        return NULL;
    }
    th_check_str_at(file, line, "queue of the fetched job", from, queue);
    return job;
}
#define FETCH_OR_SKIP(c, queue) fetch_or_skip_at(__FILE__, __LINE__, c, queue)

/* Checks that FETCH from c skips queue (its limit is reached). */
#define EXPECT_BLOCKED(c, queue) TH_CHECK(FETCH_OR_SKIP(c, queue) == NULL)

/* Fetches through the probe and checks that the job from queue has the given jid. */
static void expect_job_at(const char *file, int line, struct th_conn *c, const char *queue,
                          const char *jid) {
    json_t *job = fetch_or_skip_at(file, line, c, queue);
    if (!job) {
        th_fail_at(file, line, "FETCH skipped %s, expected job %s", queue, jid);
    }
    th_check_str_at(file, line, "jid of the fetched job", th_json_str_at(file, line, job, "jid"),
                    jid);
}
#define EXPECT_JOB(c, queue, jid) expect_job_at(__FILE__, __LINE__, c, queue, jid)

/* Pushes count jobs named <prefix>-0000.. into queue. */
static void push_jobs(struct th_conn *c, const char *queue, const char *prefix, int count) {
    for (int i = 0; i < count; i++) {
        TH_PUSH(c, th_fmt("%s-%04d", prefix, i), th_fmt("\"queue\":\"%s\"", queue));
    }
}

/* Sends FETCH on w, runs action after 200 ms, and checks that w gets jid within 1 s of the
 * action, well inside the 2-second wait. */
static void expect_woken_at(const char *file, int line, struct th_conn *w, const char *queues,
                            const char *jid, void (*action)(void *), void *arg) {
    th_send(w, "FETCH %s", queues);
    th_sleep_ms(200);
    double acted = th_now();
    action(arg);
    const struct th_reply *r = th_read(w, 5000);
    double waited = th_now() - acted;
    if (r->kind != TH_BULK) {
        th_fail_at(file, line, "the waiting FETCH %s got %s, expected job %s", queues, r->line,
                   jid);
    }
    json_t *job = th_json_at(file, line, r->body, r->body_len);
    th_check_str_at(file, line, "jid of the woken FETCH", th_json_str_at(file, line, job, "jid"),
                    jid);
    th_check_range_at(file, line, "seconds from the freed slot to the job", waited, 0, 1.0);
}
#define EXPECT_WOKEN(w, queues, jid, action, arg) \
    expect_woken_at(__FILE__, __LINE__, w, queues, jid, action, arg)

/* ---- configuration and log helpers ---- */

static void write_config(struct th_server *srv, const char *toml) {
    th_write_file(th_fmt("%s/conf.d/test.toml", srv->config_dir), toml);
}

/* Number of lines of path that contain needle. */
static int count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n += strstr(line, needle) != NULL;
    }
    fclose(f);
    return n;
}

/* Writes toml as the configuration, sends SIGHUP and waits until the server logs that it
 * applied it (expect_ok) or rejected it. */
static void reload_at(const char *file, int line, struct th_server *srv, const char *toml,
                      bool expect_ok) {
    int applied = count_lines(srv->log_path, "event=config_reloaded");
    int rejected = count_lines(srv->log_path, "event=reload_failed");
    write_config(srv, toml);
    th_server_signal(srv, SIGHUP);
    double deadline = th_now() + 10;
    for (;;) {
        int now_applied = count_lines(srv->log_path, "event=config_reloaded");
        int now_rejected = count_lines(srv->log_path, "event=reload_failed");
        if (now_applied > applied || now_rejected > rejected) {
            if (expect_ok && now_rejected > rejected) {
                th_fail_at(file, line, "the server rejected the reloaded configuration");
            }
            if (!expect_ok && now_applied > applied) {
                th_fail_at(file, line, "the server applied an invalid configuration");
            }
            return;
        }
        if (th_now() > deadline) {
            th_fail_at(file, line, "the server logged neither config_reloaded nor reload_failed "
                                   "within 10 s of SIGHUP");
        }
        th_sleep_ms(20);
    }
}
#define RELOAD(srv, toml) reload_at(__FILE__, __LINE__, srv, toml, true)
#define RELOAD_REJECTED(srv, toml) reload_at(__FILE__, __LINE__, srv, toml, false)

static struct th_server *start_with(const char *toml) {
    struct th_server_opts opts = {.toml = toml};
    return th_server_start(&opts);
}

/* ---- servers started by this file: web port and start-up failures ---- */

static int pick_port(void) {
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

static bool port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* Makes <case dir>/<name>/{data,config/conf.d} with toml in conf.d/test.toml and fills the
 * directory fields of srv. */
static void prepare_dirs(struct th_server *srv, const char *name, const char *toml) {
    char *root = th_fmt("%s/%s", th_case_dir(), name);
    srv->data_dir = th_fmt("%s/data", root);
    srv->config_dir = th_fmt("%s/config", root);
    srv->log_path = th_fmt("%s/server.log", root);
    const char *dirs[] = {root, srv->data_dir, srv->config_dir,
                          th_fmt("%s/conf.d", srv->config_dir)};
    for (size_t i = 0; i < 4; i++) {
        if (mkdir(dirs[i], 0700) != 0) {
            th_fail("cannot create %s: %s", dirs[i], strerror(errno));
        }
    }
    if (toml) {
        write_config(srv, toml);
    }
}

/* Forks the server on fwp_port with the web UI on web_port (0 disables it). */
static pid_t spawn_binary(const struct th_server *srv, int fwp_port, int web_port) {
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        th_fail("fork failed: %s", strerror(errno));
    }
    if (pid > 0) {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(126);
    }
    FILE *log = freopen(srv->log_path, "a", stderr);
    if (!log || !freopen("/dev/null", "r", stdin) || dup2(fileno(stderr), 1) < 0) {
        _exit(126);
    }
    unsetenv("FAKTORY_PASSWORD");
    unsetenv("FAKTORY_ENV");
    char bind[64], web[64];
    snprintf(bind, sizeof bind, "127.0.0.1:%d", fwp_port);
    snprintf(web, sizeof web, "127.0.0.1:%d", web_port);
    execl(server_binary, server_binary, "-b", bind, "-w", web, "-d", srv->data_dir, "-c",
          srv->config_dir, "-e", "development", "-l", "debug", (char *)NULL);
    _exit(127);
}

/* Starts a server with its web port open (the harness starts servers without one). The
 * returned server works with th_producer, th_server_signal and th_server_stop; *web_port gets
 * the web port. */
static struct th_server *start_with_web(const char *toml, int *web_port) {
    struct th_server *srv = th_keep(calloc(1, sizeof *srv));
    snprintf(srv->host, sizeof srv->host, "127.0.0.1");
    prepare_dirs(srv, "web-server", toml);
    for (int attempt = 0; attempt < 5; attempt++) {
        srv->port = pick_port();
        *web_port = pick_port();
        srv->pid = spawn_binary(srv, srv->port, *web_port);
        double deadline = th_now() + 10;
        while (th_now() < deadline) {
            int status;
            if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
                srv->pid = 0;
                break;   /* a port was taken meanwhile: try new ones */
            }
            if (port_open(srv->port) && port_open(*web_port)) {
                return srv;
            }
            th_sleep_ms(10);
        }
        if (srv->pid > 0) {
            th_fail("the server with a web port did not start within 10 s; log: %s",
                    srv->log_path);
        }
    }
    th_fail("the server with a web port exited during start-up 5 times; log: %s", srv->log_path);
}

/* Starts the server with toml and expects it to exit with a non-zero status within 10 s and
 * to log needle. */
static void expect_start_failure_at(const char *file, int line, const char *name,
                                    const char *toml, const char *needle) {
    struct th_server srv = {0};
    prepare_dirs(&srv, name, toml);
    pid_t pid = spawn_binary(&srv, pick_port(), 0);
    double deadline = th_now() + 10;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (th_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            th_fail_at(file, line, "the server kept running with the invalid configuration %s",
                       toml);
        }
        th_sleep_ms(10);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0) {
        th_fail_at(file, line, "with %s the server ended with status 0x%x, expected a non-zero "
                               "exit", toml, (unsigned)status);
    }
    if (count_lines(srv.log_path, needle) == 0) {
        th_fail_at(file, line, "with %s the server log does not contain \"%s\"; see %s", toml,
                   needle, srv.log_path);
    }
}
#define EXPECT_START_FAILURE(name, toml, needle) \
    expect_start_failure_at(__FILE__, __LINE__, name, toml, needle)

/* GET path on the web port over HTTP/1.0. Returns the body (lives until the case ends) and
 * stores the status code. */
static char *http_get(int port, const char *path, int *status) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        th_fail("cannot connect to the web port %d: %s", port, strerror(errno));
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    char *request = th_fmt("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (send(fd, request, strlen(request), 0) != (ssize_t)strlen(request)) {
        th_fail("cannot send the request for %s", path);
    }

    size_t len = 0, cap = 65536;
    char *text = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            text = realloc(text, cap);
        }
        if (!text) {
            th_fail("out of memory");
        }
        ssize_t n = recv(fd, text + len, cap - len - 1, 0);
        if (n < 0) {
            th_fail("reading the reply to GET %s failed: %s", path, strerror(errno));
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    text[len] = '\0';
    th_keep(text);

    if (sscanf(text, "HTTP/1.%*d %d", status) != 1) {
        th_fail("GET %s: no HTTP status line in %.80s", path, text);
    }
    char *body = strstr(text, "\r\n\r\n");
    if (!body) {
        th_fail("GET %s: the reply has no end of headers", path);
    }
    return body + 4;
}

/* ---- concurrency, per worker, skipping ---- */

static void concurrency_limits_holders_across_workers(void) {
    struct th_server *srv = start_with("[throttles]\nimages = { concurrency = 2, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    struct th_conn *w2 = th_worker(srv, "wid-2");
    struct th_conn *w3 = th_worker(srv, "wid-3");
    push_jobs(p, "images", "img", 5);

    EXPECT_JOB(w1, "images", "img-0000");
    EXPECT_JOB(w2, "images", "img-0001");
    EXPECT_BLOCKED(w3, "images");
    EXPECT_BLOCKED(w1, "images");
    EXPECT_BLOCKED(p, "images");

    json_t *t = THROTTLE_INFO(p, "images");
    TH_EQ_INT(TH_JINT(t, "in_use"), 2);
    TH_EQ_INT(TH_JINT(t, "concurrency"), 2);
    TH_CHECK(holds_jid(t, "img-0000"));
    TH_CHECK(holds_jid(t, "img-0001"));
    TH_EQ_STR(TH_JSTR(holder_of(t, "img-0000"), "wid"), "wid-1");
    TH_EQ_STR(TH_JSTR(holder_of(t, "img-0001"), "wid"), "wid-2");
    TH_EQ_INT(TH_QUEUE_SIZE(p, "images"), 3);

    TH_OK(w1, "ACK {\"jid\":\"img-0000\"}");
    EXPECT_JOB(w3, "images", "img-0002");
    EXPECT_BLOCKED(w1, "images");
    t = THROTTLE_INFO(p, "images");
    TH_EQ_INT(TH_JINT(t, "in_use"), 2);
    TH_EQ_INT(TH_JINT(t, "taken"), 3);
    TH_EQ_INT(TH_JINT(t, "released"), 1);
    TH_EQ_INT(TH_JINT(t, "timed_out"), 0);
}

static void worker_limit_applies_per_wid(void) {
    struct th_server *srv = start_with("[throttles]\nbulk = { worker = 2, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    /* Two connections of one worker process share its limit. */
    struct th_conn *a1 = th_worker(srv, "wid-a");
    struct th_conn *a2 = th_worker(srv, "wid-a");
    struct th_conn *b = th_worker(srv, "wid-b");
    push_jobs(p, "bulk", "bulk", 10);

    EXPECT_JOB(a1, "bulk", "bulk-0000");
    EXPECT_JOB(a2, "bulk", "bulk-0001");
    EXPECT_BLOCKED(a1, "bulk");
    EXPECT_BLOCKED(a2, "bulk");
    EXPECT_JOB(b, "bulk", "bulk-0002");
    EXPECT_JOB(b, "bulk", "bulk-0003");
    EXPECT_BLOCKED(b, "bulk");

    /* Connections without a wid share one group. */
    struct th_conn *p1 = th_producer(srv);
    struct th_conn *p2 = th_producer(srv);
    EXPECT_JOB(p1, "bulk", "bulk-0004");
    EXPECT_JOB(p2, "bulk", "bulk-0005");
    EXPECT_BLOCKED(p1, "bulk");
    EXPECT_BLOCKED(p, "bulk");

    json_t *t = THROTTLE_INFO(p, "bulk");
    TH_EQ_INT(TH_JINT(t, "worker"), 2);
    TH_EQ_INT(TH_JINT(t, "concurrency"), 0);
    TH_EQ_INT(TH_JINT(t, "in_use"), 6);
    TH_EQ_INT(holders_of_wid(t, "wid-a"), 2);
    TH_EQ_INT(holders_of_wid(t, "wid-b"), 2);
    TH_EQ_INT(holders_of_wid(t, ""), 2);

    /* A freed slot goes back to its own worker only. */
    TH_OK(b, "ACK {\"jid\":\"bulk-0002\"}");
    EXPECT_BLOCKED(a1, "bulk");
    EXPECT_JOB(b, "bulk", "bulk-0006");
    /* The job of one connection can be finished from the other connection of its worker. */
    TH_OK(a2, "ACK {\"jid\":\"bulk-0000\"}");
    EXPECT_JOB(a1, "bulk", "bulk-0007");
    EXPECT_BLOCKED(a2, "bulk");
}

static void fetch_skips_throttled_queue_in_order(void) {
    struct th_server *srv = start_with("[throttles]\nbulk = { concurrency = 1, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-skip");
    push_jobs(p, "bulk", "bulk", 3);
    push_jobs(p, "other", "other", 3);
    push_jobs(p, "third", "third", 3);

    /* An open throttled queue is taken in its listed place. */
    TH_FETCH_JID(w, "bulk other", "bulk-0000");
    /* A full one is skipped for the next queue of the same FETCH line, in order. */
    TH_FETCH_JID(w, "bulk other third", "other-0000");
    TH_FETCH_JID(w, "bulk third other", "third-0000");
    TH_FETCH_JID(w, "other bulk", "other-0001");
    TH_EQ_INT(TH_QUEUE_SIZE(p, "bulk"), 2);

    TH_OK(w, "ACK {\"jid\":\"bulk-0000\"}");
    TH_FETCH_JID(w, "bulk other third", "bulk-0001");
    TH_FETCH_JID(w, "third bulk", "third-0001");
}

static void fetch_waits_when_every_queue_throttled(void) {
    struct th_server *srv = start_with("[throttles]\n"
                                       "a = { concurrency = 1, timeout = 60 }\n"
                                       "b = { worker = 1, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-wait");
    push_jobs(p, "a", "job-a", 2);
    push_jobs(p, "b", "job-b", 2);
    TH_FETCH_JID(w, "a b", "job-a-0000");
    TH_FETCH_JID(w, "a b", "job-b-0000");

    TH_EXPECT(w, "$-1", "FETCH a b");
    TH_RANGE(w->reply.elapsed, 1.8, 3.0);
    json_t *info = TH_INFO(p);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.a"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.b"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 2);
}

/* ---- wake-ups ---- */

struct wake_arg {
    struct th_conn *c;
    const char *command;
    struct th_server *srv;
    double seconds;
};

static void send_ok(void *arg) {
    struct wake_arg *w = arg;
    TH_OK(w->c, "%s", w->command);
}

static void move_clock(void *arg) {
    struct wake_arg *w = arg;
    TH_CLOCK(w->c, w->seconds);
}

static void wake_on_ack_and_fail(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    struct th_conn *w2 = th_worker(srv, "wid-2");
    push_jobs(p, "long", "long", 3);
    TH_FETCH_JID(w1, "long", "long-0000");

    struct wake_arg ack = {.c = w1, .command = "ACK {\"jid\":\"long-0000\"}"};
    EXPECT_WOKEN(w2, "long", "long-0001", send_ok, &ack);

    struct wake_arg fail = {
        .c = w2,
        .command = "FAIL {\"jid\":\"long-0001\",\"errtype\":\"E\",\"message\":\"m\"}",
    };
    EXPECT_WOKEN(w1, "long", "long-0002", send_ok, &fail);
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_EQ_INT(TH_JINT(t, "released"), 2);
}

static void wake_on_slot_timeout(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 30 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    struct th_conn *w2 = th_worker(srv, "wid-2");
    push_jobs(p, "long", "long", 2);
    TH_FETCH_JID(w1, "long", "long-0000");

    struct wake_arg clock = {.c = p, .seconds = 30.5};
    EXPECT_WOKEN(w2, "long", "long-0001", move_clock, &clock);
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "timed_out"), 1);
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_CHECK(holds_jid(t, "long-0001"));
}

static void wake_on_reservation_expiry(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 3600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    TH_PUSH(p, "long-0000", "\"queue\":\"long\",\"reserve_for\":120");
    TH_PUSH(p, "long-0001", "\"queue\":\"long\",\"reserve_for\":600");
    TH_FETCH_JID(w1, "long", "long-0000");
    th_close(w1);

    /* Past the reservation, with BEATs so that no worker is reaped (60 s of silence). */
    struct th_conn *w2 = th_worker(srv, "wid-2");
    TH_CLOCK(p, 59);
    TH_OK(w2, "BEAT {\"wid\":\"wid-2\"}");
    TH_CLOCK(p, 59);
    TH_OK(w2, "BEAT {\"wid\":\"wid-2\"}");
    TH_EQ_INT(THROTTLE_INT(p, "long", "in_use"), 1);
    struct wake_arg clock = {.c = p, .seconds = 3};
    EXPECT_WOKEN(w2, "long", "long-0001", move_clock, &clock);
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "released"), 1);
    TH_EQ_INT(TH_JINT(t, "timed_out"), 0);
    TH_INFO_EQ(p, "faktory.sets.retries", 1);
}

/* A rate window that reopens in real time wakes the waiting FETCH at once. */
static void wake_when_rate_window_opens(void) {
    struct th_server *srv = start_with("[throttles]\napi = { rate_limit = 1, rate_period = 1 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-rate");
    push_jobs(p, "api", "api", 2);
    double started = th_now();
    TH_FETCH_JID(w, "api", "api-0000");
    TH_FETCH_JID(w, "api", "api-0001");
    TH_RANGE(th_now() - started, 0.9, 1.6);
}

static void wake_on_raised_limit(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    struct th_conn *w2 = th_worker(srv, "wid-2");
    push_jobs(p, "long", "long", 2);
    TH_FETCH_JID(w1, "long", "long-0000");

    th_send(w2, "FETCH long");
    th_sleep_ms(200);
    double raised = th_now();
    RELOAD(srv, "[throttles]\nlong = { concurrency = 2, timeout = 600 }\n");
    const struct th_reply *r = th_read(w2, 5000);
    TH_EQ_INT(r->kind, TH_BULK);
    TH_EQ_STR(TH_JSTR(TH_JSON(r->body, r->body_len), "jid"), "long-0001");
    TH_RANGE(th_now() - raised, 0, 1.5);
    TH_EQ_INT(THROTTLE_INT(p, "long", "in_use"), 2);
}

/* A job pushed to a queue with a per-worker limit reaches a waiting worker that is below its
 * limit, even when a worker at its limit started waiting first. */
static void push_wakes_eligible_waiter_behind_full_worker(void) {
    struct th_server *srv = start_with("[throttles]\nbulk = { worker = 1, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *a1 = th_worker(srv, "wid-a");
    struct th_conn *a2 = th_worker(srv, "wid-a");
    struct th_conn *b = th_worker(srv, "wid-b");
    TH_PUSH(p, "bulk-0000", "\"queue\":\"bulk\"");
    TH_FETCH_JID(a1, "bulk", "bulk-0000");

    th_send(a2, "FETCH bulk");
    th_sleep_ms(100);
    struct wake_arg push = {
        .c = p,
        .command = "PUSH {\"jid\":\"bulk-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"bulk\"}",
    };
    EXPECT_WOKEN(b, "bulk", "bulk-0001", send_ok, &push);
    th_read(a2, 5000);
    TH_REPLY(a2, "$-1");
}

/* The same with a slot freed by another worker while a full worker waits first. */
static void freed_slot_reaches_eligible_waiter(void) {
    struct th_server *srv = start_with("[throttles]\n"
                                       "bulk = { worker = 1, concurrency = 2, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *a1 = th_worker(srv, "wid-a");
    struct th_conn *a2 = th_worker(srv, "wid-a");
    struct th_conn *b = th_worker(srv, "wid-b");
    struct th_conn *c = th_worker(srv, "wid-c");
    push_jobs(p, "bulk", "bulk", 3);
    TH_FETCH_JID(a1, "bulk", "bulk-0000");
    TH_FETCH_JID(b, "bulk", "bulk-0001");

    /* a2 is blocked by its worker limit and c by the concurrency limit. When b finishes,
     * only c may take the slot. */
    th_send(a2, "FETCH bulk");
    th_sleep_ms(100);
    struct wake_arg ack = {.c = b, .command = "ACK {\"jid\":\"bulk-0001\"}"};
    EXPECT_WOKEN(c, "bulk", "bulk-0002", send_ok, &ack);
    th_read(a2, 5000);
    TH_REPLY(a2, "$-1");
}

/* ---- release rules (worker killed without ACK and its variants) ---- */

/* One slot, a worker dies holding it: the slot comes back at the timeout, never before and
 * never as a second holder. */
static void killed_worker_slot_returns_at_timeout(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 3);
    TH_FETCH_JID(w1, "long", "long-0000");
    th_close(w1);

    struct th_conn *w2 = th_worker(srv, "wid-2");
    for (int step = 0; step < 5; step++) {
        EXPECT_BLOCKED(w2, "long");
        TH_CLOCK(p, 11);   /* 55 s after the fetch at the end of the loop */
        TH_OK(w2, "BEAT {\"wid\":\"wid-2\"}");
        TH_EQ_INT(THROTTLE_INT(p, "long", "in_use"), 1);
    }
    EXPECT_BLOCKED(w2, "long");
    TH_CLOCK(p, 5.5);
    EXPECT_JOB(w2, "long", "long-0001");
    EXPECT_BLOCKED(w2, "long");

    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_EQ_INT(TH_JINT(t, "timed_out"), 1);
    TH_CHECK(holds_jid(t, "long-0001"));
    TH_CHECK(!holds_jid(t, "long-0000"));
    /* The abandoned job still counts as working: only its slot timed out. */
    TH_INFO_EQ(p, "faktory.sets.working", 2);
}

static void failed_before_death_frees_at_once(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 3);
    TH_FETCH_JID(w1, "long", "long-0000");
    TH_OK(w1, "FAIL {\"jid\":\"long-0000\",\"errtype\":\"Crash\",\"message\":\"dying\"}");
    th_close(w1);

    struct th_conn *w2 = th_worker(srv, "wid-2");
    EXPECT_JOB(w2, "long", "long-0001");
    EXPECT_BLOCKED(w2, "long");
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "released"), 1);
    TH_EQ_INT(TH_JINT(t, "timed_out"), 0);
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
}

/* Every FAIL outcome frees the slot: retry, dead and discard. */
static void every_fail_outcome_frees_slot(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-1");
    TH_PUSH(p, "long-retry", "\"queue\":\"long\"");
    TH_PUSH(p, "long-dead0", "\"queue\":\"long\",\"retry\":-1");
    TH_PUSH(p, "long-drop0", "\"queue\":\"long\",\"retry\":0");
    TH_PUSH(p, "long-last0", "\"queue\":\"long\"");
    const char *jids[] = {"long-retry", "long-dead0", "long-drop0"};
    for (int i = 0; i < 3; i++) {
        EXPECT_JOB(w, "long", jids[i]);
        EXPECT_BLOCKED(w, "long");
        TH_OK(w, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"m\"}", jids[i]);
    }
    EXPECT_JOB(w, "long", "long-last0");
    json_t *info = TH_INFO(p);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.throttles.long.released"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.throttles.long.in_use"), 1);
}

static void reservation_expiry_frees_slot(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 3600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    TH_PUSH(p, "long-0000", "\"queue\":\"long\",\"reserve_for\":100");
    TH_PUSH(p, "long-0001", "\"queue\":\"long\"");
    TH_FETCH_JID(w1, "long", "long-0000");
    th_close(w1);

    TH_CLOCK(p, 50);
    struct th_conn *w2 = th_worker(srv, "wid-2");
    EXPECT_BLOCKED(w2, "long");
    TH_CLOCK(p, 51);
    EXPECT_JOB(w2, "long", "long-0001");
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "released"), 1);
    TH_EQ_INT(TH_JINT(t, "timed_out"), 0);
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
}

/* Reaping a silent worker closes its connections but keeps its slots: they come back only
 * through the reservation expiry or the slot timeout. */
static void reaped_worker_keeps_slot_until_timeout(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 300 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-silent");
    TH_PUSH(p, "long-0000", "\"queue\":\"long\",\"reserve_for\":1000");
    TH_PUSH(p, "long-0001", "\"queue\":\"long\"");
    TH_FETCH_JID(w1, "long", "long-0000");

    TH_CLOCK(p, 61);
    TH_EXPECT_CLOSED(w1, 2000);
    TH_INFO_EQ(p, "faktory.tasks.Workers.reaped", 1);
    TH_EQ_INT(THROTTLE_INT(p, "long", "in_use"), 1);

    struct th_conn *w2 = th_worker(srv, "wid-2");
    EXPECT_BLOCKED(w2, "long");
    TH_CLOCK(p, 50);
    TH_OK(w2, "BEAT {\"wid\":\"wid-2\"}");
    TH_CLOCK(p, 50);
    TH_OK(w2, "BEAT {\"wid\":\"wid-2\"}");
    TH_CLOCK(p, 50);
    TH_OK(w2, "BEAT {\"wid\":\"wid-2\"}");
    TH_CLOCK(p, 50);   /* 261 s after the fetch */
    TH_OK(w2, "BEAT {\"wid\":\"wid-2\"}");
    EXPECT_BLOCKED(w2, "long");
    TH_CLOCK(p, 40);   /* 301 s */
    EXPECT_JOB(w2, "long", "long-0001");
    TH_EQ_INT(THROTTLE_INT(p, "long", "timed_out"), 1);
}

/* A slot that timed out is not freed again by the job's late ACK or FAIL. */
static void late_ack_after_timeout_frees_nothing(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 10 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    struct th_conn *w2 = th_worker(srv, "wid-2");
    struct th_conn *w3 = th_worker(srv, "wid-3");
    push_jobs(p, "long", "long", 4);
    TH_FETCH_JID(w1, "long", "long-0000");
    TH_CLOCK(p, 10.5);
    EXPECT_JOB(w2, "long", "long-0001");

    TH_OK(w1, "ACK {\"jid\":\"long-0000\"}");
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_EQ_INT(TH_JINT(t, "released"), 0);
    TH_EQ_INT(TH_JINT(t, "timed_out"), 1);
    TH_CHECK(holds_jid(t, "long-0001"));
    EXPECT_BLOCKED(w3, "long");

    /* Same for a late FAIL. */
    TH_CLOCK(p, 10.5);
    EXPECT_JOB(w3, "long", "long-0002");
    TH_OK(w2, "FAIL {\"jid\":\"long-0001\",\"errtype\":\"E\",\"message\":\"late\"}");
    EXPECT_BLOCKED(w1, "long");
    t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_EQ_INT(TH_JINT(t, "released"), 0);
    TH_EQ_INT(TH_JINT(t, "timed_out"), 2);
    TH_EQ_INT(TH_JINT(t, "taken"), 3);

    TH_OK(w3, "ACK {\"jid\":\"long-0002\"}");
    EXPECT_JOB(w1, "long", "long-0003");
}

static void flush_frees_every_slot(void) {
    struct th_server *srv = start_with("[throttles]\n"
                                       "a = { concurrency = 1, timeout = 60 }\n"
                                       "b = { worker = 1, timeout = 60 }\n"
                                       "c = { rate_limit = 5, rate_period = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-flush");
    push_jobs(p, "a", "job-a", 2);
    push_jobs(p, "b", "job-b", 2);
    push_jobs(p, "c", "job-c", 2);
    TH_FETCH_JID(w, "a", "job-a-0000");
    TH_FETCH_JID(w, "b", "job-b-0000");
    TH_FETCH_JID(w, "c", "job-c-0000");
    TH_EQ_INT(THROTTLE_INT(p, "a", "in_use"), 1);

    TH_OK(p, "FLUSH");
    json_t *info = TH_INFO(p);
    TH_EQ_INT(TH_JINT(info, "faktory.throttles.a.in_use"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.throttles.b.in_use"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.throttles.c.in_use"), 0);
    TH_EQ_INT(json_array_size(th_json_get(info, "faktory.throttles.a.holders")), 0);

    push_jobs(p, "a", "new-a", 2);
    push_jobs(p, "b", "new-b", 2);
    EXPECT_JOB(w, "a", "new-a-0000");
    EXPECT_BLOCKED(w, "a");
    EXPECT_JOB(w, "b", "new-b-0000");
    EXPECT_BLOCKED(w, "b");
    /* The old jobs no longer exist; their ACK (answered +OK, as for any unknown jid) frees
     * nothing. */
    TH_OK(p, "ACK {\"jid\":\"job-a-0000\"}");
    TH_EQ_INT(THROTTLE_INT(p, "a", "in_use"), 1);
}

/* Slots freed by FLUSH stay accounted for: every slot taken was released, timed out or is
 * still in use. */
static void flush_keeps_slot_accounting(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 5, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-flush");
    push_jobs(p, "long", "long", 3);
    for (int i = 0; i < 3; i++) {
        TH_FETCH_JID(w, "long", th_fmt("long-%04d", i));
    }
    TH_OK(w, "ACK {\"jid\":\"long-0000\"}");
    TH_OK(p, "FLUSH");
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "in_use"), 0);
    TH_EQ_INT(TH_JINT(t, "taken"), TH_JINT(t, "released") + TH_JINT(t, "timed_out"));
}

/* ---- rate limits: starts per window, not running jobs ---- */

/* Fetches every job FETCH hands out from queue right now, records each start's server time
 * (the holder's "since") in starts, and returns how many started. */
static int start_all(struct th_conn *w, struct th_conn *p, const char *queue, char jids[][32],
                     double *starts, int *count, int max) {
    int started = 0;
    for (;;) {
        json_t *job = FETCH_OR_SKIP(w, queue);
        if (!job) {
            break;
        }
        if (*count >= max) {
            th_fail("more than %d starts", max);
        }
        snprintf(jids[*count], 32, "%s", TH_JSTR(job, "jid"));
        (*count)++;
        started++;
    }
    json_t *t = THROTTLE_INFO(p, queue);
    for (int i = *count - started; i < *count; i++) {
        json_t *h = holder_of(t, jids[i]);
        TH_CHECK(h != NULL);
        starts[i] = TH_TIME(h, "since");
    }
    return started;
}

/* Checks that no sliding window of period seconds holds more than limit starts. */
static void check_starts_per_window(const double *starts, int count, double period, int limit) {
    for (int i = 0; i < count; i++) {
        int in_window = 0;
        for (int j = 0; j < count; j++) {
            in_window += starts[j] > starts[i] - period && starts[j] <= starts[i];
        }
        if (in_window > limit) {
            th_fail("%d starts in the %.0f s before the start at %.3f, limit %d", in_window,
                    period, starts[i], limit);
        }
    }
}

/* A job "runs" for run_seconds of server time and is then ACKed. Steps the clock one second
 * at a time for steps seconds, starting what the throttle allows at each step. Returns the
 * highest number of jobs running at once. */
static int run_timeline(struct th_server *srv, const char *queue, int steps, double run_seconds,
                        int concurrency_limit, double period, int rate_limit, int *total) {
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-timeline");
    enum { MAX_STARTS = 400 };
    static char jids[MAX_STARTS][32];
    static double starts[MAX_STARTS];
    static bool done[MAX_STARTS];
    memset(done, 0, sizeof done);
    int count = 0, max_running = 0;
    push_jobs(p, queue, queue, 300);

    for (int step = 0; step < steps; step++) {
        double now = TH_SERVER_TIME(p);
        for (int i = 0; i < count; i++) {
            if (!done[i] && now - starts[i] >= run_seconds) {
                TH_OK(w, "ACK {\"jid\":\"%s\"}", jids[i]);
                done[i] = true;
            }
        }
        start_all(w, p, queue, jids, starts, &count, MAX_STARTS);
        int running = (int)THROTTLE_INT(p, queue, "in_use");
        if (concurrency_limit > 0) {
            TH_RANGE(running, 0, concurrency_limit);
        }
        if (running > max_running) {
            max_running = running;
        }
        TH_OK(w, "BEAT {\"wid\":\"wid-timeline\"}");
        TH_CLOCK(p, 1);
    }
    for (int i = 0; i < count; i++) {
        if (!done[i]) {
            TH_OK(w, "ACK {\"jid\":\"%s\"}", jids[i]);
        }
    }
    if (rate_limit > 0) {
        check_starts_per_window(starts, count, period, rate_limit);
    }
    *total = count;
    return max_running;
}

/* 10 starts per 10 s with jobs that run 30 s: about 30 run at once, and starts stay within
 * every sliding window. */
static void rate_limit_counts_starts_not_running(void) {
    struct th_server *srv = start_with("[throttles]\napi = { rate_limit = 10, rate_period = 10 }\n");
    int total = 0;
    int max_running = run_timeline(srv, "api", 60, 30, 0, 10, 10, &total);
    TH_RANGE(total, 55, 70);
    TH_RANGE(max_running, 25, 40);
}

/* Concurrency alone bounds running jobs and not starts: short jobs start without a window. */
static void concurrency_bounds_running_not_starts(void) {
    struct th_server *srv = start_with("[throttles]\nimages = { concurrency = 5, timeout = 600 }\n");
    int total = 0;
    int max_running = run_timeline(srv, "images", 20, 3, 5, 0, 0, &total);
    TH_EQ_INT(max_running, 5);
    /* 5 slots, each job 3 s: about 5 starts every 3 s. */
    TH_RANGE(total, 30, 40);

    /* Jobs finished at once leave every slot free: many start within one second. */
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-fast");
    for (int i = 0; i < 50; i++) {
        json_t *job = FETCH_OR_SKIP(w, "images");
        TH_CHECK(job != NULL);
        TH_OK(w, "ACK {\"jid\":\"%s\"}", TH_JSTR(job, "jid"));
    }
    TH_EQ_INT(THROTTLE_INT(p, "images", "in_use"), 0);
}

static void rate_and_concurrency_combined(void) {
    struct th_server *srv = start_with("[throttles]\n"
                                       "both = { concurrency = 4, timeout = 600, "
                                       "rate_limit = 10, rate_period = 10 }\n");
    int total = 0;
    int max_running = run_timeline(srv, "both", 40, 3, 4, 10, 10, &total);
    TH_EQ_INT(max_running, 4);
    /* The rate limit binds: 4 slots of 3-second jobs could start about 13 per 10 s. */
    TH_RANGE(total, 36, 50);
}

/* ---- restart ---- */

static void restart_rebuilds_slots_after_kill(void) {
    struct th_server *srv = start_with("[throttles]\n"
                                       "bulk = { concurrency = 3, worker = 1, timeout = 600 }\n"
                                       "api = { rate_limit = 2, rate_period = 3600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *a = th_worker(srv, "wid-a");
    struct th_conn *b = th_worker(srv, "wid-b");
    push_jobs(p, "bulk", "bulk", 6);
    push_jobs(p, "api", "api", 6);
    TH_FETCH_JID(a, "bulk", "bulk-0000");
    TH_FETCH_JID(b, "bulk", "bulk-0001");
    TH_FETCH_JID(a, "api", "api-0000");
    TH_OK(a, "ACK {\"jid\":\"api-0000\"}");
    TH_FETCH_JID(b, "api", "api-0001");
    EXPECT_BLOCKED(b, "api");
    json_t *before = THROTTLE_INFO(p, "bulk");
    const char *since_a = TH_JSTR(holder_of(before, "bulk-0000"), "since");
    const char *since_b = TH_JSTR(holder_of(before, "bulk-0001"), "since");

    th_server_kill(srv);
    th_server_restart(srv);
    p = th_producer(srv);
    json_t *t = THROTTLE_INFO(p, "bulk");
    TH_EQ_INT(TH_JINT(t, "in_use"), 2);
    TH_EQ_STR(TH_JSTR(holder_of(t, "bulk-0000"), "wid"), "wid-a");
    TH_EQ_STR(TH_JSTR(holder_of(t, "bulk-0001"), "wid"), "wid-b");
    /* The rebuilt slots keep their original fetch time. */
    TH_EQ_STR(TH_JSTR(holder_of(t, "bulk-0000"), "since"), since_a);
    TH_EQ_STR(TH_JSTR(holder_of(t, "bulk-0001"), "since"), since_b);
    TH_EQ_INT(THROTTLE_INT(p, "api", "in_use"), 1);

    /* The per-worker limit still counts the rebuilt slots. */
    a = th_worker(srv, "wid-a");
    b = th_worker(srv, "wid-b");
    struct th_conn *c = th_worker(srv, "wid-c");
    EXPECT_BLOCKED(a, "bulk");
    EXPECT_JOB(c, "bulk", "bulk-0002");
    EXPECT_BLOCKED(b, "bulk");
    TH_OK(a, "ACK {\"jid\":\"bulk-0000\"}");
    EXPECT_JOB(a, "bulk", "bulk-0003");
    TH_EQ_INT(THROTTLE_INT(p, "bulk", "in_use"), 3);

    /* The rate window is in memory only: it starts empty after the restart. */
    EXPECT_JOB(a, "api", "api-0002");
    EXPECT_JOB(b, "api", "api-0003");
    EXPECT_BLOCKED(c, "api");
}

static void restart_rebuilds_slots_after_clean_stop(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 2);
    TH_FETCH_JID(w, "long", "long-0000");
    th_close(w);
    th_close(p);

    th_server_stop(srv);
    th_server_restart(srv);
    p = th_producer(srv);
    w = th_worker(srv, "wid-2");
    EXPECT_BLOCKED(w, "long");
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_EQ_STR(TH_JSTR(holder_of(t, "long-0000"), "wid"), "wid-1");
    TH_OK(p, "ACK {\"jid\":\"long-0000\"}");
    EXPECT_JOB(w, "long", "long-0001");
}

/* The timeout of a rebuilt slot runs from the original fetch, in real time. */
static void rebuilt_slot_times_out_from_original_fetch(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 3 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 2);
    double fetched = th_now();
    TH_FETCH_JID(w1, "long", "long-0000");
    th_server_kill(srv);
    th_server_restart(srv);

    struct th_conn *w2 = th_worker(srv, "wid-2");
    json_t *job = NULL;
    while (!job && th_now() - fetched < 8) {
        job = TH_FETCH(w2, "long");
    }
    TH_CHECK(job != NULL);
    TH_EQ_STR(TH_JSTR(job, "jid"), "long-0001");
    TH_RANGE(th_now() - fetched, 2.9, 4.0);
}

/* A slot whose timeout passed while the server was down is free right after the start. */
static void slot_timed_out_during_downtime_is_free(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 1 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 2);
    TH_FETCH_JID(w1, "long", "long-0000");
    th_server_kill(srv);
    th_sleep_ms(1500);
    th_server_restart(srv);

    struct th_conn *w2 = th_worker(srv, "wid-2");
    TH_FETCH_JID(w2, "long", "long-0001");
    TH_RANGE(w2->reply.elapsed, 0, 0.5);
    p = th_producer(srv);
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_CHECK(holds_jid(t, "long-0001"));
}

/* ---- SIGHUP ---- */

static void sighup_lowers_limit_keeping_slots(void) {
    struct th_server *srv = start_with("[throttles]\n"
                                       "long = { concurrency = 3, timeout = 600 }\n"
                                       "bulk = { worker = 3, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-1");
    struct th_conn *v = th_worker(srv, "wid-2");
    push_jobs(p, "long", "long", 5);
    push_jobs(p, "bulk", "bulk", 6);
    for (int i = 0; i < 3; i++) {
        TH_FETCH_JID(w, "long", th_fmt("long-%04d", i));
        TH_FETCH_JID(w, "bulk", th_fmt("bulk-%04d", i));
    }

    RELOAD(srv, "[throttles]\n"
                "long = { concurrency = 1, timeout = 600 }\n"
                "bulk = { worker = 1, timeout = 600 }\n");
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "concurrency"), 1);
    TH_EQ_INT(TH_JINT(t, "in_use"), 3);
    TH_EQ_INT(TH_JINT(t, "taken"), 3);
    TH_EQ_INT(THROTTLE_INT(p, "bulk", "worker"), 1);
    TH_EQ_INT(THROTTLE_INT(p, "bulk", "in_use"), 3);

    /* No new job gets in until enough of the old ones finish. */
    EXPECT_BLOCKED(v, "long");
    TH_OK(w, "ACK {\"jid\":\"long-0000\"}");
    EXPECT_BLOCKED(v, "long");
    TH_OK(w, "ACK {\"jid\":\"long-0001\"}");
    EXPECT_BLOCKED(v, "long");
    TH_OK(w, "ACK {\"jid\":\"long-0002\"}");
    EXPECT_JOB(v, "long", "long-0003");
    EXPECT_BLOCKED(w, "long");
    TH_EQ_INT(THROTTLE_INT(p, "long", "released"), 3);

    /* The lowered per-worker limit: wid-1 holds 3 of 1, wid-2 is unaffected. */
    EXPECT_JOB(v, "bulk", "bulk-0003");
    EXPECT_BLOCKED(v, "bulk");
    TH_OK(w, "ACK {\"jid\":\"bulk-0000\"}");
    TH_OK(w, "ACK {\"jid\":\"bulk-0001\"}");
    EXPECT_BLOCKED(w, "bulk");
    TH_OK(w, "ACK {\"jid\":\"bulk-0002\"}");
    EXPECT_JOB(w, "bulk", "bulk-0004");
}

static void sighup_raises_limit(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 5);
    TH_FETCH_JID(w, "long", "long-0000");
    EXPECT_BLOCKED(w, "long");

    RELOAD(srv, "[throttles]\nlong = { concurrency = 3, timeout = 600, worker = 2 }\n");
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "concurrency"), 3);
    TH_EQ_INT(TH_JINT(t, "worker"), 2);
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    EXPECT_JOB(w, "long", "long-0001");
    EXPECT_BLOCKED(w, "long");
    EXPECT_JOB(p, "long", "long-0002");
    EXPECT_BLOCKED(p, "long");
}

static void sighup_invalid_config_keeps_old(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 2, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 5);
    TH_FETCH_JID(w, "long", "long-0000");

    RELOAD_REJECTED(srv, "[throttles]\nlong = { concurrency = 5 }\n");
    TH_CHECK(th_server_log_contains(srv, "[throttles] long: timeout is required"));
    RELOAD_REJECTED(srv, "[throttles]\nlong = { concurrency = 0, timeout = 600 }\n");
    TH_CHECK(th_server_log_contains(srv, "[throttles] long: concurrency must be an integer"));
    RELOAD_REJECTED(srv, "[throttles]\nlong = { concurrency = 5, timeout = 600, burst = 2 }\n");
    TH_CHECK(th_server_log_contains(srv, "[throttles] long: unknown key"));

    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "concurrency"), 2);
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_CHECK(holds_jid(t, "long-0000"));
    EXPECT_JOB(w, "long", "long-0001");
    EXPECT_BLOCKED(w, "long");

    /* A valid file afterwards is applied over the kept slots. */
    RELOAD(srv, "[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    TH_EQ_INT(THROTTLE_INT(p, "long", "in_use"), 2);
    EXPECT_BLOCKED(w, "long");
    TH_CHECK(th_server_alive(srv));
}

/* SIGHUP keeps the starts of the rate window; a raised rate limit lets more in at once. */
static void sighup_keeps_rate_window(void) {
    struct th_server *srv = start_with("[throttles]\napi = { rate_limit = 2, rate_period = 3600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-rate");
    push_jobs(p, "api", "api", 6);
    TH_FETCH_JID(w, "api", "api-0000");
    TH_FETCH_JID(w, "api", "api-0001");
    TH_OK(w, "ACK {\"jid\":\"api-0000\"}");
    TH_OK(w, "ACK {\"jid\":\"api-0001\"}");
    EXPECT_BLOCKED(w, "api");

    RELOAD(srv, "[throttles]\napi = { rate_limit = 2, rate_period = 3600 }\n");
    EXPECT_BLOCKED(w, "api");
    RELOAD(srv, "[throttles]\napi = { rate_limit = 3, rate_period = 3600 }\n");
    EXPECT_JOB(w, "api", "api-0002");
    EXPECT_BLOCKED(w, "api");
    /* A shorter period lets the window slide on sooner. */
    RELOAD(srv, "[throttles]\napi = { rate_limit = 3, rate_period = 60 }\n");
    EXPECT_BLOCKED(w, "api");
    TH_CLOCK(p, 59);
    TH_OK(w, "BEAT {\"wid\":\"wid-rate\"}");
    TH_CLOCK(p, 2);
    EXPECT_JOB(w, "api", "api-0003");
}

/* Removing every throttle removes the INFO key and lifts the limits; adding them back starts
 * from the slots taken after that. */
static void sighup_removes_and_adds_throttles(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 5);
    TH_FETCH_JID(w, "long", "long-0000");
    EXPECT_BLOCKED(w, "long");

    RELOAD(srv, "[fabrik]\ndead_max = 1000\n");
    TH_CHECK(th_json_get(TH_INFO(p), "faktory.throttles") == NULL);
    EXPECT_JOB(w, "long", "long-0001");
    EXPECT_JOB(w, "long", "long-0002");

    /* A new throttle counts only the jobs fetched from then on: the three still working
     * hold no slot, and their ACKs free nothing. */
    RELOAD(srv, "[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    json_t *t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "concurrency"), 1);
    TH_EQ_INT(TH_JINT(t, "in_use"), 0);
    TH_EQ_INT(TH_JINT(t, "taken"), 0);
    EXPECT_JOB(w, "long", "long-0003");
    EXPECT_BLOCKED(w, "long");
    for (int i = 0; i < 3; i++) {
        TH_OK(w, "ACK {\"jid\":\"long-%04d\"}", i);
    }
    t = THROTTLE_INFO(p, "long");
    TH_EQ_INT(TH_JINT(t, "in_use"), 1);
    TH_EQ_INT(TH_JINT(t, "released"), 0);
    EXPECT_BLOCKED(w, "long");
    TH_OK(w, "ACK {\"jid\":\"long-0003\"}");
    EXPECT_JOB(w, "long", "long-0004");
}

/* A reload rejected for another part of the file (here an invalid [[cron]] entry) keeps the
 * old throttles too, as it keeps the rest of the old configuration. */
static void sighup_rejected_elsewhere_keeps_throttles(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-1");
    push_jobs(p, "long", "long", 3);
    TH_FETCH_JID(w, "long", "long-0000");

    RELOAD_REJECTED(srv, "[throttles]\n"
                         "long = { concurrency = 5, timeout = 600 }\n"
                         "[[cron]]\n"
                         "schedule = \"bogus\"\n"
                         "  [cron.job]\n"
                         "  type = \"Nightly\"\n");
    TH_EQ_INT(THROTTLE_INT(p, "long", "concurrency"), 1);
    EXPECT_BLOCKED(w, "long");
}

/* ---- invalid configuration at start-up ---- */

static void invalid_config_fails_start(void) {
    EXPECT_START_FAILURE("no-timeout", "[throttles]\nbulk = { concurrency = 4 }\n",
                         "[throttles] bulk: timeout is required with concurrency or worker");
    EXPECT_START_FAILURE("worker-zero", "[throttles]\nbulk = { worker = 0, timeout = 60 }\n",
                         "[throttles] bulk: worker must be an integer from 1 to 1000000");
    EXPECT_START_FAILURE("float-limit",
                         "[throttles]\nimages = { concurrency = 4.5, timeout = 60 }\n",
                         "[throttles] images: concurrency must be an integer");
    EXPECT_START_FAILURE("rate-alone", "[throttles]\napi = { rate_limit = 100 }\n",
                         "[throttles] api: rate_limit and rate_period go together");
    EXPECT_START_FAILURE("period-zero",
                         "[throttles]\napi = { rate_limit = 100, rate_period = 0 }\n",
                         "[throttles] api: rate_period must be a number of seconds above 0");
    EXPECT_START_FAILURE("timeout-text", "[throttles]\nbulk = { worker = 5, timeout = \"60\" }\n",
                         "[throttles] bulk: timeout must be a number of seconds");
    EXPECT_START_FAILURE("unknown-key",
                         "[throttles]\nbulk = { concurency = 4, timeout = 60 }\n",
                         "[throttles] bulk: unknown key");
    EXPECT_START_FAILURE("no-limit", "[throttles]\nbulk = { timeout = 60 }\n",
                         "[throttles] bulk sets no limit");
    EXPECT_START_FAILURE("not-table", "[throttles]\nimages = 4\n",
                         "[throttles] images must be a table");
    EXPECT_START_FAILURE("top-not-table", "throttles = 5\n", "[throttles] must be a table");
    EXPECT_START_FAILURE("bad-queue",
                         "[throttles]\n\"no such!\" = { concurrency = 1, timeout = 5 }\n",
                         "no such!");
    EXPECT_START_FAILURE("table-form", "[throttles.bulk]\nworker = 5\n",
                         "[throttles] bulk: timeout is required");
}

/* ---- INFO, /api/throttles and /metrics ---- */

static void info_absent_without_throttles(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    TH_PUSH(p, "job-plain-0001", NULL);
    TH_FETCH_JID(p, "default", "job-plain-0001");
    json_t *info = TH_INFO(p);
    TH_CHECK(th_json_get(info, "faktory.queues") != NULL);
    TH_CHECK(th_json_get(info, "faktory.throttles") == NULL);
}

static void info_shows_limits_holders_and_counters(void) {
    struct th_server *srv = start_with("[throttles.bulk]\n"
                                       "worker = 5\n"
                                       "timeout = 60\n"
                                       "[throttles.images]\n"
                                       "concurrency = 4\n"
                                       "timeout = 30.5\n"
                                       "[throttles.api]\n"
                                       "rate_limit = 100\n"
                                       "rate_period = 60\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-info");
    push_jobs(p, "images", "img", 3);
    double before = TH_SERVER_TIME(p);
    TH_FETCH_JID(w, "images", "img-0000");
    TH_FETCH_JID(p, "images", "img-0001");

    json_t *info = TH_INFO(p);
    json_t *throttles = th_json_get(info, "faktory.throttles");
    TH_CHECK(json_is_object(throttles));
    TH_EQ_INT(json_object_size(throttles), 3);

    json_t *bulk = json_object_get(throttles, "bulk");
    TH_EQ_INT(TH_JINT(bulk, "concurrency"), 0);
    TH_EQ_INT(TH_JINT(bulk, "worker"), 5);
    TH_CHECK(json_is_number(json_object_get(bulk, "timeout")));
    TH_EQ_INT((long long)json_number_value(json_object_get(bulk, "timeout")), 60);
    TH_EQ_INT(TH_JINT(bulk, "rate_limit"), 0);
    TH_EQ_INT(TH_JINT(bulk, "in_use"), 0);
    TH_EQ_INT(json_array_size(json_object_get(bulk, "holders")), 0);

    json_t *api = json_object_get(throttles, "api");
    TH_EQ_INT(TH_JINT(api, "rate_limit"), 100);
    TH_CHECK(fabs(json_number_value(json_object_get(api, "rate_period")) - 60) < 1e-9);

    json_t *images = json_object_get(throttles, "images");
    TH_EQ_INT(TH_JINT(images, "concurrency"), 4);
    TH_EQ_INT(TH_JINT(images, "worker"), 0);
    TH_CHECK(fabs(json_number_value(json_object_get(images, "timeout")) - 30.5) < 1e-9);
    TH_EQ_INT(TH_JINT(images, "in_use"), 2);
    TH_EQ_INT(TH_JINT(images, "taken"), 2);
    TH_EQ_INT(TH_JINT(images, "released"), 0);
    TH_EQ_INT(TH_JINT(images, "timed_out"), 0);
    TH_EQ_INT(TH_JINT(images, "waiting"), 0);
    json_t *h = holder_of(images, "img-0000");
    TH_CHECK(h != NULL);
    TH_EQ_STR(TH_JSTR(h, "wid"), "wid-info");
    TH_RANGE(TH_TIME(h, "since"), before - 0.001, before + 2);
    TH_EQ_STR(TH_JSTR(holder_of(images, "img-0001"), "wid"), "");
    TH_EQ_INT(json_object_size(h), 3);
}

static void info_counts_waiting_fetchers(void) {
    struct th_server *srv = start_with("[throttles]\nlong = { concurrency = 1, timeout = 60 }\n");
    struct th_conn *p = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "wid-1");
    struct th_conn *w2 = th_worker(srv, "wid-2");
    struct th_conn *w3 = th_worker(srv, "wid-3");
    push_jobs(p, "long", "long", 3);
    TH_FETCH_JID(w1, "long", "long-0000");

    th_send(w2, "FETCH long");
    th_send(w3, "FETCH other long");
    th_sleep_ms(200);
    TH_EQ_INT(THROTTLE_INT(p, "long", "waiting"), 2);
    th_read(w2, 5000);
    TH_REPLY(w2, "$-1");
    th_read(w3, 5000);
    TH_REPLY(w3, "$-1");
    TH_EQ_INT(THROTTLE_INT(p, "long", "waiting"), 0);
}

/* INFO lists at most 100 holders; in_use still counts them all. */
static void info_caps_holders_at_100(void) {
    struct th_server *srv = start_with("[throttles]\nmany = { concurrency = 500, timeout = 600 }\n");
    struct th_conn *p = th_producer(srv);
    push_jobs(p, "many", "many", 150);
    for (int i = 0; i < 150; i++) {
        TH_FETCH_JID(p, "many", th_fmt("many-%04d", i));
    }
    json_t *t = THROTTLE_INFO(p, "many");
    TH_EQ_INT(TH_JINT(t, "in_use"), 150);
    TH_EQ_INT(json_array_size(json_object_get(t, "holders")), 100);
}

/* The value of the metric line that starts with prefix (name and labels), or NAN. */
static double metric_value(const char *text, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, n) == 0 && line[n] == ' ') {
            return strtod(line + n + 1, NULL);
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return NAN;
}

#define EXPECT_METRIC(text, prefix, expected) \
    th_check_range_at(__FILE__, __LINE__, prefix, metric_value(text, prefix), expected, expected)

static void web_api_and_metrics_show_throttles(void) {
    int web_port = 0;
    struct th_server *srv = start_with_web("[throttles]\n"
                                           "bulk = { worker = 5, timeout = 60 }\n"
                                           "images = { concurrency = 300, timeout = 30 }\n"
                                           "api = { rate_limit = 100, rate_period = 60 }\n",
                                           &web_port);
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "wid-web");
    struct th_conn *waiter = th_worker(srv, "wid-waiter");
    push_jobs(p, "images", "img", 150);
    push_jobs(p, "bulk", "bulk", 6);
    for (int i = 0; i < 150; i++) {
        TH_FETCH_JID(p, "images", th_fmt("img-%04d", i));
    }
    for (int i = 0; i < 5; i++) {
        TH_FETCH_JID(w, "bulk", th_fmt("bulk-%04d", i));
    }
    TH_CLOCK(p, 31);   /* the 150 image slots time out */
    TH_PUSH(p, "img-extra", "\"queue\":\"images\"");
    TH_FETCH_JID(p, "images", "img-extra");
    th_send(waiter, "FETCH api");
    th_sleep_ms(200);

    int status = 0;
    char *body = http_get(web_port, "/api/throttles", &status);
    TH_EQ_INT(status, 200);
    json_t *doc = TH_JSON(body, strlen(body));
    json_t *list = json_object_get(doc, "throttles");
    TH_CHECK(json_is_array(list));
    TH_EQ_INT(json_array_size(list), 3);
    /* Sorted by queue name. */
    TH_EQ_STR(TH_JSTR(json_array_get(list, 0), "queue"), "api");
    TH_EQ_STR(TH_JSTR(json_array_get(list, 1), "queue"), "bulk");
    TH_EQ_STR(TH_JSTR(json_array_get(list, 2), "queue"), "images");

    json_t *api = json_array_get(list, 0);
    TH_EQ_INT(TH_JINT(api, "rate_limit"), 100);
    TH_EQ_INT(TH_JINT(api, "waiting"), 1);
    json_t *bulk = json_array_get(list, 1);
    TH_EQ_INT(TH_JINT(bulk, "worker"), 5);
    TH_EQ_INT(TH_JINT(bulk, "in_use"), 5);
    TH_EQ_INT(holders_of_wid(bulk, "wid-web"), 5);
    json_t *images = json_array_get(list, 2);
    TH_EQ_INT(TH_JINT(images, "concurrency"), 300);
    TH_EQ_INT(TH_JINT(images, "timed_out"), 150);
    TH_EQ_INT(TH_JINT(images, "in_use"), 1);
    TH_EQ_INT(TH_JINT(images, "taken"), 151);
    th_read(waiter, 5000);
    TH_REPLY(waiter, "$-1");

    /* The web view lists every holder, beyond INFO's 100. */
    push_jobs(p, "images", "more", 120);
    for (int i = 0; i < 120; i++) {
        TH_FETCH_JID(p, "images", th_fmt("more-%04d", i));
    }
    body = http_get(web_port, "/api/throttles", &status);
    doc = TH_JSON(body, strlen(body));
    images = json_array_get(json_object_get(doc, "throttles"), 2);
    TH_EQ_INT(TH_JINT(images, "in_use"), 121);
    TH_EQ_INT(json_array_size(json_object_get(images, "holders")), 121);
    TH_EQ_INT(json_array_size(th_json_get(TH_INFO(p), "faktory.throttles.images.holders")), 100);

    th_send(waiter, "FETCH api");
    th_sleep_ms(200);
    char *metrics = http_get(web_port, "/metrics", &status);
    TH_EQ_INT(status, 200);
    EXPECT_METRIC(metrics, "fabrik_throttle_limit{queue=\"bulk\",kind=\"worker\"}", 5);
    EXPECT_METRIC(metrics, "fabrik_throttle_limit{queue=\"bulk\",kind=\"concurrency\"}", 0);
    EXPECT_METRIC(metrics, "fabrik_throttle_limit{queue=\"bulk\",kind=\"rate_limit\"}", 0);
    EXPECT_METRIC(metrics, "fabrik_throttle_limit{queue=\"images\",kind=\"concurrency\"}", 300);
    EXPECT_METRIC(metrics, "fabrik_throttle_limit{queue=\"api\",kind=\"rate_limit\"}", 100);
    EXPECT_METRIC(metrics, "fabrik_throttle_in_use{queue=\"bulk\"}", 5);
    EXPECT_METRIC(metrics, "fabrik_throttle_in_use{queue=\"images\"}", 121);
    EXPECT_METRIC(metrics, "fabrik_throttle_in_use{queue=\"api\"}", 0);
    EXPECT_METRIC(metrics, "fabrik_throttle_waiting{queue=\"api\"}", 1);
    EXPECT_METRIC(metrics, "fabrik_throttle_waiting{queue=\"bulk\"}", 0);
    EXPECT_METRIC(metrics, "fabrik_throttle_timed_out{queue=\"images\"}", 150);
    EXPECT_METRIC(metrics, "fabrik_throttle_timed_out{queue=\"bulk\"}", 0);
    TH_CHECK(strstr(metrics, "# TYPE fabrik_throttle_limit gauge\n") != NULL);
    TH_CHECK(strstr(metrics, "# TYPE fabrik_throttle_in_use gauge\n") != NULL);
    TH_CHECK(strstr(metrics, "# TYPE fabrik_throttle_waiting gauge\n") != NULL);
    TH_CHECK(strstr(metrics, "# TYPE fabrik_throttle_timed_out counter\n") != NULL);

    th_read(waiter, 5000);
    TH_REPLY(waiter, "$-1");
    th_server_stop(srv);
}

static void web_without_throttles(void) {
    int web_port = 0;
    struct th_server *srv = start_with_web(NULL, &web_port);
    int status = 0;
    char *body = http_get(web_port, "/api/throttles", &status);
    TH_EQ_INT(status, 200);
    json_t *doc = TH_JSON(body, strlen(body));
    TH_CHECK(json_is_array(json_object_get(doc, "throttles")));
    TH_EQ_INT(json_array_size(json_object_get(doc, "throttles")), 0);
    char *metrics = http_get(web_port, "/metrics", &status);
    TH_EQ_INT(status, 200);
    TH_CHECK(strstr(metrics, "fabrik_throttle") == NULL);
    th_server_stop(srv);
}

/* ---- hammer: many workers, dropped sockets, restarts and reloads ---- */

enum { HAMMER_WORKERS = 50 };

struct hammer_worker {
    char wid[32];
    struct th_conn *c;
    bool busy;          /* a FETCH, ACK or FAIL is in flight */
    bool fetching;
};

struct hammer {
    struct th_server *srv;
    struct th_conn *producer;
    struct th_conn *checker;
    struct hammer_worker workers[HAMMER_WORKERS];
    int limit;              /* current concurrency of queue "one" */
    char held_over[8][64];  /* holders of "one" when the limit was last changed */
    int nheld_over;
    unsigned seed;
    int pushed, fetched, acked, failed, dropped;
};

static void hammer_connect_all(struct hammer *h) {
    h->producer = th_producer(h->srv);
    h->checker = th_producer(h->srv);
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        h->workers[i].c = th_worker(h->srv, h->workers[i].wid);
        h->workers[i].busy = false;
    }
}

static void hammer_close_all(struct hammer *h) {
    th_close(h->producer);
    th_close(h->checker);
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        th_close(h->workers[i].c);
        h->workers[i].c = NULL;
    }
}

/* Keeps about 40 jobs waiting in each queue. */
static void hammer_refill(struct hammer *h) {
    json_t *info = TH_INFO(h->checker);
    const char *queues[] = {"one", "two"};
    for (int q = 0; q < 2; q++) {
        json_t *size = th_json_get(json_object_get(th_json_get(info, "faktory"), "queues"),
                                   queues[q]);
        long long n = json_is_integer(size) ? json_integer_value(size) : 0;
        for (; n < 40; n++) {
            TH_PUSH(h->producer, th_fmt("ham-%06d", h->pushed++),
                    th_fmt("\"queue\":\"%s\",\"retry\":0", queues[q]));
        }
    }
}

/* Checks the limits through INFO: "one" holds at most its concurrency (or the slots held over
 * from before a lowered limit), and no wid holds more than one slot of "two". Also checks
 * that every slot taken is accounted for once: taken = released + timed_out + in_use. */
static void hammer_check(struct hammer *h) {
    json_t *info = TH_INFO(h->checker);
    json_t *one = th_json_get(info, "faktory.throttles.one");
    json_t *two = th_json_get(info, "faktory.throttles.two");
    TH_CHECK(one != NULL);
    TH_CHECK(two != NULL);

    long long in_use = TH_JINT(one, "in_use");
    int still_held = 0;
    for (int i = 0; i < h->nheld_over; i++) {
        still_held += holds_jid(one, h->held_over[i]);
    }
    int allowed = h->limit > still_held ? h->limit : still_held;
    if (in_use > allowed) {
        th_fail("queue one has %lld slots in use, limit %d (%d held over from a higher limit)",
                in_use, h->limit, still_held);
    }
    TH_EQ_INT(json_array_size(json_object_get(one, "holders")), in_use);
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        TH_RANGE(holders_of_wid(two, h->workers[i].wid), 0, 1);
    }
    TH_EQ_INT(TH_JINT(two, "in_use"), json_array_size(json_object_get(two, "holders")));
    TH_EQ_INT(TH_JINT(one, "taken"),
              TH_JINT(one, "released") + TH_JINT(one, "timed_out") + in_use);
    TH_EQ_INT(TH_JINT(two, "taken"),
              TH_JINT(two, "released") + TH_JINT(two, "timed_out") + TH_JINT(two, "in_use"));
}

/* Handles the reply that arrived for worker k. */
static void hammer_reply(struct hammer *h, int k) {
    struct hammer_worker *hw = &h->workers[k];
    const struct th_reply *r = th_read(hw->c, 1000);
    if (r->kind == TH_TIMEOUT) {
        return;
    }
    hw->busy = false;
    if (r->kind == TH_CLOSED) {
        th_fail("the server closed the connection of %s", hw->wid);
    }
    if (!hw->fetching) {
        /* ACK or FAIL of a job whose slot may have timed out: still +OK. */
        if (r->kind != TH_SIMPLE) {
            th_fail("ACK or FAIL from %s got %s", hw->wid, r->line);
        }
        return;
    }
    if (r->kind == TH_NULL) {
        return;
    }
    if (r->kind != TH_BULK) {
        th_fail("FETCH from %s got %s", hw->wid, r->line);
    }
    json_t *job = json_loadb(r->body, r->body_len, 0, NULL);
    char jid[64];
    snprintf(jid, sizeof jid, "%s", json_string_value(json_object_get(job, "jid")));
    json_decref(job);
    h->fetched++;
    int roll = rand_r(&h->seed) % 100;
    if (roll < 60) {
        th_send(hw->c, "ACK {\"jid\":\"%s\"}", jid);
        hw->busy = true;
        hw->fetching = false;
        h->acked++;
    } else if (roll < 85) {
        th_send(hw->c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"m\"}", jid);
        hw->busy = true;
        hw->fetching = false;
        h->failed++;
    } else {
        /* The worker dies holding the job: its slot comes back at the 2-second timeout. */
        th_close(hw->c);
        hw->c = th_worker(h->srv, hw->wid);
        h->dropped++;
    }
}

/* Runs the workers for the given seconds, checking the limits about every 100 ms. */
static void hammer_run(struct hammer *h, double seconds) {
    double end = th_now() + seconds;
    double next_check = 0;
    while (th_now() < end) {
        struct pollfd fds[HAMMER_WORKERS];
        for (int i = 0; i < HAMMER_WORKERS; i++) {
            struct hammer_worker *hw = &h->workers[i];
            if (!hw->busy) {
                th_send(hw->c, "FETCH one two");
                hw->busy = true;
                hw->fetching = true;
            }
            fds[i] = (struct pollfd){.fd = hw->c->fd, .events = POLLIN};
        }
        poll(fds, HAMMER_WORKERS, 50);
        for (int i = 0; i < HAMMER_WORKERS; i++) {
            if (fds[i].revents) {
                hammer_reply(h, i);
            }
        }
        if (th_now() >= next_check) {
            hammer_check(h);
            hammer_refill(h);
            next_check = th_now() + 0.1;
        }
    }
    /* Let the replies in flight arrive, so no command is cut off by what comes next. */
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        struct hammer_worker *hw = &h->workers[i];
        if (hw->busy) {
            hammer_reply(h, i);
            if (hw->busy) {
                th_read(hw->c, 3000);
                hw->busy = false;
            }
        }
    }
    hammer_check(h);
}

static const char *hammer_config(int limit) {
    return th_fmt("[throttles]\n"
                  "one = { concurrency = %d, timeout = 2 }\n"
                  "two = { worker = 1, timeout = 2 }\n",
                  limit);
}

/* Applies a new limit to "one" and remembers the slots held at that moment. */
static void hammer_set_limit(struct hammer *h, int limit) {
    RELOAD(h->srv, hammer_config(limit));
    h->limit = limit;
    json_t *one = THROTTLE_INFO(h->checker, "one");
    TH_EQ_INT(TH_JINT(one, "concurrency"), limit);
    json_t *holders = json_object_get(one, "holders");
    h->nheld_over = 0;
    size_t i;
    json_t *holder;
    json_array_foreach(holders, i, holder) {
        if (h->nheld_over < 8) {
            snprintf(h->held_over[h->nheld_over++], 64, "%s", TH_JSTR(holder, "jid"));
        }
    }
}

/* 50 workers fetch from a queue with one slot and a queue with one slot per worker, ACK, FAIL
 * or drop their connection at random, while the server is reloaded with other limits and
 * restarted (SIGKILL and SIGTERM). After quiescence every slot is free again and exactly the
 * configured number can be taken. */
static void hammer_then_free_slots_equal_limit(void) {
    static struct hammer h;
    memset(&h, 0, sizeof h);
    h.seed = 20261204;
    h.limit = 1;
    h.srv = start_with(hammer_config(1));
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        snprintf(h.workers[i].wid, sizeof h.workers[i].wid, "ham-wid-%02d", i);
    }
    hammer_connect_all(&h);
    hammer_refill(&h);

    hammer_run(&h, 2.5);
    hammer_set_limit(&h, 3);
    hammer_run(&h, 2.5);

    hammer_close_all(&h);
    th_server_kill(h.srv);
    th_server_restart(h.srv);
    hammer_connect_all(&h);
    h.nheld_over = 0;
    hammer_run(&h, 2.5);

    hammer_set_limit(&h, 1);
    hammer_run(&h, 2.5);
    hammer_close_all(&h);
    th_server_stop(h.srv);
    th_server_restart(h.srv);
    hammer_connect_all(&h);
    hammer_set_limit(&h, 2);
    hammer_run(&h, 2);

    hammer_refill(&h);
    /* Quiescence: every worker gone and every slot past its 2-second timeout. */
    for (int i = 0; i < HAMMER_WORKERS; i++) {
        th_close(h.workers[i].c);
        h.workers[i].c = NULL;
    }
    th_sleep_ms(2500);
    struct th_conn *p = h.checker;
    TH_CLOCK(p, 0);
    json_t *info = TH_INFO(p);
    TH_EQ_INT(TH_JINT(info, "faktory.throttles.one.in_use"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.throttles.two.in_use"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.throttles.one.taken"),
              TH_JINT(info, "faktory.throttles.one.released") +
                  TH_JINT(info, "faktory.throttles.one.timed_out"));

    /* The free slots equal the limit: two fresh workers get a job of "one", a third does not. */
    struct th_conn *x = th_worker(h.srv, "after-1");
    struct th_conn *y = th_worker(h.srv, "after-2");
    struct th_conn *z = th_worker(h.srv, "after-3");
    TH_CHECK(FETCH_OR_SKIP(x, "one") != NULL);
    TH_CHECK(FETCH_OR_SKIP(y, "one") != NULL);
    EXPECT_BLOCKED(z, "one");
    /* And exactly one slot of "two" per worker. */
    TH_CHECK(FETCH_OR_SKIP(z, "two") != NULL);
    EXPECT_BLOCKED(z, "two");
    printf("hammer: %d pushed, %d fetched, %d acked, %d failed, %d dropped\n", h.pushed,
           h.fetched, h.acked, h.failed, h.dropped);
    TH_CHECK(h.fetched > 100);
    TH_CHECK(h.dropped > 5);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server_binary = argv[i + 1];
        }
    }
    if (!server_binary) {
        server_binary = getenv("FABRIK_BIN");
    }
    static const struct th_case cases[] = {
        TH_CASE(concurrency_limits_holders_across_workers),
        TH_CASE(worker_limit_applies_per_wid),
        TH_CASE(fetch_skips_throttled_queue_in_order),
        TH_CASE(fetch_waits_when_every_queue_throttled),
        TH_CASE(wake_on_ack_and_fail),
        TH_CASE(wake_on_slot_timeout),
        TH_CASE(wake_on_reservation_expiry),
        TH_CASE(wake_when_rate_window_opens),
        TH_CASE(wake_on_raised_limit),
        TH_CASE(push_wakes_eligible_waiter_behind_full_worker),
        TH_CASE(freed_slot_reaches_eligible_waiter),
        TH_CASE(killed_worker_slot_returns_at_timeout),
        TH_CASE(failed_before_death_frees_at_once),
        TH_CASE(every_fail_outcome_frees_slot),
        TH_CASE(reservation_expiry_frees_slot),
        TH_CASE(reaped_worker_keeps_slot_until_timeout),
        TH_CASE(late_ack_after_timeout_frees_nothing),
        TH_CASE(flush_frees_every_slot),
        TH_CASE(flush_keeps_slot_accounting),
        TH_CASE(rate_limit_counts_starts_not_running),
        TH_CASE(concurrency_bounds_running_not_starts),
        TH_CASE(rate_and_concurrency_combined),
        TH_CASE(restart_rebuilds_slots_after_kill),
        TH_CASE(restart_rebuilds_slots_after_clean_stop),
        TH_CASE(rebuilt_slot_times_out_from_original_fetch),
        TH_CASE(slot_timed_out_during_downtime_is_free),
        TH_CASE(sighup_lowers_limit_keeping_slots),
        TH_CASE(sighup_raises_limit),
        TH_CASE(sighup_invalid_config_keeps_old),
        TH_CASE(sighup_keeps_rate_window),
        TH_CASE(sighup_removes_and_adds_throttles),
        TH_CASE(sighup_rejected_elsewhere_keeps_throttles),
        TH_CASE(invalid_config_fails_start),
        TH_CASE(info_absent_without_throttles),
        TH_CASE(info_shows_limits_holders_and_counters),
        TH_CASE(info_counts_waiting_fetchers),
        TH_CASE(info_caps_holders_at_100),
        TH_CASE(web_api_and_metrics_show_throttles),
        TH_CASE(web_without_throttles),
        TH_CASE(hammer_then_free_slots_equal_limit),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
