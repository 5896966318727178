/* ACK and FAIL: counters, reservations held per jid (not per connection), the error replies and
 * how FAIL normalises errtype, message and backtrace. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static void ack_finishes_job_and_counts_once(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-ack-0001", NULL);
    TH_FETCH_JID(c, "default", "job-ack-0001");
    TH_INFO_EQ(c, "faktory.sets.working", 1);

    TH_OK(c, "ACK {\"jid\":\"job-ack-0001\"}");
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 0);

    /* Clients resend ACK after a reconnect: a second ACK is a no-op. */
    TH_OK(c, "ACK {\"jid\":\"job-ack-0001\"}");
    TH_INFO_EQ(c, "faktory.total_processed", 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
}

static void ack_unknown_jid_is_ok(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "ACK {\"jid\":\"never-pushed-0001\"}");
    TH_OK(c, "ACK {\"jid\": \"never-pushed-0002\"}");
    TH_INFO_EQ(c, "faktory.total_processed", 0);

    /* A queued job that was never fetched is not affected by an ACK. */
    TH_PUSH(c, "job-queued-0001", NULL);
    TH_OK(c, "ACK {\"jid\":\"job-queued-0001\"}");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    TH_FETCH_JID(c, "default", "job-queued-0001");
}

static void ack_malformed_payload_errors(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT(c, "-ERR invalid ACK, expected {\"jid\":\"...\"}: {}", "ACK {}");
    TH_EXPECT(c, "-ERR invalid ACK, expected {\"jid\":\"...\"}: {bad", "ACK {bad");
    TH_EXPECT(c, "-ERR invalid ACK, expected {\"jid\":\"...\"}: []", "ACK []");
    TH_EXPECT(c, "-ERR invalid ACK, expected {\"jid\":\"...\"}: \"job-ack-0001\"", "ACK \"job-ack-0001\"");
    TH_EXPECT(c, "-ERR invalid ACK, expected {\"jid\":\"...\"}: job-ack-0001", "ACK job-ack-0001");
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
}

static void ack_and_fail_work_from_any_connection(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *fetcher = th_worker(srv, "pool-worker");
    struct th_conn *other = th_worker(srv, "pool-worker");
    struct th_conn *p = th_producer(srv);
    TH_PUSH(p, "job-pool-0001", NULL);
    TH_PUSH(p, "job-pool-0002", NULL);
    TH_FETCH_JID(fetcher, "default", "job-pool-0001");
    TH_FETCH_JID(fetcher, "default", "job-pool-0002");

    /* Pooled clients ACK and FAIL over whichever connection is free. */
    TH_OK(other, "ACK {\"jid\":\"job-pool-0001\"}");
    TH_OK(p, "FAIL {\"jid\":\"job-pool-0002\",\"errtype\":\"E\",\"message\":\"m\"}");
    json_t *info = TH_INFO(p);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 1);
}

static void duplicate_jids_are_separate_jobs(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "PUSH {\"jid\":\"job-twice-0001\",\"jobtype\":\"T\",\"args\":[1]}");
    TH_OK(c, "PUSH {\"jid\":\"job-twice-0001\",\"jobtype\":\"T\",\"args\":[2]}");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    json_t *first = TH_FETCH_JID(c, "default", "job-twice-0001");
    TH_EQ_INT(json_integer_value(json_array_get(json_object_get(first, "args"), 0)), 1);
    json_t *second = TH_FETCH_JID(c, "default", "job-twice-0001");
    TH_EQ_INT(json_integer_value(json_array_get(json_object_get(second, "args"), 0)), 2);

    /* One ACK finishes one of them, and the other stays reserved. */
    TH_OK(c, "ACK {\"jid\":\"job-twice-0001\"}");
    TH_INFO_EQ(c, "faktory.sets.working", 1);
    TH_OK(c, "FAIL {\"jid\":\"job-twice-0001\",\"errtype\":\"E\",\"message\":\"m\"}");
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 2);
}

static void fail_errors_match_reference(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT(c, "-ERR invalid FAIL {bad", "FAIL {bad");
    TH_EXPECT(c, "-ERR invalid FAIL []", "FAIL []");
    TH_EXPECT(c, "-ERR missing JID", "FAIL {}");
    TH_EXPECT(c, "-ERR missing JID", "FAIL {\"jid\":\"\",\"errtype\":\"E\"}");
    TH_EXPECT(c, "-ERR Job not found nope-0001", "FAIL {\"jid\":\"nope-0001\"}");

    /* Only a reserved job can fail, so a queued one is not found. */
    TH_PUSH(c, "job-queued-0001", NULL);
    TH_EXPECT(c, "-ERR Job not found job-queued-0001", "FAIL {\"jid\":\"job-queued-0001\"}");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    TH_INFO_EQ(c, "faktory.total_failures", 0);
}

static void fail_moves_job_to_retries(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-fail-0001", NULL);
    TH_FETCH_JID(c, "default", "job-fail-0001");
    TH_OK(c, "FAIL {\"jid\":\"job-fail-0001\",\"errtype\":\"RuntimeError\",\"message\":\"boom\","
             "\"backtrace\":[\"a.rb:1\",\"b.rb:2\"]}");
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Retries.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 1);

    /* A second FAIL finds no reservation. */
    TH_EXPECT(c, "-ERR Job not found job-fail-0001", "FAIL {\"jid\":\"job-fail-0001\"}");
    TH_INFO_EQ(c, "faktory.total_failures", 1);
}

/* Returns a string of n copies of ch that lives until the case ends. */
static char *repeat(char ch, size_t n) {
    char *s = th_keep(malloc(n + 1));
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

static void fail_normalises_error_fields(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    for (int i = 0; i < 6; i++) {
        TH_PUSH(c, th_fmt("job-norm-%04d", i), NULL);
        TH_FETCH_JID(c, "default", th_fmt("job-norm-%04d", i));
    }
    char *backtrace = th_fmt("\"line 0\"");
    for (int i = 1; i < 60; i++) {
        backtrace = th_fmt("%s,\"line %d\"", backtrace, i);
    }
    TH_OK(c, "FAIL {\"jid\":\"job-norm-0000\",\"errtype\":\"  Custom::Error \\t\",\"message\":"
             "\"  boom \\n\",\"backtrace\":[%s]}", backtrace);
    TH_OK(c, "FAIL {\"jid\":\"job-norm-0001\"}");
    TH_OK(c, "FAIL {\"jid\":\"job-norm-0002\",\"errtype\":\"\",\"message\":\"\",\"backtrace\":[]}");
    TH_OK(c, "FAIL {\"jid\":\"job-norm-0003\",\"errtype\":\"%s\",\"message\":\"%s\"}",
          repeat('E', 150), repeat('m', 1500));
    TH_OK(c, "FAIL {\"jid\":\"job-norm-0004\",\"errtype\":\"   \",\"message\":\" \\n \"}");
    TH_OK(c, "FAIL {\"jid\": \"job-norm-0005\", \"errtype\": \"Spaced\", \"message\": \"json\"}");
    TH_INFO_EQ(c, "faktory.sets.retries", 6);

    /* Every first retry is due within 44 s. */
    TH_CLOCK(c, 50);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 6);
    json_t *jobs[6] = { 0 };
    for (int i = 0; i < 6; i++) {
        json_t *job = TH_FETCH(c, "default");
        TH_CHECK(job != NULL);
        int index = atoi(TH_JSTR(job, "jid") + strlen("job-norm-"));
        TH_RANGE(index, 0, 5);
        jobs[index] = job;
    }

    TH_EQ_STR(TH_JSTR(jobs[0], "failure.errtype"), "Custom::Error");
    TH_EQ_STR(TH_JSTR(jobs[0], "failure.message"), "boom");
    json_t *lines = th_json_get(jobs[0], "failure.backtrace");
    TH_EQ_INT(json_array_size(lines), 50);
    TH_EQ_STR(json_string_value(json_array_get(lines, 0)), "line 0");
    TH_EQ_STR(json_string_value(json_array_get(lines, 49)), "line 49");

    TH_EQ_STR(TH_JSTR(jobs[1], "failure.errtype"), "unknown");
    TH_EQ_STR(TH_JSTR(jobs[1], "failure.message"), "unknown");
    json_t *none = th_json_get(jobs[1], "failure.backtrace");
    TH_CHECK(none == NULL || (json_is_array(none) && json_array_size(none) == 0));

    TH_EQ_STR(TH_JSTR(jobs[2], "failure.errtype"), "unknown");
    TH_EQ_STR(TH_JSTR(jobs[2], "failure.message"), "unknown");

    TH_EQ_STR(TH_JSTR(jobs[3], "failure.errtype"), repeat('E', 100));
    TH_EQ_STR(TH_JSTR(jobs[3], "failure.message"), repeat('m', 1000));

    TH_EQ_STR(TH_JSTR(jobs[4], "failure.errtype"), "unknown");
    TH_EQ_STR(TH_JSTR(jobs[4], "failure.message"), "unknown");

    TH_EQ_STR(TH_JSTR(jobs[5], "failure.errtype"), "Spaced");
    TH_EQ_STR(TH_JSTR(jobs[5], "failure.message"), "json");
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(ack_finishes_job_and_counts_once),
        TH_CASE(ack_unknown_jid_is_ok),
        TH_CASE(ack_malformed_payload_errors),
        TH_CASE(ack_and_fail_work_from_any_connection),
        TH_CASE(duplicate_jids_are_separate_jobs),
        TH_CASE(fail_errors_match_reference),
        TH_CASE(fail_moves_job_to_retries),
        TH_CASE(fail_normalises_error_fields),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
