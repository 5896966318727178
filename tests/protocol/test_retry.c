/* The job lifecycle on the server's clock (moved with DEBUG CLOCK): scheduled jobs, the retry
 * backoff, the meaning of `retry`, the failure object, reservation expiry and the dead set.
 * Fetches run on producer connections so that no worker is reaped while the clock jumps. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

/* Fetches jid from default and FAILs it with errtype "E" and the given message. */
static void fetch_and_fail(struct th_conn *c, const char *jid, const char *message) {
    TH_FETCH_JID(c, "default", jid);
    TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"%s\"}", jid, message);
}

/* Moves the dead job jid back to its queue and fetches it, to read its failure. */
static json_t *fetch_from_dead(struct th_conn *c, const char *jid) {
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\",\"filter\":{\"jids\":[\"%s\"]}}",
          jid);
    return TH_FETCH_JID(c, "default", jid);
}

static void scheduled_job_enqueued_when_due(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    char at[64];
    double due = TH_SERVER_TIME(c) + 30;
    th_format_time(due, at, sizeof at);
    TH_PUSH(c, "job-sched-0001", th_fmt("\"at\":\"%s\"", at));
    TH_INFO_EQ(c, "faktory.sets.scheduled", 1);
    TH_INFO_EQ(c, "faktory.tasks.Scheduled.size", 1);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);

    /* FETCH waits 2 s of real time, which also counts, so stop 5 s before the due time. */
    TH_CLOCK(c, 25);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 1);
    TH_EXPECT(c, "$-1", "FETCH default");
    TH_INFO_EQ(c, "faktory.sets.scheduled", 1);

    TH_CLOCK(c, 5.5);
    TH_INFO_EQ(c, "faktory.sets.scheduled", 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    json_t *job = TH_FETCH_JID(c, "default", "job-sched-0001");
    TH_EQ_STR(TH_JSTR(job, "at"), at);
    TH_RANGE(TH_TIME(job, "enqueued_at"), due - 0.001, due + 5);
}

static void waiting_fetch_gets_job_that_comes_due(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_producer(srv);
    char at[64];
    th_format_time(TH_SERVER_TIME(p) + 30, at, sizeof at);
    TH_PUSH(p, "job-due-0001", th_fmt("\"at\":\"%s\",\"queue\":\"soon\"", at));

    /* The timer that enqueues the job also hands it to the FETCH that is waiting. */
    double started = th_now();
    th_send(w, "FETCH soon");
    th_sleep_ms(100);
    TH_CLOCK(p, 31);
    const struct th_reply *r = th_read(w, 5000);
    TH_EQ_INT(r->kind, TH_BULK);
    TH_RANGE(th_now() - started, 0.1, 1.0);
    json_t *job = TH_JSON(r->body, r->body_len);
    TH_EQ_STR(TH_JSTR(job, "jid"), "job-due-0001");
}

static void first_retry_within_backoff_bounds(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    enum { JOBS = 8 };
    for (int i = 0; i < JOBS; i++) {
        TH_PUSH(c, th_fmt("job-backoff-%02d", i), NULL);
    }
    for (int i = 0; i < JOBS; i++) {
        fetch_and_fail(c, th_fmt("job-backoff-%02d", i), "first");
    }
    TH_INFO_EQ(c, "faktory.sets.retries", JOBS);

    /* retry_count^4 + 15 + rand(0..29) * (retry_count + 1): 15 to 44 s for the first retry. */
    TH_CLOCK(c, 14);
    TH_INFO_EQ(c, "faktory.sets.retries", JOBS);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
    TH_CLOCK(c, 31);
    TH_INFO_EQ(c, "faktory.sets.retries", 0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), JOBS);

    for (int i = 0; i < JOBS; i++) {
        json_t *job = TH_FETCH(c, "default");
        TH_CHECK(job != NULL);
        double failed_at = TH_TIME(job, "failure.failed_at");
        double next_at = TH_TIME(job, "failure.next_at");
        TH_RANGE(next_at - failed_at, 15, 45);
        TH_EQ_INT(TH_JINT(job, "failure.retry_count"), 0);
        TH_EQ_INT(TH_JINT(job, "failure.remaining"), 25);
        TH_EQ_STR(TH_JSTR(job, "failure.errtype"), "E");
        TH_EQ_STR(TH_JSTR(job, "failure.message"), "first");
        /* Entering the queue again refreshes enqueued_at. */
        TH_RANGE(TH_TIME(job, "enqueued_at"), next_at - 0.001, next_at + 31);
    }
}

static void later_failures_update_failure_object(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-again-0001", NULL);
    fetch_and_fail(c, "job-again-0001", "first");
    TH_CLOCK(c, 45);
    json_t *job = TH_FETCH_JID(c, "default", "job-again-0001");
    const char *first_failed_at = th_fmt("%s", TH_JSTR(job, "failure.failed_at"));

    double second_fail_time = TH_SERVER_TIME(c);
    TH_OK(c, "FAIL {\"jid\":\"job-again-0001\",\"errtype\":\"Other\",\"message\":\"second\","
             "\"backtrace\":[\"x.go:1\"]}");
    TH_CLOCK(c, 15);
    TH_INFO_EQ(c, "faktory.sets.retries", 1);
    TH_CLOCK(c, 60);
    job = TH_FETCH_JID(c, "default", "job-again-0001");
    /* failed_at is the time of the first failure and never changes. */
    TH_EQ_STR(TH_JSTR(job, "failure.failed_at"), first_failed_at);
    TH_EQ_INT(TH_JINT(job, "failure.retry_count"), 1);
    TH_EQ_INT(TH_JINT(job, "failure.remaining"), 24);
    TH_EQ_STR(TH_JSTR(job, "failure.errtype"), "Other");
    TH_EQ_STR(TH_JSTR(job, "failure.message"), "second");
    TH_EQ_STR(json_string_value(json_array_get(th_json_get(job, "failure.backtrace"), 0)),
              "x.go:1");
    /* Second retry: 1 + 15 + rand(0..29) * 2 = 16 to 74 s. */
    TH_RANGE(TH_TIME(job, "failure.next_at") - second_fail_time, 16, 75);
    TH_EQ_INT(TH_JINT(job, "retry"), 25);
}

static void retry_field_semantics(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-a-0001", NULL);
    TH_PUSH(c, "job-b-0001", "\"retry\":null");
    TH_PUSH(c, "job-c-0001", "\"retry\":0");
    TH_PUSH(c, "job-d-0001", "\"retry\":-1");
    TH_PUSH(c, "job-e-0001", "\"retry\":2");
    static const char *const jids[] = { "job-a-0001", "job-b-0001", "job-c-0001", "job-d-0001",
                                        "job-e-0001" };
    for (int i = 0; i < 5; i++) {
        fetch_and_fail(c, jids[i], "run 1");
    }

    /* Missing and null mean 25 retries, 0 discards the job, a negative value kills it. */
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_enqueued"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 5);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 5);

    TH_CLOCK(c, 45);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 3);
    for (int i = 0; i < 3; i++) {
        json_t *job = TH_FETCH(c, "default");
        TH_CHECK(job != NULL);
        const char *jid = TH_JSTR(job, "jid");
        if (strcmp(jid, "job-e-0001") == 0) {
            TH_EQ_INT(TH_JINT(job, "retry"), 2);
            TH_EQ_INT(TH_JINT(job, "failure.remaining"), 2);
        } else {
            TH_CHECK(strcmp(jid, "job-a-0001") == 0 || strcmp(jid, "job-b-0001") == 0);
            TH_EQ_INT(TH_JINT(job, "retry"), 25);
            TH_EQ_INT(TH_JINT(job, "failure.remaining"), 25);
            TH_OK(c, "ACK {\"jid\":\"%s\"}", jid);
        }
        TH_EQ_INT(TH_JINT(job, "failure.retry_count"), 0);
    }

    /* retry 2: the job runs three times, then it is dead. */
    TH_OK(c, "FAIL {\"jid\":\"job-e-0001\",\"errtype\":\"E\",\"message\":\"run 2\"}");
    TH_INFO_EQ(c, "faktory.sets.retries", 1);
    TH_CLOCK(c, 75);
    json_t *job = TH_FETCH_JID(c, "default", "job-e-0001");
    TH_EQ_INT(TH_JINT(job, "failure.retry_count"), 1);
    TH_EQ_INT(TH_JINT(job, "failure.remaining"), 1);
    TH_OK(c, "FAIL {\"jid\":\"job-e-0001\",\"errtype\":\"E\",\"message\":\"run 3\"}");
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 2);

    job = fetch_from_dead(c, "job-e-0001");
    TH_EQ_INT(TH_JINT(job, "failure.retry_count"), 2);
    TH_EQ_INT(TH_JINT(job, "failure.remaining"), 0);
    TH_EQ_STR(TH_JSTR(job, "failure.message"), "run 3");

    job = fetch_from_dead(c, "job-d-0001");
    TH_EQ_INT(TH_JINT(job, "failure.retry_count"), 0);
    TH_EQ_STR(TH_JSTR(job, "failure.message"), "run 1");
}

static void reservation_expiry_acts_like_fail(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-a-0001", "\"retry\":3,\"reserve_for\":60");

    for (int round = 0; round < 4; round++) {
        json_t *job = TH_FETCH_JID(c, "default", "job-a-0001");
        if (round > 0) {
            TH_EQ_STR(TH_JSTR(job, "failure.errtype"), "ReservationExpired");
            TH_EQ_INT(TH_JINT(job, "failure.retry_count"), round - 1);
            TH_EQ_INT(TH_JINT(job, "failure.remaining"), 3 - (round - 1));
        }
        TH_CLOCK(c, 59);
        TH_INFO_EQ(c, "faktory.sets.working", 1);
        TH_CLOCK(c, 2);
        json_t *info = TH_INFO(c);
        TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
        TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), round + 1);
        if (round < 3) {
            TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
            TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 0);
            /* The third retry waits at most 81 + 15 + 29 * 4 = 212 s. */
            TH_CLOCK(c, 215);
        } else {
            TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
            TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
        }
    }
    json_t *job = fetch_from_dead(c, "job-a-0001");
    TH_EQ_STR(TH_JSTR(job, "failure.errtype"), "ReservationExpired");
    TH_EQ_INT(TH_JINT(job, "failure.retry_count"), 3);
    TH_EQ_INT(TH_JINT(job, "failure.remaining"), 0);
}

/* Pushes a job with the given reserve_for field (or none), fetches it and checks that it is
 * still reserved after held_s seconds and in retries after expires_s seconds. */
static void check_reservation_length(const char *reserve_for, double held_s, double expires_s) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-hold-0001", reserve_for);
    TH_FETCH_JID(c, "default", "job-hold-0001");
    TH_CLOCK(c, held_s);
    TH_INFO_EQ(c, "faktory.sets.working", 1);
    TH_INFO_EQ(c, "faktory.sets.retries", 0);
    TH_CLOCK(c, expires_s - held_s);
    TH_INFO_EQ(c, "faktory.sets.working", 0);
    TH_INFO_EQ(c, "faktory.sets.retries", 1);
}

static void reserve_for_below_60_clamped_to_60(void) {
    check_reservation_length("\"reserve_for\":10", 59, 61);
}

static void reserve_for_default_is_1800(void) {
    check_reservation_length(NULL, 1795, 1802);
}

static void reserve_for_zero_means_default(void) {
    check_reservation_length("\"reserve_for\":0", 1795, 1802);
}

static void reserve_for_one_day_accepted(void) {
    check_reservation_length("\"reserve_for\":86400", 86390, 86402);
}

static void late_fail_and_ack_after_expiry(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-a-0001", "\"reserve_for\":60");
    TH_FETCH_JID(c, "default", "job-a-0001");
    TH_CLOCK(c, 70);
    TH_INFO_EQ(c, "faktory.sets.retries", 1);

    TH_EXPECT(c, "-ERR Job not found job-a-0001",
              "FAIL {\"jid\":\"job-a-0001\",\"errtype\":\"E\",\"message\":\"x\"}");
    TH_OK(c, "ACK {\"jid\":\"job-a-0001\"}");
    /* The retry created by the expiry is untouched and the connection still works. */
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 1);
}

static void crashed_worker_job_retried_after_reservation(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    TH_PUSH(p, "job-a-0001", "\"reserve_for\":60");
    struct th_conn *w1 = th_worker(srv, "crashing-worker");
    TH_FETCH_JID(w1, "default", "job-a-0001");
    th_close(w1);

    /* Losing the worker does not release the job. The expiry of its reservation does, and
     * then it is an ordinary retry. */
    TH_CLOCK(p, 59);
    TH_INFO_EQ(p, "faktory.sets.working", 1);
    TH_CLOCK(p, 2);
    TH_INFO_EQ(p, "faktory.sets.working", 0);
    TH_INFO_EQ(p, "faktory.sets.retries", 1);
    TH_CLOCK(p, 45);
    struct th_conn *w2 = th_worker(srv, "second-worker");
    json_t *job = TH_FETCH_JID(w2, "default", "job-a-0001");
    TH_EQ_STR(TH_JSTR(job, "failure.errtype"), "ReservationExpired");
    TH_OK(w2, "ACK {\"jid\":\"job-a-0001\"}");
}

static void reaped_worker_keeps_job_reservation(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    TH_PUSH(p, "job-a-0001", "\"reserve_for\":300");
    struct th_conn *w1 = th_worker(srv, "silent-worker");
    TH_FETCH_JID(w1, "default", "job-a-0001");

    TH_CLOCK(p, 65);
    TH_EXPECT_CLOSED(w1, 3000);
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 0);
    TH_INFO_EQ(p, "faktory.sets.working", 1);
    TH_CLOCK(p, 240);
    TH_INFO_EQ(p, "faktory.sets.working", 0);
    TH_INFO_EQ(p, "faktory.sets.retries", 1);
}

static void long_job_runs_again_after_expiry(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    struct th_conn *first = th_producer(srv);
    struct th_conn *second = th_producer(srv);
    TH_PUSH(p, "job-a-0001", "\"reserve_for\":60");
    TH_FETCH_JID(first, "default", "job-a-0001");
    TH_CLOCK(p, 61);
    TH_CLOCK(p, 45);
    /* At-least-once: the job runs again while the first holder may still be busy. */
    TH_FETCH_JID(second, "default", "job-a-0001");
    TH_OK(second, "ACK {\"jid\":\"job-a-0001\"}");
    TH_OK(first, "ACK {\"jid\":\"job-a-0001\"}");
    json_t *info = TH_INFO(p);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_enqueued"), 0);
}

/* The first worker's reservation expired and a second worker runs the job again. The
 * first worker's late ACK or FAIL must not finish or fail the second worker's run. */
static void late_reply_leaves_new_run_alone(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    TH_PUSH(p, "job-a-0001", "\"reserve_for\":60");
    struct th_conn *w1 = th_worker(srv, "slow-worker");
    TH_FETCH_JID(w1, "default", "job-a-0001");
    TH_CLOCK(p, 50);
    TH_OK(w1, "BEAT {\"wid\":\"slow-worker\"}");
    TH_CLOCK(p, 50);   /* expired: the job waits in the retry set, due within 44 s */
    TH_OK(w1, "BEAT {\"wid\":\"slow-worker\"}");
    TH_CLOCK(p, 45);
    struct th_conn *w2 = th_worker(srv, "fast-worker");
    TH_FETCH_JID(w2, "default", "job-a-0001");

    TH_EXPECT(w1, "-ERR Job not found job-a-0001",
              "FAIL {\"jid\":\"job-a-0001\",\"errtype\":\"E\",\"message\":\"late\"}");
    TH_OK(w1, "ACK {\"jid\":\"job-a-0001\"}");
    TH_INFO_EQ(p, "faktory.sets.working", 1);
    TH_CHECK(th_server_log_contains(srv, "event=late_reply_ignored verb=ACK jid=job-a-0001 "
                                         "wid=slow-worker holder=fast-worker"));
    TH_OK(w2, "ACK {\"jid\":\"job-a-0001\"}");
    json_t *info = TH_INFO(p);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 1);
}

static void dead_set_trimmed_after_ttl(void) {
    struct th_server_opts opts = { .toml = "[fabrik]\ndead_ttl_days = 1\n" };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-dead-0001", "\"retry\":-1");
    fetch_and_fail(c, "job-dead-0001", "fatal");
    TH_INFO_EQ(c, "faktory.sets.dead", 1);
    TH_INFO_EQ(c, "faktory.tasks.Dead.size", 1);

    TH_CLOCK(c, 86400 - 600);
    TH_INFO_EQ(c, "faktory.sets.dead", 1);
    TH_CLOCK(c, 1200);
    TH_INFO_EQ(c, "faktory.sets.dead", 0);
}

static void dead_set_capped_at_dead_max(void) {
    struct th_server_opts opts = { .toml = "[fabrik]\ndead_max = 3\n" };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    for (int i = 0; i < 5; i++) {
        TH_PUSH(c, th_fmt("job-dead-%04d", i), "\"retry\":-1");
        fetch_and_fail(c, th_fmt("job-dead-%04d", i), "fatal");
        TH_CLOCK(c, 1);
    }
    TH_CLOCK(c, 120);
    TH_INFO_EQ(c, "faktory.sets.dead", 3);

    /* The oldest deaths were removed first. */
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\"}");
    bool seen[5] = { false };
    for (int i = 0; i < 3; i++) {
        json_t *job = TH_FETCH(c, "default");
        TH_CHECK(job != NULL);
        int index = atoi(TH_JSTR(job, "jid") + strlen("job-dead-"));
        TH_RANGE(index, 2, 4);
        seen[index] = true;
    }
    TH_CHECK(seen[2] && seen[3] && seen[4]);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(scheduled_job_enqueued_when_due),
        TH_CASE(waiting_fetch_gets_job_that_comes_due),
        TH_CASE(first_retry_within_backoff_bounds),
        TH_CASE(later_failures_update_failure_object),
        TH_CASE(retry_field_semantics),
        TH_CASE(reservation_expiry_acts_like_fail),
        TH_CASE(reserve_for_below_60_clamped_to_60),
        TH_CASE(reserve_for_default_is_1800),
        TH_CASE(reserve_for_zero_means_default),
        TH_CASE(reserve_for_one_day_accepted),
        TH_CASE(late_fail_and_ack_after_expiry),
        TH_CASE(crashed_worker_job_retried_after_reservation),
        TH_CASE(reaped_worker_keeps_job_reservation),
        TH_CASE(long_job_runs_again_after_expiry),
        TH_CASE(late_reply_leaves_new_run_alone),
        TH_CASE(dead_set_trimmed_after_ttl),
        TH_CASE(dead_set_capped_at_dead_max),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
