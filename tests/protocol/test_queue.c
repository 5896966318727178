/* QUEUE PAUSE, RESUME, REMOVE and LATENCY, with names and with the * wildcard. */
#include "harness.h"

#include <string.h>

static void queue_pause_and_resume_by_name(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-q1-0001", "\"queue\":\"q1\"");
    TH_PUSH(c, "job-q2-0001", "\"queue\":\"q2\"");
    TH_PUSH(c, "job-q2-0002", "\"queue\":\"q2\"");
    TH_OK(c, "QUEUE PAUSE q1 q2");
    TH_EXPECT(c, "$-1", "FETCH q1 q2");
    TH_OK(c, "QUEUE RESUME q2");
    TH_FETCH_JID(c, "q1 q2", "job-q2-0001");

    /* The subcommand is not case-sensitive. */
    TH_OK(c, "QUEUE pause q2");
    TH_OK(c, "QUEUE resume q1");
    TH_FETCH_JID(c, "q2 q1", "job-q1-0001");
    TH_OK(c, "QUEUE Resume q2");
    TH_FETCH_JID(c, "q2", "job-q2-0002");
}

static void queue_pause_wildcard_covers_every_queue(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-a-0001", "\"queue\":\"a\"");
    TH_PUSH(c, "job-b-0001", "\"queue\":\"b\"");
    TH_OK(c, "QUEUE PAUSE *");
    TH_EXPECT(c, "$-1", "FETCH a b");
    TH_OK(c, "QUEUE RESUME *");
    TH_FETCH_JID(c, "b a", "job-b-0001");
    TH_FETCH_JID(c, "a", "job-a-0001");
}

static void queue_commands_from_reference_suite(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "QUEUE REMOVE frobnoz");
    TH_PUSH(c, "job-ref-0001", NULL);
    TH_OK(c, "QUEUE PAUSE *");
    TH_EXPECT(c, "-ERR no such QUEUE subcommand: UNPAUSE", "QUEUE UNPAUSE *");
    TH_EXPECT(c, "-ERR no such QUEUE subcommand: UNPAUSE", "QUEUE unpause default");
    TH_OK(c, "QUEUE RESUME *");
    TH_OK(c, "QUEUE REMOVE foo");
    TH_OK(c, "QUEUE PAUSE default");
    TH_OK(c, "QUEUE RESUME default");
    TH_FETCH_JID(c, "default", "job-ref-0001");
    TH_OK(c, "QUEUE REMOVE *");
    TH_INFO_EQ(c, "faktory.total_queues", 0);
}

static void queue_remove_deletes_queue_and_jobs(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    for (int i = 0; i < 3; i++) {
        TH_PUSH(c, th_fmt("job-doomed-%04d", i), "\"queue\":\"doomed\"");
    }
    TH_PUSH(c, "job-kept-0001", "\"queue\":\"kept\"");
    TH_OK(c, "QUEUE PAUSE doomed");
    TH_OK(c, "QUEUE REMOVE doomed");

    json_t *info = TH_INFO(c);
    TH_CHECK(json_object_get(th_json_get(info, "faktory.queues"), "doomed") == NULL);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.kept"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_queues"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_enqueued"), 1);

    /* A new job in a removed queue starts a fresh, unpaused queue. */
    TH_PUSH(c, "job-doomed-0100", "\"queue\":\"doomed\"");
    TH_FETCH_JID(c, "doomed", "job-doomed-0100");

    TH_OK(c, "QUEUE REMOVE *");
    info = TH_INFO(c);
    TH_EQ_INT(json_object_size(th_json_get(info, "faktory.queues")), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_queues"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_enqueued"), 0);
    /* Reserved jobs are not part of a queue. */
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 1);
}

static void queue_latency_reports_oldest_wait(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT_RAW(c, "$13\r\n{\"default\":0}\r\n", "QUEUE LATENCY default");

    TH_PUSH(c, "job-lat-0001", NULL);
    TH_CLOCK(c, 5);
    TH_PUSH(c, "job-lat-0002", NULL);
    TH_PUSH(c, "job-lat-0003", "\"queue\":\"fresh\"");
    const struct th_reply *r = th_cmd(c, "QUEUE LATENCY default fresh nosuch");
    TH_EQ_INT(r->kind, TH_BULK);
    json_t *latency = TH_JSON(r->body, r->body_len);
    TH_EQ_INT(json_object_size(latency), 3);
    /* Seconds since the enqueued_at of the job FETCH would take next. */
    TH_RANGE(json_number_value(json_object_get(latency, "default")), 5, 7);
    TH_RANGE(json_number_value(json_object_get(latency, "fresh")), 0, 2);
    TH_CHECK(json_is_number(json_object_get(latency, "nosuch")));
    TH_RANGE(json_number_value(json_object_get(latency, "nosuch")), 0, 0);

    TH_FETCH_JID(c, "default", "job-lat-0001");
    r = th_cmd(c, "QUEUE latency default");
    TH_EQ_INT(r->kind, TH_BULK);
    latency = TH_JSON(r->body, r->body_len);
    TH_RANGE(json_number_value(json_object_get(latency, "default")), 0, 2);
}

static void queue_errors_keep_connection(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT(c, "-ERR QUEUE LATENCY does not support wildcards", "QUEUE LATENCY *");
    TH_EXPECT(c, "-ERR no such QUEUE subcommand: UNPAUSE", "QUEUE UNPAUSE *");
    TH_EXPECT(c, "-ERR no such QUEUE subcommand: FLUSH", "QUEUE FLUSH default");
    TH_EXPECT_PREFIX(c, "-ERR", "QUEUE");
    TH_EXPECT_PREFIX(c, "-ERR", "QUEUE PAUSE");
    TH_EXPECT_PREFIX(c, "-ERR", "QUEUE REMOVE");
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(queue_pause_and_resume_by_name),
        TH_CASE(queue_pause_wildcard_covers_every_queue),
        TH_CASE(queue_commands_from_reference_suite),
        TH_CASE(queue_remove_deletes_queue_and_jobs),
        TH_CASE(queue_latency_reports_oldest_wait),
        TH_CASE(queue_errors_keep_connection),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
