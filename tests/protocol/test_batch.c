/* Batches against the real server. The cases cover BATCH NEW/OPEN/COMMIT/STATUS and their
 * errors, members joining through custom.bid in PUSH and PUSHB, and when each of the complete,
 * success and death callbacks is enqueued (exactly once, never before COMMIT). They cover every
 * way a member can end (ACK, FAIL with and without retries, death, discard, kill, deletion,
 * expiry, queue removal), nested batches three levels deep, expiry of batches never committed,
 * retention of finished batches, FLUSH and a SIGKILL restart. Server time moves with DEBUG
 * CLOCK. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* A callback job declaration of type jobtype in queue "cb". */
static const char *callback(const char *jobtype) {
    return th_fmt("{\"jobtype\":\"%s\",\"args\":[],\"queue\":\"cb\"}", jobtype);
}

/* Sends BATCH NEW with the JSON body and returns the bid, checking its form. */
static const char *batch_new_at(const char *file, int line, struct th_conn *c, const char *body) {
    const struct th_reply *r = th_cmd(c, "BATCH NEW %s", body);
    if (r->kind != TH_BULK)
        th_fail_at(file, line, "BATCH NEW %s answered %s", body, r->line);
    th_check_at(file, line, strncmp(r->body, "b-", 2) == 0 && r->body_len == 24,
                "bid is b- and 22 characters");
    return th_fmt("%s", r->body);
}
#define BATCH_NEW(c, body) batch_new_at(__FILE__, __LINE__, c, body)

/* BATCH STATUS as a parsed document. */
static json_t *status_at(const char *file, int line, struct th_conn *c, const char *bid) {
    const struct th_reply *r = th_cmd(c, "BATCH STATUS %s", bid);
    if (r->kind != TH_BULK)
        th_fail_at(file, line, "BATCH STATUS %s answered %s", bid, r->line);
    return th_json_at(file, line, r->body, r->body_len);
}
#define STATUS(c, bid) status_at(__FILE__, __LINE__, c, bid)

/* Checks total, pending, failed, complete_st and success_st of a batch at once. */
static void expect_status_at(const char *file, int line, struct th_conn *c, const char *bid,
                             long total, long pending, long failed, const char *complete_st,
                             const char *success_st) {
    json_t *st = status_at(file, line, c, bid);
    th_check_int_at(file, line, "total", th_json_int_at(file, line, st, "total"), total);
    th_check_int_at(file, line, "pending", th_json_int_at(file, line, st, "pending"), pending);
    th_check_int_at(file, line, "failed", th_json_int_at(file, line, st, "failed"), failed);
    th_check_str_at(file, line, "complete_st", th_json_str_at(file, line, st, "complete_st"),
                    complete_st);
    th_check_str_at(file, line, "success_st", th_json_str_at(file, line, st, "success_st"),
                    success_st);
}
#define EXPECT_STATUS(c, bid, total, pending, failed, cst, sst) \
    expect_status_at(__FILE__, __LINE__, c, bid, total, pending, failed, cst, sst)

/* Pushes a member job of bid with optional extra fields. */
static void push_member_at(const char *file, int line, struct th_conn *c, const char *bid,
                           const char *jid, const char *extra) {
    th_push_at(file, line, c, jid,
               th_fmt("\"custom\":{\"bid\":\"%s\"}%s%s", bid, extra ? "," : "",
                      extra ? extra : ""));
}
#define PUSH_MEMBER(c, bid, jid, extra) push_member_at(__FILE__, __LINE__, c, bid, jid, extra)

static void fail_job(struct th_conn *w, const char *jid) {
    TH_OK(w, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"boom\"}", jid);
}

/* Fetches the next callback job from queue cb and checks its type and custom fields. */
static json_t *fetch_callback_at(const char *file, int line, struct th_conn *w,
                                 const char *jobtype, const char *bid, const char *which) {
    json_t *job = th_fetch_at(file, line, w, "cb");
    if (!job)
        th_fail_at(file, line, "no %s callback in queue cb", jobtype);
    th_check_str_at(file, line, "jobtype", th_json_str_at(file, line, job, "jobtype"), jobtype);
    th_check_str_at(file, line, "custom._bid", th_json_str_at(file, line, job, "custom._bid"),
                    bid);
    th_check_str_at(file, line, "custom._cb", th_json_str_at(file, line, job, "custom._cb"),
                    which);
    th_check_at(file, line, th_json_get(job, "custom.bid") == NULL, "callback has no custom.bid");
    return job;
}
#define FETCH_CALLBACK(w, jobtype, bid, which) \
    fetch_callback_at(__FILE__, __LINE__, w, jobtype, bid, which)

/* Fetches the callback and ACKs it. */
static void run_callback_at(const char *file, int line, struct th_conn *w, const char *jobtype,
                            const char *bid, const char *which) {
    json_t *job = fetch_callback_at(file, line, w, jobtype, bid, which);
    th_expect_line_at(file, line, w, "+OK", "ACK {\"jid\":\"%s\"}",
                      th_json_str_at(file, line, job, "jid"));
}
#define RUN_CALLBACK(w, jobtype, bid, which) run_callback_at(__FILE__, __LINE__, w, jobtype, bid, which)

static void fetch_ack(struct th_conn *w, const char *jid) {
    TH_FETCH_JID(w, "default", jid);
    TH_OK(w, "ACK {\"jid\":\"%s\"}", jid);
}

/* ---- commands and their errors ---- */

static void new_returns_bulk_bid(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *a = BATCH_NEW(c, th_fmt("{\"bid\":\"\",\"success\":%s}", callback("S")));
    const char *b = BATCH_NEW(c, "{}");
    TH_CHECK(strcmp(a, b) != 0);
    /* OPEN replies with the bid as a bulk string, which some clients use as the bid. */
    TH_EXPECT_RAW(c, th_fmt("$24\r\n%s\r\n", a), "BATCH OPEN %s", a);
    TH_OK(c, "BATCH COMMIT %s", a);
    TH_OK(c, "BATCH COMMIT %s", a);   /* again: nothing changes */
    TH_EXPECT_RAW(c, th_fmt("$24\r\n%s\r\n", a), "BATCH open %s", a);
    th_server_stop(srv);
}

static void status_document(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *parent = BATCH_NEW(c, "{}");
    double before = TH_SERVER_TIME(c);
    const char *bid = BATCH_NEW(c, th_fmt("{\"description\":\"Nightly import\",\"parent_bid\":"
                                          "\"%s\",\"complete\":%s}", parent, callback("C")));
    json_t *st = STATUS(c, bid);
    TH_EQ_STR(TH_JSTR(st, "bid"), bid);
    TH_EQ_STR(TH_JSTR(st, "parent_bid"), parent);
    TH_EQ_STR(TH_JSTR(st, "description"), "Nightly import");
    TH_RANGE(TH_TIME(st, "created_at"), before - 1, before + 5);
    TH_EQ_INT(TH_JINT(st, "total"), 0);
    TH_EQ_INT(TH_JINT(st, "pending"), 0);
    TH_EQ_INT(TH_JINT(st, "failed"), 0);
    TH_EQ_STR(TH_JSTR(st, "complete_st"), "");
    TH_EQ_STR(TH_JSTR(st, "success_st"), "");
    /* Without parent or description those keys are left out. */
    st = STATUS(c, parent);
    TH_CHECK(th_json_get(st, "parent_bid") == NULL);
    TH_CHECK(th_json_get(st, "description") == NULL);
    th_server_stop(srv);
}

static void unknown_batch_errors(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT(c, "-ERR no such batch b-nope", "BATCH OPEN b-nope");
    TH_EXPECT(c, "-ERR no such batch b-nope", "BATCH COMMIT b-nope");
    TH_EXPECT(c, "-ERR no such batch b-nope", "BATCH STATUS b-nope");
    TH_EXPECT(c, "-ERR no such batch b-nope (parent_bid)", "BATCH NEW {\"parent_bid\":\"b-nope\"}");
    TH_EXPECT(c, "-ERR no such batch b-nope (custom.bid)",
              "PUSH {\"jid\":\"job-j1-0001\",\"jobtype\":\"T\",\"args\":[],\"custom\":{\"bid\":\"b-nope\"}}");
    const struct th_reply *r = th_cmd(c, "PUSHB [{\"jid\":\"job-j2-0001\",\"jobtype\":\"T\",\"args\":[],"
                                         "\"custom\":{\"bid\":\"b-nope\"}},{\"jid\":\"job-j3-0001\","
                                         "\"jobtype\":\"T\",\"args\":[]}]");
    TH_CHECK(r->kind == TH_BULK);
    json_t *result = TH_JSON(r->body, r->body_len);
    TH_EQ_STR(TH_JSTR(result, "job-j2-0001"), "no such batch b-nope (custom.bid)");
    TH_CHECK(th_json_get(result, "job-j3-0001") == NULL);
    TH_INFO_EQ(c, "faktory.queues.default", 1);
    th_server_stop(srv);
}

static void bad_input_named(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT_PREFIX(c, "-ERR BATCH requires an argument", "BATCH");
    TH_EXPECT_PREFIX(c, "-ERR BATCH NEW requires a JSON object", "BATCH NEW");
    TH_EXPECT_PREFIX(c, "-ERR no such BATCH subcommand: CHILD", "BATCH CHILD b-1 b-2");
    TH_EXPECT_PREFIX(c, "-ERR BATCH OPEN requires one batch id", "BATCH OPEN");
    TH_EXPECT_PREFIX(c, "-ERR BATCH STATUS requires one batch id", "BATCH STATUS a b");
    TH_EXPECT_PREFIX(c, "-ERR invalid JSON", "BATCH NEW {\"description\":");
    TH_EXPECT_PREFIX(c, "-ERR BATCH NEW takes a JSON object", "BATCH NEW [1]");
    TH_EXPECT(c, "-ERR bid must be empty or missing: the server assigns batch ids",
              "BATCH NEW {\"bid\":\"b-mine\"}");
    TH_EXPECT(c, "-ERR description must be a string", "BATCH NEW {\"description\":5}");
    TH_EXPECT(c, "-ERR parent_bid must be a string", "BATCH NEW {\"parent_bid\":[]}");
    TH_EXPECT_PREFIX(c, "-ERR success must be a job object", "BATCH NEW {\"success\":\"S\"}");
    TH_EXPECT_PREFIX(c, "-ERR complete callback: ",
                     "BATCH NEW {\"complete\":{\"args\":[]}}");
    TH_EXPECT_PREFIX(c, "-ERR death callback: ",
                     "BATCH NEW {\"death\":{\"jobtype\":\"D\",\"args\":[],\"queue\":\"a b\"}}");
    char *long_text = th_keep(malloc(1100));
    memset(long_text, 'x', 1099);
    long_text[1099] = '\0';
    TH_EXPECT(c, "-ERR description must be at most 1000 bytes",
              "BATCH NEW {\"description\":\"%s\"}", long_text);
    TH_EXPECT(c, "-ERR custom.bid must be a string holding a batch id from BATCH NEW",
              "PUSH {\"jid\":\"job-j1-0001\",\"jobtype\":\"T\",\"args\":[],\"custom\":{\"bid\":7}}");
    /* Nothing was stored, and the connection still works. */
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
    th_server_stop(srv);
}

/* Clients that declare callbacks without a jid get one assigned, and a callback with an
 * empty custom.bid still joins no batch. */
static void callback_without_jid(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *bid = BATCH_NEW(c, "{\"complete\":{\"jobtype\":\"C\",\"args\":[1],"
                                   "\"queue\":\"cb\",\"custom\":{\"bid\":\"\",\"k\":2}}}");
    TH_OK(c, "BATCH COMMIT %s", bid);
    struct th_conn *w = th_worker(srv, "w1");
    json_t *job = FETCH_CALLBACK(w, "C", bid, "complete");
    TH_CHECK(strlen(TH_JSTR(job, "jid")) > 0);
    TH_EQ_INT(TH_JINT(job, "custom.k"), 2);
    TH_EQ_INT(json_array_size(th_json_get(job, "args")), 1);
    th_server_stop(srv);
}

/* ---- callbacks ---- */

/* Both callbacks and a job that fails once: complete right after the first FAIL, success
 * only after the retry succeeded and the complete callback succeeded. */
static void complete_then_success(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":%s,\"success\":%s}", callback("C"),
                                          callback("S")));
    PUSH_MEMBER(c, bid, "job-a-0001", NULL);
    PUSH_MEMBER(c, bid, "job-b-0001", "\"retry\":1");
    TH_OK(c, "BATCH COMMIT %s", bid);
    EXPECT_STATUS(c, bid, 2, 2, 0, "", "");
    fetch_ack(w, "job-a-0001");
    EXPECT_STATUS(c, bid, 2, 1, 0, "", "");
    TH_FETCH_JID(w, "default", "job-b-0001");
    fail_job(w, "job-b-0001");
    /* Every member ran: the complete callback is enqueued in the same step. */
    EXPECT_STATUS(c, bid, 2, 1, 1, "1", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);
    RUN_CALLBACK(w, "C", bid, "complete");
    EXPECT_STATUS(c, bid, 2, 1, 1, "2", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    TH_CLOCK(c, 200);   /* the retry is due; w1 is reaped, having sent no BEAT */
    w = th_worker(srv, "w2");
    fetch_ack(w, "job-b-0001");
    EXPECT_STATUS(c, bid, 2, 0, 1, "2", "1");
    RUN_CALLBACK(w, "S", bid, "success");
    EXPECT_STATUS(c, bid, 2, 0, 1, "2", "2");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    th_server_stop(srv);
}

/* A batch with only a success callback gets it as soon as every member succeeded. */
static void success_only(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"success\":%s}", callback("S")));
    PUSH_MEMBER(c, bid, "job-a-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", bid);
    fetch_ack(w, "job-a-0001");
    EXPECT_STATUS(c, bid, 1, 0, 0, "", "1");
    RUN_CALLBACK(w, "S", bid, "success");
    EXPECT_STATUS(c, bid, 1, 0, 0, "", "2");
    th_server_stop(srv);
}

/* Jobs that finish before COMMIT fire nothing; the COMMIT does. An empty batch fires at
 * COMMIT, complete first. */
static void callbacks_wait_for_commit(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":%s}", callback("C")));
    PUSH_MEMBER(c, bid, "job-a-0001", NULL);
    fetch_ack(w, "job-a-0001");
    EXPECT_STATUS(c, bid, 1, 0, 0, "", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    TH_OK(c, "BATCH COMMIT %s", bid);
    EXPECT_STATUS(c, bid, 1, 0, 0, "1", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);

    const char *empty = BATCH_NEW(c, th_fmt("{\"complete\":%s,\"success\":%s}", callback("C2"),
                                            callback("S2")));
    TH_OK(c, "BATCH COMMIT %s", empty);
    EXPECT_STATUS(c, empty, 0, 0, 0, "1", "");
    RUN_CALLBACK(w, "C", bid, "complete");
    RUN_CALLBACK(w, "C2", empty, "complete");
    EXPECT_STATUS(c, empty, 0, 0, 0, "2", "1");
    RUN_CALLBACK(w, "S2", empty, "success");
    EXPECT_STATUS(c, empty, 0, 0, 0, "2", "2");
    th_server_stop(srv);
}

/* FAIL with retry 0 still counts the job as run; the complete callback fires once and
 * the success callback never. */
static void retry_zero_failure_completes(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":{\"jobtype\":\"Done\",\"args\":[],"
                                          "\"queue\":\"cb\"},\"success\":%s}", callback("S")));
    PUSH_MEMBER(c, bid, "job-a-0001", "\"retry\":0");
    PUSH_MEMBER(c, bid, "job-b-0001", "\"retry\":0");
    TH_OK(c, "BATCH COMMIT %s", bid);
    fetch_ack(w, "job-a-0001");
    TH_FETCH_JID(w, "default", "job-b-0001");
    fail_job(w, "job-b-0001");
    EXPECT_STATUS(c, bid, 2, 0, 1, "1", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);
    RUN_CALLBACK(w, "Done", bid, "complete");
    EXPECT_STATUS(c, bid, 2, 0, 1, "2", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    TH_INFO_EQ(c, "faktory.sets.retries", 0);
    TH_INFO_EQ(c, "faktory.sets.dead", 0);
    th_server_stop(srv);
}

/* A duplicate ACK, a late ACK after the reservation expired and the re-run of that job count
 * once. */
static void duplicate_and_late_acks_count_once(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    struct th_conn *w2 = th_worker(srv, "w2");
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":%s,\"success\":%s}", callback("C"),
                                          callback("S")));

    PUSH_MEMBER(c, bid, "job-a-0001", NULL);
    PUSH_MEMBER(c, bid, "job-b-0001", "\"reserve_for\":60");
    PUSH_MEMBER(c, bid, "job-c-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", bid);

    fetch_ack(w, "job-a-0001");
    TH_OK(w, "ACK {\"jid\":\"job-a-0001\"}");
    TH_OK(w2, "ACK {\"jid\":\"job-a-0001\"}");
    EXPECT_STATUS(c, bid, 3, 2, 0, "", "");

    TH_FETCH_JID(w, "default", "job-b-0001");
    /* b's reservation expires: a failure, and b waits in the retry set. The silent workers
     * are reaped on the way, so they come back on new connections. */
    TH_CLOCK(c, 61);
    w = th_worker(srv, "w1");
    w2 = th_worker(srv, "w2");
    EXPECT_STATUS(c, bid, 3, 2, 1, "", "");
    TH_OK(w, "ACK {\"jid\":\"job-b-0001\"}");   /* late: changes nothing */
    EXPECT_STATUS(c, bid, 3, 2, 1, "", "");

    fetch_ack(w, "job-c-0001");
    EXPECT_STATUS(c, bid, 3, 1, 1, "1", "");
    RUN_CALLBACK(w, "C", bid, "complete");

    TH_CLOCK(c, 200);
    w = th_worker(srv, "w1");
    w2 = th_worker(srv, "w2");
    fetch_ack(w2, "job-b-0001");
    TH_OK(w2, "ACK {\"jid\":\"job-b-0001\"}");
    EXPECT_STATUS(c, bid, 3, 0, 1, "2", "1");
    RUN_CALLBACK(w, "S", bid, "success");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    EXPECT_STATUS(c, bid, 3, 0, 1, "2", "2");
    th_server_stop(srv);
}

/* A failing callback goes to the retry set under its own retry policy; the batch keeps
 * its state "1" and enqueues nothing again. */
static void failing_callback_retries(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, "{\"success\":{\"jobtype\":\"S\",\"args\":[],\"queue\":\"cb\","
                                   "\"retry\":2}}");
    PUSH_MEMBER(c, bid, "job-a-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", bid);
    fetch_ack(w, "job-a-0001");
    json_t *cb = FETCH_CALLBACK(w, "S", bid, "success");
    fail_job(w, TH_JSTR(cb, "jid"));
    TH_CHECK(th_server_alive(srv));
    TH_INFO_EQ(c, "faktory.sets.retries", 1);
    EXPECT_STATUS(c, bid, 1, 0, 0, "", "1");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    TH_CLOCK(c, 200);
    w = th_worker(srv, "w2");
    RUN_CALLBACK(w, "S", bid, "success");
    EXPECT_STATUS(c, bid, 1, 0, 0, "", "2");
    th_server_stop(srv);
}

/* Members that end without success (dead after retries, discarded from the retry set,
 * killed, deleted with their queue, expired) all count as finished for complete. Success
 * never fires. */
static void every_ending_completes(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":%s,\"success\":%s}", callback("C"),
                                          callback("S")));

    PUSH_MEMBER(c, bid, "job-ok-0001", NULL);
    PUSH_MEMBER(c, bid, "job-dies-0001", "\"retry\":-1");
    PUSH_MEMBER(c, bid, "job-discarded-0001", NULL);
    PUSH_MEMBER(c, bid, "job-killed-0001", NULL);
    th_push_at(__FILE__, __LINE__, c, "job-removed-0001",
               th_fmt("\"queue\":\"doomed\",\"custom\":{\"bid\":\"%s\"}", bid));
    th_push_at(__FILE__, __LINE__, c, "job-expires-0001",
               th_fmt("\"queue\":\"idle\",\"custom\":{\"bid\":\"%s\",\"expires_in\":5}", bid));
    TH_OK(c, "BATCH COMMIT %s", bid);
    EXPECT_STATUS(c, bid, 6, 6, 0, "", "");

    fetch_ack(w, "job-ok-0001");
    TH_FETCH_JID(w, "default", "job-dies-0001");
    fail_job(w, "job-dies-0001");
    TH_FETCH_JID(w, "default", "job-discarded-0001");
    fail_job(w, "job-discarded-0001");
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"retries\",\"filter\":{\"jids\":[\"job-discarded-0001\"]}}");
    EXPECT_STATUS(c, bid, 6, 3, 2, "", "");

    TH_FETCH_JID(w, "default", "job-killed-0001");
    fail_job(w, "job-killed-0001");
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jids\":[\"job-killed-0001\"]}}");
    TH_OK(c, "QUEUE REMOVE doomed");
    EXPECT_STATUS(c, bid, 6, 1, 4, "", "");

    TH_CLOCK(c, 10);   /* "expires" runs out in its queue */
    EXPECT_STATUS(c, bid, 6, 0, 5, "1", "");
    RUN_CALLBACK(w, "C", bid, "complete");
    EXPECT_STATUS(c, bid, 6, 0, 5, "2", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    th_server_stop(srv);
}

/* A dead member brought back and succeeding counts as a success after all. */
static void requeued_dead_member_can_succeed(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"success\":%s}", callback("S")));
    PUSH_MEMBER(c, bid, "job-a-0001", "\"retry\":-1");
    TH_OK(c, "BATCH COMMIT %s", bid);
    TH_FETCH_JID(w, "default", "job-a-0001");
    fail_job(w, "job-a-0001");
    EXPECT_STATUS(c, bid, 1, 0, 1, "", "");
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\",\"filter\":{\"jids\":[\"job-a-0001\"]}}");
    fetch_ack(w, "job-a-0001");
    EXPECT_STATUS(c, bid, 1, 0, 1, "", "1");
    th_server_stop(srv);
}

/* The death callback fires once, when the first member dies, and not before COMMIT. */
static void death_callback_once(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"death\":%s,\"complete\":%s}", callback("D"),
                                          callback("C")));
    PUSH_MEMBER(c, bid, "job-a-0001", "\"retry\":-1");
    PUSH_MEMBER(c, bid, "job-b-0001", "\"retry\":-1");
    PUSH_MEMBER(c, bid, "job-c-0001", NULL);
    TH_FETCH_JID(w, "default", "job-a-0001");
    fail_job(w, "job-a-0001");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    json_t *st = STATUS(c, bid);
    TH_EQ_STR(TH_JSTR(st, "death_st"), "");
    TH_OK(c, "BATCH COMMIT %s", bid);
    st = STATUS(c, bid);
    TH_EQ_STR(TH_JSTR(st, "death_st"), "1");
    TH_FETCH_JID(w, "default", "job-b-0001");
    fail_job(w, "job-b-0001");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);
    RUN_CALLBACK(w, "D", bid, "death");
    st = STATUS(c, bid);
    TH_EQ_STR(TH_JSTR(st, "death_st"), "2");
    fetch_ack(w, "job-c-0001");
    RUN_CALLBACK(w, "C", bid, "complete");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    th_server_stop(srv);
}

/* A running member reopens its own batch, adds a job and commits before its ACK: complete
 * waits for the added job. Adding after the callback fired raises the counts but fires
 * nothing again. */
static void member_adds_jobs_while_running(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":%s}", callback("C")));
    PUSH_MEMBER(c, bid, "job-a-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", bid);
    TH_FETCH_JID(w, "default", "job-a-0001");
    TH_EXPECT_RAW(w, th_fmt("$24\r\n%s\r\n", bid), "BATCH OPEN %s", bid);
    PUSH_MEMBER(w, bid, "job-a2-0001", NULL);
    TH_OK(w, "BATCH COMMIT %s", bid);
    TH_OK(w, "ACK {\"jid\":\"job-a-0001\"}");
    EXPECT_STATUS(c, bid, 2, 1, 0, "", "");
    fetch_ack(w, "job-a2-0001");
    EXPECT_STATUS(c, bid, 2, 0, 0, "1", "");
    PUSH_MEMBER(c, bid, "job-late-0001", NULL);
    fetch_ack(w, "job-late-0001");
    EXPECT_STATUS(c, bid, 3, 0, 0, "1", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);
    th_server_stop(srv);
}

/* PUSHB members join like PUSH members; a repeated jid counts once. */
static void pushb_members(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":%s}", callback("C")));
    const char *job = "{\"jid\":\"%s\",\"jobtype\":\"T\",\"args\":[],\"custom\":{\"bid\":\"%s\"}}";
    TH_EXPECT_RAW(c, "$2\r\n{}\r\n", "PUSHB [%s,%s,%s]", th_fmt(job, "job-x-0001", bid),
                  th_fmt(job, "job-y-0001", bid), th_fmt(job, "job-x-0001", bid));
    EXPECT_STATUS(c, bid, 2, 2, 0, "", "");
    th_server_stop(srv);
}

/* Three levels: each parent's callbacks wait for its children's callbacks to succeed. */
static void nested_three_levels(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *top = BATCH_NEW(c, th_fmt("{\"success\":%s}", callback("TopS")));
    const char *mid = BATCH_NEW(c, th_fmt("{\"parent_bid\":\"%s\",\"complete\":%s,"
                                          "\"success\":%s}", top, callback("MidC"),
                                          callback("MidS")));
    const char *leaf = BATCH_NEW(c, th_fmt("{\"parent_bid\":\"%s\",\"success\":%s}", mid,
                                           callback("LeafS")));

    PUSH_MEMBER(c, top, "job-t1-0001", NULL);
    PUSH_MEMBER(c, mid, "job-m1-0001", NULL);
    PUSH_MEMBER(c, leaf, "job-l1-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", leaf);
    TH_OK(c, "BATCH COMMIT %s", mid);
    TH_OK(c, "BATCH COMMIT %s", top);

    fetch_ack(w, "job-t1-0001");
    fetch_ack(w, "job-m1-0001");
    /* The leaf still runs: nothing above it may fire. */
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);

    fetch_ack(w, "job-l1-0001");
    /* The leaf has no complete callback, so its complete stage is done and the middle
     * batch's complete callback runs. The middle batch's success waits for the leaf's success
     * callback. */
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 2);
    RUN_CALLBACK(w, "LeafS", leaf, "success");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);
    RUN_CALLBACK(w, "MidC", mid, "complete");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);
    RUN_CALLBACK(w, "MidS", mid, "success");
    RUN_CALLBACK(w, "TopS", top, "success");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);

    EXPECT_STATUS(c, top, 1, 0, 0, "", "2");
    EXPECT_STATUS(c, mid, 1, 0, 0, "2", "2");
    EXPECT_STATUS(c, leaf, 1, 0, 0, "", "2");
    th_server_stop(srv);
}

/* A member that expires before a worker fetches it counts as run for complete (so the
 * batch does not hang) and as failed for success, which then never runs. */
static void expired_member_completes(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":%s,\"success\":%s}", callback("C"),
                                          callback("S")));
    th_push_at(__FILE__, __LINE__, c, "job-c-0001",
               th_fmt("\"custom\":{\"bid\":\"%s\",\"expires_in\":1}", bid));
    TH_OK(c, "BATCH COMMIT %s", bid);
    th_sleep_ms(1500);
    /* The expiry timer drops the member, which makes every member run: complete is due. */
    RUN_CALLBACK(w, "C", bid, "complete");
    EXPECT_STATUS(c, bid, 1, 0, 1, "2", "");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    th_server_stop(srv);
}

/* Members in a throttled queue run one at a time and the batch completes as usual. */
static void throttled_members_complete(void) {
    struct th_server_opts opts = {.toml = "[throttles]\nslow = { concurrency = 1, timeout = 60 }\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w1 = th_worker(srv, "w1");
    struct th_conn *w2 = th_worker(srv, "w2");
    const char *bid = BATCH_NEW(c, th_fmt("{\"success\":%s}", callback("S")));
    for (int i = 0; i < 3; i++)
        th_push_at(__FILE__, __LINE__, c, th_fmt("job-slow-%04d", i),
                   th_fmt("\"queue\":\"slow\",\"custom\":{\"bid\":\"%s\"}", bid));
    TH_OK(c, "BATCH COMMIT %s", bid);
    for (int i = 0; i < 3; i++) {
        TH_FETCH_JID(w1, "slow", th_fmt("job-slow-%04d", i));
        /* The slot is taken: the second worker gets nothing from the queue. */
        TH_CHECK(TH_FETCH(w2, "slow") == NULL);
        TH_OK(w1, "ACK {\"jid\":\"job-slow-%04d\"}", i);
    }
    EXPECT_STATUS(c, bid, 3, 0, 0, "", "1");
    RUN_CALLBACK(w2, "S", bid, "success");
    th_server_stop(srv);
}

/* ---- lifetime ---- */

/* A batch never committed expires after 30 minutes without callbacks, and stops holding its
 * parent; its jobs run on. */
static void uncommitted_batch_expires(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *parent = BATCH_NEW(c, th_fmt("{\"complete\":%s}", callback("P")));
    PUSH_MEMBER(c, parent, "job-p-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", parent);
    TH_CLOCK(c, 50);
    const char *child = BATCH_NEW(c, th_fmt("{\"parent_bid\":\"%s\",\"complete\":%s}", parent,
                                            callback("C")));
    PUSH_MEMBER(c, child, "job-a-0001", NULL);
    struct th_conn *w = th_worker(srv, "w1");
    fetch_ack(w, "job-p-0001");
    /* The parent's own job is done, but it waits for its child. */
    EXPECT_STATUS(c, parent, 1, 0, 0, "", "");
    TH_CLOCK(c, 1799);
    EXPECT_STATUS(c, child, 1, 1, 0, "", "");
    TH_CLOCK(c, 2);
    TH_EXPECT(c, th_fmt("-ERR no such batch %s", child), "BATCH STATUS %s", child);
    TH_CHECK(th_server_log_contains(srv, th_fmt("event=batch_expired bid=%s", child)));
    /* The parent no longer waits for it; the child's job runs on. */
    EXPECT_STATUS(c, parent, 1, 0, 0, "1", "");
    w = th_worker(srv, "w2");
    fetch_ack(w, "job-a-0001");
    RUN_CALLBACK(w, "P", parent, "complete");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    th_server_stop(srv);
}

/* Finished batches are removed batch_ttl_days after they finished; unfinished ones stay. */
static void finished_batches_removed_after_ttl(void) {
    struct th_server_opts opts = {.toml = "[fabrik]\nbatch_ttl_days = 2\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *done = BATCH_NEW(c, "{}");
    PUSH_MEMBER(c, done, "job-a-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", done);
    fetch_ack(w, "job-a-0001");
    const char *waiting = BATCH_NEW(c, "{}");
    PUSH_MEMBER(c, waiting, "job-b-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", waiting);
    TH_CLOCK(c, 86400);
    STATUS(c, done);
    TH_CLOCK(c, 86401);
    TH_EXPECT(c, th_fmt("-ERR no such batch %s", done), "BATCH STATUS %s", done);
    EXPECT_STATUS(c, waiting, 1, 1, 0, "", "");
    th_server_stop(srv);
}

static void flush_removes_batches(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *bid = BATCH_NEW(c, "{}");
    TH_OK(c, "FLUSH");
    TH_EXPECT(c, th_fmt("-ERR no such batch %s", bid), "BATCH OPEN %s", bid);
    th_server_stop(srv);
}

/* Batch state is in the same transactions as the jobs: after SIGKILL both come back and the
 * callbacks fire once. */
static void state_survives_sigkill(void) {
    th_require_private_server();
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "w1");
    const char *bid = BATCH_NEW(c, th_fmt("{\"complete\":%s,\"success\":%s}", callback("C"),
                                          callback("S")));
    PUSH_MEMBER(c, bid, "job-a-0001", NULL);
    PUSH_MEMBER(c, bid, "job-b-0001", NULL);
    TH_OK(c, "BATCH COMMIT %s", bid);
    fetch_ack(w, "job-a-0001");
    TH_FETCH_JID(w, "default", "job-b-0001");
    th_server_kill(srv);
    th_server_restart(srv);
    c = th_producer(srv);
    w = th_worker(srv, "w1");
    EXPECT_STATUS(c, bid, 2, 1, 0, "", "");
    TH_OK(w, "ACK {\"jid\":\"job-b-0001\"}");
    EXPECT_STATUS(c, bid, 2, 0, 0, "1", "");
    RUN_CALLBACK(w, "C", bid, "complete");
    th_server_kill(srv);
    th_server_restart(srv);
    c = th_producer(srv);
    w = th_worker(srv, "w1");
    EXPECT_STATUS(c, bid, 2, 0, 0, "2", "1");
    RUN_CALLBACK(w, "S", bid, "success");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 0);
    th_server_stop(srv);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(new_returns_bulk_bid),
        TH_CASE(status_document),
        TH_CASE(unknown_batch_errors),
        TH_CASE(bad_input_named),
        TH_CASE(callback_without_jid),
        TH_CASE(complete_then_success),
        TH_CASE(success_only),
        TH_CASE(callbacks_wait_for_commit),
        TH_CASE(retry_zero_failure_completes),
        TH_CASE(duplicate_and_late_acks_count_once),
        TH_CASE(failing_callback_retries),
        TH_CASE(every_ending_completes),
        TH_CASE(requeued_dead_member_can_succeed),
        TH_CASE(death_callback_once),
        TH_CASE(member_adds_jobs_while_running),
        TH_CASE(pushb_members),
        TH_CASE(nested_three_levels),
        TH_CASE(expired_member_completes),
        TH_CASE(throttled_members_complete),
        TH_CASE(uncommitted_batch_expires),
        TH_CASE(finished_batches_removed_after_ttl),
        TH_CASE(flush_removes_batches),
        TH_CASE(state_survives_sigkill),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
