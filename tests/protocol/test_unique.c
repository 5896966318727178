/* Unique jobs against the real server. A job with custom.unique_for takes a lock keyed on its
 * job type, arguments and queue. A second job with the same key gets "-NOTUNIQUE Job not
 * unique" while the lock is held. The cases cover the lock span (unique_for from PUSH, plus the
 * delay of a scheduled job), release on ACK or on FETCH with unique_until = "start", the lock
 * kept through retries and released when the job can no longer run (discarded, dead, killed,
 * deleted, expired, its queue removed), validation of both options, PUSHB results, FLUSH,
 * a throttled queue, a batch, and locks that survive SIGKILL. Server time moves with
 * DEBUG CLOCK. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#define NOT_UNIQUE "-NOTUNIQUE Job not unique"

/* ---- pushing ---- */

/* A job of type jobtype with the JSON args text in queue, plus extra members (or NULL). */
static const char *job_json(const char *jid, const char *jobtype, const char *args,
                            const char *queue, const char *extra) {
    return th_fmt("{\"jid\":\"%s\",\"jobtype\":\"%s\",\"args\":%s,\"queue\":\"%s\"%s%s}", jid,
                  jobtype, args, queue, extra ? "," : "", extra ? extra : "");
}

/* The "custom" member with unique_for set to the JSON text seconds. */
static const char *unique_for(const char *seconds) {
    return th_fmt("\"custom\":{\"unique_for\":%s}", seconds);
}

/* The "custom" member with unique_for and unique_until = "start". */
static const char *unique_until_start(const char *seconds) {
    return th_fmt("\"custom\":{\"unique_for\":%s,\"unique_until\":\"start\"}", seconds);
}

/* Pushes job "Report" with args [7] into default with the given custom member, and checks the
 * reply's first line. */
#define PUSH_REPORT(c, jid, extra, expected) \
    TH_EXPECT(c, expected, "PUSH %s", job_json(jid, "Report", "[7]", "default", extra))

/* The server's time plus seconds as a job's "at" member. */
static const char *at_plus(struct th_conn *c, double seconds) {
    char text[64];
    th_format_time(TH_SERVER_TIME(c) + seconds, text, sizeof text);
    return th_fmt("\"at\":\"%s\"", text);
}

static void ack(struct th_conn *c, const char *jid) {
    TH_OK(c, "ACK {\"jid\":\"%s\"}", jid);
}

static void fail(struct th_conn *c, const char *jid) {
    TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"planned\"}", jid);
}

/* ---- duplicates and the key ---- */

static void duplicate_rejected_byte_exact(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "dup-a-0001", unique_for("60"), "+OK");
    TH_EXPECT_RAW(c, NOT_UNIQUE "\r\n", "PUSH %s",
                  job_json("dup-b-0001", "Report", "[7]", "default", unique_for("60")));
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);

    /* The connection stays usable, and the rejected job was not stored. */
    TH_FETCH_JID(c, "default", "dup-a-0001");
    TH_CHECK(TH_FETCH(c, "default") == NULL);
    TH_CHECK(th_server_log_contains(srv, "event=job_not_unique jid=dup-b"));
    th_server_stop(srv);
}

/* The job type, the arguments and the queue make the key; nothing else does. */
static void key_is_type_args_and_queue(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *lock = unique_for("60");
    TH_OK(c, "PUSH %s", job_json("key-a-0001", "Report", "[7]", "default", lock));
    TH_OK(c, "PUSH %s", job_json("key-queue-0001", "Report", "[7]", "other", lock));
    TH_OK(c, "PUSH %s", job_json("key-type-0001", "Invoice", "[7]", "default", lock));
    TH_OK(c, "PUSH %s", job_json("key-args-0001", "Report", "[8]", "default", lock));
    TH_OK(c, "PUSH %s", job_json("key-more-0001", "Report", "[7,7]", "default", lock));

    /* Other fields differ but the key is the same. */
    TH_EXPECT(c, NOT_UNIQUE, "PUSH %s",
              job_json("key-dup-0001", "Report", "[7]", "default",
                       "\"priority\":9,\"retry\":3,\"custom\":{\"unique_for\":5,\"x\":1}"));
    TH_EXPECT(c, NOT_UNIQUE, "PUSH %s", job_json("key-q2-0001", "Report", "[7]", "other", lock));
    th_server_stop(srv);
}

static void argument_key_order_ignored(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *lock = unique_for("60");
    TH_OK(c, "PUSH %s", job_json("ord-a-0001", "Sync", "[{\"a\":1,\"b\":[2,3]}]", "default", lock));
    TH_EXPECT(c, NOT_UNIQUE, "PUSH %s",
              job_json("ord-b-0001", "Sync", "[{\"b\":[2,3],\"a\":1}]", "default", lock));
    /* Spaces in the sent JSON do not matter either. */
    TH_EXPECT(c, NOT_UNIQUE, "PUSH %s",
              job_json("ord-c-0001", "Sync", "[ { \"a\" : 1 , \"b\" : [ 2 , 3 ] } ]", "default", lock));
    /* The order of array elements does, and so does an integer against a fraction. */
    TH_OK(c, "PUSH %s", job_json("ord-d-0001", "Sync", "[{\"a\":1,\"b\":[3,2]}]", "default", lock));
    TH_OK(c, "PUSH %s", job_json("ord-e-0001", "Sync", "[{\"a\":1.0,\"b\":[2,3]}]", "default", lock));
    th_server_stop(srv);
}

/* A job without unique_for neither checks nor takes a lock. */
static void job_without_unique_for_bypasses(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "plain-a-0001", NULL, "+OK");
    PUSH_REPORT(c, "locked-a-0001", unique_for("60"), "+OK");
    PUSH_REPORT(c, "plain-b-0001", NULL, "+OK");
    PUSH_REPORT(c, "plain-c-0001", "\"custom\":{\"unique_for\":null,\"unique_until\":\"start\"}",
                "+OK");
    PUSH_REPORT(c, "locked-b-0001", unique_for("60"), NOT_UNIQUE);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 4);
    th_server_stop(srv);
}

/* ---- the lock span ---- */

/* Minutely cron with unique_for 65: the lock lapses 65 s after PUSH even if the job never
 * ran, so the next run's job is accepted. */
static void lock_lapses_after_unique_for(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "span-a-0001", unique_for("65"), "+OK");
    TH_CLOCK(c, 60);
    PUSH_REPORT(c, "span-b-0001", unique_for("65"), NOT_UNIQUE);
    TH_CLOCK(c, 6);
    PUSH_REPORT(c, "span-c-0001", unique_for("65"), "+OK");
    PUSH_REPORT(c, "span-d-0001", unique_for("65"), NOT_UNIQUE);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    th_server_stop(srv);
}

static void fraction_accepted(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "frac-a-0001", unique_for("2.5"), "+OK");
    TH_CLOCK(c, 1);
    PUSH_REPORT(c, "frac-b-0001", unique_for("2.5"), NOT_UNIQUE);
    TH_CLOCK(c, 2);
    PUSH_REPORT(c, "frac-c-0001", unique_for("2.5"), "+OK");
    th_server_stop(srv);
}

/* Scheduled 60 s ahead with unique_for 10: locked until 70 s, whether or not it ran. */
static void scheduled_job_adds_delay(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "PUSH %s",
          job_json("sched-a-0001", "Report", "[7]", "default",
                   th_fmt("%s,%s", at_plus(c, 60), unique_for("10"))));
    TH_CLOCK(c, 50);
    PUSH_REPORT(c, "sched-b-0001", unique_for("10"), NOT_UNIQUE);
    TH_CLOCK(c, 15);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    PUSH_REPORT(c, "sched-c-0001", unique_for("10"), NOT_UNIQUE);
    TH_CLOCK(c, 7);
    PUSH_REPORT(c, "sched-d-0001", unique_for("10"), "+OK");
    th_server_stop(srv);
}

/* Scheduled job that ran and succeeded before its lock lapsed: ACK released it. */
static void scheduled_job_released_on_ack(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "PUSH %s",
          job_json("sack-a-0001", "Report", "[7]", "default",
                   th_fmt("%s,%s", at_plus(c, 60), unique_for("10"))));
    TH_CLOCK(c, 61);
    TH_FETCH_JID(c, "default", "sack-a-0001");
    PUSH_REPORT(c, "sack-b-0001", unique_for("10"), NOT_UNIQUE);
    ack(c, "sack-a-0001");
    PUSH_REPORT(c, "sack-c-0001", unique_for("10"), "+OK");
    th_server_stop(srv);
}

/* ---- what releases a lock ---- */

static void released_on_ack(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "ack-a-0001", unique_for("65"), "+OK");
    PUSH_REPORT(c, "ack-b-0001", unique_for("65"), NOT_UNIQUE);
    TH_FETCH_JID(c, "default", "ack-a-0001");
    /* unique_until defaults to success: a running job keeps its lock. */
    PUSH_REPORT(c, "ack-c-0001", unique_for("65"), NOT_UNIQUE);
    ack(c, "ack-a-0001");
    PUSH_REPORT(c, "ack-d-0001", unique_for("65"), "+OK");
    th_server_stop(srv);
}

static void explicit_success_same_as_default(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *lock = "\"custom\":{\"unique_for\":60,\"unique_until\":\"success\"}";
    PUSH_REPORT(c, "succ-a-0001", lock, "+OK");
    TH_FETCH_JID(c, "default", "succ-a-0001");
    PUSH_REPORT(c, "succ-b-0001", lock, NOT_UNIQUE);
    ack(c, "succ-a-0001");
    PUSH_REPORT(c, "succ-c-0001", lock, "+OK");
    th_server_stop(srv);
}

static void until_start_released_on_fetch(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "start-a-0001", unique_until_start("60"), "+OK");
    PUSH_REPORT(c, "start-b-0001", unique_until_start("60"), NOT_UNIQUE);
    TH_FETCH_JID(c, "default", "start-a-0001");
    /* start-a is still running, and its duplicate is accepted. */
    PUSH_REPORT(c, "start-c-0001", unique_until_start("60"), "+OK");
    PUSH_REPORT(c, "start-d-0001", unique_until_start("60"), NOT_UNIQUE);
    ack(c, "start-a-0001");
    /* Acknowledging start-a does not free start-c's lock. */
    PUSH_REPORT(c, "start-e-0001", unique_until_start("60"), NOT_UNIQUE);
    th_server_stop(srv);
}

/* A failed job waits in the retry set with its lock, and keeps it when it runs again. */
static void retry_keeps_lock(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "retry-a-0001", unique_for("3600"), "+OK");
    TH_FETCH_JID(c, "default", "retry-a-0001");
    fail(c, "retry-a-0001");
    TH_INFO_EQ(c, "faktory.sets.retries", 1);
    PUSH_REPORT(c, "retry-b-0001", unique_for("3600"), NOT_UNIQUE);
    TH_CLOCK(c, 60);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    PUSH_REPORT(c, "retry-c-0001", unique_for("3600"), NOT_UNIQUE);
    TH_FETCH_JID(c, "default", "retry-a-0001");
    ack(c, "retry-a-0001");
    PUSH_REPORT(c, "retry-d-0001", unique_for("3600"), "+OK");
    th_server_stop(srv);
}

/* An expired reservation is a failure: the job goes to the retry set and keeps its lock. */
static void expired_reservation_keeps_lock(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "resv-a-0001", th_fmt("\"reserve_for\":60,%s", unique_for("3600")), "+OK");
    TH_FETCH_JID(c, "default", "resv-a-0001");
    TH_CLOCK(c, 61);
    TH_INFO_EQ(c, "faktory.sets.retries", 1);
    PUSH_REPORT(c, "resv-b-0001", unique_for("3600"), NOT_UNIQUE);
    th_server_stop(srv);
}

/* FAIL with retry 0 discards the job: nothing will run it again. */
static void released_when_discarded(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "disc-a-0001", th_fmt("\"retry\":0,%s", unique_for("3600")), "+OK");
    TH_FETCH_JID(c, "default", "disc-a-0001");
    fail(c, "disc-a-0001");
    PUSH_REPORT(c, "disc-b-0001", unique_for("3600"), "+OK");
    th_server_stop(srv);
}

static void released_when_retries_used_up(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "dead-a-0001", th_fmt("\"retry\":1,%s", unique_for("3600")), "+OK");
    TH_FETCH_JID(c, "default", "dead-a-0001");
    fail(c, "dead-a-0001");
    PUSH_REPORT(c, "dead-b-0001", unique_for("3600"), NOT_UNIQUE);
    TH_CLOCK(c, 60);
    TH_FETCH_JID(c, "default", "dead-a-0001");
    fail(c, "dead-a-0001");
    TH_INFO_EQ(c, "faktory.sets.dead", 1);
    PUSH_REPORT(c, "dead-c-0001", unique_for("3600"), "+OK");
    th_server_stop(srv);
}

static void released_when_killed(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "kill-a-0001", unique_for("3600"), "+OK");
    TH_FETCH_JID(c, "default", "kill-a-0001");
    fail(c, "kill-a-0001");
    PUSH_REPORT(c, "kill-b-0001", unique_for("3600"), NOT_UNIQUE);
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jids\":[\"kill-a-0001\"]}}");
    TH_INFO_EQ(c, "faktory.sets.dead", 1);
    PUSH_REPORT(c, "kill-c-0001", unique_for("3600"), "+OK");
    th_server_stop(srv);
}

static void released_when_deleted(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "PUSH %s",
          job_json("del-a-0001", "Report", "[7]", "default",
                   th_fmt("%s,%s", at_plus(c, 600), unique_for("60"))));
    PUSH_REPORT(c, "del-b-0001", unique_for("60"), NOT_UNIQUE);
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"scheduled\",\"filter\":{\"jids\":[\"del-a-0001\"]}}");
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    PUSH_REPORT(c, "del-c-0001", unique_for("60"), "+OK");
    th_server_stop(srv);
}

static void released_when_queue_removed(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "qrm-a-0001", unique_for("3600"), "+OK");
    TH_OK(c, "QUEUE REMOVE default");
    PUSH_REPORT(c, "qrm-b-0001", unique_for("3600"), "+OK");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    th_server_stop(srv);
}

static void released_when_expired(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "exp-a-0001", "\"custom\":{\"unique_for\":3600,\"expires_in\":30}", "+OK");
    PUSH_REPORT(c, "exp-b-0001", unique_for("3600"), NOT_UNIQUE);
    TH_CLOCK(c, 31);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    PUSH_REPORT(c, "exp-c-0001", unique_for("3600"), "+OK");
    th_server_stop(srv);
}

/* A requeued retry keeps the lock it had. */
static void requeued_retry_keeps_lock(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "rq-a-0001", unique_for("3600"), "+OK");
    TH_FETCH_JID(c, "default", "rq-a-0001");
    fail(c, "rq-a-0001");
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"retries\",\"filter\":{\"jids\":[\"rq-a-0001\"]}}");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    PUSH_REPORT(c, "rq-b-0001", unique_for("3600"), NOT_UNIQUE);
    th_server_stop(srv);
}

static void flush_clears_locks(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "flush-a-0001", unique_for("3600"), "+OK");
    TH_OK(c, "FLUSH");
    PUSH_REPORT(c, "flush-b-0001", unique_for("3600"), "+OK");
    th_server_stop(srv);
}

/* ---- validation ---- */

static void invalid_options_rejected(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    static const char *const number_rule =
        "-ERR invalid custom.unique_for: it must be a number of seconds above 0";
    PUSH_REPORT(c, "bad-str-0001", "\"custom\":{\"unique_for\":\"600\"}",
                "-ERR invalid custom.unique_for \"600\": it must be a number of seconds above "
                "0, not a string");
    PUSH_REPORT(c, "bad-zero-0001", "\"custom\":{\"unique_for\":0}", number_rule);
    PUSH_REPORT(c, "bad-neg-0001", "\"custom\":{\"unique_for\":-5}", number_rule);
    PUSH_REPORT(c, "bad-negf-0001", "\"custom\":{\"unique_for\":-0.5}", number_rule);
    PUSH_REPORT(c, "bad-bool-0001", "\"custom\":{\"unique_for\":true}", number_rule);
    PUSH_REPORT(c, "bad-arr-0001", "\"custom\":{\"unique_for\":[60]}", number_rule);
    PUSH_REPORT(c, "bad-obj-0001", "\"custom\":{\"unique_for\":{}}", number_rule);
    PUSH_REPORT(c, "bad-until-0001", "\"custom\":{\"unique_for\":60,\"unique_until\":\"finish\"}",
                "-ERR invalid custom.unique_until: it must be \"success\" or \"start\"");
    PUSH_REPORT(c, "bad-until2-0001", "\"custom\":{\"unique_for\":60,\"unique_until\":1}",
                "-ERR invalid custom.unique_until: it must be \"success\" or \"start\"");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);

    /* A rejected job took no lock. */
    PUSH_REPORT(c, "good-0001", unique_for("60"), "+OK");
    th_server_stop(srv);
}

static void pushb_reports_not_unique(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "pb-held-0001", th_fmt("%s", unique_for("60")), "+OK");
    const char *lock = unique_for("60");
    th_send(c, "PUSHB [%s,%s,%s,%s,%s]", job_json("pb-a-0001", "Report", "[1]", "default", lock),
            job_json("pb-b-0001", "Report", "[1]", "default", lock),
            job_json("pb-c-0001", "Report", "[7]", "default", lock),
            job_json("pb-d-0001", "Report", "[2]", "default", "\"custom\":{\"unique_for\":\"9\"}"),
            job_json("pb-e-0001", "Report", "[3]", "default", lock));
    const struct th_reply *r = th_read(c, 10000);
    TH_EQ_INT(r->kind, TH_BULK);
    json_t *result = TH_JSON(r->body, r->body_len);
    TH_EQ_INT(json_object_size(result), 3);
    TH_EQ_STR(TH_JSTR(result, "pb-b-0001"), "NOTUNIQUE Job not unique");
    TH_EQ_STR(TH_JSTR(result, "pb-c-0001"), "NOTUNIQUE Job not unique");
    TH_EQ_STR(TH_JSTR(result, "pb-d-0001"),
              "invalid custom.unique_for \"9\": it must be a number of seconds above 0, not a "
              "string");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 3);
    th_server_stop(srv);
}

/* ---- with other features ---- */

/* A throttled queue: a queued job waiting for a slot keeps its lock, and the running one too. */
static void throttled_queue_keeps_locks(void) {
    struct th_server_opts opts = {.toml = "[throttles]\nslow = { concurrency = 1, timeout = 600 }\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    const char *lock = unique_for("3600");
    TH_OK(c, "PUSH %s", job_json("thr-a-0001", "Report", "[1]", "slow", lock));
    TH_OK(c, "PUSH %s", job_json("thr-b-0001", "Report", "[2]", "slow", lock));
    TH_FETCH_JID(c, "slow", "thr-a-0001");
    TH_CHECK(TH_FETCH(c, "slow") == NULL);
    TH_EXPECT(c, NOT_UNIQUE, "PUSH %s", job_json("thr-a2-0001", "Report", "[1]", "slow", lock));
    TH_EXPECT(c, NOT_UNIQUE, "PUSH %s", job_json("thr-b2-0001", "Report", "[2]", "slow", lock));
    ack(c, "thr-a-0001");
    TH_OK(c, "PUSH %s", job_json("thr-a3-0001", "Report", "[1]", "slow", lock));
    TH_FETCH_JID(c, "slow", "thr-b-0001");
    TH_EXPECT(c, NOT_UNIQUE, "PUSH %s", job_json("thr-b3-0001", "Report", "[2]", "slow", lock));
    th_server_stop(srv);
}

/* Sends BATCH NEW with a success callback into queue "cb" and returns the bid. */
static const char *batch_new(struct th_conn *c) {
    const struct th_reply *r =
        th_cmd(c, "BATCH NEW {\"success\":{\"jobtype\":\"Done\",\"args\":[],\"queue\":\"cb\"}}");
    TH_EQ_INT(r->kind, TH_BULK);
    return th_fmt("%s", r->body);
}

/* A unique job in a batch: a rejected duplicate does not join the batch, and the member's ACK
 * both releases the lock and completes the batch. */
static void unique_job_in_batch(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *bid = batch_new(c);
    const char *member = th_fmt("\"custom\":{\"bid\":\"%s\",\"unique_for\":600}", bid);
    PUSH_REPORT(c, "batch-a-0001", member, "+OK");
    PUSH_REPORT(c, "batch-b-0001", member, NOT_UNIQUE);
    /* Outside the batch the key is the same. */
    PUSH_REPORT(c, "batch-c-0001", unique_for("600"), NOT_UNIQUE);
    TH_OK(c, "BATCH COMMIT %s", bid);
    const struct th_reply *r = th_cmd(c, "BATCH STATUS %s", bid);
    TH_EQ_INT(r->kind, TH_BULK);
    json_t *status = TH_JSON(r->body, r->body_len);
    TH_EQ_INT(TH_JINT(status, "total"), 1);

    TH_FETCH_JID(c, "default", "batch-a-0001");
    ack(c, "batch-a-0001");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);
    PUSH_REPORT(c, "batch-d-0001", member, "+OK");
    th_server_stop(srv);
}

/* ---- durability ---- */

static void locks_survive_sigkill(void) {
    th_require_private_server();
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    PUSH_REPORT(c, "kill9-a-0001", unique_for("600"), "+OK");
    TH_OK(c, "PUSH %s", job_json("kill9-s-0001", "Report", "[8]", "default",
                                 unique_until_start("600")));
    TH_OK(c, "PUSH %s", job_json("kill9-r-0001", "Report", "[9]", "default", unique_for("600")));
    TH_FETCH_JID(c, "default", "kill9-a-0001");
    TH_FETCH_JID(c, "default", "kill9-s-0001");
    TH_FETCH_JID(c, "default", "kill9-r-0001");
    fail(c, "kill9-r-0001");

    th_server_kill(srv);
    th_server_restart(srv);
    c = th_producer(srv);
    /* kill9-a is still working, kill9-r waits in the retry set: both keep their locks;
     * kill9-s released its lock at FETCH. */
    PUSH_REPORT(c, "kill9-a2-0001", unique_for("600"), NOT_UNIQUE);
    TH_EXPECT(c, NOT_UNIQUE, "PUSH %s",
              job_json("kill9-r2-0001", "Report", "[9]", "default", unique_for("600")));
    TH_OK(c, "PUSH %s", job_json("kill9-s2-0001", "Report", "[8]", "default",
                                 unique_until_start("600")));
    ack(c, "kill9-a-0001");
    PUSH_REPORT(c, "kill9-a3-0001", unique_for("600"), "+OK");

    /* The lapse time survives as well: 600 s after the first PUSH, kill9-r's lock is gone
     * although the job still waits for its retry. */
    TH_CLOCK(c, 601);
    TH_OK(c, "PUSH %s", job_json("kill9-r3-0001", "Report", "[9]", "default", unique_for("600")));
    th_server_stop(srv);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(duplicate_rejected_byte_exact),
        TH_CASE(key_is_type_args_and_queue),
        TH_CASE(argument_key_order_ignored),
        TH_CASE(job_without_unique_for_bypasses),
        TH_CASE(lock_lapses_after_unique_for),
        TH_CASE(fraction_accepted),
        TH_CASE(scheduled_job_adds_delay),
        TH_CASE(scheduled_job_released_on_ack),
        TH_CASE(released_on_ack),
        TH_CASE(explicit_success_same_as_default),
        TH_CASE(until_start_released_on_fetch),
        TH_CASE(retry_keeps_lock),
        TH_CASE(expired_reservation_keeps_lock),
        TH_CASE(released_when_discarded),
        TH_CASE(released_when_retries_used_up),
        TH_CASE(released_when_killed),
        TH_CASE(released_when_deleted),
        TH_CASE(released_when_queue_removed),
        TH_CASE(released_when_expired),
        TH_CASE(requeued_retry_keeps_lock),
        TH_CASE(flush_clears_locks),
        TH_CASE(invalid_options_rejected),
        TH_CASE(pushb_reports_not_unique),
        TH_CASE(throttled_queue_keeps_locks),
        TH_CASE(unique_job_in_batch),
        TH_CASE(locks_survive_sigkill),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
