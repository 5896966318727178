/* Cron against the real server. [[cron]] entries fire on time and not before, and push one
 * job per run with the template's fields. They survive SIGTERM and SIGKILL restarts without
 * repeating or skipping a run, and catch up once or skip after downtime. They follow SIGHUP
 * reloads, invalid ones stop start-up, and the web API lists and runs them. DEBUG CLOCK moves
 * the server's clock. Its offset resets when the server restarts, so each restart case
 * advances the new process by the same offset again.
 *
 * Cases whose name starts with "slow_" wait for real downtime (over a minute) and run only
 * with --slow, which CTest passes in its own entry labelled "slow". */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The server binary, for the cases that start it by hand to see it fail. */
static const char *server_binary;

/* ---- the web port ----
 * The harness starts the server with "-w 127.0.0.1:0", which disables the web UI. So this
 * program registers itself as the server binary: started with "-b ..." and
 * FABRIK_CRON_TEST_SERVER in its environment, it picks a free port, writes it to
 * <config dir>/web-port and replaces itself (exec, same pid) by the real server with
 * "-w 127.0.0.1:<port>". Restarts, signals and logs stay the harness's. */

#define REAL_SERVER_VARIABLE "FABRIK_CRON_TEST_SERVER"

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

/* Runs in the server's process, before the exec. Returns only on failure. */
static int exec_server_with_web_port(int argc, char **argv) {
    const char *real = getenv(REAL_SERVER_VARIABLE);
    int port = pick_port();
    char web[64];
    snprintf(web, sizeof web, "127.0.0.1:%d", port);

    char **args = calloc((size_t)argc + 1, sizeof *args);
    const char *config_dir = NULL;
    for (int i = 0; i < argc; i++) {
        args[i] = argv[i];
        if (i > 0 && strcmp(argv[i - 1], "-w") == 0) {
            args[i] = web;
        }
        if (i > 0 && strcmp(argv[i - 1], "-c") == 0) {
            config_dir = argv[i];
        }
    }
    args[0] = (char *)real;

    if (!config_dir) {
        fprintf(stderr, "test_cron: started as the server without -c\n");
        return 126;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/web-port", config_dir);
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
        fprintf(stderr, "test_cron: cannot write %s: %s\n", path, strerror(errno));
        return 126;
    }

    execv(real, args);
    fprintf(stderr, "test_cron: cannot run %s: %s\n", real, strerror(errno));
    return 127;
}

static int web_port(struct th_server *srv) {
    char *path = th_fmt("%s/web-port", srv->config_dir);
    FILE *f = fopen(path, "r");
    int port = 0;
    if (!f || fscanf(f, "%d", &port) != 1) {
        th_fail("cannot read the web port from %s", path);
    }
    fclose(f);
    return port;
}

/* ---- a minimal HTTP client ---- */

struct http_reply {
    int status;
    char *head;     /* status line and headers */
    json_t *json;   /* the parsed body */
};

/* Connects to the web port, retrying for up to 5 s: the server opens it just after the FWP
 * port that the harness waits for. */
static int connect_loopback(int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double deadline = th_now() + 5;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            th_fail("cannot create a socket: %s", strerror(errno));
        }
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
            return fd;
        }
        int error = errno;
        close(fd);
        if (th_now() > deadline) {
            th_fail("cannot connect to the web port %d: %s", port, strerror(error));
        }
        th_sleep_ms(20);
    }
}

/* Reads until the server closes the connection (HTTP/1.0), at most 10 s. */
static char *read_all(int fd, size_t *len) {
    size_t cap = 4096, used = 0;
    char *data = malloc(cap);
    double deadline = th_now() + 10;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left_ms = (int)((deadline - th_now()) * 1000);
        if (left_ms <= 0 || poll(&p, 1, left_ms) <= 0) {
            th_fail("the web port sent no complete response within 10 s");
        }
        if (used + 1 >= cap) {
            cap *= 2;
            data = realloc(data, cap);
        }
        ssize_t n = read(fd, data + used, cap - used - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
    }
    data[used] = '\0';
    *len = used;
    return th_keep(data);
}

/* Sends one HTTP/1.0 request with an optional JSON body and parses the JSON response. */
static struct http_reply http(struct th_server *srv, const char *method, const char *path,
                              const char *body) {
    int fd = connect_loopback(web_port(srv));
    char *request = th_fmt("%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                           "\r\nContent-Length: %zu\r\n\r\n%s",
                           method, path, body ? strlen(body) : 0, body ? body : "");
    size_t sent = 0, total = strlen(request);
    while (sent < total) {
        ssize_t n = write(fd, request + sent, total - sent);
        if (n <= 0) {
            th_fail("cannot send %s %s: %s", method, path, strerror(errno));
        }
        sent += (size_t)n;
    }
    size_t len;
    char *response = read_all(fd, &len);
    close(fd);

    struct http_reply reply = {0};
    char *end = strstr(response, "\r\n\r\n");
    if (!end || sscanf(response, "HTTP/1.%*d %d", &reply.status) != 1) {
        th_fail("%s %s: malformed response: %.200s", method, path, response);
    }
    *end = '\0';
    reply.head = response;
    const char *content = end + 4;
    reply.json = TH_JSON(content, strlen(content));
    return reply;
}

static json_t *cron_entries(struct th_server *srv) {
    struct http_reply r = http(srv, "GET", "/api/cron", NULL);
    TH_EQ_INT(r.status, 200);
    json_t *entries = json_object_get(r.json, "entries");
    TH_CHECK(json_is_array(entries));
    return entries;
}

/* The listed entry whose job goes to queue; fails when there is none. */
static json_t *entry_for_queue(json_t *entries, const char *queue) {
    size_t i;
    json_t *entry;
    json_array_foreach(entries, i, entry) {
        const char *q = json_string_value(th_json_get(entry, "job.queue"));
        if (q && strcmp(q, queue) == 0) {
            return entry;
        }
    }
    th_fail("GET /api/cron lists no entry for queue %s", queue);
}

static json_t *entry_of(struct th_server *srv, const char *queue) {
    return entry_for_queue(cron_entries(srv), queue);
}

/* last_run or next_run of an entry as Unix seconds, 0 when null. */
static double entry_time(json_t *entry, const char *field) {
    json_t *value = json_object_get(entry, field);
    if (json_is_null(value)) {
        return 0;
    }
    return TH_TIME(entry, field);
}

static const char *entry_key(json_t *entry) {
    return TH_JSTR(entry, "key");
}

static bool is_lower_hex(const char *text, size_t len) {
    if (!text || strlen(text) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)text[i]) && !(text[i] >= 'a' && text[i] <= 'f')) {
            return false;
        }
    }
    return true;
}

/* ---- server log and reloads ---- */

static int log_count(struct th_server *srv, const char *needle) {
    FILE *f = fopen(srv->log_path, "r");
    if (!f) {
        return 0;
    }
    char line[8192];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        count += strstr(line, needle) != NULL;
    }
    fclose(f);
    return count;
}

/* The last log line that contains needle (kept until the case ends), or NULL. */
static char *last_log_line(struct th_server *srv, const char *needle) {
    FILE *f = fopen(srv->log_path, "r");
    if (!f) {
        return NULL;
    }
    char line[8192];
    char *found = NULL;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, needle)) {
            found = th_fmt("%s", line);
        }
    }
    fclose(f);
    return found;
}

static void wait_log_count(struct th_server *srv, const char *needle, int count) {
    double deadline = th_now() + 10;
    while (log_count(srv, needle) < count) {
        if (th_now() > deadline) {
            th_fail("the server log has %d lines with %s after 10 s, expected %d",
                    log_count(srv, needle), needle, count);
        }
        th_sleep_ms(20);
    }
}

/* Sends SIGHUP and waits until the server logged the outcome: "config_reloaded" or
 * "reload_failed". */
static void reload(struct th_server *srv, bool expect_success) {
    int reloaded = log_count(srv, "event=config_reloaded");
    int failed = log_count(srv, "event=reload_failed");
    th_server_signal(srv, SIGHUP);
    wait_log_count(srv, expect_success ? "event=config_reloaded" : "event=reload_failed",
                   (expect_success ? reloaded : failed) + 1);
    TH_EQ_INT(log_count(srv, expect_success ? "event=reload_failed" : "event=config_reloaded"),
              expect_success ? failed : reloaded);
}

static void write_conf(struct th_server *srv, const char *name, const char *text) {
    th_write_file(th_fmt("%s/conf.d/%s", srv->config_dir, name), text);
}

/* ---- the clock ---- */

/* Moves the server clock to `target` (server seconds) when it is ahead of the server's now. */
static void clock_to(struct th_conn *c, double target) {
    double now = TH_SERVER_TIME(c);
    if (target > now) {
        TH_CLOCK(c, target - now);
    }
}

/* ---- fetching ---- */

/* Fetches `count` jobs from queue (which must hold them) and returns them as an array. */
static json_t *fetch_jobs(struct th_conn *c, const char *queue, int count) {
    json_t *jobs = th_keep_json(json_array());
    for (int i = 0; i < count; i++) {
        json_t *job = TH_FETCH(c, queue);
        if (!job) {
            th_fail("queue %s held %d jobs, expected %d", queue, i, count);
        }
        json_array_append(jobs, job);
    }
    return jobs;
}

static void check_distinct_jids(json_t *jobs) {
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        const char *a = json_string_value(json_object_get(json_array_get(jobs, i), "jid"));
        TH_CHECK(is_lower_hex(a, 24));
        for (size_t k = 0; k < i; k++) {
            const char *b = json_string_value(json_object_get(json_array_get(jobs, k), "jid"));
            TH_CHECK(strcmp(a, b) != 0);
        }
    }
}

/* ---- firing on time ---- */

static void entry_fires_on_time_not_before(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\nschedule = \"0 * * * *\"\n[cron.job]\ntype = \"Hourly\"\n"
                "queue = \"hourly\"\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);

    json_t *entry = entry_of(srv, "hourly");
    double now = TH_SERVER_TIME(c);
    double next = entry_time(entry, "next_run");
    TH_EQ_INT(entry_time(entry, "last_run"), 0);
    TH_EQ_INT(fmod(next, 3600), 0);
    TH_RANGE(next, now, now + 3600);
    if (next - now < 5) {
        /* Too close to the hour to stop 2 s before it: take the run, use the next hour. */
        clock_to(c, next + 1);
        TH_EQ_INT(TH_QUEUE_SIZE(c, "hourly"), 1);
        TH_OK(c, "QUEUE REMOVE hourly");
        next += 3600;
    }

    clock_to(c, next - 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "hourly"), 0);
    TH_EQ_INT(entry_time(entry_of(srv, "hourly"), "next_run"), next);

    TH_CLOCK(c, 3);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "hourly"), 1);
    entry = entry_of(srv, "hourly");
    TH_EQ_INT(entry_time(entry, "last_run"), next);
    TH_EQ_INT(entry_time(entry, "next_run"), next + 3600);

    /* Nothing more until the next hour, then exactly one more. */
    clock_to(c, next + 3600 - 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "hourly"), 1);
    TH_CLOCK(c, 3);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "hourly"), 2);
    TH_EQ_INT(entry_time(entry_of(srv, "hourly"), "last_run"), next + 3600);
    check_distinct_jids(fetch_jobs(c, "hourly", 2));
}

static void job_has_template_fields(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\n"
                "schedule = \"* * * * *\"\n"
                "[cron.job]\n"
                "type = \"Minutely\"\n"
                "queue = \"cronq\"\n"
                "args = [1, \"two\", {three = 3}]\n"
                "retry = 3\n"
                "reserve_for = 600\n"
                "priority = 7\n"
                "[cron.job.custom]\n"
                "expires_in = 60\n"
                "\n"
                "[[cron]]\n"
                "schedule = \"* * * * *\"\n"
                "[cron.job]\n"
                "type = \"Bare\"\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_CLOCK(c, 61);

    json_t *job = TH_FETCH(c, "cronq");
    TH_CHECK(job != NULL);
    TH_EQ_STR(TH_JSTR(job, "jobtype"), "Minutely");
    TH_EQ_STR(TH_JSTR(job, "queue"), "cronq");
    json_t *args = th_keep_json(json_loads("[1,\"two\",{\"three\":3}]", 0, NULL));
    TH_CHECK(json_equal(json_object_get(job, "args"), args));
    TH_EQ_INT(TH_JINT(job, "retry"), 3);
    TH_EQ_INT(TH_JINT(job, "reserve_for"), 600);
    TH_EQ_INT(TH_JINT(job, "priority"), 7);
    TH_EQ_INT(TH_JINT(job, "custom.expires_in"), 60);
    TH_CHECK(is_lower_hex(TH_JSTR(job, "jid"), 24));
    TH_TIME(job, "created_at");
    TH_TIME(job, "enqueued_at");
    TH_CHECK(json_object_get(job, "at") == NULL);
    TH_OK(c, "ACK {\"jid\":\"%s\"}", TH_JSTR(job, "jid"));

    /* Without queue, args and retry the job gets the server's defaults. */
    job = TH_FETCH(c, "default");
    TH_CHECK(job != NULL);
    TH_EQ_STR(TH_JSTR(job, "jobtype"), "Bare");
    TH_EQ_STR(TH_JSTR(job, "queue"), "default");
    TH_EQ_INT(json_array_size(json_object_get(job, "args")), 0);
    TH_EQ_INT(TH_JINT(job, "retry"), 25);
    TH_CHECK(is_lower_hex(TH_JSTR(job, "jid"), 24));
}

static void missed_runs_collapse_into_one_job(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\nschedule = \"* * * * *\"\n[cron.job]\ntype = \"M\"\nqueue = \"m\"\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);

    /* An hour of runs passes at once: one job, recorded as the latest due minute. */
    TH_CLOCK(c, 3600);
    double now = TH_SERVER_TIME(c);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "m"), 1);
    json_t *entry = entry_of(srv, "m");
    TH_EQ_INT(entry_time(entry, "last_run"), floor(now / 60) * 60);
    TH_EQ_INT(entry_time(entry, "next_run"), floor(now / 60) * 60 + 60);
}

/* A minutely entry with unique_for longer than a minute: the run whose previous job still
 * holds the lock is skipped and logged at info, not as a failure. */
static void unique_entry_skips_locked_run(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\nschedule = \"* * * * *\"\n[cron.job]\ntype = \"U\"\nqueue = \"u\"\n"
                "[cron.job.custom]\nunique_for = 65\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_CLOCK(c, 60);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "u"), 1);
    TH_CLOCK(c, 60);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "u"), 1);
    TH_CHECK(th_server_log_contains(srv, "level=info event=cron_skipped_not_unique"));
    TH_CHECK(!th_server_log_contains(srv, "event=cron_push_failed"));
    th_server_stop(srv);
}

/* Runs missed while the server was running collapse into one job however many there are. The
 * server stops counting missed runs after 100,000 (70 days of a per-minute entry), so today
 * it records an old run as the last one and pushes a second job on the next tick. Counting
 * that many runs also blocks its event loop for seconds. */
static void many_missed_runs_collapse(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\nschedule = \"* * * * *\"\n[cron.job]\ntype = \"M\"\nqueue = \"m\"\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);

    TH_CLOCK(c, 6100000);
    double now = TH_SERVER_TIME(c);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "m"), 1);
    json_t *entry = entry_of(srv, "m");
    TH_EQ_INT(entry_time(entry, "last_run"), floor(now / 60) * 60);
    TH_RANGE(entry_time(entry, "next_run"), now, now + 60);
}

/* ---- restarts ---- */

struct restart_run {
    struct th_server *srv;
    struct th_conn *c;
    double offset;   /* total DEBUG CLOCK seconds sent to the current process */
    bool kill;       /* SIGKILL instead of SIGTERM */
};

static void advance(struct restart_run *r, double seconds) {
    TH_CLOCK(r->c, seconds);
    r->offset += seconds;
}

static void advance_to(struct restart_run *r, double target) {
    double now = TH_SERVER_TIME(r->c);
    if (target > now) {
        advance(r, target - now);
    }
}

/* Restarts the server and moves the new process's clock by the old offset, so its time is
 * the old process's time plus the real time the restart took. */
static void restart(struct restart_run *r) {
    if (r->kill) {
        th_server_kill(r->srv);
    } else {
        th_server_stop(r->srv);
    }
    th_close(r->c);
    th_server_restart(r->srv);
    r->c = th_producer(r->srv);
    TH_CLOCK(r->c, r->offset);
}

#define TEN_MINUTES "[[cron]]\nschedule = \"*/10 * * * *\"\n[cron.job]\ntype = \"T\"\n" \
                    "queue = \"tick\"\n"

/* Restarts 5 s before a run and 1 s after one, then counts: every 10-minute mark passed gets
 * exactly one job, and the stored last run carries over each restart. */
static void restart_neither_skips_nor_repeats(bool kill) {
    struct th_server_opts opts = {.toml = TEN_MINUTES};
    struct restart_run r = {.kill = kill};
    r.srv = th_server_start(&opts);
    r.c = th_producer(r.srv);

    double run = entry_time(entry_of(r.srv, "tick"), "next_run");
    int jobs = 0;
    if (run - TH_SERVER_TIME(r.c) < 15) {
        advance_to(&r, run + 1);
        jobs++;
        run += 600;
    }
    TH_EQ_INT(TH_QUEUE_SIZE(r.c, "tick"), jobs);

    /* Down just before the run: it happens once, after the restart. */
    advance_to(&r, run - 5);
    restart(&r);
    TH_EQ_INT(TH_QUEUE_SIZE(r.c, "tick"), jobs);
    TH_EQ_INT(entry_time(entry_of(r.srv, "tick"), "next_run"), run);
    advance_to(&r, run + 1);
    jobs++;
    TH_EQ_INT(TH_QUEUE_SIZE(r.c, "tick"), jobs);
    TH_EQ_INT(entry_time(entry_of(r.srv, "tick"), "last_run"), run);

    /* Down just after the run: it is not repeated, and the next one still comes. */
    restart(&r);
    TH_EQ_INT(TH_QUEUE_SIZE(r.c, "tick"), jobs);
    json_t *entry = entry_of(r.srv, "tick");
    TH_EQ_INT(entry_time(entry, "last_run"), run);
    TH_EQ_INT(entry_time(entry, "next_run"), run + 600);
    advance_to(&r, run + 600 - 5);
    TH_EQ_INT(TH_QUEUE_SIZE(r.c, "tick"), jobs);
    advance(&r, 6);
    jobs++;
    TH_EQ_INT(TH_QUEUE_SIZE(r.c, "tick"), jobs);

    /* Minute steps with a restart in the middle: one job per 10-minute mark. */
    double start = TH_SERVER_TIME(r.c);
    for (int step = 1; step <= 24; step++) {
        advance(&r, 60);
        if (step == 12) {
            restart(&r);
        }
    }
    double end = TH_SERVER_TIME(r.c);
    jobs += (int)(floor(end / 600) - floor(start / 600));
    TH_EQ_INT(TH_QUEUE_SIZE(r.c, "tick"), jobs);
    TH_EQ_INT(entry_time(entry_of(r.srv, "tick"), "last_run"), floor(end / 600) * 600);
    check_distinct_jids(fetch_jobs(r.c, "tick", jobs));
}

static void restart_after_sigterm_neither_skips_nor_repeats(void) {
    restart_neither_skips_nor_repeats(false);
}

static void restart_after_sigkill_neither_skips_nor_repeats(void) {
    restart_neither_skips_nor_repeats(true);
}

/* ---- catch-up after downtime ---- */

/* Sets the stored last run of the entries with the given keys in a stopped server's data. */
static void store_last_run(struct th_server *srv, const char *const *keys, size_t count,
                           double last_run) {
    sqlite3 *db = NULL;
    char *path = th_fmt("%s/fabrik.db", srv->data_dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        th_fail("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO cron_runs (key, last_run) "
                                    "VALUES (%Q, %.3f)",
                                    keys[i], last_run);
        char *error = NULL;
        int rc = sqlite3_exec(db, sql, NULL, NULL, &error);
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            th_fail("cannot store a cron run in %s: %s", path, error ? error : "unknown error");
        }
    }
    sqlite3_close(db);
}

/* Waits until no hour mark is within `margin` seconds ahead, so a case that reads real time
 * does not straddle one. */
static void avoid_hour_mark(double margin) {
    double now = (double)time(NULL);
    double left = 3600 - fmod(now, 3600);
    if (left < margin) {
        th_sleep_ms((int)((left + 2) * 1000));
    }
}

#define HOURLY(queue, catch_up)                                                          \
    "[[cron]]\nschedule = \"0 * * * *\"\n" catch_up "[cron.job]\ntype = \"H\"\nqueue = \"" \
    queue "\"\n"

/* The server was down for five hourly runs (their stored last run is five hours old): "once"
 * runs one job at start-up, "skip" runs none, and an entry that never ran starts from now. */
static void catch_up_once_and_skip_after_downtime(void) {
    avoid_hour_mark(30);
    struct th_server_opts opts = {
        .toml = HOURLY("once", "catch_up = \"once\"\n") HOURLY("skip", "catch_up = \"skip\"\n")
            HOURLY("fresh", "")};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    json_t *entries = cron_entries(srv);
    const char *keys[] = {entry_key(entry_for_queue(entries, "once")),
                          entry_key(entry_for_queue(entries, "skip"))};
    double hour = floor(TH_SERVER_TIME(c) / 3600) * 3600;
    th_close(c);
    th_server_stop(srv);

    store_last_run(srv, keys, 2, hour - 5 * 3600);
    th_server_restart(srv);
    c = th_producer(srv);

    /* The catch-up run is pushed by the first tick after start-up. */
    double deadline = th_now() + 5;
    while (TH_QUEUE_SIZE(c, "once") == 0 && th_now() < deadline) {
        th_sleep_ms(20);
    }
    TH_EQ_INT(TH_QUEUE_SIZE(c, "once"), 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "skip"), 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "fresh"), 0);

    entries = cron_entries(srv);
    json_t *once = entry_for_queue(entries, "once");
    json_t *skip = entry_for_queue(entries, "skip");
    json_t *fresh = entry_for_queue(entries, "fresh");
    TH_EQ_INT(entry_time(once, "last_run"), hour);
    TH_EQ_INT(entry_time(once, "next_run"), hour + 3600);
    TH_EQ_INT(entry_time(skip, "last_run"), hour - 5 * 3600);
    TH_EQ_INT(entry_time(skip, "next_run"), hour + 3600);
    TH_EQ_INT(entry_time(fresh, "last_run"), 0);
    TH_EQ_INT(entry_time(fresh, "next_run"), hour + 3600);

    /* Another restart does not catch up again, and the next hour runs all three once. */
    th_close(c);
    th_server_kill(srv);
    th_server_restart(srv);
    c = th_producer(srv);
    th_sleep_ms(300);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "once"), 1);
    clock_to(c, hour + 3600 + 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "once"), 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "skip"), 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "fresh"), 1);
}

/* Real downtime: both entries run at a minute mark, the server stops for over a minute, and
 * on start-up "once" runs one job for the missed minutes while "skip" waits. */
static void slow_catch_up_after_real_downtime(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\nschedule = \"* * * * *\"\ncatch_up = \"once\"\n[cron.job]\n"
                "type = \"M\"\nqueue = \"once\"\n"
                "[[cron]]\nschedule = \"* * * * *\"\ncatch_up = \"skip\"\n[cron.job]\n"
                "type = \"M\"\nqueue = \"skip\"\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    double mark = entry_time(entry_of(srv, "once"), "next_run");
    clock_to(c, mark + 0.5);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "once"), 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "skip"), 1);
    th_close(c);
    th_server_stop(srv);

    /* Stay down until the run after `mark` has passed in real time, and restart early in a
     * minute so no further minute mark passes while the case checks. */
    double wake = mark + 63;
    while ((double)time(NULL) < wake || fmod((double)time(NULL), 60) > 45) {
        th_sleep_ms(500);
    }
    th_server_restart(srv);
    c = th_producer(srv);
    double deadline = th_now() + 5;
    while (TH_QUEUE_SIZE(c, "once") < 2 && th_now() < deadline) {
        th_sleep_ms(20);
    }
    double now = TH_SERVER_TIME(c);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "once"), 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "skip"), 1);
    json_t *entries = cron_entries(srv);
    json_t *once = entry_for_queue(entries, "once");
    json_t *skip = entry_for_queue(entries, "skip");
    TH_EQ_INT(entry_time(once, "last_run"), floor(now / 60) * 60);
    TH_EQ_INT(entry_time(skip, "last_run"), mark);
    TH_EQ_INT(entry_time(skip, "next_run"), floor(now / 60) * 60 + 60);
}

/* ---- reloads ---- */

static void sighup_adds_changes_and_removes_entries(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\nschedule = \"*/10 * * * *\"\n[cron.job]\ntype = \"A\"\nqueue = \"a\"\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    json_t *a = entry_of(srv, "a");
    const char *a_key = entry_key(a);
    double a_run = entry_time(a, "next_run");
    clock_to(c, a_run + 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "a"), 1);

    /* Add B to the same file and C in a second file: A keeps its key and its last run. */
    write_conf(srv, "test.toml",
               "[[cron]]\nschedule = \"*/10 * * * *\"\n[cron.job]\ntype = \"A\"\nqueue = \"a\"\n"
               "[[cron]]\nschedule = \"*/5 * * * *\"\n[cron.job]\ntype = \"B\"\nqueue = \"b\"\n");
    write_conf(srv, "zz-extra.toml",
               "[[cron]]\nschedule = \"@daily\"\n[cron.job]\ntype = \"C\"\nqueue = \"c\"\n");
    reload(srv, true);
    json_t *entries = cron_entries(srv);
    TH_EQ_INT(json_array_size(entries), 3);
    a = entry_for_queue(entries, "a");
    TH_EQ_STR(entry_key(a), a_key);
    TH_EQ_INT(entry_time(a, "last_run"), a_run);
    TH_EQ_INT(entry_time(a, "next_run"), a_run + 600);
    json_t *b = entry_for_queue(entries, "b");
    double now = TH_SERVER_TIME(c);
    TH_EQ_INT(entry_time(b, "last_run"), 0);
    TH_EQ_INT(entry_time(b, "next_run"), floor(now / 300) * 300 + 300);
    TH_EQ_STR(TH_JSTR(b, "source"), th_fmt("%s/conf.d/test.toml entry 2", srv->config_dir));
    json_t *extra = entry_for_queue(entries, "c");
    TH_EQ_STR(TH_JSTR(extra, "source"), th_fmt("%s/conf.d/zz-extra.toml entry 1",
                                                srv->config_dir));

    /* Change A's schedule: a new entry (new key, no last run) that starts from now. */
    write_conf(srv, "test.toml",
               "[[cron]]\nschedule = \"*/15 * * * *\"\n[cron.job]\ntype = \"A\"\nqueue = \"a\"\n"
               "[[cron]]\nschedule = \"*/5 * * * *\"\n[cron.job]\ntype = \"B\"\nqueue = \"b\"\n");
    reload(srv, true);
    a = entry_of(srv, "a");
    TH_CHECK(strcmp(entry_key(a), a_key) != 0);
    TH_EQ_STR(TH_JSTR(a, "schedule"), "*/15 * * * *");
    TH_EQ_INT(entry_time(a, "last_run"), 0);
    now = TH_SERVER_TIME(c);
    TH_EQ_INT(entry_time(a, "next_run"), floor(now / 900) * 900 + 900);

    /* Remove B and C: they are no longer listed and push nothing more. */
    write_conf(srv, "test.toml",
               "[[cron]]\nschedule = \"*/15 * * * *\"\n[cron.job]\ntype = \"A\"\nqueue = \"a\"\n");
    TH_CHECK(unlink(th_fmt("%s/conf.d/zz-extra.toml", srv->config_dir)) == 0);
    reload(srv, true);
    entries = cron_entries(srv);
    TH_EQ_INT(json_array_size(entries), 1);
    TH_CLOCK(c, 2 * 86400);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "a"), 2);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "b"), 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "c"), 0);
}

static void sighup_with_invalid_entry_keeps_old(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\nschedule = \"*/10 * * * *\"\n[cron.job]\ntype = \"A\"\nqueue = \"a\"\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    const char *a_key = entry_key(entry_of(srv, "a"));

    write_conf(srv, "test.toml",
               "[[cron]]\nschedule = \"*/10 * * * *\"\n[cron.job]\ntype = \"A\"\nqueue = \"a\"\n"
               "[[cron]]\nschedule = \"@daily\"\ntimezone = \"Mars/Olympus\"\n[cron.job]\n"
               "type = \"B\"\nqueue = \"b\"\n");
    reload(srv, false);
    char *line = last_log_line(srv, "event=reload_failed");
    TH_CHECK(line != NULL);
    TH_CHECK(strstr(line, th_fmt("%s/conf.d/test.toml entry 2", srv->config_dir)) != NULL);
    TH_CHECK(strstr(line, "timezone") != NULL);

    json_t *entries = cron_entries(srv);
    TH_EQ_INT(json_array_size(entries), 1);
    TH_EQ_STR(entry_key(json_array_get(entries, 0)), a_key);
    TH_CLOCK(c, 600);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "a"), 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "b"), 0);

    /* A valid file afterwards is taken as usual. */
    write_conf(srv, "test.toml",
               "[[cron]]\nschedule = \"@daily\"\n[cron.job]\ntype = \"B\"\nqueue = \"b\"\n");
    reload(srv, true);
    entries = cron_entries(srv);
    TH_EQ_INT(json_array_size(entries), 1);
    entry_for_queue(entries, "b");
}

/* ---- start-up with invalid entries ---- */

/* Starts the server with two conf.d files: a.toml is valid, and the second entry of b.toml is
 * `bad_entry`. Expects an exit with a non-zero status within 10 s and returns the log. */
static char *start_failure_log(const char *bad_entry) {
    const char *dir = th_case_dir();
    char *config = th_fmt("%s/config-%d", dir, pick_port());
    char *data = th_fmt("%s-data", config);
    TH_CHECK(mkdir(config, 0700) == 0);
    TH_CHECK(mkdir(th_fmt("%s/conf.d", config), 0700) == 0);
    TH_CHECK(mkdir(data, 0700) == 0);
    th_write_file(th_fmt("%s/conf.d/a.toml", config),
                  "[[cron]]\nschedule = \"@hourly\"\n[cron.job]\ntype = \"A\"\n");
    th_write_file(th_fmt("%s/conf.d/b.toml", config),
                  th_fmt("[[cron]]\nschedule = \"@daily\"\n[cron.job]\ntype = \"B\"\n\n%s",
                         bad_entry));
    char *log_path = th_fmt("%s/server.log", config);
    char *bind = th_fmt("127.0.0.1:%d", pick_port());

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
        execl(server_binary, server_binary, "-b", bind, "-w", "127.0.0.1:0", "-d", data, "-c",
              config, "-e", "development", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    double deadline = th_now() + 10;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (th_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            th_fail("the server kept running with the invalid entry:\n%s", bad_entry);
        }
        th_sleep_ms(20);
    }
    TH_CHECK(WIFEXITED(status));
    TH_CHECK(WEXITSTATUS(status) != 0);

    FILE *f = fopen(log_path, "r");
    TH_CHECK(f != NULL);
    char *text = th_keep(calloc(1, 65536));
    size_t len = fread(text, 1, 65535, f);
    text[len] = '\0';
    fclose(f);
    TH_CHECK(strstr(text, th_fmt("%s/conf.d/b.toml entry 2", config)) != NULL);
    return text;
}

static void invalid_entry_fails_start(void) {
    static const struct {
        const char *entry;
        const char *field;   /* text the message must contain */
    } cases[] = {
        {"[[cron]]\nschedule = \"0 0 * * 8\"\n[cron.job]\ntype = \"X\"\n", "day of week"},
        {"[[cron]]\nschedule = \"@often\"\n[cron.job]\ntype = \"X\"\n", "@often"},
        {"[[cron]]\n[cron.job]\ntype = \"X\"\n", "schedule"},
        {"[[cron]]\nschedule = \"@daily\"\nzone = \"UTC\"\n[cron.job]\ntype = \"X\"\n",
         "\\\"zone\\\""},
        {"[[cron]]\nschedule = \"@daily\"\ntimezone = \"Nowhere/City\"\n[cron.job]\n"
         "type = \"X\"\n",
         "timezone"},
        {"[[cron]]\nschedule = \"@daily\"\ncatch_up = \"all\"\n[cron.job]\ntype = \"X\"\n",
         "catch_up"},
        {"[[cron]]\nschedule = \"@daily\"\n", "[cron.job]"},
        {"[[cron]]\nschedule = \"@daily\"\n[cron.job]\nqueue = \"q\"\n", "job.type"},
        {"[[cron]]\nschedule = \"@daily\"\n[cron.job]\ntype = \"X\"\nretry = \"3\"\n",
         "job.retry"},
        {"[[cron]]\nschedule = \"@daily\"\n[cron.job]\ntype = \"X\"\nwait = 5\n", "job.wait"},
        {"[[cron]]\nschedule = \"@daily\"\n[cron.job]\ntype = \"X\"\nqueue = \"no space\"\n",
         "no space"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *log = start_failure_log(cases[i].entry);
        if (!strstr(log, cases[i].field)) {
            th_fail("the start-up error does not name %s:\n%s", cases[i].field, log);
        }
    }
}

/* ---- web API ---- */

static void web_api_lists_entries(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\n"
                "schedule = \"30 2 * * *\"\n"
                "timezone = \"America/New_York\"\n"
                "catch_up = \"skip\"\n"
                "[cron.job]\n"
                "type = \"Nightly\"\n"
                "queue = \"nightly\"\n"
                "args = [\"x\"]\n"
                "retry = 1\n"
                "reserve_for = 120\n"
                "[cron.job.custom]\n"
                "expires_in = 60\n"
                "[[cron]]\n"
                "schedule = \"@hourly\"\n"
                "[cron.job]\n"
                "type = \"Hourly\"\n"
                "queue = \"hourly\"\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    json_t *entries = cron_entries(srv);
    TH_EQ_INT(json_array_size(entries), 2);

    json_t *nightly = entry_for_queue(entries, "nightly");
    TH_CHECK(is_lower_hex(entry_key(nightly), 64));
    TH_EQ_STR(TH_JSTR(nightly, "schedule"), "30 2 * * *");
    TH_EQ_STR(TH_JSTR(nightly, "timezone"), "America/New_York");
    TH_EQ_STR(TH_JSTR(nightly, "catch_up"), "skip");
    TH_EQ_STR(TH_JSTR(nightly, "source"), th_fmt("%s/conf.d/test.toml entry 1", srv->config_dir));
    json_t *job = th_keep_json(json_loads("{\"jobtype\":\"Nightly\",\"queue\":\"nightly\","
                                          "\"args\":[\"x\"],\"retry\":1,\"reserve_for\":120,"
                                          "\"custom\":{\"expires_in\":60}}",
                                          0, NULL));
    TH_CHECK(json_equal(json_object_get(nightly, "job"), job));
    TH_CHECK(json_is_null(json_object_get(nightly, "last_run")));
    double now = TH_SERVER_TIME(c);
    TH_RANGE(entry_time(nightly, "next_run"), now, now + 86400 + 3600);

    json_t *hourly = entry_for_queue(entries, "hourly");
    TH_EQ_STR(TH_JSTR(hourly, "timezone"), "UTC");
    TH_EQ_STR(TH_JSTR(hourly, "catch_up"), "once");
    TH_EQ_STR(TH_JSTR(hourly, "source"), th_fmt("%s/conf.d/test.toml entry 2", srv->config_dir));
    TH_CHECK(strcmp(entry_key(hourly), entry_key(nightly)) != 0);
    double next = entry_time(hourly, "next_run");
    TH_EQ_INT(next, floor(now / 3600) * 3600 + 3600);

    clock_to(c, next + 1);
    hourly = entry_of(srv, "hourly");
    TH_EQ_INT(entry_time(hourly, "last_run"), next);
    TH_EQ_INT(entry_time(hourly, "next_run"), next + 3600);
}

static void web_api_runs_entry_now(void) {
    struct th_server_opts opts = {
        .toml = "[[cron]]\nschedule = \"@daily\"\n[cron.job]\ntype = \"D\"\nqueue = \"d\"\n"
                "args = [7]\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    json_t *before = entry_of(srv, "d");
    const char *key = entry_key(before);
    char *path = th_fmt("/api/cron/%s", key);

    struct http_reply r = http(srv, "POST", path, "{\"action\":\"run\"}");
    TH_EQ_INT(r.status, 200);
    TH_EQ_INT(TH_JINT(r.json, "affected"), 1);
    /* The job was committed before the response. */
    TH_EQ_INT(TH_QUEUE_SIZE(c, "d"), 1);
    r = http(srv, "POST", path, "{\"action\":\"run\"}");
    TH_EQ_INT(r.status, 200);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "d"), 2);

    /* Running now leaves the schedule alone. */
    json_t *after = entry_of(srv, "d");
    TH_CHECK(json_is_null(json_object_get(after, "last_run")));
    TH_EQ_INT(entry_time(after, "next_run"), entry_time(before, "next_run"));

    json_t *jobs = fetch_jobs(c, "d", 2);
    check_distinct_jids(jobs);
    TH_EQ_STR(TH_JSTR(json_array_get(jobs, 0), "jobtype"), "D");
    json_t *args = json_object_get(json_array_get(jobs, 0), "args");
    TH_EQ_INT(json_array_size(args), 1);
    TH_EQ_INT(json_integer_value(json_array_get(args, 0)), 7);

    r = http(srv, "POST", "/api/cron/0000000000000000000000000000000000000000000000000000000000000000",
             "{\"action\":\"run\"}");
    TH_EQ_INT(r.status, 404);
    TH_CHECK(json_is_string(json_object_get(r.json, "error")));
    r = http(srv, "POST", path, "{\"action\":\"pause\"}");
    TH_EQ_INT(r.status, 400);
    TH_CHECK(json_is_string(json_object_get(r.json, "error")));
    r = http(srv, "POST", path, "{}");
    TH_EQ_INT(r.status, 400);
    r = http(srv, "GET", path, NULL);
    TH_EQ_INT(r.status, 405);
    TH_CHECK(strstr(r.head, "\r\nAllow: POST") != NULL);
    r = http(srv, "POST", "/api/cron", "{\"action\":\"run\"}");
    TH_EQ_INT(r.status, 405);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "d"), 0);
}

static void web_api_without_entries(void) {
    struct th_server *srv = th_server_start(&(struct th_server_opts){.toml = "\n"});
    TH_EQ_INT(json_array_size(cron_entries(srv)), 0);
}

/* ---- runner ---- */

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(entry_fires_on_time_not_before),
        TH_CASE(job_has_template_fields),
        TH_CASE(missed_runs_collapse_into_one_job),
        TH_CASE(unique_entry_skips_locked_run),
        TH_CASE(many_missed_runs_collapse),
        TH_CASE(restart_after_sigterm_neither_skips_nor_repeats),
        TH_CASE(restart_after_sigkill_neither_skips_nor_repeats),
        TH_CASE(catch_up_once_and_skip_after_downtime),
        TH_CASE(sighup_adds_changes_and_removes_entries),
        TH_CASE(sighup_with_invalid_entry_keeps_old),
        TH_CASE(invalid_entry_fails_start),
        TH_CASE(web_api_lists_entries),
        TH_CASE(web_api_runs_entry_now),
        TH_CASE(web_api_without_entries),
    };
    static const struct th_case slow_cases[] = {
        TH_CASE(slow_catch_up_after_real_downtime),
    };

    if (argc > 1 && strcmp(argv[1], "-b") == 0 && getenv(REAL_SERVER_VARIABLE)) {
        return exec_server_with_web_port(argc, argv);
    }

    /* --slow selects the slow cases instead of the others. The harness gets this program as
     * the server binary and the real one in the environment (see exec_server_with_web_port). */
    bool slow = false;
    char **args = calloc((size_t)argc + 3, sizeof *args);
    int count = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--slow") == 0) {
            slow = true;
        } else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server_binary = argv[++i];
        } else {
            args[count++] = argv[i];
        }
    }
    if (!server_binary) {
        server_binary = getenv("FABRIK_BIN");
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (server_binary && n > 0) {
        self[n] = '\0';
        setenv(REAL_SERVER_VARIABLE, server_binary, 1);
        args[count++] = "--server";
        args[count++] = self;
    }
    int status = slow ? th_main(count, args, slow_cases, sizeof slow_cases / sizeof slow_cases[0])
                      : th_main(count, args, cases, sizeof cases / sizeof cases[0]);
    free(args);
    return status;
}
