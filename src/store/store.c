/* SQLite storage: schema, migrations and prepared statements.
 *
 * Schema history (PRAGMA user_version):
 *   1  jobs, queues, counters, daily. jobs.seq orders a queue: it is taken from a counter
 *      each time a job enters its queue, so a retried or scheduled job joins at the back.
 *   2  cron_runs: the scheduled time of each cron entry's last run, keyed by the entry's hash.
 *   3  jobs.jobtype, copied from the payload at push, so metrics and filters need no JSON.
 *   4  jobs.expires_at (0 = never) and an index of the jobs that can still expire.
 *   5  jobs.ext (which extensions a job takes part in, enum job_ext) and jobs.bid; batches
 *      and batch_jobs (one row per member jid, so every count is per job, never per event).
 *   6  unique_locks (one row per lock key) and tracking (one row per tracked jid).
 *   7  batches.children_finished, so a parent counts as finished only after its children.
 * To change the schema, append a migration to `migrations` that moves version N to N+1; the
 * server applies every missing step in one transaction at start-up and refuses a file whose
 * version is newer than the last step it knows. */
#include "store/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uthash.h>

#include "store/store_internal.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  jid TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  priority INTEGER NOT NULL DEFAULT 5,"
    "  reserve_for INTEGER NOT NULL DEFAULT 1800,"
    "  at REAL NOT NULL DEFAULT 0,"
    "  enqueued_at REAL NOT NULL DEFAULT 0,"
    "  reserved_at REAL NOT NULL DEFAULT 0,"
    "  wid TEXT,"
    "  seq INTEGER NOT NULL DEFAULT 0,"
    "  payload TEXT NOT NULL);"
    "CREATE INDEX jobs_queued ON jobs(queue, priority DESC, seq) WHERE state = 0;"
    "CREATE INDEX jobs_scheduled ON jobs(at, id) WHERE state = 1;"
    "CREATE INDEX jobs_retry ON jobs(at, id) WHERE state = 2;"
    "CREATE INDEX jobs_working ON jobs(at, id) WHERE state = 3;"
    "CREATE INDEX jobs_working_jid ON jobs(jid) WHERE state = 3;"
    "CREATE INDEX jobs_dead ON jobs(at, id) WHERE state = 4;"
    "CREATE TABLE queues (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0)"
    "  WITHOUT ROWID;"
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE daily (day TEXT PRIMARY KEY, processed INTEGER NOT NULL DEFAULT 0,"
    "  failures INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;",
    /* 1 -> 2 */
    "CREATE TABLE cron_runs (key TEXT PRIMARY KEY, last_run REAL NOT NULL) WITHOUT ROWID;",
    /* 2 -> 3 */
    ("ALTER TABLE jobs ADD COLUMN jobtype TEXT NOT NULL DEFAULT '';"
     "UPDATE jobs SET jobtype = coalesce(json_extract(payload, '$.jobtype'), '');"),
    /* 3 -> 4 */
    ("ALTER TABLE jobs ADD COLUMN expires_at REAL NOT NULL DEFAULT 0;"
     "CREATE INDEX jobs_expiring ON jobs(expires_at)"
     " WHERE expires_at > 0 AND state IN (0, 1, 2);"),
    /* 4 -> 5 */
    ("ALTER TABLE jobs ADD COLUMN ext INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN bid TEXT;"
     "CREATE INDEX jobs_bid ON jobs(bid, jid) WHERE bid IS NOT NULL;"
     "CREATE TABLE batches ("
     "  bid TEXT PRIMARY KEY,"
     "  parent_bid TEXT,"
     "  description TEXT NOT NULL DEFAULT '',"
     "  created_at REAL NOT NULL,"
     "  updated_at REAL NOT NULL,"
     "  committed_at REAL NOT NULL DEFAULT 0,"
     "  finished_at REAL NOT NULL DEFAULT 0,"
     "  total INTEGER NOT NULL DEFAULT 0,"
     "  ran INTEGER NOT NULL DEFAULT 0,"
     "  acked INTEGER NOT NULL DEFAULT 0,"
     "  ended INTEGER NOT NULL DEFAULT 0,"
     "  failed INTEGER NOT NULL DEFAULT 0,"
     "  died INTEGER NOT NULL DEFAULT 0,"
     "  children INTEGER NOT NULL DEFAULT 0,"
     "  children_complete INTEGER NOT NULL DEFAULT 0,"
     "  children_success INTEGER NOT NULL DEFAULT 0,"
     "  callbacks_live INTEGER NOT NULL DEFAULT 0,"
     "  complete_job TEXT, success_job TEXT, death_job TEXT,"
     "  complete_jid TEXT, success_jid TEXT, death_jid TEXT,"
     "  complete_st INTEGER NOT NULL DEFAULT 0,"
     "  success_st INTEGER NOT NULL DEFAULT 0,"
     "  death_st INTEGER NOT NULL DEFAULT 0,"
     "  complete_done INTEGER NOT NULL DEFAULT 0,"
     "  success_done INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
     "CREATE INDEX batches_parent ON batches(parent_bid) WHERE parent_bid IS NOT NULL;"
     "CREATE INDEX batches_open ON batches(created_at) WHERE committed_at = 0;"
     "CREATE INDEX batches_finished ON batches(finished_at) WHERE finished_at > 0;"
     "CREATE INDEX batches_created ON batches(created_at);"
     "CREATE TABLE batch_jobs (bid TEXT NOT NULL, jid TEXT NOT NULL,"
     "  state INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,"
     "  PRIMARY KEY (bid, jid)) WITHOUT ROWID;"),
    /* 5 -> 6 */
    ("CREATE TABLE unique_locks (key TEXT PRIMARY KEY, jid TEXT NOT NULL,"
     "  until_start INTEGER NOT NULL DEFAULT 0, expires_at REAL NOT NULL) WITHOUT ROWID;"
     "CREATE INDEX unique_locks_jid ON unique_locks(jid);"
     "CREATE INDEX unique_locks_expiry ON unique_locks(expires_at);"
     "CREATE TABLE tracking (jid TEXT PRIMARY KEY, state INTEGER NOT NULL, percent INTEGER,"
     "  description TEXT, updated_at REAL NOT NULL, expires_at REAL NOT NULL DEFAULT 0)"
     "  WITHOUT ROWID;"
     "CREATE INDEX tracking_expiry ON tracking(expires_at) WHERE expires_at > 0;"),
    /* 6 -> 7 */
    "ALTER TABLE batches ADD COLUMN children_finished INTEGER NOT NULL DEFAULT 0;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define JOB_COLUMNS STORE_JOB_COLUMNS("")

/* Every statement, prepared once at open. The per-state queries take the state as a
 * literal so SQLite can use the matching partial index. */
enum stmt_id {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
    ST_INSERT, ST_TAKE, ST_FIND_WORKING, ST_GET, ST_DELETE, ST_MOVE, ST_MOVE_KEEP,
    ST_DUE_1, ST_DUE_2, ST_DUE_3, ST_DUE_4,
    ST_EARLIEST_1, ST_EARLIEST_2, ST_EARLIEST_3, ST_EARLIEST_4,
    ST_SCAN_1, ST_SCAN_2, ST_SCAN_3, ST_SCAN_4,
    ST_QUEUE_HEAD, ST_CLEAR_QUEUE, ST_PUT_QUEUE, ST_DELETE_QUEUE, ST_LOAD_QUEUES,
    ST_COUNT_QUEUED, ST_ADD_COUNTER, ST_ADD_DAILY, ST_LOAD_COUNTERS,
    ST_TRIM_DEAD_AGE, ST_TRIM_DEAD_COUNT, ST_COUNT_DEAD, ST_MAX_SEQ,
    ST_CRON_GET, ST_CRON_PUT, ST_EXPIRED_IDS, ST_EARLIEST_EXPIRY,
    ST_COUNT
};

#define STATE_QUERIES(n)                                                                  \
    [ST_DUE_##n] = "SELECT id FROM jobs WHERE state = " #n " AND at <= ?1 ORDER BY at, id " \
                   "LIMIT ?2",                                                            \
    [ST_EARLIEST_##n] = "SELECT at FROM jobs WHERE state = " #n " ORDER BY at, id LIMIT 1", \
    [ST_SCAN_##n] = "SELECT " JOB_COLUMNS " FROM jobs WHERE state = " #n " ORDER BY at, id"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT] = "INSERT INTO jobs (jid, queue, state, priority, reserve_for, at, enqueued_at,"
                  " payload, seq, jobtype, expires_at, ext, bid)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_TAKE] = "UPDATE jobs SET state = 3, at = ?2 + reserve_for, reserved_at = ?2, wid = ?3"
                " WHERE id = (SELECT id FROM jobs WHERE state = 0 AND queue = ?1"
                " AND (expires_at = 0 OR expires_at > ?2)"
                " ORDER BY priority DESC, seq LIMIT 1) RETURNING " JOB_COLUMNS,
    [ST_FIND_WORKING] = "SELECT " JOB_COLUMNS " FROM jobs WHERE state = 3 AND jid = ?1"
                        " ORDER BY reserved_at DESC, id DESC LIMIT 1",
    [ST_GET] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1",
    [ST_DELETE] = "DELETE FROM jobs WHERE id = ?1",
    [ST_MOVE] = "UPDATE jobs SET state = ?2, at = ?3, enqueued_at = ?4, payload = ?5,"
                " wid = NULL, reserved_at = 0, seq = ?6 WHERE id = ?1",
    [ST_MOVE_KEEP] = "UPDATE jobs SET state = ?2, at = ?3, enqueued_at = ?4,"
                     " wid = NULL, reserved_at = 0, seq = ?6 WHERE id = ?1",
    STATE_QUERIES(1), STATE_QUERIES(2), STATE_QUERIES(3), STATE_QUERIES(4),
    [ST_QUEUE_HEAD] = "SELECT enqueued_at FROM jobs WHERE state = 0 AND queue = ?1"
                      " ORDER BY priority DESC, seq LIMIT 1",
    [ST_CLEAR_QUEUE] = "DELETE FROM jobs WHERE state = 0 AND queue = ?1",
    [ST_PUT_QUEUE] = "INSERT INTO queues (name, paused) VALUES (?1, ?2)"
                     " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
    [ST_DELETE_QUEUE] = "DELETE FROM queues WHERE name = ?1",
    [ST_LOAD_QUEUES] = "SELECT name, paused FROM queues ORDER BY name",
    [ST_COUNT_QUEUED] = "SELECT queue, count(*) FROM jobs WHERE state = 0 GROUP BY queue",
    [ST_ADD_COUNTER] = "INSERT INTO counters (name, value) VALUES (?1, ?2)"
                       " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
    [ST_ADD_DAILY] = "INSERT INTO daily (day, processed, failures) VALUES (?1, ?2, ?3)"
                     " ON CONFLICT (day) DO UPDATE SET processed = processed + excluded.processed,"
                     " failures = failures + excluded.failures",
    [ST_LOAD_COUNTERS] = "SELECT name, value FROM counters",
    [ST_TRIM_DEAD_AGE] = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 4"
                         " AND at < ?1 ORDER BY at, id LIMIT 10000)",
    [ST_TRIM_DEAD_COUNT] = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 4"
                           " ORDER BY at, id LIMIT ?1)",
    [ST_COUNT_DEAD] = "SELECT count(*) FROM jobs WHERE state = 4",
    /* Only a queued job has a seq above 0, so the queued jobs' index gives this without
     * reading the table. */
    [ST_MAX_SEQ] = "SELECT coalesce(max(seq), 0) FROM jobs WHERE state = 0",
    [ST_EXPIRED_IDS] = "SELECT id FROM jobs WHERE expires_at > 0 AND state IN (0, 1, 2)"
                       " AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
    [ST_EARLIEST_EXPIRY] = "SELECT min(expires_at) FROM jobs"
                           " WHERE expires_at > 0 AND state IN (0, 1, 2)",
    [ST_CRON_GET] = "SELECT last_run FROM cron_runs WHERE key = ?1",
    [ST_CRON_PUT] = "INSERT INTO cron_runs (key, last_run) VALUES (?1, ?2)"
                    " ON CONFLICT (key) DO UPDATE SET last_run = excluded.last_run",
};

/* The statements of the other store files (batches.c, ...), prepared on first use and kept
 * until close, keyed by the address of their static SQL text. */
struct cached_stmt {
    const char *sql;
    sqlite3_stmt *stmt;
    UT_hash_handle hh;
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    struct cached_stmt *cached;
    int64_t last_seq;   /* the seq most recently given to a job entering a queue */
    bool in_tx;
    char error[256];
};

void store_job_clear(struct store_job *job) {
    free(job->jid);
    free(job->queue);
    free(job->wid);
    free(job->payload);
    free(job->jobtype);
    free(job->bid);
    memset(job, 0, sizeof *job);
}

const char *store_error(const struct store *s) {
    return s->error;
}

bool store_in_tx(const struct store *s) {
    return s->in_tx;
}

int store_fail(struct store *s, const char *what) {
    snprintf(s->error, sizeof s->error, "%s: %s", what, sqlite3_errmsg(s->db));
    log_error("store_error", "op=%s error=\"%s\"", what, sqlite3_errmsg(s->db));
    return -1;
}

/* Resets a statement for reuse and returns it. */
static sqlite3_stmt *stmt(struct store *s, enum stmt_id id) {
    sqlite3_stmt *st = s->stmt[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

sqlite3_stmt *store_stmt(struct store *s, const char *sql) {
    struct cached_stmt *c = NULL;
    HASH_FIND_PTR(s->cached, &sql, c);
    if (!c) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
            SQLITE_OK) {
            store_fail(s, "prepare statement");
            return NULL;
        }
        c = xcalloc(1, sizeof *c);
        c->sql = sql;
        c->stmt = st;
        HASH_ADD_PTR(s->cached, sql, c);
    }
    sqlite3_reset(c->stmt);
    sqlite3_clear_bindings(c->stmt);
    return c->stmt;
}

sqlite3 *store_db(struct store *s) {
    return s->db;
}

int store_run(struct store *s, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store_fail(s, what);
    return 0;
}

int store_query_double(struct store *s, const char *sql, double *value, const char *what) {
    sqlite3_stmt *st = store_stmt(s, sql);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    bool found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (found)
        *value = sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, what);
    return found;
}

int store_delete_due(struct store *s, const char *sql, double now, int max, const char *what) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, sql);
    if (!st)
        return -1;
    sqlite3_bind_double(st, 1, now);
    sqlite3_bind_int(st, 2, max);
    if (store_run(s, st, what) != 0)
        return -1;
    return sqlite3_changes(s->db);
}

char *store_column_strdup(sqlite3_stmt *st, int col) {
    const unsigned char *text = sqlite3_column_text(st, col);
    return text ? xstrndup((const char *)text, (size_t)sqlite3_column_bytes(st, col)) : NULL;
}

/* Copies the JOB_COLUMNS of the current row into out (owned copies). */
static void read_job(sqlite3_stmt *st, struct store_job *out) {
    out->id = sqlite3_column_int64(st, 0);
    out->jid = store_column_strdup(st, 1);
    out->queue = store_column_strdup(st, 2);
    out->state = (enum job_state)sqlite3_column_int(st, 3);
    out->priority = sqlite3_column_int(st, 4);
    out->reserve_for = sqlite3_column_int(st, 5);
    out->at = sqlite3_column_double(st, 6);
    out->enqueued_at = sqlite3_column_double(st, 7);
    out->reserved_at = sqlite3_column_double(st, 8);
    out->wid = store_column_strdup(st, 9);
    out->payload = store_column_strdup(st, 10);
    out->jobtype = store_column_strdup(st, 11);
    out->expires_at = sqlite3_column_double(st, 12);
    out->ext = sqlite3_column_int(st, 13);
    out->bid = store_column_strdup(st, 14);
}

struct store_job store_borrow_job(sqlite3_stmt *st, int first) {
    if (sqlite3_column_type(st, first) == SQLITE_NULL)
        return (struct store_job){0};
    return (struct store_job){
        .id = sqlite3_column_int64(st, first),
        .jid = (char *)sqlite3_column_text(st, first + 1),
        .queue = (char *)sqlite3_column_text(st, first + 2),
        .state = (enum job_state)sqlite3_column_int(st, first + 3),
        .priority = sqlite3_column_int(st, first + 4),
        .reserve_for = sqlite3_column_int(st, first + 5),
        .at = sqlite3_column_double(st, first + 6),
        .enqueued_at = sqlite3_column_double(st, first + 7),
        .reserved_at = sqlite3_column_double(st, first + 8),
        .wid = (char *)sqlite3_column_text(st, first + 9),
        .payload = (char *)sqlite3_column_text(st, first + 10),
        .jobtype = (char *)sqlite3_column_text(st, first + 11),
        .expires_at = sqlite3_column_double(st, first + 12),
        .ext = sqlite3_column_int(st, first + 13),
        .bid = (char *)sqlite3_column_text(st, first + 14),
    };
}

static int exec(struct store *s, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int migrate(struct store *s, const char *path, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errlen, "cannot read the schema version of %s: %s", path,
                 sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return -1;
    }
    int version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s has schema version %d but this fabrik knows only up to %d; "
                 "run a newer fabrik or restore a backup",
                 path, version, SCHEMA_VERSION);
        return -1;
    }
    if (version == SCHEMA_VERSION)
        return 0;

    char why[512];
    if (exec(s, "BEGIN IMMEDIATE", why, sizeof why) != 0)
        goto failed;
    for (int v = version; v < SCHEMA_VERSION; v++) {
        if (exec(s, migrations[v], why, sizeof why) != 0) {
            exec(s, "ROLLBACK", err, errlen);
            goto failed;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
    if (exec(s, sql, why, sizeof why) != 0 || exec(s, "COMMIT", why, sizeof why) != 0)
        goto failed;
    log_info("store_migrated", "path=%s from_version=%d to_version=%d", path, version,
             SCHEMA_VERSION);
    return 0;

failed:
    snprintf(err, errlen, "cannot migrate %s from schema version %d: %s", path, version, why);
    return -1;
}

/* Puts SQLite in single-thread mode before its first use: every connection is used by the
 * thread that opened it, so its global mutexes (allocator statistics, page cache) only cost.
 * Later calls are no-ops; sqlite3_config fails once SQLite is initialised. */
static void configure_sqlite(void) {
    static bool configured;
    if (configured)
        return;
    configured = true;
    sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int store_open(struct store **out, const char *dir, enum durability durability, char *err,
               size_t errlen) {
    *out = NULL;
    configure_sqlite();
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/fabrik.db", dir);

    struct store *s = xcalloc(1, sizeof *s);
    /* NOMUTEX: only the loop thread touches the connection, so SQLite's own mutexes are
     * pure cost. */
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    /* In WAL mode a commit appends pages to one log file. synchronous=FULL fsyncs that log at
     * every commit; NORMAL only at checkpoints, which still survives a process crash. */
    /* Exclusive locking takes the file lock once instead of once per transaction, and keeps
     * a second fabrik (or any other writer) away from a database this one owns. */
    const char *pragmas = durability == DURABILITY_FSYNC
                              ? "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;"
                                " PRAGMA synchronous=FULL;"
                              : "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;"
                                " PRAGMA synchronous=NORMAL;";
    char why[512];
    if (exec(s, pragmas, why, sizeof why) != 0 ||
        exec(s, "PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;", why, sizeof why) != 0) {
        bool locked = sqlite3_errcode(s->db) == SQLITE_BUSY || strstr(why, "locked");
        snprintf(err, errlen, "cannot configure %s: %s%s", path, why,
                 locked ? "; another fabrik is probably using this data directory" : "");
        goto fail;
    }
    if (migrate(s, path, err, errlen) != 0)
        goto fail;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "cannot prepare statement %d: %s", i, sqlite3_errmsg(s->db));
            goto fail;
        }
    }
    sqlite3_stmt *st = s->stmt[ST_MAX_SEQ];
    if (sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errlen, "cannot read %s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    s->last_seq = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    *out = s;
    return 0;

fail:
    store_close(s);
    return -1;
}

void store_close(struct store *s) {
    if (!s)
        return;
    if (s->in_tx)
        store_rollback(s);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    struct cached_stmt *c, *tmp;
    HASH_ITER(hh, s->cached, c, tmp) {
        HASH_DEL(s->cached, c);
        sqlite3_finalize(c->stmt);
        free(c);
    }
    sqlite3_close(s->db);
    free(s);
}

int store_begin(struct store *s) {
    if (s->in_tx) {
        /* SQLite rolls a transaction back by itself after some errors (a full disk, for one);
         * writing on in autocommit mode would then commit piecemeal, so refuse instead. */
        if (sqlite3_get_autocommit(s->db)) {
            snprintf(s->error, sizeof s->error, "the transaction was rolled back after an error");
            return -1;
        }
        return 0;
    }
    if (store_run(s, stmt(s, ST_BEGIN), "begin") != 0)
        return -1;
    s->in_tx = true;
    return 0;
}

int store_commit(struct store *s) {
    if (!s->in_tx)
        return 0;
    if (store_run(s, stmt(s, ST_COMMIT), "commit") != 0) {
        store_rollback(s);
        return -1;
    }
    s->in_tx = false;
    return 0;
}

void store_rollback(struct store *s) {
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_stmt *st = stmt(s, ST_ROLLBACK);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    s->in_tx = false;
}

int store_ensure_tx(struct store *s) {
    return store_begin(s);
}

int store_insert_job(struct store *s, struct store_job *job) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, ST_INSERT);
    sqlite3_bind_text(st, 1, job->jid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, job->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, job->state);
    sqlite3_bind_int(st, 4, job->priority);
    sqlite3_bind_int(st, 5, job->reserve_for);
    sqlite3_bind_double(st, 6, job->at);
    sqlite3_bind_double(st, 7, job->enqueued_at);
    sqlite3_bind_text(st, 8, job->payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, job->state == JOB_QUEUED ? ++s->last_seq : 0);
    sqlite3_bind_text(st, 10, job->jobtype ? job->jobtype : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 11, job->expires_at);
    sqlite3_bind_int(st, 12, job->ext);
    if (job->bid)
        sqlite3_bind_text(st, 13, job->bid, -1, SQLITE_STATIC);
    if (store_run(s, st, "insert job") != 0)
        return -1;
    job->id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

/* Steps a statement expected to return at most one job row. */
static int one_job(struct store *s, sqlite3_stmt *st, struct store_job *out, const char *what) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_job(st, out);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
            return store_fail(s, what);
        return 1;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store_fail(s, what);
    return 0;
}

int store_take_next(struct store *s, const char *queue, double now, const char *wid,
                    struct store_job *out) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, ST_TAKE);
    sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, now);
    if (wid)
        sqlite3_bind_text(st, 3, wid, -1, SQLITE_STATIC);
    return one_job(s, st, out, "reserve job");
}

int store_find_working(struct store *s, const char *jid, struct store_job *out) {
    sqlite3_stmt *st = stmt(s, ST_FIND_WORKING);
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    return one_job(s, st, out, "find reservation");
}

int store_get_job(struct store *s, int64_t id, struct store_job *out) {
    sqlite3_stmt *st = stmt(s, ST_GET);
    sqlite3_bind_int64(st, 1, id);
    return one_job(s, st, out, "load job");
}

int store_delete_job(struct store *s, int64_t id) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, ST_DELETE);
    sqlite3_bind_int64(st, 1, id);
    return store_run(s, st, "delete job");
}

int store_move_job(struct store *s, int64_t id, enum job_state state, double at,
                   double enqueued_at, const char *payload) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, payload ? ST_MOVE : ST_MOVE_KEEP);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, state);
    sqlite3_bind_double(st, 3, at);
    sqlite3_bind_double(st, 4, enqueued_at);
    if (payload)
        sqlite3_bind_text(st, 5, payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, state == JOB_QUEUED ? ++s->last_seq : 0);
    return store_run(s, st, "move job");
}

/* Index of the per-state statement family for a set state (scheduled..dead). */
static enum stmt_id state_stmt(enum stmt_id first, enum job_state state) {
    return (enum stmt_id)(first + (state - JOB_SCHEDULED));
}

int store_due_ids(struct store *s, enum job_state state, double until, int64_t *ids, int max) {
    sqlite3_stmt *st = stmt(s, state_stmt(ST_DUE_1, state));
    sqlite3_bind_double(st, 1, until);
    sqlite3_bind_int(st, 2, max);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max)
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store_fail(s, "find due jobs");
    return n;
}

int store_earliest(struct store *s, enum job_state state, double *at) {
    sqlite3_stmt *st = stmt(s, state_stmt(ST_EARLIEST_1, state));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *at = sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "find earliest job");
    return rc == SQLITE_ROW;
}

int store_scan(struct store *s, enum job_state state,
               int (*fn)(void *ctx, const struct store_job *job), void *ctx) {
    sqlite3_stmt *st = stmt(s, state_stmt(ST_SCAN_1, state));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_job row = store_borrow_job(st, 0);
        if (fn(ctx, &row) != 0)
            break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "scan jobs");
    return 0;
}

int store_queue_head(struct store *s, const char *queue, double *enqueued_at) {
    sqlite3_stmt *st = stmt(s, ST_QUEUE_HEAD);
    sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *enqueued_at = sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "read queue head");
    return rc == SQLITE_ROW;
}

static const char SQL_SCAN_QUEUE_EXT[] =
    "SELECT " JOB_COLUMNS " FROM jobs WHERE state = 0 AND queue = ?1 AND ext != 0";

int store_scan_queue_ext(struct store *s, const char *queue,
                         int (*fn)(void *ctx, const struct store_job *job), void *ctx) {
    sqlite3_stmt *st = store_stmt(s, SQL_SCAN_QUEUE_EXT);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_job row = store_borrow_job(st, 0);
        if (fn(ctx, &row) != 0)
            break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "scan queue");
    return 0;
}

int store_clear_queue(struct store *s, const char *queue, int64_t *removed) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, ST_CLEAR_QUEUE);
    sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    if (store_run(s, st, "clear queue") != 0)
        return -1;
    *removed = sqlite3_changes64(s->db);
    return 0;
}

int store_put_queue(struct store *s, const char *name, bool paused) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, ST_PUT_QUEUE);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, paused);
    return store_run(s, st, "save queue");
}

int store_delete_queue(struct store *s, const char *name) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, ST_DELETE_QUEUE);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    return store_run(s, st, "delete queue");
}

int store_load_queues(struct store *s, void (*fn)(void *ctx, const char *name, bool paused),
                      void *ctx) {
    sqlite3_stmt *st = stmt(s, ST_LOAD_QUEUES);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1) != 0);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, "load queues");
}

int store_count_queued(struct store *s, void (*fn)(void *ctx, const char *queue, int64_t n),
                       void *ctx) {
    sqlite3_stmt *st = stmt(s, ST_COUNT_QUEUED);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, "count queued jobs");
}

int store_count_states(struct store *s, int64_t counts[5]) {
    /* One count per state, each with the state as a literal, so that each counts the entries
     * of that state's partial index instead of reading every row of the table. */
    static const char *const sql[5] = {
        "SELECT count(*) FROM jobs WHERE state = 0", "SELECT count(*) FROM jobs WHERE state = 1",
        "SELECT count(*) FROM jobs WHERE state = 2", "SELECT count(*) FROM jobs WHERE state = 3",
        "SELECT count(*) FROM jobs WHERE state = 4",
    };
    for (int state = 0; state < 5; state++) {
        sqlite3_stmt *st = store_stmt(s, sql[state]);
        if (!st)
            return -1;
        int rc = sqlite3_step(st);
        counts[state] = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
            return store_fail(s, "count jobs");
    }
    return 0;
}

static int add_counter(struct store *s, const char *name, int64_t delta) {
    sqlite3_stmt *st = stmt(s, ST_ADD_COUNTER);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, delta);
    return store_run(s, st, "update counter");
}

int store_add_counters(struct store *s, double now, int64_t processed, int64_t failures) {
    if (processed == 0 && failures == 0)
        return 0;
    if (store_ensure_tx(s) != 0 || add_counter(s, "processed", processed) != 0 ||
        add_counter(s, "failures", failures) != 0)
        return -1;
    char day[11];
    sqlite3_stmt *st = stmt(s, ST_ADD_DAILY);
    sqlite3_bind_text(st, 1, time_format_day(now, day), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, processed);
    sqlite3_bind_int64(st, 3, failures);
    return store_run(s, st, "update daily counters");
}

int store_load_counters(struct store *s, int64_t *processed, int64_t *failures) {
    *processed = *failures = 0;
    sqlite3_stmt *st = stmt(s, ST_LOAD_COUNTERS);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (strcmp(name, "processed") == 0)
            *processed = sqlite3_column_int64(st, 1);
        else if (strcmp(name, "failures") == 0)
            *failures = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, "load counters");
}

int store_trim_dead(struct store *s, double before, int64_t max_keep, int64_t *removed) {
    *removed = 0;
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, ST_TRIM_DEAD_AGE);
    sqlite3_bind_double(st, 1, before);
    if (store_run(s, st, "trim dead jobs") != 0)
        return -1;
    *removed += sqlite3_changes64(s->db);

    st = stmt(s, ST_COUNT_DEAD);
    int rc = sqlite3_step(st);
    int64_t count = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return store_fail(s, "count dead jobs");
    if (count <= max_keep)
        return 0;
    st = stmt(s, ST_TRIM_DEAD_COUNT);
    sqlite3_bind_int64(st, 1, count - max_keep);
    if (store_run(s, st, "cap dead jobs") != 0)
        return -1;
    *removed += sqlite3_changes64(s->db);
    return 0;
}

int store_flush(struct store *s) {
    if (store_ensure_tx(s) != 0)
        return -1;
    char why[200];
    if (exec(s, "DELETE FROM jobs; DELETE FROM queues; DELETE FROM counters; DELETE FROM daily;"
             " DELETE FROM batches; DELETE FROM batch_jobs;"
             " DELETE FROM unique_locks; DELETE FROM tracking;",
             why, sizeof why) != 0) {
        snprintf(s->error, sizeof s->error, "flush: %s", why);
        return -1;
    }
    return 0;
}

/* Builds the WHERE clause and ORDER BY of a listing; parameters ?1..?4 are queue, jobtype,
 * errtype and search, each NULL when unused. The state is a literal so the partial index of
 * that state serves the ORDER BY. */
static void query_sql(char *sql, size_t len, const char *select, const struct store_query *q,
                      bool ordered) {
    const char *order = "";
    if (ordered) {
        if (q->state == JOB_QUEUED)
            order = " ORDER BY priority DESC, seq";
        else if (q->state == JOB_WORKING)
            order = " ORDER BY reserved_at, id";
        else
            order = q->newest_first ? " ORDER BY at DESC, id DESC" : " ORDER BY at, id";
    }
    snprintf(sql, len,
             "SELECT %s FROM jobs WHERE state = %d"
             " AND (?1 IS NULL OR queue = ?1)"
             " AND (?2 IS NULL OR jobtype = ?2)"
             " AND (?3 IS NULL OR json_extract(payload, '$.failure.errtype') = ?3)"
             " AND (?4 IS NULL OR instr(lower(payload), lower(?4)) > 0)%s%s",
             select, (int)q->state, order, ordered ? " LIMIT ?5 OFFSET ?6" : "");
}

static int prepare_query(struct store *s, const char *sql, const struct store_query *q,
                         sqlite3_stmt **out) {
    if (sqlite3_prepare_v2(s->db, sql, -1, out, NULL) != SQLITE_OK)
        return store_fail(s, "prepare listing");
    const char *params[] = {q->queue, q->jobtype, q->errtype, q->search};
    for (int i = 0; i < 4; i++) {
        if (params[i])
            sqlite3_bind_text(*out, i + 1, params[i], -1, SQLITE_STATIC);
    }
    return 0;
}

int store_list(struct store *s, const struct store_query *q,
               int (*fn)(void *ctx, const struct store_job *job), void *ctx) {
    char sql[1024];
    query_sql(sql, sizeof sql, JOB_COLUMNS, q, true);
    sqlite3_stmt *st;
    if (prepare_query(s, sql, q, &st) != 0)
        return -1;
    sqlite3_bind_int64(st, 5, q->limit);
    sqlite3_bind_int64(st, 6, q->offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_job row = store_borrow_job(st, 0);
        if (fn(ctx, &row) != 0)
            break;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "list jobs");
    return 0;
}

int store_count(struct store *s, const struct store_query *q, int64_t *count) {
    char sql[1024];
    query_sql(sql, sizeof sql, "count(*)", q, false);
    sqlite3_stmt *st;
    if (prepare_query(s, sql, q, &st) != 0)
        return -1;
    int rc = sqlite3_step(st);
    *count = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : store_fail(s, "count jobs");
}

int store_distinct(struct store *s, enum job_state state, const char *field,
                   void (*fn)(void *ctx, const char *value), void *ctx) {
    const char *expr = strcmp(field, "queue") == 0     ? "queue"
                       : strcmp(field, "errtype") == 0 ? "json_extract(payload, '$.failure.errtype')"
                                                       : "jobtype";
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT DISTINCT v FROM (SELECT %s AS v FROM jobs WHERE state = %d"
             " ORDER BY at DESC LIMIT 10000) WHERE v IS NOT NULL ORDER BY v LIMIT 200",
             expr, (int)state);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store_fail(s, "prepare distinct");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, "list distinct values");
}

int store_history(struct store *s, const char *since,
                  void (*fn)(void *ctx, const char *day, int64_t processed, int64_t failures),
                  void *ctx) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT day, processed, failures FROM daily WHERE day >= ?1"
                           " ORDER BY day",
                           -1, &st, NULL) != SQLITE_OK)
        return store_fail(s, "prepare history");
    sqlite3_bind_text(st, 1, since, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
           sqlite3_column_int64(st, 2));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, "read history");
}

int store_cron_last_run(struct store *s, const char *key, double *last_run) {
    sqlite3_stmt *st = stmt(s, ST_CRON_GET);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *last_run = sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "read cron run");
    return rc == SQLITE_ROW;
}

int store_cron_set_run(struct store *s, const char *key, double last_run) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = stmt(s, ST_CRON_PUT);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, last_run);
    return store_run(s, st, "save cron run");
}

int store_expired_ids(struct store *s, double until, int64_t *ids, int max) {
    sqlite3_stmt *st = stmt(s, ST_EXPIRED_IDS);
    sqlite3_bind_double(st, 1, until);
    sqlite3_bind_int(st, 2, max);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max)
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store_fail(s, "find expired jobs");
    return n;
}

int store_earliest_expiry(struct store *s, double *at) {
    sqlite3_stmt *st = stmt(s, ST_EARLIEST_EXPIRY);
    int rc = sqlite3_step(st);
    bool found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (found)
        *at = sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "find earliest expiry");
    return found;
}

/* ---- online backup ---- */

/* A copy of the open database into another file through SQLite's backup API. The copy reads
 * through the server's own connection, because exclusive locking keeps every other connection
 * out. Writes that this connection commits between two steps are applied to the copy by
 * SQLite, so the finished file matches the database at the moment of the last step. */
struct store_backup {
    struct store *store;
    sqlite3 *dest;
    sqlite3_backup *backup;
    char *path;
    int64_t copied, total;   /* pages, as of the last step */
};

int store_backup_begin(struct store *s, const char *path, struct store_backup **out, char *err,
                       size_t errlen) {
    *out = NULL;
    struct store_backup *b = xcalloc(1, sizeof *b);
    b->store = s;
    b->path = xstrdup(path);
    /* No journal and no fsync while copying: an unfinished copy is deleted, never used, and
     * the caller syncs the finished file once. */
    if (sqlite3_open_v2(path, &b->dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(b->dest, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;", NULL, NULL,
                     NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the backup file %s: %s", path,
                 sqlite3_errmsg(b->dest));
        store_backup_free(b);
        return -1;
    }
    b->backup = sqlite3_backup_init(b->dest, "main", s->db, "main");
    if (!b->backup) {
        snprintf(err, errlen, "cannot start the backup into %s: %s", path,
                 sqlite3_errmsg(b->dest));
        store_backup_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

int store_backup_step(struct store_backup *b, int pages, char *err, size_t errlen) {
    if (!b->backup) {
        snprintf(err, errlen, "the backup into %s is already complete", b->path);
        return -1;
    }
    if (b->store->in_tx) {
        snprintf(err, errlen, "a backup step needs the open transaction committed first");
        return -1;
    }
    int rc = sqlite3_backup_step(b->backup, pages);
    b->total = sqlite3_backup_pagecount(b->backup);
    b->copied = b->total - sqlite3_backup_remaining(b->backup);
    if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return 0;
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "copying into %s failed: %s", b->path, sqlite3_errstr(rc));
        return -1;
    }
    sqlite3_backup_finish(b->backup);
    b->backup = NULL;
    rc = sqlite3_close(b->dest);
    b->dest = NULL;
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "closing %s failed: %s", b->path, sqlite3_errstr(rc));
        return -1;
    }
    return 1;
}

void store_backup_progress(const struct store_backup *b, int64_t *copied, int64_t *total) {
    *copied = b->copied;
    *total = b->total;
}

void store_backup_free(struct store_backup *b) {
    if (!b)
        return;
    if (b->backup)
        sqlite3_backup_finish(b->backup);
    if (b->dest)
        sqlite3_close(b->dest);
    free(b->path);
    free(b);
}
