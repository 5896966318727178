/* Unique-job lock rows. A lapsed row stays until store_unique_purge removes it, so every
 * check compares its expiry with now instead of relying on the purge having run. */
#include "store/unique.h"

#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"

static const char SQL_HELD[] =
    "SELECT jid FROM unique_locks WHERE key = ?1 AND expires_at > ?2";
static const char SQL_TAKE[] =
    "INSERT INTO unique_locks (key, jid, until_start, expires_at) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (key) DO UPDATE SET jid = excluded.jid, until_start = excluded.until_start,"
    " expires_at = excluded.expires_at";
static const char SQL_RELEASE[] = "DELETE FROM unique_locks WHERE jid = ?1";
static const char SQL_RELEASE_START[] =
    "DELETE FROM unique_locks WHERE jid = ?1 AND until_start = 1";
static const char SQL_PURGE[] =
    "DELETE FROM unique_locks WHERE key IN (SELECT key FROM unique_locks"
    " WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";
static const char SQL_EARLIEST[] = "SELECT min(expires_at) FROM unique_locks";
static const char SQL_COUNT[] = "SELECT count(*) FROM unique_locks WHERE expires_at > ?1";

int store_unique_held(struct store *s, const char *key, double now, char *holder,
                      size_t holder_len) {
    sqlite3_stmt *st = store_stmt(s, SQL_HELD);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && holder && holder_len > 0) {
        const unsigned char *jid = sqlite3_column_text(st, 0);
        snprintf(holder, holder_len, "%s", jid ? (const char *)jid : "");
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "read unique lock");
    return rc == SQLITE_ROW;
}

int store_unique_take(struct store *s, const char *key, const char *jid, bool until_start,
                      double expires_at) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, SQL_TAKE);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, jid, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, until_start);
    sqlite3_bind_double(st, 4, expires_at);
    return store_run(s, st, "take unique lock");
}

int store_unique_release(struct store *s, const char *jid, bool only_until_start,
                         int *released) {
    if (store_ensure_tx(s) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, only_until_start ? SQL_RELEASE_START : SQL_RELEASE);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    if (store_run(s, st, "release unique lock") != 0)
        return -1;
    if (released)
        *released = sqlite3_changes(store_db(s));
    return 0;
}

int store_unique_purge(struct store *s, double now, int max) {
    return store_delete_due(s, SQL_PURGE, now, max, "purge unique locks");
}

int store_unique_earliest(struct store *s, double *at) {
    return store_query_double(s, SQL_EARLIEST, at, "find earliest unique lock");
}

int store_unique_count(struct store *s, double now, int64_t *count) {
    sqlite3_stmt *st = store_stmt(s, SQL_COUNT);
    if (!st)
        return -1;
    sqlite3_bind_double(st, 1, now);
    int rc = sqlite3_step(st);
    *count = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "count unique locks");
    return 0;
}
