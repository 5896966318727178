/* MUTATE: every operation on every target set, the filters (jids, jobtype, glob) and their
 * precedence, and the error replies. */
#include "harness.h"

#include <string.h>

/* Pushes a job of the given type and args and leaves it in the retry set. */
static void make_retry(struct th_conn *c, const char *jid, const char *jobtype, const char *args,
                       const char *queue) {
    TH_OK(c, "PUSH {\"jid\":\"%s\",\"jobtype\":\"%s\",\"args\":%s,\"queue\":\"%s\"}", jid,
          jobtype, args, queue);
    TH_FETCH_JID(c, queue, jid);
    TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"m\"}", jid);
}

/* Pushes a job scheduled an hour ahead. */
static void make_scheduled(struct th_conn *c, const char *jid, const char *jobtype,
                           const char *args) {
    char at[64];
    th_format_time(TH_SERVER_TIME(c) + 3600, at, sizeof at);
    TH_OK(c, "PUSH {\"jid\":\"%s\",\"jobtype\":\"%s\",\"args\":%s,\"at\":\"%s\"}", jid, jobtype,
          args, at);
}

/* Pushes a job with retry -1 and fails it, so it is dead. */
static void make_dead(struct th_conn *c, const char *jid, const char *jobtype) {
    TH_OK(c, "PUSH {\"jid\":\"%s\",\"jobtype\":\"%s\",\"args\":[],\"retry\":-1}", jid, jobtype);
    TH_FETCH_JID(c, "default", jid);
    TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"m\"}", jid);
}

static void check_sets(struct th_conn *c, long long retries, long long scheduled,
                       long long dead) {
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), retries);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), scheduled);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), dead);
}

static void fill_every_set(struct th_conn *c) {
    make_retry(c, "retry-a-0001", "A", "[]", "default");
    make_retry(c, "retry-b-0001", "B", "[]", "default");
    make_scheduled(c, "sched-a-0001", "A", "[]");
    make_scheduled(c, "sched-b-0001", "B", "[]");
    make_dead(c, "dead-a-0001", "A");
    make_dead(c, "dead-b-0001", "B");
    check_sets(c, 2, 2, 2);
}

static void mutate_clear_empties_one_set(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    fill_every_set(c);
    TH_OK(c, "MUTATE {\"cmd\":\"clear\",\"target\":\"retries\"}");
    check_sets(c, 0, 2, 2);
    TH_OK(c, "MUTATE {\"cmd\":\"clear\",\"target\":\"scheduled\",\"filter\":{}}");
    check_sets(c, 0, 0, 2);
    TH_OK(c, "MUTATE {\"cmd\":\"clear\",\"target\":\"dead\"}");
    check_sets(c, 0, 0, 0);
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void mutate_discard_without_filter_removes_all(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    fill_every_set(c);
    /* The Ruby client's clear sends discard with no filter. */
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"scheduled\"}");
    check_sets(c, 2, 0, 2);
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"dead\",\"filter\":{}}");
    check_sets(c, 2, 0, 0);
}

static void mutate_discard_by_jobtype(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    fill_every_set(c);
    make_retry(c, "retry-a-0002", "A", "[]", "default");
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"retries\",\"filter\":{\"jobtype\":\"A\"}}");
    check_sets(c, 1, 2, 2);
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"retries\"}");
    TH_FETCH_JID(c, "default", "retry-b-0001");
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
}

static void mutate_kill_moves_to_dead(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    fill_every_set(c);
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"scheduled\",\"filter\":{\"jobtype\":\"B\"}}");
    check_sets(c, 2, 1, 3);
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"retries\"}");
    check_sets(c, 0, 1, 5);

    /* The killed jobs are in the dead set under their own jids. */
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\",\"filter\":{\"jids\":"
             "[\"sched-b-0001\",\"retry-a-0001\"]}}");
    check_sets(c, 0, 1, 3);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 2);
    json_t *first = TH_FETCH(c, "default");
    json_t *second = TH_FETCH(c, "default");
    TH_CHECK(first && second);
    const char *a = TH_JSTR(first, "jid"), *b = TH_JSTR(second, "jid");
    TH_CHECK((strcmp(a, "sched-b-0001") == 0 && strcmp(b, "retry-a-0001") == 0) ||
             (strcmp(a, "retry-a-0001") == 0 && strcmp(b, "sched-b-0001") == 0));
}

static void mutate_requeue_refreshes_enqueued_at(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "PUSH {\"jid\":\"retry-other-01\",\"jobtype\":\"A\",\"args\":[7],"
             "\"queue\":\"other\"}");
    json_t *job = TH_FETCH_JID(c, "other", "retry-other-01");
    double first_enqueued = TH_TIME(job, "enqueued_at");
    TH_OK(c, "FAIL {\"jid\":\"retry-other-01\",\"errtype\":\"E\",\"message\":\"m\"}");
    make_scheduled(c, "sched-a-0001", "A", "[]");
    th_sleep_ms(20);

    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"retries\",\"filter\":{\"jobtype\":\"A\"}}");
    check_sets(c, 0, 1, 0);
    /* Back on its own queue, with its failure and a fresh enqueued_at. */
    job = TH_FETCH_JID(c, "other", "retry-other-01");
    TH_CHECK(TH_TIME(job, "enqueued_at") > first_enqueued);
    TH_EQ_INT(TH_JINT(job, "failure.retry_count"), 0);
    TH_EQ_STR(TH_JSTR(job, "failure.errtype"), "E");
    TH_EQ_INT(json_integer_value(json_array_get(json_object_get(job, "args"), 0)), 7);

    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"scheduled\"}");
    check_sets(c, 0, 0, 0);
    job = TH_FETCH_JID(c, "default", "sched-a-0001");
    TH_CHECK(json_is_string(json_object_get(job, "enqueued_at")));
}

static void mutate_jids_filter_wins(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    make_retry(c, "retry-a-0001", "A", "[]", "default");
    make_retry(c, "retry-b-0001", "B", "[]", "default");

    /* With jids present, jobtype and regexp are ignored. */
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jids\":"
             "[\"nomatch-0001\"],\"jobtype\":\"A\"}}");
    check_sets(c, 2, 0, 0);
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jids\":"
             "[\"retry-b-0001\"],\"jobtype\":\"A\",\"regexp\":\"*nothing*\"}}");
    check_sets(c, 1, 0, 1);
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\",\"filter\":{\"jids\":"
             "[\"retry-a-0001\"]}}");
    check_sets(c, 1, 0, 1);
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\",\"filter\":{\"jobtype\":\"B\"}}");
    check_sets(c, 1, 0, 0);
    TH_FETCH_JID(c, "default", "retry-b-0001");
}

static void mutate_regexp_is_glob_over_job(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    make_scheduled(c, "sched-0001", "SomeJob", "[\"uid:67123\"]");
    make_scheduled(c, "sched-0002", "SomeJob", "[\"uid:67124\"]");
    make_scheduled(c, "sched-0003", "AnotherJob", "[\"uid:99999\"]");
    make_scheduled(c, "sched-0004", "SomeJob", "[\"uid:55555\"]");
    make_scheduled(c, "sched-0005", "AnotherJob", "[\"uid:55555\"]");

    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"scheduled\",\"filter\":{\"regexp\":"
             "\"*uid:67123*\"}}");
    check_sets(c, 0, 4, 0);
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"scheduled\",\"filter\":{\"regexp\":"
             "\"*uid:6712?*\"}}");
    check_sets(c, 0, 3, 0);
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"scheduled\",\"filter\":{\"regexp\":"
             "\"*uid:[89]9999*\"}}");
    check_sets(c, 0, 2, 0);
    /* A glob is not a regular expression. */
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"scheduled\",\"filter\":{\"regexp\":"
             "\"uid:5+\"}}");
    check_sets(c, 0, 2, 0);
    /* regexp and jobtype together must both match. */
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"scheduled\",\"filter\":{\"regexp\":"
             "\"*uid:55555*\",\"jobtype\":\"AnotherJob\"}}");
    check_sets(c, 0, 1, 1);
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\"}");
    TH_FETCH_JID(c, "default", "sched-0005");
}

static void mutate_jobtype_matches_field_not_args(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    make_scheduled(c, "sched-real-a", "A", "[]");
    make_scheduled(c, "sched-fake-1", "X", "[{\"jobtype\":\"A\"}]");
    make_scheduled(c, "sched-fake-2", "X", "[\"\\\"jobtype\\\":\\\"A\\\"\"]");
    make_scheduled(c, "sched-fake-3", "AA", "[]");
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"scheduled\",\"filter\":{\"jobtype\":\"A\"}}");
    check_sets(c, 0, 3, 1);
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\"}");
    TH_FETCH_JID(c, "default", "sched-real-a");
}

static void mutate_accepts_spaces_in_json(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    make_retry(c, "retry-a-0001", "A", "[]", "default");
    make_retry(c, "retry-b-0001", "B", "[]", "default");
    TH_OK(c, "MUTATE {\"cmd\": \"kill\", \"target\": \"retries\", "
             "\"filter\": {\"jobtype\": \"A\"}}");
    check_sets(c, 1, 0, 1);
    TH_OK(c, "MUTATE {\"cmd\":\"discard\",\"target\":\"retries\",\"filter\":{\"regexp\":"
             "\"*retry-b *\"}}");
    check_sets(c, 1, 0, 1);
    TH_OK(c, "MUTATE { \"cmd\" : \"clear\" , \"target\" : \"dead\" }");
    check_sets(c, 1, 0, 0);
}

static void mutate_rejects_bad_target_and_operation(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    fill_every_set(c);
    static const char *const targets[] = { "", "queues", "working", "default", "retry" };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        TH_EXPECT(c, "-ERR invalid target for mutation command",
                  "MUTATE {\"cmd\":\"kill\",\"target\":\"%s\",\"filter\":{\"jobtype\":\"A\"}}",
                  targets[i]);
    }
    TH_EXPECT(c, "-ERR invalid target for mutation command", "MUTATE {\"cmd\":\"kill\"}");
    TH_EXPECT(c, "-ERR unknown mutate operation",
              "MUTATE {\"cmd\":\"explode\",\"target\":\"retries\"}");
    TH_EXPECT(c, "-ERR unknown mutate operation", "MUTATE {\"target\":\"retries\"}");
    TH_EXPECT_PREFIX(c, "-ERR", "MUTATE {\"cmd\":\"kill\",\"target\":");
    TH_EXPECT_PREFIX(c, "-ERR", "MUTATE []");
    TH_EXPECT_PREFIX(c, "-ERR", "MUTATE");
    check_sets(c, 2, 2, 2);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(mutate_clear_empties_one_set),
        TH_CASE(mutate_discard_without_filter_removes_all),
        TH_CASE(mutate_discard_by_jobtype),
        TH_CASE(mutate_kill_moves_to_dead),
        TH_CASE(mutate_requeue_refreshes_enqueued_at),
        TH_CASE(mutate_jids_filter_wins),
        TH_CASE(mutate_regexp_is_glob_over_job),
        TH_CASE(mutate_jobtype_matches_field_not_args),
        TH_CASE(mutate_accepts_spaces_in_json),
        TH_CASE(mutate_rejects_bad_target_and_operation),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
