/* Job tracking rows, and the one UPDATE on jobs that a reservation extension needs. */
#include "store/tracking.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static const char SQL_GET[] =
    "SELECT jid, state, percent, description, updated_at, expires_at FROM tracking"
    " WHERE jid = ?1 AND (expires_at = 0 OR expires_at > ?2)";
static const char SQL_PUT_STATE[] =
    "INSERT INTO tracking (jid, state, updated_at, expires_at) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (jid) DO UPDATE SET state = excluded.state,"
    " updated_at = excluded.updated_at, expires_at = excluded.expires_at";
static const char SQL_PUT_STATE_RESET[] =
    "INSERT INTO tracking (jid, state, updated_at, expires_at) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (jid) DO UPDATE SET state = excluded.state,"
    " updated_at = excluded.updated_at, expires_at = excluded.expires_at,"
    " percent = NULL, description = NULL";
static const char SQL_SET_PROGRESS[] =
    "UPDATE tracking SET percent = coalesce(?2, percent),"
    " description = coalesce(?3, description), updated_at = ?4, expires_at = ?5"
    " WHERE jid = ?1";
static const char SQL_PURGE[] =
    "DELETE FROM tracking WHERE jid IN (SELECT jid FROM tracking"
    " WHERE expires_at > 0 AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";
static const char SQL_EARLIEST[] =
    "SELECT min(expires_at) FROM tracking WHERE expires_at > 0";
/* The job row's `at` is the reservation deadline while it is working (state 3). */
static const char SQL_EXTEND[] =
    "UPDATE jobs SET at = ?2 WHERE state = 3 AND jid = ?1 AND at < ?2";

void store_tracking_clear(struct store_tracking *t) {
    free(t->jid);
    free(t->description);
    memset(t, 0, sizeof *t);
}

int store_tracking_get(struct store *s, const char *jid, double now, struct store_tracking *out) {
    sqlite3_stmt *st = store_stmt(s, SQL_GET);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->jid = store_column_strdup(st, 0);
        out->state = sqlite3_column_int(st, 1);
        out->percent = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 2);
        out->description = store_column_strdup(st, 3);
        out->updated_at = sqlite3_column_double(st, 4);
        out->expires_at = sqlite3_column_double(st, 5);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "read tracking");
    return rc == SQLITE_ROW;
}

int store_tracking_put_state(struct store *s, const char *jid, int state, double updated_at,
                             double expires_at, bool reset_progress) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, reset_progress ? SQL_PUT_STATE_RESET : SQL_PUT_STATE);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, state);
    sqlite3_bind_double(st, 3, updated_at);
    sqlite3_bind_double(st, 4, expires_at);
    return store_run(s, st, "write tracking state");
}

int store_tracking_set_progress(struct store *s, const char *jid, int percent,
                                const char *description, double updated_at, double expires_at) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, SQL_SET_PROGRESS);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    if (percent >= 0)
        sqlite3_bind_int(st, 2, percent);
    if (description)
        sqlite3_bind_text(st, 3, description, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, updated_at);
    sqlite3_bind_double(st, 5, expires_at);
    return store_run(s, st, "write tracking progress");
}

int store_tracking_purge(struct store *s, double now, int max) {
    return store_delete_due(s, SQL_PURGE, now, max, "purge tracking");
}

int store_tracking_earliest(struct store *s, double *at) {
    return store_query_double(s, SQL_EARLIEST, at, "find earliest tracking expiry");
}

int store_extend_reservation(struct store *s, const char *jid, double until) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, SQL_EXTEND);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, until);
    if (store_run(s, st, "extend reservation") != 0)
        return -1;
    return sqlite3_changes(store_db(s)) > 0;
}
