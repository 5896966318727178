/* Expiring jobs against the real server. A job carries custom.expires_at (an RFC 3339 time,
 * offsets allowed) or custom.expires_in (seconds from PUSH), and expires_at wins when both are
 * present. The cases cover validation at PUSH and PUSHB, jobs already expired at PUSH and FETCH
 * skipping expired jobs. They check the timer that removes expired jobs from the queues, the
 * scheduled set and the retry set but not from the working or dead set. They also check the
 * job_expired log line, INFO sizes, the fabrik_jobs_expired_total counter of /metrics and
 * restarts after SIGKILL. Server time moves
 * with DEBUG CLOCK, except in the cases that check the removal in real time. Several cases end
 * with SIGTERM and require exit status 0, so a sanitizer build also reports leaks there. */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- job fields ---- */

/* The "custom" member for TH_PUSH with expires_in set to the JSON number text seconds. */
static const char *custom_expires_in(const char *seconds) {
    return th_fmt("\"custom\":{\"expires_in\":%s}", seconds);
}

/* The "custom" member for TH_PUSH with expires_at set to the RFC 3339 text when. */
static const char *custom_expires_at(const char *when) {
    return th_fmt("\"custom\":{\"expires_at\":\"%s\"}", when);
}

/* The server's time plus seconds, as RFC 3339 UTC with nanoseconds. */
static const char *server_time_plus(struct th_conn *c, double seconds) {
    char *text = th_keep(malloc(64));
    th_format_time(TH_SERVER_TIME(c) + seconds, text, 64);
    return text;
}

/* Formats unix_seconds as RFC 3339 local time at a UTC offset of offset_minutes, for example
 * "2030-01-01T15:30:00.250000000+05:30". Without with_fraction the seconds are truncated and
 * written without a fraction. */
static const char *format_with_offset(double unix_seconds, int offset_minutes,
                                      bool with_fraction) {
    double local = unix_seconds + offset_minutes * 60.0;
    if (!with_fraction) {
        local = floor(local);
    }
    char text[64];
    th_format_time(local, text, sizeof text);
    *strchr(text, with_fraction ? 'Z' : '.') = '\0';
    int minutes = abs(offset_minutes);
    return th_fmt("%s%c%02d:%02d", text, offset_minutes < 0 ? '-' : '+', minutes / 60,
                  minutes % 60);
}

/* A scheduled job's "at" member, seconds after the server's current time. */
static const char *at_plus(struct th_conn *c, double seconds) {
    return th_fmt("\"at\":\"%s\"", server_time_plus(c, seconds));
}

/* ---- the server log ---- */

/* Whether line contains the logfmt field key=value, delimited by spaces or the line ends. */
static bool has_field(const char *line, const char *key, const char *value) {
    char *needle = th_fmt("%s=%s", key, value);
    size_t len = strlen(needle);
    for (const char *p = strstr(line, needle); p; p = strstr(p + 1, needle)) {
        bool starts = p == line || p[-1] == ' ';
        char after = p[len];
        if (starts && (after == ' ' || after == '\n' || after == '\r' || after == '\0')) {
            return true;
        }
    }
    return false;
}

/* Number of job_expired lines in the server log. With jid (and queue) set, only the lines
 * about that job count. */
static int count_expiry_lines(struct th_server *srv, const char *jid, const char *queue) {
    FILE *f = fopen(srv->log_path, "r");
    if (!f) {
        return 0;
    }
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!has_field(line, "event", "job_expired")) {
            continue;
        }
        if (jid && !has_field(line, "jid", jid)) {
            continue;
        }
        if (queue && !has_field(line, "queue", queue)) {
            continue;
        }
        n++;
    }
    fclose(f);
    return n;
}

/* Checks that the log has exactly one job_expired line for jid, naming queue. The server
 * writes the line before the reply that follows the removal, but the check waits up to 2 s
 * in case the log reaches the file later than the reply reaches the socket. */
static void expect_expiry_logged_at(const char *file, int line, struct th_server *srv,
                                    const char *jid, const char *queue) {
    double deadline = th_now() + 2;
    while (count_expiry_lines(srv, jid, queue) == 0 && th_now() < deadline) {
        th_sleep_ms(20);
    }
    int lines = count_expiry_lines(srv, jid, queue);
    if (lines != 1) {
        th_fail_at(file, line, "expected one line with event=job_expired jid=%s queue=%s in the "
                               "server log, found %d (lines for the jid in any queue: %d)",
                   jid, queue, lines, count_expiry_lines(srv, jid, NULL));
    }
}
#define EXPECT_EXPIRY_LOGGED(srv, jid, queue) \
    expect_expiry_logged_at(__FILE__, __LINE__, srv, jid, queue)

#define EXPECT_NO_EXPIRY_LOGGED(srv, jid) TH_EQ_INT(count_expiry_lines(srv, jid, NULL), 0)

/* ---- the web port and /metrics ---- */

/* The web port of the server of the current case. Each case runs in its own process. */
static int web_port;

static int pick_free_port(void) {
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

static bool port_accepts(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* Runs the server binary for srv with the web UI on port web, as the harness runs it
 * otherwise: same directories, log file and environment. */
static _Noreturn void exec_with_web(const struct th_server *srv, int web, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(126);
    }
    int log_fd = open(srv->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null_fd = open("/dev/null", O_RDONLY);
    if (log_fd < 0 || null_fd < 0) {
        _exit(126);
    }
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    unsetenv("FAKTORY_PASSWORD");
    unsetenv("FAKTORY_ENV");
    unsetenv("FAKTORY_SKIP_PASSWORD");
    char fwp_bind[64], web_bind[64];
    snprintf(fwp_bind, sizeof fwp_bind, "127.0.0.1:%d", srv->port);
    snprintf(web_bind, sizeof web_bind, "127.0.0.1:%d", web);
    const char *binary = th_server_binary();
    execl(binary, binary, "-b", fwp_bind, "-w", web_bind, "-d", srv->data_dir, "-c",
          srv->config_dir, "-e", "development", "-l", "debug", (char *)NULL);
    _exit(127);
}

/* Starts the stopped server srv again on its FWP port, with the web UI on a free port, and
 * waits until both accept connections. The harness starts servers with -w 127.0.0.1:0, which
 * disables the web UI, so the cases that read /metrics start the process themselves. They
 * keep the harness's struct, so the harness still kills the process and prints its log when
 * a case fails. */
static void spawn_with_web(struct th_server *srv) {
    for (int attempt = 0; attempt < 5; attempt++) {
        web_port = pick_free_port();
        fflush(stdout);
        fflush(stderr);
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
            th_fail("fork failed: %s", strerror(errno));
        }
        if (pid == 0) {
            exec_with_web(srv, web_port, parent);
        }
        srv->pid = pid;
        double deadline = th_now() + 10;
        while (srv->pid > 0 && !(port_accepts(srv->port) && port_accepts(web_port))) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                srv->pid = 0;   /* the web port was probably taken meanwhile: try another */
            } else if (th_now() > deadline) {
                th_fail("the server with a web port did not accept connections within 10 s");
            } else {
                th_sleep_ms(10);
            }
        }
        if (srv->pid > 0) {
            return;
        }
    }
    th_fail("the server with a web port exited during start-up 5 times");
}

/* A private server with its web UI on web_port and toml (when not NULL) as its
 * configuration. */
static struct th_server *start_with_web_config(const char *toml) {
    th_require_private_server();
    struct th_server_opts opts = {.toml = toml};
    struct th_server *srv = th_server_start(&opts);
    th_server_stop(srv);
    spawn_with_web(srv);
    return srv;
}

static struct th_server *start_with_web(void) {
    return start_with_web_config(NULL);
}

/* GET path on the web port over HTTP/1.0. Returns the body, which lives until the case ends,
 * and fails the case unless the status is 200. */
static char *http_get_ok(const char *path) {
    int port = web_port;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        th_fail("cannot connect to the web port %d: %s", port, strerror(errno));
    }
    struct timeval timeout = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    const char *request = th_fmt("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (send(fd, request, strlen(request), 0) != (ssize_t)strlen(request)) {
        th_fail("cannot send GET %s: %s", path, strerror(errno));
    }

    size_t len = 0, cap = 1 << 16;
    char *text = malloc(cap);
    for (;;) {
        if (text && len + 4096 > cap) {
            cap *= 2;
            char *grown = realloc(text, cap);
            if (!grown) {
                free(text);
            }
            text = grown;
        }
        if (!text) {
            th_fail("out of memory reading GET %s", path);
        }
        ssize_t n = recv(fd, text + len, cap - len - 1, 0);
        if (n < 0) {
            free(text);
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

    int status = 0;
    if (sscanf(text, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        th_fail("GET %s returned %.120s, expected status 200", path, text);
    }
    char *body = strstr(text, "\r\n\r\n");
    if (!body) {
        th_fail("GET %s: the reply has no end of headers", path);
    }
    return body + 4;
}

/* The value of the metric line that starts with name followed by a space, or NAN. */
static double metric_value(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            return strtod(line + n + 1, NULL);
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return NAN;
}

/* fabrik_jobs_expired_total from a fresh GET /metrics. Fails the case when it is missing. */
static double expired_total_at(const char *file, int line) {
    char *metrics = http_get_ok("/metrics");
    double value = metric_value(metrics, "fabrik_jobs_expired_total");
    if (isnan(value)) {
        th_fail_at(file, line, "/metrics has no fabrik_jobs_expired_total line");
    }
    return value;
}
#define EXPECT_EXPIRED_TOTAL(expected) TH_EQ_INT(expired_total_at(__FILE__, __LINE__), expected)

/* ---- connections ---- */

/* Sends the lines (each without its line ending) in one write, so the server reads them
 * together and handles a FETCH among them before its event loop can run a timer. */
static void send_together(struct th_conn *c, const char *const *lines, size_t count) {
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        total += strlen(lines[i]) + 2;
    }
    char *data = th_keep(malloc(total + 1));
    char *p = data;
    for (size_t i = 0; i < count; i++) {
        p += sprintf(p, "%s\r\n", lines[i]);
    }
    if (th_send_raw(c, data, total) != 0) {
        th_fail("the server closed the connection while the pipelined commands were sent");
    }
}

/* Reads the next reply on c and checks that it is the job jid. */
static void read_job_at(const char *file, int line, struct th_conn *c, const char *jid) {
    const struct th_reply *r = th_read(c, 10000);
    if (r->kind != TH_BULK) {
        th_fail_at(file, line, "expected job %s, got %s", jid, r->line ? r->line : "nothing");
    }
    json_t *job = th_json_at(file, line, r->body, r->body_len);
    th_check_str_at(file, line, "jid of the fetched job", th_json_str_at(file, line, job, "jid"),
                    jid);
}
#define READ_JOB(c, jid) read_job_at(__FILE__, __LINE__, c, jid)

/* Reads the next reply on c and checks that its first line is expected. */
static void read_line_at(const char *file, int line, struct th_conn *c, const char *expected) {
    th_read(c, 10000);
    th_check_reply_at(file, line, c, expected);
}
#define READ_LINE(c, expected) read_line_at(__FILE__, __LINE__, c, expected)

/* Polls INFO for up to 2 s of real time, without moving the clock, until the integer at path
 * equals expected, and fails with the last value otherwise. */
static void wait_info_at(const char *file, int line, struct th_conn *c, const char *path,
                         long long expected) {
    double deadline = th_now() + 2;
    long long value;
    while ((value = th_info_int_at(file, line, c, path)) != expected && th_now() < deadline) {
        th_sleep_ms(20);
    }
    th_check_int_at(file, line, path, value, expected);
}
#define WAIT_INFO(c, path, expected) wait_info_at(__FILE__, __LINE__, c, path, expected)

static void wait_queue_size_at(const char *file, int line, struct th_conn *c, const char *queue,
                               long long expected) {
    double deadline = th_now() + 2;
    long long size;
    while ((size = th_queue_size_at(file, line, c, queue)) != expected && th_now() < deadline) {
        th_sleep_ms(20);
    }
    th_check_int_at(file, line, th_fmt("size of queue %s", queue), size, expected);
}
/* Polls INFO like WAIT_INFO until queue has expected jobs. */
#define WAIT_QUEUE_SIZE(c, queue, expected) \
    wait_queue_size_at(__FILE__, __LINE__, c, queue, expected)

/* Fetches jid from queue and FAILs it, so it enters the retry set (or the dead set). */
static void fetch_and_fail(struct th_conn *c, const char *queue, const char *jid) {
    TH_FETCH_JID(c, queue, jid);
    TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"planned\"}", jid);
}

/* ---- both keys and their precedence ---- */

static void expires_in_removes_queued_job(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "in-live-0001", NULL);
    TH_PUSH(c, "in-expiring-0001", custom_expires_in("60"));
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    EXPECT_EXPIRED_TOTAL(0);

    TH_CLOCK(c, 59);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    EXPECT_NO_EXPIRY_LOGGED(srv, "in-expiring-0001");

    TH_CLOCK(c, 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    EXPECT_EXPIRY_LOGGED(srv, "in-expiring-0001", "default");
    EXPECT_EXPIRED_TOTAL(1);

    /* The expired job did not run, so it counts neither as processed nor as failed. */
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 0);
    TH_FETCH_JID(c, "default", "in-live-0001");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    th_server_stop(srv);
}

static void expires_in_accepts_fraction(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "in-fraction-0001", custom_expires_in("10.5"));

    /* Real time also passes between the commands, so the steps keep 0.5 s apart from 10.5. */
    TH_CLOCK(c, 10);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    TH_CLOCK(c, 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    EXPECT_EXPIRY_LOGGED(srv, "in-fraction-0001", "default");
}

static void expires_at_utc_removes_job(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "at-utc-0001", custom_expires_at(server_time_plus(c, 30)));
    TH_PUSH(c, "at-utc-0002", NULL);

    TH_CLOCK(c, 29);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    TH_CLOCK(c, 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    EXPECT_EXPIRY_LOGGED(srv, "at-utc-0001", "default");
    EXPECT_EXPIRED_TOTAL(1);
    TH_FETCH_JID(c, "default", "at-utc-0002");
}

/* The same instant written with different UTC offsets expires at the same server time. */
static void expires_at_honours_offsets(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    double now = TH_SERVER_TIME(c);
    TH_PUSH(c, "offset-east-0001", custom_expires_at(format_with_offset(now + 30, 330, true)));
    /* Without a fraction the time is truncated, so give it a second more. */
    TH_PUSH(c, "offset-west-0001", custom_expires_at(format_with_offset(now + 41, -420, false)));
    TH_PUSH(c, "offset-zero-0001", custom_expires_at(format_with_offset(now + 50, 0, true)));
    TH_PUSH(c, "offset-zero-0002", custom_expires_at(format_with_offset(now + 60, -1439, true)));

    TH_CLOCK(c, 29);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 4);
    TH_CLOCK(c, 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 3);
    EXPECT_EXPIRY_LOGGED(srv, "offset-east-0001", "default");
    TH_CLOCK(c, 8);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 3);
    TH_CLOCK(c, 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    EXPECT_EXPIRY_LOGGED(srv, "offset-west-0001", "default");
    TH_CLOCK(c, 10);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    EXPECT_EXPIRY_LOGGED(srv, "offset-zero-0001", "default");
    TH_CLOCK(c, 10);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    EXPECT_EXPIRY_LOGGED(srv, "offset-zero-0002", "default");
    EXPECT_EXPIRED_TOTAL(4);
}

static void expires_at_wins_over_expires_in(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "both-at-later", th_fmt("\"custom\":{\"expires_at\":\"%s\",\"expires_in\":10}",
                                       server_time_plus(c, 100)));
    TH_PUSH(c, "both-at-sooner", th_fmt("\"custom\":{\"expires_in\":100,\"expires_at\":\"%s\"}",
                                        server_time_plus(c, 10)));

    TH_CLOCK(c, 20);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    EXPECT_EXPIRY_LOGGED(srv, "both-at-sooner", "default");
    EXPECT_NO_EXPIRY_LOGGED(srv, "both-at-later");

    TH_CLOCK(c, 70);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    TH_CLOCK(c, 11);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    EXPECT_EXPIRY_LOGGED(srv, "both-at-later", "default");
    EXPECT_EXPIRED_TOTAL(2);
}

/* The expiry keys stay in the job as sent, next to any other custom data. */
static void custom_kept_as_sent(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "kept-in-0001", "\"custom\":{\"expires_in\":3600.5,\"note\":\"x\"}");
    TH_PUSH(c, "kept-in-0002", custom_expires_in("3600"));
    TH_PUSH(c, "kept-at-0001", custom_expires_at("2999-01-01T10:00:00.5+05:30"));

    json_t *job = TH_FETCH_JID(c, "default", "kept-in-0001");
    json_t *seconds = th_json_get(job, "custom.expires_in");
    TH_CHECK(json_is_real(seconds));
    TH_RANGE(json_real_value(seconds), 3600.5, 3600.5);
    TH_EQ_STR(TH_JSTR(job, "custom.note"), "x");

    job = TH_FETCH_JID(c, "default", "kept-in-0002");
    TH_EQ_INT(TH_JINT(job, "custom.expires_in"), 3600);

    job = TH_FETCH_JID(c, "default", "kept-at-0001");
    TH_EQ_STR(TH_JSTR(job, "custom.expires_at"), "2999-01-01T10:00:00.5+05:30");
}

static void job_without_expiry_never_expires(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "plain-0001", NULL);
    TH_PUSH(c, "plain-0002", "\"custom\":{}");
    TH_PUSH(c, "plain-0003", "\"custom\":{\"expires\":1,\"expire_in\":1,\"ttl\":1}");
    TH_PUSH(c, "plain-0004", at_plus(c, 3600));

    /* Ten years later every job is still there, and the scheduled one came due. */
    TH_CLOCK(c, 10 * 365 * 86400.0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 4);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    EXPECT_EXPIRED_TOTAL(0);
    TH_EQ_INT(count_expiry_lines(srv, NULL, NULL), 0);
    for (int i = 1; i <= 4; i++) {
        TH_FETCH_JID(c, "default", th_fmt("plain-%04d", i));
    }
}

/* Expiries far in the future are valid and do not overflow the server's time arithmetic. */
static void distant_expiry_accepted(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "far-0001", custom_expires_in("9223372036854775807"));
    TH_PUSH(c, "far-0002", custom_expires_in("1e300"));
    TH_PUSH(c, "far-0003", custom_expires_in("1.7976931348623157e308"));
    TH_PUSH(c, "far-0004", custom_expires_at("9999-12-31T23:59:59.999999999Z"));
    TH_PUSH(c, "far-0005", custom_expires_at("9999-12-31T23:59:59-23:59"));

    /* DEBUG CLOCK moves at most 1e9 s (about 31 years) per step. */
    TH_CLOCK(c, 30 * 365 * 86400.0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 5);
    EXPECT_EXPIRED_TOTAL(0);
    for (int i = 1; i <= 5; i++) {
        TH_FETCH_JID(c, "default", th_fmt("far-%04d", i));
    }
    th_server_stop(srv);
}

/* ---- invalid values ---- */

struct invalid_expiry {
    const char *custom;   /* the custom object sent */
    const char *field;    /* the key the error message must name */
};

static const struct invalid_expiry invalid_expiries[] = {
    {"{\"expires_at\":\"tomorrow\"}", "expires_at"},
    {"{\"expires_at\":\"\"}", "expires_at"},
    {"{\"expires_at\":\"2030-01-01\"}", "expires_at"},
    {"{\"expires_at\":\"2030-01-01T10:00:00\"}", "expires_at"},
    {"{\"expires_at\":\"2030-01-01T10:00Z\"}", "expires_at"},
    {"{\"expires_at\":\"2030-13-01T10:00:00Z\"}", "expires_at"},
    {"{\"expires_at\":\"2030-02-30T10:00:00Z\"}", "expires_at"},
    {"{\"expires_at\":\"2030-01-01T25:00:00Z\"}", "expires_at"},
    {"{\"expires_at\":\"2030-01-01T10:00:00+24:00\"}", "expires_at"},
    {"{\"expires_at\":\"2030-01-01T10:00:00Z trailing\"}", "expires_at"},
    {"{\"expires_at\":\"1893456000\"}", "expires_at"},
    {"{\"expires_at\":1893456000}", "expires_at"},
    {"{\"expires_at\":true}", "expires_at"},
    {"{\"expires_at\":[\"2030-01-01T10:00:00Z\"]}", "expires_at"},
    {"{\"expires_at\":{}}", "expires_at"},
    /* expires_at wins, so its invalid value is the error even next to a valid expires_in. */
    {"{\"expires_at\":\"tomorrow\",\"expires_in\":60}", "expires_at"},
    {"{\"expires_in\":\"60\"}", "expires_in"},
    {"{\"expires_in\":\"soon\"}", "expires_in"},
    {"{\"expires_in\":0}", "expires_in"},
    {"{\"expires_in\":0.0}", "expires_in"},
    {"{\"expires_in\":-0.0}", "expires_in"},
    {"{\"expires_in\":-1}", "expires_in"},
    {"{\"expires_in\":-0.5}", "expires_in"},
    {"{\"expires_in\":-9223372036854775807}", "expires_in"},
    {"{\"expires_in\":true}", "expires_in"},
    {"{\"expires_in\":[60]}", "expires_in"},
    {"{\"expires_in\":{}}", "expires_in"},
};

/* Sends PUSH body and checks that the reply is an -ERR naming field. */
static void expect_rejected_at(const char *file, int line, struct th_conn *c, const char *body,
                               const char *field) {
    const struct th_reply *r = th_cmd(c, "PUSH %s", body);
    if (r->kind != TH_ERROR || strncmp(r->line, "-ERR ", 5) != 0) {
        th_fail_at(file, line, "PUSH %s returned %s, expected -ERR naming %s", body,
                   r->line ? r->line : "nothing", field);
    }
    if (!strstr(r->line, field)) {
        th_fail_at(file, line, "PUSH %s returned \"%s\", which does not name %s", body, r->line,
                   field);
    }
}
#define EXPECT_REJECTED(c, body, field) expect_rejected_at(__FILE__, __LINE__, c, body, field)

static void invalid_expiry_rejected_at_push(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *at = at_plus(c, 3600);
    size_t count = sizeof invalid_expiries / sizeof invalid_expiries[0];
    for (size_t i = 0; i < count; i++) {
        const struct invalid_expiry *bad = &invalid_expiries[i];
        EXPECT_REJECTED(c,
                        th_fmt("{\"jid\":\"bad-now-%02zu\",\"jobtype\":\"T\",\"args\":[],"
                               "\"custom\":%s}",
                               i, bad->custom),
                        bad->field);
        /* A scheduled job and another queue are checked the same way. */
        EXPECT_REJECTED(c,
                        th_fmt("{\"jid\":\"bad-later-%02zu\",\"jobtype\":\"T\",\"args\":[],"
                               "\"queue\":\"other\",%s,\"custom\":%s}",
                               i, at, bad->custom),
                        bad->field);
    }

    /* Nothing was stored, and the connection still takes valid jobs. */
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 0);
    TH_CHECK(json_object_get(th_json_get(info, "faktory.queues"), "default") == NULL ||
             TH_JINT(info, "faktory.queues.default") == 0);
    TH_CHECK(json_object_get(th_json_get(info, "faktory.queues"), "other") == NULL ||
             TH_JINT(info, "faktory.queues.other") == 0);
    TH_PUSH(c, "good-0001", custom_expires_in("60"));
    TH_FETCH_JID(c, "default", "good-0001");
    th_server_stop(srv);
}

static void invalid_expiry_rejected_in_pushb(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const struct th_reply *r =
        th_cmd(c, "PUSHB [{\"jid\":\"bulk-ok-0001\",\"jobtype\":\"T\",\"args\":[],"
                  "\"custom\":{\"expires_in\":60}},"
                  "{\"jid\":\"bulk-bad-at\",\"jobtype\":\"T\",\"args\":[],"
                  "\"custom\":{\"expires_at\":\"next week\"}},"
                  "{\"jid\":\"bulk-bad-in\",\"jobtype\":\"T\",\"args\":[],"
                  "\"custom\":{\"expires_in\":\"60\"}},"
                  "{\"jid\":\"bulk-ok-0002\",\"jobtype\":\"T\",\"args\":[]}]");
    TH_EQ_INT(r->kind, TH_BULK);
    json_t *errors = TH_JSON(r->body, r->body_len);
    TH_EQ_INT(json_object_size(errors), 2);
    TH_CHECK(strstr(TH_JSTR(errors, "bulk-bad-at"), "expires_at") != NULL);
    TH_CHECK(strstr(TH_JSTR(errors, "bulk-bad-in"), "expires_in") != NULL);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    TH_FETCH_JID(c, "default", "bulk-ok-0001");
    TH_FETCH_JID(c, "default", "bulk-ok-0002");
    th_server_stop(srv);
}

/* ---- expiry already past at PUSH ---- */

/* Checks that every job jid_prefix-0.. with the expires_at values in past is accepted, never
 * fetched, removed from the queue, logged and counted. */
static void check_past_expiries(const char *const *past, int count, const char *jid_prefix) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    for (int i = 0; i < count; i++) {
        TH_PUSH(c, th_fmt("%s-%d", jid_prefix, i), custom_expires_at(past[i]));
    }
    TH_PUSH(c, "past-live", NULL);

    TH_FETCH_JID(c, "default", "past-live");
    WAIT_QUEUE_SIZE(c, "default", 0);
    for (int i = 0; i < count; i++) {
        EXPECT_EXPIRY_LOGGED(srv, th_fmt("%s-%d", jid_prefix, i), "default");
    }
    EXPECT_EXPIRED_TOTAL(count);
    TH_EXPECT(c, "$-1", "FETCH default");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
}

static void past_expiry_accepted_never_runs(void) {
    th_require_private_server();
    char recent[64];
    th_format_time((double)time(NULL) - 10, recent, sizeof recent);
    const char *const past[] = {
        recent,
        "2000-01-01T00:00:00Z",
        "2000-01-01T05:30:00+05:30",
        "1970-01-01T00:00:01Z",
    };
    check_past_expiries(past, sizeof past / sizeof past[0], "past-job");
}

/* Times at or before the Unix epoch are as valid as any other time in the past. */
static void expiry_at_or_before_epoch_never_runs(void) {
    static const char *const past[] = {
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
    };
    check_past_expiries(past, sizeof past / sizeof past[0], "epoch-job");
}

static void past_expiry_scheduled_job_dropped(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "past-sched-0001",
            th_fmt("%s,%s", at_plus(c, 60), custom_expires_at(server_time_plus(c, -1))));
    TH_PUSH(c, "past-sched-0002", th_fmt("%s,%s", at_plus(c, 60), custom_expires_in("0.001")));
    th_sleep_ms(50);

    TH_CLOCK(c, 0);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    EXPECT_EXPIRY_LOGGED(srv, "past-sched-0001", "default");
    EXPECT_EXPIRY_LOGGED(srv, "past-sched-0002", "default");
    TH_CLOCK(c, 61);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    EXPECT_EXPIRED_TOTAL(2);
}

/* ---- FETCH skips expired jobs ---- */

/* The PUSHes and FETCHes go in one write, so FETCH meets jobs that expired before the removal
 * timer could run. Each expired job would be fetched first if FETCH did not skip it: it is
 * older, or has a higher priority. */
static void fetch_skips_expired_in_same_queue(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    const char *past = server_time_plus(c, -5);
    const char *lines[] = {
        th_fmt("PUSH {\"jid\":\"skip-old-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"q1\","
               "\"custom\":{\"expires_at\":\"%s\"}}", past),
        "PUSH {\"jid\":\"skip-live-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"q1\"}",
        th_fmt("PUSH {\"jid\":\"skip-urgent-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"q1\","
               "\"priority\":9,\"custom\":{\"expires_at\":\"%s\"}}", past),
        "PUSH {\"jid\":\"skip-old-0002\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"q1\","
        "\"custom\":{\"expires_at\":\"1999-12-31T23:59:59+01:00\"}}",
        "PUSH {\"jid\":\"skip-live-0002\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"q1\"}",
        "PUSH {\"jid\":\"skip-next-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"q2\"}",
        "FETCH q1 q2",
        "FETCH q1 q2",
        "FETCH q1 q2",
    };
    send_together(c, lines, sizeof lines / sizeof lines[0]);
    for (int i = 0; i < 6; i++) {
        READ_LINE(c, "+OK");
    }
    READ_JOB(c, "skip-live-0001");
    READ_JOB(c, "skip-live-0002");
    READ_JOB(c, "skip-next-0001");

    WAIT_QUEUE_SIZE(c, "q1", 0);
    EXPECT_EXPIRY_LOGGED(srv, "skip-old-0001", "q1");
    EXPECT_EXPIRY_LOGGED(srv, "skip-urgent-0001", "q1");
    EXPECT_EXPIRY_LOGGED(srv, "skip-old-0002", "q1");
    EXPECT_EXPIRED_TOTAL(3);
    TH_INFO_EQ(c, "faktory.sets.working", 3);
}

static void fetch_skips_to_next_queue(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    const char *past = server_time_plus(c, -5);
    const char *lines[] = {
        th_fmt("PUSH {\"jid\":\"next-gone-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"first\","
               "\"custom\":{\"expires_at\":\"%s\"}}", past),
        th_fmt("PUSH {\"jid\":\"next-gone-0002\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"first\","
               "\"custom\":{\"expires_at\":\"%s\"}}", past),
        "PUSH {\"jid\":\"next-live-0001\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"second\"}",
        th_fmt("PUSH {\"jid\":\"next-gone-0003\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"third\","
               "\"custom\":{\"expires_at\":\"%s\"}}", past),
        "PUSH {\"jid\":\"next-live-0002\",\"jobtype\":\"T\",\"args\":[],\"queue\":\"third\"}",
        "FETCH first second third",
        "FETCH first third second",
    };
    send_together(c, lines, sizeof lines / sizeof lines[0]);
    for (int i = 0; i < 5; i++) {
        READ_LINE(c, "+OK");
    }
    READ_JOB(c, "next-live-0001");
    READ_JOB(c, "next-live-0002");

    WAIT_QUEUE_SIZE(c, "first", 0);
    WAIT_QUEUE_SIZE(c, "third", 0);
    EXPECT_EXPIRED_TOTAL(3);
    TH_EXPECT(c, "$-1", "FETCH first second third");
}

/* More expired jobs than one removal pass may take, all ahead of one live job. */
static void fetch_skips_many_expired(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    enum { BATCHES = 3, PER_BATCH = 1000 };
    const char *past = server_time_plus(c, -5);
    const char *lines[BATCHES + 2];
    for (int b = 0; b < BATCHES; b++) {
        size_t cap = (size_t)PER_BATCH * 160 + 16;
        char *line = th_keep(malloc(cap));
        size_t len = (size_t)snprintf(line, cap, "PUSHB [");
        for (int i = 0; i < PER_BATCH; i++) {
            len += (size_t)snprintf(line + len, cap - len,
                                    "%s{\"jid\":\"many-%d-%04d\",\"jobtype\":\"T\",\"args\":[],"
                                    "\"queue\":\"many\",\"custom\":{\"expires_at\":\"%s\"}}",
                                    i ? "," : "", b, i, past);
        }
        snprintf(line + len, cap - len, "]");
        lines[b] = line;
    }
    lines[BATCHES] = "PUSH {\"jid\":\"many-live\",\"jobtype\":\"T\",\"args\":[],"
                     "\"queue\":\"many\"}";
    lines[BATCHES + 1] = "FETCH many";
    send_together(c, lines, BATCHES + 2);
    for (int b = 0; b < BATCHES; b++) {
        const struct th_reply *r = th_read(c, 30000);
        TH_EQ_STR(r->line, "$2");
        TH_EQ_STR(r->body, "{}");
    }
    READ_LINE(c, "+OK");
    READ_JOB(c, "many-live");

    WAIT_QUEUE_SIZE(c, "many", 0);
    EXPECT_EXPIRED_TOTAL(BATCHES * PER_BATCH);
    TH_EQ_INT(count_expiry_lines(srv, NULL, "many"), BATCHES * PER_BATCH);
    th_server_stop(srv);
}

/* FETCH on a queue that contains only expired jobs, more than one removal pass may take,
 * returns nothing, and the queue size ends at 0 once they are removed. */
static void fetch_on_expired_only_queue(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    enum { JOBS = 1500 };
    const char *past = server_time_plus(c, -5);
    size_t cap = (size_t)JOBS * 160 + 16;
    char *pushb = th_keep(malloc(cap));
    size_t len = (size_t)snprintf(pushb, cap, "PUSHB [");
    for (int i = 0; i < JOBS; i++) {
        len += (size_t)snprintf(pushb + len, cap - len,
                                "%s{\"jid\":\"stale-%04d\",\"jobtype\":\"T\",\"args\":[],"
                                "\"queue\":\"stale\",\"custom\":{\"expires_at\":\"%s\"}}",
                                i ? "," : "", i, past);
    }
    snprintf(pushb + len, cap - len, "]");
    const char *lines[] = {pushb, "FETCH stale"};
    send_together(c, lines, 2);
    const struct th_reply *r = th_read(c, 30000);
    TH_EQ_STR(r->line, "$2");
    TH_EQ_STR(r->body, "{}");
    READ_LINE(c, "$-1");

    WAIT_QUEUE_SIZE(c, "stale", 0);
    TH_CLOCK(c, 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "stale"), 0);
    EXPECT_EXPIRED_TOTAL(JOBS);
    TH_PUSH(c, "stale-live", "\"queue\":\"stale\"");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "stale"), 1);
    TH_FETCH_JID(c, "stale", "stale-live");
}

/* A FETCH that waits on an empty queue is not woken with a job pushed already expired. */
static void waiting_fetch_not_given_expired_push(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_producer(srv);
    th_send(w, "FETCH wake");
    th_sleep_ms(200);
    TH_PUSH(p, "wake-gone-0001", th_fmt("\"queue\":\"wake\",%s",
                                        custom_expires_at(server_time_plus(p, -1))));
    const struct th_reply *r = th_read(w, 5000);
    TH_EQ_STR(r->line, "$-1");
    TH_EQ_INT(TH_QUEUE_SIZE(p, "wake"), 0);
    EXPECT_EXPIRY_LOGGED(srv, "wake-gone-0001", "wake");
}

/* A scheduled job whose due time and expiry both pass in one clock step is not handed to the
 * FETCH waiting on its queue. */
static void waiting_fetch_not_given_expired_due_job(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_producer(srv);
    TH_PUSH(p, "due-gone-0001", th_fmt("\"queue\":\"due\",%s,%s", at_plus(p, 30),
                                       custom_expires_in("31")));
    th_send(w, "FETCH due");
    th_sleep_ms(200);
    TH_CLOCK(p, 40);
    const struct th_reply *r = th_read(w, 5000);
    TH_EQ_STR(r->line, "$-1");
    TH_EQ_INT(TH_QUEUE_SIZE(p, "due"), 0);
    TH_INFO_EQ(p, "faktory.sets.scheduled", 0);
    EXPECT_EXPIRY_LOGGED(srv, "due-gone-0001", "due");
    EXPECT_EXPIRED_TOTAL(1);
}

/* Same for a retry that comes due after its expiry. */
static void waiting_fetch_not_given_expired_retry(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_producer(srv);
    TH_PUSH(p, "retry-gone-0001", th_fmt("\"queue\":\"again\",%s", custom_expires_in("50")));
    fetch_and_fail(p, "again", "retry-gone-0001");
    TH_INFO_EQ(p, "faktory.sets.retries", 1);
    th_send(w, "FETCH again");
    th_sleep_ms(200);
    /* The first retry is due 15 to 44 s after the failure, the expiry 50 s after the push. */
    TH_CLOCK(p, 60);
    const struct th_reply *r = th_read(w, 5000);
    TH_EQ_STR(r->line, "$-1");
    TH_EQ_INT(TH_QUEUE_SIZE(p, "again"), 0);
    TH_INFO_EQ(p, "faktory.sets.retries", 0);
    EXPECT_EXPIRY_LOGGED(srv, "retry-gone-0001", "again");
}

/* ---- the removal timer in each set ---- */

static void scheduled_job_expires_before_due(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "sched-gone-0001", th_fmt("\"queue\":\"later\",%s,%s", at_plus(c, 100),
                                         custom_expires_in("50")));
    TH_PUSH(c, "sched-live-0001", th_fmt("\"queue\":\"later\",%s", at_plus(c, 100)));
    TH_INFO_EQ(c, "faktory.sets.scheduled", 2);

    TH_CLOCK(c, 49);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 2);
    TH_CLOCK(c, 2);
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Scheduled.size"), 1);
    EXPECT_EXPIRY_LOGGED(srv, "sched-gone-0001", "later");
    EXPECT_EXPIRED_TOTAL(1);

    /* At the due time only the job without an expiry enters the queue. */
    TH_CLOCK(c, 50);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "later"), 1);
    TH_FETCH_JID(c, "later", "sched-live-0001");
    EXPECT_EXPIRED_TOTAL(1);
    th_server_stop(srv);
}

/* A scheduled job whose expiry comes after its due time enters its queue when due, and leaves
 * the queue at its expiry when no FETCH took it. */
static void scheduled_job_expires_in_queue(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "sched-late-0001", th_fmt("\"queue\":\"later\",%s,%s", at_plus(c, 30),
                                         custom_expires_in("100")));
    TH_CLOCK(c, 31);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "later"), 1);
    TH_CLOCK(c, 68);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "later"), 1);
    TH_CLOCK(c, 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "later"), 0);
    EXPECT_EXPIRY_LOGGED(srv, "sched-late-0001", "later");
    EXPECT_EXPIRED_TOTAL(1);
}

static void retry_expires_while_waiting(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "retry-wait-0001", custom_expires_in("10"));
    TH_PUSH(c, "retry-wait-0002", NULL);
    fetch_and_fail(c, "default", "retry-wait-0001");
    fetch_and_fail(c, "default", "retry-wait-0002");
    TH_INFO_EQ(c, "faktory.sets.retries", 2);

    /* The first retry is due 15 s after the failure at the earliest. */
    TH_CLOCK(c, 11);
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Retries.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 2);
    EXPECT_EXPIRY_LOGGED(srv, "retry-wait-0001", "default");
    EXPECT_EXPIRED_TOTAL(1);

    TH_CLOCK(c, 60);
    TH_INFO_EQ(c, "faktory.sets.retries", 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    TH_FETCH_JID(c, "default", "retry-wait-0002");
    th_server_stop(srv);
}

/* A job that is running when its expiry passes runs on and can be ACKed. */
static void working_job_left_alone(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "work-ack-0001", custom_expires_in("10"));
    TH_FETCH_JID(c, "default", "work-ack-0001");
    TH_CLOCK(c, 20);
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Busy.size"), 1);
    EXPECT_NO_EXPIRY_LOGGED(srv, "work-ack-0001");
    EXPECT_EXPIRED_TOTAL(0);

    TH_OK(c, "ACK {\"jid\":\"work-ack-0001\"}");
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 0);
    EXPECT_EXPIRED_TOTAL(0);
}

/* A running job FAILed after its expiry is not retried: it leaves the retry set without any
 * clock step, because its expiry has already passed. */
static void job_failed_after_expiry_not_retried(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "work-fail-0001", custom_expires_in("10"));
    TH_FETCH_JID(c, "default", "work-fail-0001");
    TH_CLOCK(c, 20);
    TH_OK(c, "FAIL {\"jid\":\"work-fail-0001\",\"errtype\":\"E\",\"message\":\"late\"}");
    TH_INFO_EQ(c, "faktory.total_failures", 1);

    WAIT_INFO(c, "faktory.sets.retries", 0);
    EXPECT_EXPIRY_LOGGED(srv, "work-fail-0001", "default");
    EXPECT_EXPIRED_TOTAL(1);
    TH_CLOCK(c, 60);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    TH_INFO_EQ(c, "faktory.sets.dead", 0);
}

/* A reservation that times out after the job's expiry does not put the job back. */
static void expired_reservation_not_requeued(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "resv-gone-0001", th_fmt("\"reserve_for\":60,%s", custom_expires_in("30")));
    TH_FETCH_JID(c, "default", "resv-gone-0001");
    TH_CLOCK(c, 40);
    TH_INFO_EQ(c, "faktory.sets.working", 1);
    EXPECT_EXPIRED_TOTAL(0);

    TH_CLOCK(c, 21);
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    EXPECT_EXPIRY_LOGGED(srv, "resv-gone-0001", "default");
    EXPECT_EXPIRED_TOTAL(1);
    TH_CLOCK(c, 60);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    th_server_stop(srv);
}

/* The dead set keeps an expired job for inspection. Moved back to its queue, it is expired and
 * is removed from there without running. */
static void dead_job_kept_after_expiry(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "dead-0001", th_fmt("\"retry\":-1,%s", custom_expires_in("10")));
    fetch_and_fail(c, "default", "dead-0001");
    TH_INFO_EQ(c, "faktory.sets.dead", 1);

    TH_CLOCK(c, 20);
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Dead.size"), 1);
    EXPECT_NO_EXPIRY_LOGGED(srv, "dead-0001");
    EXPECT_EXPIRED_TOTAL(0);

    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\",\"filter\":{\"jids\":"
             "[\"dead-0001\"]}}");
    TH_INFO_EQ(c, "faktory.sets.dead", 0);
    WAIT_QUEUE_SIZE(c, "default", 0);
    EXPECT_EXPIRY_LOGGED(srv, "dead-0001", "default");
    EXPECT_EXPIRED_TOTAL(1);
    TH_EXPECT(c, "$-1", "FETCH default");
}

/* An expired job back from the dead set that FETCH skipped, and a live job fetched after
 * it, leave the queue size at 0 once the expired job is removed. */
static void skipped_requeued_job_keeps_size_exact(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "dead-0002", th_fmt("\"retry\":-1,%s", custom_expires_in("10")));
    fetch_and_fail(c, "default", "dead-0002");
    TH_CLOCK(c, 20);
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\"}");
    TH_EXPECT(c, "$-1", "FETCH default");
    TH_PUSH(c, "live-0002", NULL);
    TH_FETCH_JID(c, "default", "live-0002");

    TH_CLOCK(c, 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    EXPECT_EXPIRY_LOGGED(srv, "dead-0002", "default");
    EXPECT_EXPIRED_TOTAL(1);
    th_server_kill(srv);
    spawn_with_web(srv);
    c = th_producer(srv);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
}

static void paused_queue_loses_expired_job(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "QUEUE PAUSE held");
    TH_PUSH(c, "paused-gone-0001", th_fmt("\"queue\":\"held\",%s", custom_expires_in("10")));
    TH_PUSH(c, "paused-live-0001", "\"queue\":\"held\"");
    TH_CLOCK(c, 11);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "held"), 1);
    EXPECT_EXPIRY_LOGGED(srv, "paused-gone-0001", "held");
    TH_OK(c, "QUEUE RESUME held");
    TH_FETCH_JID(c, "held", "paused-live-0001");
}

/* ---- real time ---- */

/* Without DEBUG CLOCK or FETCH, the timer removes the job at its expiry and not before. */
static void timer_removes_job_in_real_time(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    double pushed = th_now();
    TH_PUSH(c, "real-0001", th_fmt("\"queue\":\"real\",%s", custom_expires_in("1.5")));
    th_sleep_ms(700);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "real"), 1);

    double deadline = pushed + 4;
    while (TH_QUEUE_SIZE(c, "real") != 0 && th_now() < deadline) {
        th_sleep_ms(20);
    }
    double removed = th_now() - pushed;
    TH_EQ_INT(TH_QUEUE_SIZE(c, "real"), 0);
    TH_RANGE(removed, 1.4, 3.0);
    EXPECT_EXPIRY_LOGGED(srv, "real-0001", "real");
    EXPECT_EXPIRED_TOTAL(1);
}

/* A job that expires 2 s after its PUSH, then FETCH 3 s later: FETCH returns the next job,
 * the expired one leaves no trace in the queue and is counted. */
static void expired_job_silently_discarded(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "expiring-a", custom_expires_at(server_time_plus(c, 2)));
    TH_PUSH(c, "plain-job-b", NULL);
    th_sleep_ms(3000);
    TH_FETCH_JID(c, "default", "plain-job-b");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    EXPECT_EXPIRY_LOGGED(srv, "expiring-a", "default");
    EXPECT_EXPIRED_TOTAL(1);
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 0);
}

/* ---- counters ---- */

static void counters_in_info_and_metrics(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    char *metrics = http_get_ok("/metrics");
    TH_CHECK(strstr(metrics, "# TYPE fabrik_jobs_expired_total counter\n") != NULL);
    TH_RANGE(metric_value(metrics, "fabrik_jobs_expired_total"), 0, 0);

    const char *ten = custom_expires_in("10");
    for (int i = 1; i <= 3; i++) {
        TH_PUSH(c, th_fmt("count-queued-%d", i), th_fmt("\"queue\":\"counted\",%s", ten));
    }
    TH_PUSH(c, "count-live-1", "\"queue\":\"counted\"");
    for (int i = 1; i <= 2; i++) {
        TH_PUSH(c, th_fmt("count-sched-%d", i),
                th_fmt("\"queue\":\"later\",%s,%s", at_plus(c, 500), ten));
    }
    TH_PUSH(c, "count-sched-live", th_fmt("\"queue\":\"later\",%s", at_plus(c, 500)));
    TH_PUSH(c, "count-retry-1", th_fmt("\"queue\":\"failing\",%s", ten));
    fetch_and_fail(c, "failing", "count-retry-1");
    TH_PUSH(c, "count-dead-1", th_fmt("\"queue\":\"failing\",\"retry\":-1,%s", ten));
    fetch_and_fail(c, "failing", "count-dead-1");
    TH_PUSH(c, "count-work-1", th_fmt("\"queue\":\"failing\",%s", ten));
    TH_FETCH_JID(c, "failing", "count-work-1");

    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.counted"), 4);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 1);
    long long processed = TH_JINT(info, "faktory.total_processed");
    long long failures = TH_JINT(info, "faktory.total_failures");

    TH_CLOCK(c, 11);
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.counted"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Scheduled.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Retries.size"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Dead.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), processed);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), failures);
    EXPECT_EXPIRED_TOTAL(6);

    for (int i = 1; i <= 3; i++) {
        EXPECT_EXPIRY_LOGGED(srv, th_fmt("count-queued-%d", i), "counted");
    }
    EXPECT_EXPIRY_LOGGED(srv, "count-sched-1", "later");
    EXPECT_EXPIRY_LOGGED(srv, "count-sched-2", "later");
    EXPECT_EXPIRY_LOGGED(srv, "count-retry-1", "failing");
    EXPECT_NO_EXPIRY_LOGGED(srv, "count-dead-1");
    EXPECT_NO_EXPIRY_LOGGED(srv, "count-work-1");
    TH_EQ_INT(count_expiry_lines(srv, NULL, NULL), 6);
    th_server_stop(srv);
}

/* Thousands of jobs expiring at the same moment are all gone when DEBUG CLOCK replies. */
static void many_expire_in_one_step(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    enum { BATCHES = 3, PER_BATCH = 1000, LIVE = 10 };
    for (int b = 0; b < BATCHES; b++) {
        size_t cap = (size_t)PER_BATCH * 128 + 16;
        char *body = th_keep(malloc(cap));
        size_t len = (size_t)snprintf(body, cap, "[");
        for (int i = 0; i < PER_BATCH; i++) {
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"jid\":\"bulk-%d-%04d\",\"jobtype\":\"T\",\"args\":[],"
                                    "\"queue\":\"bulk\",\"custom\":{\"expires_in\":30}}",
                                    i ? "," : "", b, i);
        }
        snprintf(body + len, cap - len, "]");
        TH_EXPECT_RAW(c, "$2\r\n{}\r\n", "PUSHB %s", body);
    }
    for (int i = 0; i < LIVE; i++) {
        TH_PUSH(c, th_fmt("bulk-live-%02d", i), "\"queue\":\"bulk\"");
    }
    TH_EQ_INT(TH_QUEUE_SIZE(c, "bulk"), BATCHES * PER_BATCH + LIVE);

    TH_CLOCK(c, 31);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "bulk"), LIVE);
    EXPECT_EXPIRED_TOTAL(BATCHES * PER_BATCH);
    TH_EQ_INT(count_expiry_lines(srv, NULL, "bulk"), BATCHES * PER_BATCH);
    for (int i = 0; i < LIVE; i++) {
        TH_FETCH_JID(c, "bulk", th_fmt("bulk-live-%02d", i));
    }
    th_server_stop(srv);
}

/* ---- cron ---- */

/* A cron entry whose job template sets custom.expires_in pushes runs that expire that many
 * seconds after the run. */
static void cron_run_expires(void) {
    struct th_server *srv = start_with_web_config("[[cron]]\n"
                                                  "schedule = \"* * * * *\"\n"
                                                  "[cron.job]\n"
                                                  "type = \"Minutely\"\n"
                                                  "queue = \"cronq\"\n"
                                                  "[cron.job.custom]\n"
                                                  "expires_in = 30\n");
    struct th_conn *c = th_producer(srv);

    /* Step to half a second past the next minute, when the entry runs. */
    double now = TH_SERVER_TIME(c);
    TH_CLOCK(c, 60 - fmod(now, 60) + 0.5);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cronq"), 1);
    TH_CLOCK(c, 28);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cronq"), 1);
    TH_EQ_INT(count_expiry_lines(srv, NULL, NULL), 0);

    TH_CLOCK(c, 3);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cronq"), 0);
    TH_EQ_INT(count_expiry_lines(srv, NULL, "cronq"), 1);
    EXPECT_EXPIRED_TOTAL(1);
}

/* ---- restarts ---- */

static void expiry_survives_sigkill(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "crash-retry", custom_expires_in("100"));
    fetch_and_fail(c, "default", "crash-retry");
    TH_PUSH(c, "crash-queued", custom_expires_in("100"));
    TH_PUSH(c, "crash-at", custom_expires_at(server_time_plus(c, 100)));
    TH_PUSH(c, "crash-sched", th_fmt("%s,%s", at_plus(c, 50), custom_expires_in("100")));
    TH_PUSH(c, "crash-live", NULL);
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.default"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);

    th_server_kill(srv);
    spawn_with_web(srv);
    c = th_producer(srv);
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.default"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);

    /* The restarted server's clock starts from real time again. After 85 s the scheduled job
     * and the retry (due 15 to 44 s after its failure) are in the queue, and nothing expired
     * yet even if the restart took several seconds. */
    TH_CLOCK(c, 85);
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.default"), 5);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    TH_EQ_INT(count_expiry_lines(srv, NULL, NULL), 0);

    TH_CLOCK(c, 16);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    EXPECT_EXPIRY_LOGGED(srv, "crash-queued", "default");
    EXPECT_EXPIRY_LOGGED(srv, "crash-at", "default");
    EXPECT_EXPIRY_LOGGED(srv, "crash-sched", "default");
    EXPECT_EXPIRY_LOGGED(srv, "crash-retry", "default");
    EXPECT_EXPIRED_TOTAL(4);
    TH_FETCH_JID(c, "default", "crash-live");
    th_server_stop(srv);
}

/* Jobs whose expiry passed while the server was down are removed when it starts. */
static void expiry_passed_during_downtime(void) {
    struct th_server *srv = start_with_web();
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "down-queued", custom_expires_in("1"));
    TH_PUSH(c, "down-sched", th_fmt("%s,%s", at_plus(c, 60), custom_expires_in("1")));
    TH_PUSH(c, "down-live", NULL);
    th_server_kill(srv);
    th_sleep_ms(1500);

    spawn_with_web(srv);
    c = th_producer(srv);
    WAIT_QUEUE_SIZE(c, "default", 1);
    WAIT_INFO(c, "faktory.sets.scheduled", 0);
    EXPECT_EXPIRY_LOGGED(srv, "down-queued", "default");
    EXPECT_EXPIRY_LOGGED(srv, "down-sched", "default");
    EXPECT_EXPIRED_TOTAL(2);
    TH_FETCH_JID(c, "default", "down-live");
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(expires_in_removes_queued_job),
        TH_CASE(expires_in_accepts_fraction),
        TH_CASE(expires_at_utc_removes_job),
        TH_CASE(expires_at_honours_offsets),
        TH_CASE(expires_at_wins_over_expires_in),
        TH_CASE(custom_kept_as_sent),
        TH_CASE(job_without_expiry_never_expires),
        TH_CASE(distant_expiry_accepted),
        TH_CASE(invalid_expiry_rejected_at_push),
        TH_CASE(invalid_expiry_rejected_in_pushb),
        TH_CASE(past_expiry_accepted_never_runs),
        TH_CASE(expiry_at_or_before_epoch_never_runs),
        TH_CASE(past_expiry_scheduled_job_dropped),
        TH_CASE(fetch_skips_expired_in_same_queue),
        TH_CASE(fetch_skips_to_next_queue),
        TH_CASE(fetch_skips_many_expired),
        TH_CASE(fetch_on_expired_only_queue),
        TH_CASE(waiting_fetch_not_given_expired_push),
        TH_CASE(waiting_fetch_not_given_expired_due_job),
        TH_CASE(waiting_fetch_not_given_expired_retry),
        TH_CASE(scheduled_job_expires_before_due),
        TH_CASE(scheduled_job_expires_in_queue),
        TH_CASE(retry_expires_while_waiting),
        TH_CASE(working_job_left_alone),
        TH_CASE(job_failed_after_expiry_not_retried),
        TH_CASE(expired_reservation_not_requeued),
        TH_CASE(dead_job_kept_after_expiry),
        TH_CASE(skipped_requeued_job_keeps_size_exact),
        TH_CASE(paused_queue_loses_expired_job),
        TH_CASE(timer_removes_job_in_real_time),
        TH_CASE(expired_job_silently_discarded),
        TH_CASE(counters_in_info_and_metrics),
        TH_CASE(many_expire_in_one_step),
        TH_CASE(cron_run_expires),
        TH_CASE(expiry_survives_sigkill),
        TH_CASE(expiry_passed_during_downtime),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
