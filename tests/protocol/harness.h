/* Black-box protocol test harness. It starts the real fabrik binary on a free 127.0.0.1 port
 * with fresh temporary data and config directories and talks FWP to it over plain TCP or TLS.
 * Each test case runs in its own forked process with a timeout. A failed check prints both
 * values and the location, dumps the end of the server log and fails only that case.
 *
 * Environment:
 *   FABRIK_BIN        path of the server binary (or pass --server PATH)
 *   FABRIK_TEST_ADDR  host:port of an already running server (development mode, no password).
 *                     Cases then FLUSH it instead of starting their own. Cases that need their
 *                     own server (config, password, TLS, restart) are skipped.
 *   FABRIK_TEST_KEEP  set to 1 to keep the temporary directories and server logs
 *   FABRIK_TEST_CASE_TIMEOUT  seconds one case may take (default 90) */
#ifndef FABRIK_TEST_HARNESS_H
#define FABRIK_TEST_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- test cases and the runner ---- */

struct th_case {
    const char *name;
    void (*run)(void);
};

/* Runs every case whose name contains one of the filter arguments (all when none) in its own
 * forked child. Returns the process exit status: 0 when every case that ran passed, 77 when
 * all were skipped, 1 otherwise. */
int th_main(int argc, char **argv, const struct th_case *cases, size_t count);

#define TH_CASE(fn) { #fn, fn }

/* Ends the current case as skipped, with a reason printed to stderr. */
_Noreturn void th_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Ends the current case as failed. */
_Noreturn void th_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define th_fail(...) th_fail_at(__FILE__, __LINE__, __VA_ARGS__)

/* Path of a fresh directory that belongs to the current case and is removed after it. */
const char *th_case_dir(void);

/* Seconds since an arbitrary fixed point, from CLOCK_MONOTONIC. */
double th_now(void);

void th_sleep_ms(int ms);

/* ---- the server under test ---- */

struct th_server_opts {
    const char *toml;          /* written to <config dir>/conf.d/test.toml when not NULL */
    const char *password;      /* exported as FAKTORY_PASSWORD when not NULL */
    const char *environment;   /* -e value; "development" when NULL */
    const char *data_dir;      /* existing data directory to use instead of a fresh one */
    bool tls;                  /* put a fresh self-signed certificate in the config dir */
    const char *env[4];        /* extra "NAME=value" entries for the server's environment */
};

struct th_server {
    pid_t pid;                 /* 0 when not running or external */
    int port;
    bool external;             /* FABRIK_TEST_ADDR names a server this harness did not start */
    bool tls;
    char host[64];
    char *password;            /* copy of opts->password, used by th_producer/th_worker */
    char *data_dir;
    char *config_dir;
    char *log_path;
    void *ssl_ctx;             /* SSL_CTX * that trusts the generated certificate */
    struct th_server_opts opts;
};

/* The server binary under test (from --server or FABRIK_BIN). */
const char *th_server_binary(void);

/* Starts a server (opts may be NULL) and waits until its port accepts connections. In external
 * mode it FLUSHes the running server instead, and skips the case when opts requests anything
 * that needs a private server. Fails the case when the server does not come up. */
struct th_server *th_server_start(const struct th_server_opts *opts);

/* Sends SIGTERM, waits for the exit and fails the case unless the exit status is 0. */
void th_server_stop(struct th_server *srv);

/* Sends SIGKILL and waits for the process to disappear. */
void th_server_kill(struct th_server *srv);

/* Starts the stopped server again with the same port, directories and options. */
void th_server_restart(struct th_server *srv);

/* Sends a signal (for example SIGHUP) to the server process. */
void th_server_signal(struct th_server *srv, int sig);

/* Replaces the TLS key and certificate in the config directory with a fresh pair, and makes
 * new client connections trust only the new certificate. */
void th_server_new_certificate(struct th_server *srv);

/* Returns true while the server process exists and has not exited. */
bool th_server_alive(struct th_server *srv);

/* Returns true when a line of the server's log contains needle (case-insensitive). */
bool th_server_log_contains(struct th_server *srv, const char *needle);

/* Peak resident set size of the server process in KiB, from /proc, or -1 when unknown. */
long th_server_peak_rss_kb(struct th_server *srv);

/* Skips the current case when the suite targets an external server. */
void th_require_private_server(void);

/* ---- clients ---- */

enum th_reply_kind {
    TH_SIMPLE,   /* +text */
    TH_ERROR,    /* -text */
    TH_BULK,     /* $len then len bytes */
    TH_NULL,     /* $-1 */
    TH_OTHER,    /* any other first byte, e.g. :int */
    TH_CLOSED,   /* the server closed the connection (EOF or reset) */
    TH_TIMEOUT,  /* nothing complete arrived in time */
};

struct th_reply {
    enum th_reply_kind kind;
    char *line;       /* first line without CRLF, e.g. "+OK", "-ERR x", "$17", "$-1" */
    char *body;       /* bulk payload, NUL-terminated; NULL for other kinds */
    size_t body_len;
    char *raw;        /* every byte of the reply, CRLFs included */
    size_t raw_len;
    double elapsed;   /* seconds between the start of the read and the complete reply */
};

struct th_conn {
    int fd;
    void *ssl;                 /* SSL * when the server uses TLS */
    struct th_server *srv;
    char *buf;                 /* bytes received and not yet consumed */
    size_t len, cap;
    struct th_reply reply;     /* the last reply, valid until the next read */
    char *last_cmd;            /* the last command sent, for failure messages */
};

/* Opens a TCP (or TLS, when the server has TLS) connection and reads nothing. */
struct th_conn *th_connect(struct th_server *srv);

/* Opens a plain TCP connection even when the server uses TLS. */
struct th_conn *th_connect_plain(struct th_server *srv);

/* Reads the +HI greeting and returns its JSON (owned by the conn's case, do not free). */
json_t *th_greeting(struct th_conn *c);

/* Connects, reads the greeting and completes HELLO as a producer (no wid) or as a worker with
 * the given wid, adding the password hash when the greeting requests one. Fails unless +OK. */
struct th_conn *th_producer(struct th_server *srv);
struct th_conn *th_worker(struct th_server *srv, const char *wid);

void th_close(struct th_conn *c);

/* Sends one line: the printf-style text with "\r\n" appended. */
void th_send(struct th_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same with a bare "\n" line ending. */
void th_send_lf(struct th_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends bytes exactly as given. Returns 0, or -1 when the server closed the connection. */
int th_send_raw(struct th_conn *c, const void *data, size_t len);

/* Reads one RESP reply, waiting at most timeout_ms. The reply stays valid until the next read
 * on the same connection. */
const struct th_reply *th_read(struct th_conn *c, int timeout_ms);

/* Reads raw bytes, without parsing them, until the server closes c or timeout_ms passes.
 * Stores a pointer to the bytes (valid until the next read on c) in *data and whether the
 * server closed the connection in *closed. Returns the number of bytes. */
size_t th_drain(struct th_conn *c, int timeout_ms, const char **data, bool *closed);

/* Sends a command (CRLF) and reads its reply within 10 seconds. */
const struct th_reply *th_cmd(struct th_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* SHA-256 over password+salt, then rounds-1 more times over the raw digest, as lowercase hex
 * into out (65 bytes). */
void th_password_hash(const char *password, const char *salt, long rounds, char out[65]);

/* ---- checks: each prints the location and both values when it fails ---- */

void th_check_at(const char *file, int line, bool ok, const char *expr);
void th_check_int_at(const char *file, int line, const char *expr, long long actual,
                     long long expected);
void th_check_str_at(const char *file, int line, const char *expr, const char *actual,
                     const char *expected);
void th_check_range_at(const char *file, int line, const char *expr, double actual, double lo,
                       double hi);

#define TH_CHECK(cond) th_check_at(__FILE__, __LINE__, (cond), #cond)
#define TH_EQ_INT(actual, expected) \
    th_check_int_at(__FILE__, __LINE__, #actual, (long long)(actual), (long long)(expected))
#define TH_EQ_STR(actual, expected) \
    th_check_str_at(__FILE__, __LINE__, #actual, (actual), (expected))
/* Passes when lo <= actual <= hi. */
#define TH_RANGE(actual, lo, hi) \
    th_check_range_at(__FILE__, __LINE__, #actual, (double)(actual), (lo), (hi))

/* Sends a command and checks that the reply's first line equals expected exactly (for example
 * "+OK", "-ERR unknown command CMD", "$-1"). */
void th_expect_line_at(const char *file, int line, struct th_conn *c, const char *expected,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define TH_EXPECT(c, expected, ...) th_expect_line_at(__FILE__, __LINE__, c, expected, __VA_ARGS__)
#define TH_OK(c, ...) th_expect_line_at(__FILE__, __LINE__, c, "+OK", __VA_ARGS__)

/* Sends a command and checks that the reply is an error whose line starts with prefix. */
void th_expect_prefix_at(const char *file, int line, struct th_conn *c, const char *prefix,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define TH_EXPECT_PREFIX(c, prefix, ...) \
    th_expect_prefix_at(__FILE__, __LINE__, c, prefix, __VA_ARGS__)

/* Sends a command and checks that every byte of the reply equals expected_raw (CRLFs included). */
void th_expect_raw_at(const char *file, int line, struct th_conn *c, const char *expected_raw,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define TH_EXPECT_RAW(c, expected_raw, ...) \
    th_expect_raw_at(__FILE__, __LINE__, c, expected_raw, __VA_ARGS__)

/* Checks that the last reply read on c has the given first line. */
void th_check_reply_at(const char *file, int line, struct th_conn *c, const char *expected);
#define TH_REPLY(c, expected) th_check_reply_at(__FILE__, __LINE__, c, expected)

/* Waits up to timeout_ms for the server to close c. Fails if any byte arrives first (when
 * silent is true) or if the connection stays open. Returns the seconds waited. */
double th_expect_closed_at(const char *file, int line, struct th_conn *c, int timeout_ms,
                           bool silent);
#define TH_EXPECT_CLOSED(c, timeout_ms) th_expect_closed_at(__FILE__, __LINE__, c, timeout_ms, true)

/* ---- JSON and job helpers. Returned json_t values belong to the case: do not free them ---- */

/* Parses text as JSON and fails the case when it is not valid. */
json_t *th_json_at(const char *file, int line, const char *text, size_t len);
#define TH_JSON(text, len) th_json_at(__FILE__, __LINE__, text, len)

/* Looks up a dotted path such as "faktory.sets.retries". Returns NULL when a step is missing. */
json_t *th_json_get(json_t *root, const char *path);

/* Integer and string at a dotted path. Both fail the case when it is missing or of another type. */
long long th_json_int_at(const char *file, int line, json_t *root, const char *path);
const char *th_json_str_at(const char *file, int line, json_t *root, const char *path);
#define TH_JINT(root, path) th_json_int_at(__FILE__, __LINE__, root, path)
#define TH_JSTR(root, path) th_json_str_at(__FILE__, __LINE__, root, path)

/* Sends INFO and returns the parsed document. */
json_t *th_info_at(const char *file, int line, struct th_conn *c);
#define TH_INFO(c) th_info_at(__FILE__, __LINE__, c)

/* Integer at a dotted path of a fresh INFO. */
long long th_info_int_at(const char *file, int line, struct th_conn *c, const char *path);
#define TH_INFO_INT(c, path) th_info_int_at(__FILE__, __LINE__, c, path)
#define TH_INFO_EQ(c, path, expected) TH_EQ_INT(TH_INFO_INT(c, path), expected)

/* Size of one queue from INFO (0 when the queue is not listed). */
long long th_queue_size_at(const char *file, int line, struct th_conn *c, const char *queue);
#define TH_QUEUE_SIZE(c, queue) th_queue_size_at(__FILE__, __LINE__, c, queue)

/* Pushes {"jid":jid,"jobtype":"T","args":[1]} plus the extra fields (e.g. "\"retry\":0", or
 * NULL) and checks +OK. */
void th_push_at(const char *file, int line, struct th_conn *c, const char *jid,
                const char *extra);
#define TH_PUSH(c, jid, extra) th_push_at(__FILE__, __LINE__, c, jid, extra)

/* Sends FETCH with the queue list and returns the job, or NULL for $-1. Fails on any other
 * reply. */
json_t *th_fetch_at(const char *file, int line, struct th_conn *c, const char *queues);
#define TH_FETCH(c, queues) th_fetch_at(__FILE__, __LINE__, c, queues)

/* Fetches, checks that the job has the given jid and returns the job. */
json_t *th_fetch_jid_at(const char *file, int line, struct th_conn *c, const char *queues,
                        const char *jid);
#define TH_FETCH_JID(c, queues, jid) th_fetch_jid_at(__FILE__, __LINE__, c, queues, jid)

/* Sends "DEBUG CLOCK <seconds>" and checks +OK. */
void th_clock_at(const char *file, int line, struct th_conn *c, double seconds);
#define TH_CLOCK(c, seconds) th_clock_at(__FILE__, __LINE__, c, seconds)

/* The server's clock from INFO "now", in Unix seconds. */
double th_server_time_at(const char *file, int line, struct th_conn *c);
#define TH_SERVER_TIME(c) th_server_time_at(__FILE__, __LINE__, c)

/* Parses an RFC 3339 timestamp into Unix seconds. Returns 0, or -1 when it is malformed. */
int th_parse_time(const char *text, double *out);
double th_time_at(const char *file, int line, json_t *root, const char *path);
#define TH_TIME(root, path) th_time_at(__FILE__, __LINE__, root, path)

/* Formats Unix seconds as RFC 3339 UTC with nanoseconds ("...T...123456789Z") into out. */
void th_format_time(double unix_seconds, char *out, size_t size);

/* Remembers a heap pointer or a JSON value and releases it when the case ends. */
void *th_keep(void *heap_ptr);
json_t *th_keep_json(json_t *value);

/* printf into a string that lives until the case ends. */
char *th_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes text to a file, failing the case on error. */
void th_write_file(const char *path, const char *text);

#endif
