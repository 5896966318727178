/* libfabrik: a C client for servers that speak the Faktory Work Protocol (FWP), such as fabrik
 * and Faktory. It contains a producer API (push jobs, inspect and change queues and sets,
 * batches, tracking) and a worker runtime (handlers by job type, worker threads, heartbeats,
 * graceful shutdown).
 *
 * Conventions:
 * - Functions that can fail return int: 0 (FABRIK_OK) on success, or a negative FABRIK_E*
 *   code. fabrik_strerror() names a code; fabrik_client_error() returns the detail of the last
 *   failure on a connection, for example the server's error message.
 * - JSON crosses this interface as NUL-terminated UTF-8 strings. Strings returned through a
 *   `char **` out-parameter are owned by the caller and released with fabrik_free().
 * - A struct fabrik_client is one connection and is not thread-safe: use one per thread, or
 *   lock around it. The worker runtime opens one connection per worker thread.
 * - The library never calls exit() and never installs signal handlers. fabrik_worker_run()
 *   waits for SIGINT, SIGTERM and SIGTSTP with sigwait-style calls, after blocking them.
 */
#ifndef FABRIK_FABRIK_H
#define FABRIK_FABRIK_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FABRIK_CLIENT_VERSION "0.1.0"

/* The URL used when neither the options nor the environment name one. */
#define FABRIK_DEFAULT_URL "tcp://127.0.0.1:7419"

/* ---- errors ------------------------------------------------------------------------------ */

/* Error codes. The range starts at -30800 so that it cannot collide with -errno values. */
enum fabrik_error {
    FABRIK_OK = 0,
    FABRIK_EINVAL = -30800,     /* invalid argument: bad URL, bad JSON, missing value */
    FABRIK_ENOMEM = -30801,     /* out of memory */
    FABRIK_ECONNECT = -30802,   /* connecting failed or the connection was lost */
    FABRIK_ETIMEDOUT = -30803,  /* no complete reply within the I/O timeout */
    FABRIK_ETLS = -30804,       /* TLS setup, handshake or certificate verification failed */
    FABRIK_EAUTH = -30805,      /* the server rejected the password, or one is needed */
    FABRIK_EPROTOCOL = -30806,  /* the server sent a reply this library cannot use */
    FABRIK_ESERVER = -30807,    /* the server replied "-ERR <message>" */
    FABRIK_ENOTUNIQUE = -30808, /* the server replied "-NOTUNIQUE ...": a unique job exists */
    FABRIK_ECODED = -30809,     /* the server replied "-<CODE> <message>" with another code */
    FABRIK_ESTATE = -30810,     /* the call is not allowed in the object's current state */
};

/* Returns a static English description of a FABRIK_E* code (or of 0). */
const char *fabrik_strerror(int code);

/* Releases a string or buffer that this library returned to the caller. Accepts NULL. */
void fabrik_free(void *ptr);

/* ---- URLs -------------------------------------------------------------------------------- */

/* A parsed server URL: tcp://[[user]:password@]host[:port] or tcp+tls://... */
struct fabrik_url {
    char *host;     /* host name or address; an IPv6 address is stored without brackets */
    int port;       /* 1..65535, 7419 when the URL has none */
    char *password; /* percent-decoded password, or NULL when the URL has none */
    bool tls;       /* true for the tcp+tls scheme */
};

/* Parses url into *out. On success the caller frees the fields with fabrik_url_clear().
 * Returns FABRIK_EINVAL for an unknown scheme, a missing host, or a port that is not a number
 * from 1 to 65535. */
int fabrik_url_parse(const char *url, struct fabrik_url *out);

/* Frees the strings of a parsed URL and zeroes it. Accepts a zeroed struct. */
void fabrik_url_clear(struct fabrik_url *url);

/* Returns the URL that Faktory clients would use when none is given: the variable named by
 * FAKTORY_PROVIDER when that is set, else FAKTORY_URL, else FABRIK_DEFAULT_URL. Returns NULL
 * when FAKTORY_PROVIDER is not a plain variable name (it contains ':') or names an unset
 * variable. The pointer is borrowed from the environment or is a static string. */
const char *fabrik_url_from_env(void);

/* ---- connections ------------------------------------------------------------------------- */

/* Connection settings. Call fabrik_options_init() first, then set the fields you need. Strings
 * are borrowed: they must stay valid during the call that receives the options (the library
 * copies them). */
struct fabrik_options {
    const char *url;         /* NULL: fabrik_url_from_env() */
    const char *password;    /* overrides the URL's password; NULL: the URL's, if any */
    const char *ca_file;     /* PEM file of the certificate authorities to trust for TLS;
                                NULL: the system's default trust store */
    bool tls_skip_verify;    /* accept any server certificate (only for testing) */
    const char *wid;         /* worker id sent in HELLO; NULL or "" for a producer */
    const char *hostname;    /* NULL: gethostname() */
    const char *const *labels; /* NULL-terminated list sent as HELLO labels; NULL: none */
    int connect_timeout_ms;  /* TCP connect plus TLS and FWP handshakes; default 5000 */
    int io_timeout_ms;       /* wait for one reply; default 10000 (FETCH blocks up to 2 s) */
    int reconnect_attempts;  /* reconnects tried before a call fails; default 5, 0 for none */
    int backoff_initial_ms;  /* delay before the first reconnect; default 100 */
    int backoff_max_ms;      /* cap of the doubling delay; default 5000 */
};

void fabrik_options_init(struct fabrik_options *opts);

struct fabrik_client;

/* Connects and completes the HI/HELLO handshake (with the password challenge when the server
 * requests one). On success *out is a new client that the caller releases with
 * fabrik_client_close(). On failure *out is NULL, and when errbuf is not NULL it receives a
 * message of at most errlen bytes. */
int fabrik_client_open(struct fabrik_client **out, const struct fabrik_options *opts,
                       char *errbuf, size_t errlen);

/* Sends END, closes the connection and frees the client. Accepts NULL. */
void fabrik_client_close(struct fabrik_client *client);

/* Detail of the last failed call on this client: the server's message without its "-ERR "
 * prefix, or a description of the local failure. Borrowed until the next call on client. */
const char *fabrik_client_error(const struct fabrik_client *client);

/* Number of successful reconnects since the client was opened. */
unsigned fabrik_client_reconnects(const struct fabrik_client *client);

/* Every call below reconnects first (with capped exponential backoff and jitter, up to
 * reconnect_attempts times) when the previous call lost the connection. A call that loses the
 * connection while it waits for its reply returns FABRIK_ECONNECT or FABRIK_ETIMEDOUT and is
 * not repeated, because the server may have applied it. */

/* Sends one raw command line (without the line ending) and returns the reply: the text of a
 * simple string, the payload of a bulk string, or NULL for a null bulk string. Error replies
 * become error codes. *reply may be NULL to discard it. */
int fabrik_command(struct fabrik_client *client, const char *line, char **reply);

/* ---- jobs -------------------------------------------------------------------------------- */

/* Length of the jids that fabrik_jid_generate() writes, without the NUL. */
#define FABRIK_JID_LEN 24

/* Writes a random jid of FABRIK_JID_LEN hex digits plus a NUL into out. */
void fabrik_jid_generate(char out[FABRIK_JID_LEN + 1]);

/* A job under construction. A new job has a random jid, queue "default" and args []. */
struct fabrik_job;

/* Returns NULL when jobtype is NULL or empty, or on allocation failure. */
struct fabrik_job *fabrik_job_new(const char *jobtype);
void fabrik_job_free(struct fabrik_job *job);

int fabrik_job_set_jid(struct fabrik_job *job, const char *jid);
int fabrik_job_set_queue(struct fabrik_job *job, const char *queue);
/* args_json must be a JSON array, for example "[1,\"two\"]". */
int fabrik_job_set_args(struct fabrik_job *job, const char *args_json);
/* Appends one argument. */
int fabrik_job_add_arg_string(struct fabrik_job *job, const char *value);
int fabrik_job_add_arg_int(struct fabrik_job *job, long long value);
/* value_json is any JSON value. */
int fabrik_job_add_arg_json(struct fabrik_job *job, const char *value_json);
int fabrik_job_set_priority(struct fabrik_job *job, int priority);
int fabrik_job_set_retry(struct fabrik_job *job, int retry);
int fabrik_job_set_reserve_for(struct fabrik_job *job, int seconds);
/* at is an RFC 3339 time such as "2030-01-02T03:04:05Z". */
int fabrik_job_set_at(struct fabrik_job *job, const char *at);
/* Runs the job seconds from now (the client's clock). */
int fabrik_job_set_in(struct fabrik_job *job, double seconds);
/* Sets custom.<key> to a JSON value, for example ("bid", "\"b-123\"") or ("track", "1"). */
int fabrik_job_set_custom(struct fabrik_job *job, const char *key, const char *value_json);
/* Sets any other top-level field to a JSON value. */
int fabrik_job_set_field(struct fabrik_job *job, const char *key, const char *value_json);

/* Borrowed until the job is freed or its jid changes. */
const char *fabrik_job_jid(const struct fabrik_job *job);

/* Returns the job as compact JSON (caller frees with fabrik_free), or NULL on failure. */
char *fabrik_job_to_json(const struct fabrik_job *job);

/* ---- producer commands ------------------------------------------------------------------- */

/* PUSH a job object given as JSON, or built with the functions above. A duplicate unique job
 * returns FABRIK_ENOTUNIQUE. */
int fabrik_push(struct fabrik_client *client, const char *job_json);
int fabrik_push_job(struct fabrik_client *client, const struct fabrik_job *job);

/* One job that PUSHB rejected. */
struct fabrik_push_error {
    char *jid;
    char *message; /* the server's message, e.g. "jobs must have a jobtype parameter" */
    int code;      /* FABRIK_ENOTUNIQUE for "NOTUNIQUE ..." messages, else FABRIK_ESERVER */
};

/* PUSHB: pushes a JSON array of jobs. The server stores the valid jobs even when others fail,
 * so the call returns 0 when the command itself succeeded; *errors (may be NULL to ignore)
 * then receives *error_count rejected jobs, to be released with fabrik_push_errors_free(). */
int fabrik_push_bulk(struct fabrik_client *client, const char *jobs_json,
                     struct fabrik_push_error **errors, size_t *error_count);
void fabrik_push_errors_free(struct fabrik_push_error *errors, size_t count);

/* INFO: *json receives the server's INFO document. */
int fabrik_info(struct fabrik_client *client, char **json);

/* FLUSH: deletes every job, queue and counter on the server. */
int fabrik_flush(struct fabrik_client *client);

/* MUTATE: cmd is "clear", "kill", "discard" or "requeue"; target is "retries", "scheduled" or
 * "dead"; filter_json is NULL or an object with "jobtype", "regexp" (a glob) and/or "jids". */
int fabrik_mutate(struct fabrik_client *client, const char *cmd, const char *target,
                  const char *filter_json);

/* QUEUE PAUSE, RESUME and REMOVE over count queue names ("*" means every queue). REMOVE
 * deletes the queues' jobs. */
int fabrik_queue_pause(struct fabrik_client *client, const char *const *queues, size_t count);
int fabrik_queue_resume(struct fabrik_client *client, const char *const *queues, size_t count);
int fabrik_queue_remove(struct fabrik_client *client, const char *const *queues, size_t count);

/* QUEUE LATENCY: *json receives an object that maps each queue to the age in seconds of the
 * job that FETCH would take next. */
int fabrik_queue_latency(struct fabrik_client *client, const char *const *queues, size_t count,
                         char **json);

/* ---- batches and tracking (Faktory Enterprise commands, also in fabrik) -------------------- */

/* BATCH NEW: batch_json is an object with optional "description", "parent_bid", "success" and
 * "complete" (callback jobs). *bid receives the new batch id ("b-..."). Jobs join the batch by
 * carrying custom.bid (fabrik_job_set_custom(job, "bid", "\"<bid>\"")). */
int fabrik_batch_new(struct fabrik_client *client, const char *batch_json, char **bid);
/* BATCH OPEN: reopens a batch to add jobs; *bid receives the server's copy of the id and may
 * be NULL. */
int fabrik_batch_open(struct fabrik_client *client, const char *bid, char **bid_out);
int fabrik_batch_commit(struct fabrik_client *client, const char *bid);
/* BATCH STATUS: *json receives {bid,parent_bid,description,created_at,total,pending,failed,
 * complete_st,success_st}. An unknown bid returns FABRIK_ESERVER. */
int fabrik_batch_status(struct fabrik_client *client, const char *bid, char **json);

/* TRACK SET: percent from 0 to 100, or -1 to leave it out; desc and reserve_until (RFC 3339)
 * may be NULL. Only jobs pushed with custom.track = 1 are tracked. */
int fabrik_track_set(struct fabrik_client *client, const char *jid, int percent,
                     const char *desc, const char *reserve_until);
/* TRACK GET: *json receives {jid,state,updated_at,percent?,desc?}. */
int fabrik_track_get(struct fabrik_client *client, const char *jid, char **json);

/* ---- worker runtime ---------------------------------------------------------------------- */

/* A fetched job while its handler runs. Valid only inside the handler call. */
struct fabrik_task;

const char *fabrik_task_jid(const struct fabrik_task *task);
const char *fabrik_task_jobtype(const struct fabrik_task *task);
const char *fabrik_task_queue(const struct fabrik_task *task);
/* The whole job as the server sent it. */
const char *fabrik_task_json(const struct fabrik_task *task);
/* The job's args array as compact JSON. */
const char *fabrik_task_args(const struct fabrik_task *task);
size_t fabrik_task_arg_count(const struct fabrik_task *task);
/* Argument i as a string, or NULL when it is missing or not a string. */
const char *fabrik_task_arg_string(const struct fabrik_task *task, size_t i);
/* Argument i as an integer. Returns FABRIK_EINVAL when it is missing or not an integer. */
int fabrik_task_arg_int(const struct fabrik_task *task, size_t i, long long *value);

/* Records why the job failed: the handler then returns non-zero. errtype and message may be
 * NULL. backtrace contains lines separated by '\n'; when it is NULL the library records the
 * calling thread's stack from backtrace(3) instead. */
int fabrik_task_fail(struct fabrik_task *task, const char *errtype, const char *message,
                     const char *backtrace);

/* Returns true once the worker is shutting down and this job's time is up: the job has been
 * FAILed already and the handler should return as soon as it can. */
bool fabrik_task_cancelled(const struct fabrik_task *task);

/* The worker thread's own connection, for pushing follow-up jobs or TRACK SET from inside a
 * handler. Borrowed; do not close it. */
struct fabrik_client *fabrik_task_client(struct fabrik_task *task);

/* A job handler. Return 0 to ACK the job, anything else to FAIL it (with the details given to
 * fabrik_task_fail(), or errtype "HandlerError" and a message with the returned value). */
typedef int (*fabrik_handler_fn)(struct fabrik_task *task, void *arg);

enum fabrik_worker_state {
    FABRIK_WORKER_IDLE,        /* created, not started */
    FABRIK_WORKER_RUNNING,     /* fetching and running jobs */
    FABRIK_WORKER_QUIET,       /* running jobs finish, no new FETCH */
    FABRIK_WORKER_STOPPING,    /* waiting for running jobs until the shutdown timeout */
    FABRIK_WORKER_STOPPED,     /* every job was ACKed or FAILed; no more traffic */
};

struct fabrik_worker_options {
    struct fabrik_options conn;   /* connection settings; conn.wid NULL: a random wid */
    int concurrency;              /* worker threads, each with its own connection; default 5 */
    const char *const *queues;    /* queues to FETCH from; NULL: {"default"} */
    size_t queue_count;
    /* NULL: strict order (the first queue with a job wins). Otherwise one positive weight per
     * queue: each FETCH lists the queues in a random order in which a queue comes first with
     * a probability proportional to its weight. */
    const unsigned *weights;
    int beat_interval_ms;         /* default 15000 */
    int shutdown_timeout_ms;      /* how long running jobs may finish; default 25000 */
    /* Receives one line per event that the runtime handles by itself (lost connections,
     * reconnects, failed ACKs, quiet and terminate from the server, jobs FAILed at shutdown).
     * NULL: the lines go to stderr, prefixed "fabrik-worker: ". Called from any worker thread. */
    void (*log)(void *log_arg, const char *line);
    void *log_arg;
};

void fabrik_worker_options_init(struct fabrik_worker_options *opts);

struct fabrik_worker;

/* Creates a worker (no connection yet). The caller frees it with fabrik_worker_free(). */
int fabrik_worker_new(struct fabrik_worker **out, const struct fabrik_worker_options *opts);

/* Registers the handler for a job type; a second call for the same type replaces it. Only
 * before fabrik_worker_start(). Jobs whose type has no handler are FAILed with errtype
 * "UnknownJobType". */
int fabrik_worker_register(struct fabrik_worker *worker, const char *jobtype,
                           fabrik_handler_fn handler, void *arg);

/* Opens the heartbeat connection and starts the heartbeat thread and the worker threads.
 * Returns an error when the first connection fails. */
int fabrik_worker_start(struct fabrik_worker *worker);

/* Stops fetching new jobs; running jobs finish (Faktory's "quiet"). */
void fabrik_worker_quiet(struct fabrik_worker *worker);

/* Starts a graceful shutdown without waiting for it: no new FETCH, running jobs get
 * shutdown_timeout_ms to finish, and those still running then are FAILed. */
void fabrik_worker_shutdown(struct fabrik_worker *worker);

/* Blocks until the worker is STOPPED (after fabrik_worker_shutdown() or a "terminate" from the
 * server) or timeout_ms passes (negative: no limit). Returns 0 once the worker is STOPPED,
 * FABRIK_ETIMEDOUT when timeout_ms passed first, FABRIK_ESTATE when it was never started. */
int fabrik_worker_wait(struct fabrik_worker *worker, int timeout_ms);

/* fabrik_worker_shutdown() followed by fabrik_worker_wait() without a limit. */
int fabrik_worker_stop(struct fabrik_worker *worker);

/* Starts the worker and runs it until a signal or the server ends it: SIGTSTP means quiet,
 * SIGINT and SIGTERM mean graceful shutdown. Blocks those signals in the calling thread (and so
 * in every thread it starts). Returns 0 after a clean stop. */
int fabrik_worker_run(struct fabrik_worker *worker);

enum fabrik_worker_state fabrik_worker_state(const struct fabrik_worker *worker);

/* The worker's wid, borrowed until fabrik_worker_free(). */
const char *fabrik_worker_wid(const struct fabrik_worker *worker);

/* Counters since start: jobs ACKed, jobs FAILed (handler failures, unknown job types and jobs
 * FAILed at the shutdown timeout). */
unsigned long fabrik_worker_acked(const struct fabrik_worker *worker);
unsigned long fabrik_worker_failed(const struct fabrik_worker *worker);

/* Stops the worker if it still runs, waits for every thread (including handlers that did not
 * return before the shutdown timeout) and frees it. Accepts NULL. */
void fabrik_worker_free(struct fabrik_worker *worker);

#ifdef __cplusplus
}
#endif

#endif
