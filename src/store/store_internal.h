/* The store files' private interface: the SQLite connection and the helpers every store file
 * uses to run its own statements. */
#ifndef FABRIK_STORE_INTERNAL_H
#define FABRIK_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

sqlite3 *store_db(struct store *s);

/* The prepared statement for sql, a string with static storage: prepared on first use, then
 * reset and unbound on each call. NULL (with the error recorded) if SQLite refuses it. */
sqlite3_stmt *store_stmt(struct store *s, const char *sql);

/* Runs a statement that returns no rows; 0 or -1. */
int store_run(struct store *s, sqlite3_stmt *st, const char *what);

/* Records the connection's error text, logs it and returns -1, so callers can
 * `return store_fail(s, ...)`. */
int store_fail(struct store *s, const char *what);

/* Starts the iteration's write transaction if none is open (writes start it lazily, so
 * read-only iterations never write). */
int store_ensure_tx(struct store *s);

/* The columns of store.c's JOB_COLUMNS list starting at column `first` of the current row,
 * without copying: the strings are valid only until the statement steps again or is reset.
 * A row whose first such column is NULL (an outer join without a job) reads as all zero. */
#define STORE_JOB_COLUMNS(prefix)                                                             \
    prefix "id, " prefix "jid, " prefix "queue, " prefix "state, " prefix "priority, " prefix \
    "reserve_for, " prefix "at, " prefix "enqueued_at, " prefix "reserved_at, " prefix        \
    "wid, " prefix "payload, " prefix "jobtype, " prefix "expires_at, " prefix "ext, " prefix \
    "bid"
struct store_job store_borrow_job(sqlite3_stmt *st, int first);

/* Runs sql, a query of one nullable number such as SELECT min(x), and stores it in *value.
 * Returns 1, 0 when the result is NULL (no rows), -1 with `what` in the error. */
int store_query_double(struct store *s, const char *sql, double *value, const char *what);

/* Runs sql, a DELETE bound with (?1 now, ?2 max) inside the iteration's transaction. Returns
 * how many rows it deleted, or -1 with `what` in the error. */
int store_delete_due(struct store *s, const char *sql, double now, int max, const char *what);

/* An owned copy of a text column, NULL for SQL NULL. */
char *store_column_strdup(sqlite3_stmt *st, int col);

#endif
