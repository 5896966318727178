/* Batch rows and their members. Counters live on the batch row and change only through
 * member state changes (ent/batch.c), so every count is per member job. */
#include "store/batches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/buf.h"

#define BATCH_COLUMNS                                                                        \
    "bid, parent_bid, description, created_at, updated_at, committed_at, finished_at, total, " \
    "ran, acked, ended, failed, died, children, children_complete, children_success, "        \
    "callbacks_live, complete_job, success_job, death_job, complete_jid, success_jid, "       \
    "death_jid, complete_st, success_st, death_st, complete_done, success_done, "              \
    "children_finished"

static const char SQL_INSERT[] =
    "INSERT INTO batches (" BATCH_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
    " ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28,"
    " ?29)";
static const char SQL_GET[] = "SELECT " BATCH_COLUMNS " FROM batches WHERE bid = ?1";
static const char SQL_EXISTS[] = "SELECT 1 FROM batches WHERE bid = ?1";
static const char SQL_UPDATE[] =
    "UPDATE batches SET updated_at = ?5, committed_at = ?6, finished_at = ?7, total = ?8,"
    " ran = ?9, acked = ?10, ended = ?11, failed = ?12, died = ?13, children = ?14,"
    " children_complete = ?15, children_success = ?16, callbacks_live = ?17,"
    " complete_st = ?24, success_st = ?25, death_st = ?26, complete_done = ?27,"
    " success_done = ?28, children_finished = ?29 WHERE bid = ?1";
static const char SQL_DELETE[] = "DELETE FROM batches WHERE bid = ?1";
static const char SQL_DELETE_MEMBERS[] = "DELETE FROM batch_jobs WHERE bid = ?1";
static const char SQL_MEMBER_ADD[] =
    "INSERT INTO batch_jobs (bid, jid) VALUES (?1, ?2) ON CONFLICT DO NOTHING";
static const char SQL_MEMBER_GET[] =
    "SELECT state, failed FROM batch_jobs WHERE bid = ?1 AND jid = ?2";
static const char SQL_MEMBER_SET[] =
    "UPDATE batch_jobs SET state = ?3, failed = ?4 WHERE bid = ?1 AND jid = ?2";
static const char SQL_OPEN_BEFORE[] =
    "SELECT bid FROM batches WHERE committed_at = 0 AND created_at < ?1"
    " ORDER BY created_at LIMIT ?2";
static const char SQL_FINISHED_BEFORE[] =
    "SELECT bid FROM batches AS b WHERE finished_at > 0 AND finished_at < ?1"
    " AND NOT EXISTS (SELECT 1 FROM batches AS c WHERE c.parent_bid = b.bid"
    " AND c.finished_at = 0) ORDER BY finished_at LIMIT ?2";
static const char SQL_EARLIEST_OPEN[] =
    "SELECT min(created_at) FROM batches WHERE committed_at = 0";
static const char SQL_EARLIEST_FINISHED[] =
    "SELECT min(finished_at) FROM batches WHERE finished_at > 0";
/* Jids need not be unique, so a member pushed twice joins only its oldest job row: a plain
 * join would list the member once per row and shift every later page. */
static const char SQL_MEMBERS[] =
    "SELECT m.jid, m.state, m.failed, " STORE_JOB_COLUMNS("j.") " FROM batch_jobs AS m"
    " LEFT JOIN jobs AS j ON j.id = (SELECT min(id) FROM jobs"
    " WHERE bid = m.bid AND jid = m.jid)"
    " WHERE m.bid = ?1 ORDER BY m.jid LIMIT ?2 OFFSET ?3";
static const char SQL_BATCH_JOB[] =
    "SELECT min(id) FROM jobs WHERE bid = ?1 AND jid = ?2";

/* The WHERE clause of a listing: ?1 status, ?2 search, ?3 parent_bid, each NULL when unused. */
#define LIST_WHERE                                                                           \
    " WHERE (?1 IS NULL OR (?1 = 'open' AND committed_at = 0)"                              \
    " OR (?1 = 'pending' AND committed_at > 0 AND finished_at = 0)"                         \
    " OR (?1 = 'finished' AND finished_at > 0))"                                            \
    " AND (?2 IS NULL OR instr(lower(bid), lower(?2)) > 0"                                  \
    " OR instr(lower(description), lower(?2)) > 0)"                                         \
    " AND (?3 IS NULL OR parent_bid = ?3)"
static const char SQL_LIST[] = "SELECT " BATCH_COLUMNS " FROM batches" LIST_WHERE
                               " ORDER BY created_at DESC, bid LIMIT ?4 OFFSET ?5";
static const char SQL_COUNT[] = "SELECT count(*) FROM batches" LIST_WHERE;

void store_batch_clear(struct store_batch *b) {
    free(b->bid);
    free(b->parent_bid);
    free(b->description);
    for (int i = 0; i < BATCH_CALLBACKS; i++) {
        free(b->job[i]);
        free(b->jid[i]);
    }
    memset(b, 0, sizeof *b);
}

static void bind_text_or_null(sqlite3_stmt *st, int col, const char *text) {
    if (text)
        sqlite3_bind_text(st, col, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, col);
}

/* Binds every column of b as ?1..?29 in BATCH_COLUMNS order. */
static void bind_batch(sqlite3_stmt *st, const struct store_batch *b) {
    sqlite3_bind_text(st, 1, b->bid, -1, SQLITE_STATIC);
    bind_text_or_null(st, 2, b->parent_bid);
    sqlite3_bind_text(st, 3, b->description ? b->description : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, b->created_at);
    sqlite3_bind_double(st, 5, b->updated_at);
    sqlite3_bind_double(st, 6, b->committed_at);
    sqlite3_bind_double(st, 7, b->finished_at);
    const int64_t counts[] = {b->total, b->ran, b->acked, b->ended, b->failed, b->died,
                              b->children, b->children_complete, b->children_success,
                              b->callbacks_live};
    for (int i = 0; i < (int)(sizeof counts / sizeof counts[0]); i++)
        sqlite3_bind_int64(st, 8 + i, counts[i]);
    for (int i = 0; i < BATCH_CALLBACKS; i++) {
        bind_text_or_null(st, 18 + i, b->job[i]);
        bind_text_or_null(st, 21 + i, b->jid[i]);
        sqlite3_bind_int(st, 24 + i, b->st[i]);
    }
    sqlite3_bind_int(st, 27, b->complete_done);
    sqlite3_bind_int(st, 28, b->success_done);
    sqlite3_bind_int64(st, 29, b->children_finished);
}

static void read_batch(sqlite3_stmt *st, struct store_batch *out) {
    out->bid = store_column_strdup(st, 0);
    out->parent_bid = store_column_strdup(st, 1);
    out->description = store_column_strdup(st, 2);
    out->created_at = sqlite3_column_double(st, 3);
    out->updated_at = sqlite3_column_double(st, 4);
    out->committed_at = sqlite3_column_double(st, 5);
    out->finished_at = sqlite3_column_double(st, 6);
    int64_t *counts[] = {&out->total, &out->ran, &out->acked, &out->ended, &out->failed,
                         &out->died, &out->children, &out->children_complete,
                         &out->children_success, &out->callbacks_live};
    for (int i = 0; i < (int)(sizeof counts / sizeof counts[0]); i++)
        *counts[i] = sqlite3_column_int64(st, 7 + i);
    for (int i = 0; i < BATCH_CALLBACKS; i++) {
        out->job[i] = store_column_strdup(st, 17 + i);
        out->jid[i] = store_column_strdup(st, 20 + i);
        out->st[i] = sqlite3_column_int(st, 23 + i);
    }
    out->complete_done = sqlite3_column_int(st, 26) != 0;
    out->success_done = sqlite3_column_int(st, 27) != 0;
    out->children_finished = sqlite3_column_int64(st, 28);
}

int store_batch_insert(struct store *s, const struct store_batch *b) {
    sqlite3_stmt *st;
    if (store_ensure_tx(s) != 0 || !(st = store_stmt(s, SQL_INSERT)))
        return -1;
    bind_batch(st, b);
    return store_run(s, st, "insert batch");
}

int store_batch_get(struct store *s, const char *bid, struct store_batch *out) {
    sqlite3_stmt *st = store_stmt(s, SQL_GET);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, bid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_batch(st, out);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "load batch");
    return rc == SQLITE_ROW;
}

int store_batch_exists(struct store *s, const char *bid) {
    sqlite3_stmt *st = store_stmt(s, SQL_EXISTS);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, bid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "look up batch");
    return rc == SQLITE_ROW;
}

int store_batch_update(struct store *s, const struct store_batch *b) {
    sqlite3_stmt *st;
    if (store_ensure_tx(s) != 0 || !(st = store_stmt(s, SQL_UPDATE)))
        return -1;
    bind_batch(st, b);
    return store_run(s, st, "update batch");
}

/* Runs a statement that takes one bound text, such as a bid. */
static int run_with_text(struct store *s, const char *sql, const char *text, const char *what) {
    sqlite3_stmt *st;
    if (store_ensure_tx(s) != 0 || !(st = store_stmt(s, sql)))
        return -1;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    return store_run(s, st, what);
}

int store_batch_delete(struct store *s, const char *bid) {
    if (run_with_text(s, SQL_DELETE_MEMBERS, bid, "delete batch members") != 0)
        return -1;
    return run_with_text(s, SQL_DELETE, bid, "delete batch");
}

int store_member_add(struct store *s, const char *bid, const char *jid) {
    sqlite3_stmt *st;
    if (store_ensure_tx(s) != 0 || !(st = store_stmt(s, SQL_MEMBER_ADD)))
        return -1;
    sqlite3_bind_text(st, 1, bid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, jid, -1, SQLITE_STATIC);
    if (store_run(s, st, "add batch member") != 0)
        return -1;
    return sqlite3_changes(store_db(s)) > 0;
}

int store_member_get(struct store *s, const char *bid, const char *jid, int *state,
                     bool *failed) {
    sqlite3_stmt *st = store_stmt(s, SQL_MEMBER_GET);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, bid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, jid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *state = sqlite3_column_int(st, 0);
        *failed = sqlite3_column_int(st, 1) != 0;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, "load batch member");
    return rc == SQLITE_ROW;
}

int store_member_set(struct store *s, const char *bid, const char *jid, int state,
                     bool failed) {
    sqlite3_stmt *st;
    if (store_ensure_tx(s) != 0 || !(st = store_stmt(s, SQL_MEMBER_SET)))
        return -1;
    sqlite3_bind_text(st, 1, bid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, jid, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, state);
    sqlite3_bind_int(st, 4, failed);
    return store_run(s, st, "update batch member");
}

/* Collects the first column of up to max rows of a query bound with (?1 before, ?2 max). */
static int collect_bids(struct store *s, const char *sql, double before, char **bids, int max,
                        const char *what) {
    sqlite3_stmt *st = store_stmt(s, sql);
    if (!st)
        return -1;
    sqlite3_bind_double(st, 1, before);
    sqlite3_bind_int(st, 2, max);
    int n = 0, rc;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        bids[n++] = store_column_strdup(st, 0);
    if (n < max && rc != SQLITE_DONE) {
        sqlite3_reset(st);
        while (n > 0)
            free(bids[--n]);
        return store_fail(s, what);
    }
    sqlite3_reset(st);
    return n;
}

int store_batches_open_before(struct store *s, double before, char **bids, int max) {
    return collect_bids(s, SQL_OPEN_BEFORE, before, bids, max, "find open batches");
}

int store_batches_finished_before(struct store *s, double before, char **bids, int max) {
    return collect_bids(s, SQL_FINISHED_BEFORE, before, bids, max, "find finished batches");
}


int store_batches_earliest_open(struct store *s, double *at) {
    return store_query_double(s, SQL_EARLIEST_OPEN, at, "find the oldest open batch");
}

int store_batches_earliest_finished(struct store *s, double *at) {
    return store_query_double(s, SQL_EARLIEST_FINISHED, at, "find the oldest finished batch");
}

static void bind_query(sqlite3_stmt *st, const struct store_batch_query *q) {
    bind_text_or_null(st, 1, q->status);
    bind_text_or_null(st, 2, q->search);
    bind_text_or_null(st, 3, q->parent_bid);
}

int store_batch_list(struct store *s, const struct store_batch_query *q,
                     int (*fn)(void *ctx, const struct store_batch *b), void *ctx) {
    sqlite3_stmt *st = store_stmt(s, SQL_LIST);
    if (!st)
        return -1;
    bind_query(st, q);
    sqlite3_bind_int64(st, 4, q->limit);
    sqlite3_bind_int64(st, 5, q->offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_batch b = {0};
        read_batch(st, &b);
        int stop = fn(ctx, &b);
        store_batch_clear(&b);
        if (stop)
            break;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_fail(s, "list batches");
}

int store_batch_count(struct store *s, const struct store_batch_query *q, int64_t *count) {
    sqlite3_stmt *st = store_stmt(s, SQL_COUNT);
    if (!st)
        return -1;
    bind_query(st, q);
    int rc = sqlite3_step(st);
    *count = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : store_fail(s, "count batches");
}

int store_member_list(struct store *s, const char *bid, int64_t offset, int64_t limit,
                      int (*fn)(void *ctx, const char *jid, int state, bool failed,
                                const struct store_job *job),
                      void *ctx) {
    sqlite3_stmt *st = store_stmt(s, SQL_MEMBERS);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, bid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit);
    sqlite3_bind_int64(st, 3, offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_job job = store_borrow_job(st, 3);
        if (fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
               sqlite3_column_int(st, 2) != 0, job.jid ? &job : NULL) != 0)
            break;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_fail(s, "list batch members");
}

int store_batch_job_id(struct store *s, const char *bid, const char *jid, int64_t *id) {
    sqlite3_stmt *st = store_stmt(s, SQL_BATCH_JOB);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, bid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, jid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    bool found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (found)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return store_fail(s, "find a batch job");
    return found;
}
