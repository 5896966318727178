/* FETCH: strict queue order, FIFO, the 2-second wait, wake-up by a push to any listed queue,
 * paused queues and the reservation a fetch creates. */
#include "harness.h"

#include <string.h>

static void fetch_takes_queues_in_listed_order(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-q1-0001", "\"queue\":\"q1\"");
    TH_PUSH(c, "job-q2-0001", "\"queue\":\"q2\"");
    TH_PUSH(c, "job-q3-0001", "\"queue\":\"q3\"");
    TH_PUSH(c, "job-q1-0002", "\"queue\":\"q1\"");

    TH_FETCH_JID(c, "q3 q1 q2", "job-q3-0001");
    TH_FETCH_JID(c, "q2 q1", "job-q2-0001");
    TH_FETCH_JID(c, "q3 q2 q1", "job-q1-0001");
    TH_FETCH_JID(c, "q1 q2", "job-q1-0002");
}

static void fetch_is_fifo_within_queue(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    for (int i = 0; i < 20; i++) {
        TH_PUSH(c, th_fmt("job-fifo-%04d", i), NULL);
    }
    for (int i = 0; i < 20; i++) {
        TH_FETCH_JID(c, "default", th_fmt("job-fifo-%04d", i));
    }
}

static void fetch_empty_queue_waits_then_null(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT(c, "$-1", "FETCH default");
    /* Clients loop straight back into FETCH, so the server must wait about 2 s, and clients
     * time out reads after 5 s. */
    TH_RANGE(c->reply.elapsed, 1.8, 3.0);
    TH_EXPECT(c, "$-1", "FETCH q1 q2 q3");
    TH_RANGE(c->reply.elapsed, 1.8, 3.0);
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
}

/* Sends FETCH on w, pushes jid to queue from p after 100 ms, and checks w gets it at once. */
static void check_wakeup(struct th_conn *w, struct th_conn *p, const char *queues,
                         const char *queue, const char *jid) {
    double started = th_now();
    th_send(w, "FETCH %s", queues);
    th_sleep_ms(100);
    TH_PUSH(p, jid, th_fmt("\"queue\":\"%s\"", queue));
    const struct th_reply *r = th_read(w, 5000);
    TH_EQ_INT(r->kind, TH_BULK);
    json_t *job = TH_JSON(r->body, r->body_len);
    TH_EQ_STR(TH_JSTR(job, "jid"), jid);
    TH_RANGE(th_now() - started, 0.1, 1.0);
}

static void fetch_wakes_on_push_to_any_listed_queue(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_producer(srv);
    struct th_conn *p = th_producer(srv);
    check_wakeup(w, p, "q1 q2", "q2", "job-wake-0001");
    check_wakeup(w, p, "q1 q2", "q1", "job-wake-0002");
    check_wakeup(w, p, "q1 q2 q3", "q3", "job-wake-0003");
    TH_INFO_EQ(p, "faktory.sets.working", 3);
}

static void fetch_ignores_push_to_unlisted_queue(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_producer(srv);
    struct th_conn *p = th_producer(srv);
    th_send(w, "FETCH q1 q2");
    th_sleep_ms(100);
    TH_PUSH(p, "job-other-0001", "\"queue\":\"q3\"");
    th_read(w, 5000);
    TH_REPLY(w, "$-1");
    TH_EQ_INT(TH_QUEUE_SIZE(p, "q3"), 1);
}

static void fetch_push_wakes_only_one_waiter(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w1 = th_producer(srv);
    struct th_conn *w2 = th_producer(srv);
    struct th_conn *p = th_producer(srv);
    th_send(w1, "FETCH default");
    th_send(w2, "FETCH default");
    th_sleep_ms(100);
    TH_PUSH(p, "job-single-0001", NULL);
    const struct th_reply *r1 = th_read(w1, 5000);
    enum th_reply_kind k1 = r1->kind;
    const struct th_reply *r2 = th_read(w2, 5000);
    enum th_reply_kind k2 = r2->kind;
    /* Exactly one of the two gets the job, and the other gets $-1 at the end of its wait. */
    TH_CHECK((k1 == TH_BULK && k2 == TH_NULL) || (k1 == TH_NULL && k2 == TH_BULK));
    TH_INFO_EQ(p, "faktory.sets.working", 1);
    TH_EQ_INT(TH_QUEUE_SIZE(p, "default"), 0);
}

static void fetch_skips_paused_queue(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-q1-0001", "\"queue\":\"q1\"");
    TH_PUSH(c, "job-q2-0001", "\"queue\":\"q2\"");
    TH_OK(c, "QUEUE PAUSE q1");
    TH_FETCH_JID(c, "q1 q2", "job-q2-0001");
    TH_EXPECT(c, "$-1", "FETCH q1");
    TH_RANGE(c->reply.elapsed, 1.8, 3.0);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "q1"), 1);
    TH_OK(c, "QUEUE RESUME q1");
    TH_FETCH_JID(c, "q1 q2", "job-q1-0001");
}

static void fetch_without_queue_is_error(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-bare-0001", NULL);
    TH_EXPECT(c, "-ERR must call fetch with at least one queue", "FETCH");
    TH_FETCH_JID(c, "default", "job-bare-0001");
}

static void fetch_reserves_the_job(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_worker(srv, "fetch-worker");
    struct th_conn *p = th_producer(srv);
    TH_PUSH(p, "job-res-0001", NULL);
    TH_PUSH(p, "job-res-0002", NULL);
    json_t *job = TH_FETCH_JID(w, "default", "job-res-0001");
    TH_CHECK(json_is_string(json_object_get(job, "enqueued_at")));

    json_t *info = TH_INFO(p);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Busy.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.default"), 1);

    /* A reserved job is not handed out again. */
    TH_FETCH_JID(p, "default", "job-res-0002");
    TH_EXPECT(p, "$-1", "FETCH default");
}

static void fetch_reply_is_bulk_job_json(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-bulk-0001", "\"custom\":{\"note\":\"a\\r\\nb\"}");
    const struct th_reply *r = th_cmd(c, "FETCH default");
    TH_EQ_INT(r->kind, TH_BULK);
    TH_EQ_STR(r->line, th_fmt("$%zu", r->body_len));
    /* A JSON payload never contains a raw line break, which some clients rely on. */
    TH_CHECK(memchr(r->body, '\n', r->body_len) == NULL);
    json_t *job = TH_JSON(r->body, r->body_len);
    TH_EQ_STR(TH_JSTR(job, "custom.note"), "a\r\nb");
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(fetch_takes_queues_in_listed_order),
        TH_CASE(fetch_is_fifo_within_queue),
        TH_CASE(fetch_empty_queue_waits_then_null),
        TH_CASE(fetch_wakes_on_push_to_any_listed_queue),
        TH_CASE(fetch_ignores_push_to_unlisted_queue),
        TH_CASE(fetch_push_wakes_only_one_waiter),
        TH_CASE(fetch_skips_paused_queue),
        TH_CASE(fetch_without_queue_is_error),
        TH_CASE(fetch_reserves_the_job),
        TH_CASE(fetch_reply_is_bulk_job_json),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
