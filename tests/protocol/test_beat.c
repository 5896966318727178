/* BEAT and the worker state machine: replies, forward-only states, quiet and terminate applied to
 * every connection of a wid, and reaping of workers that stop beating. */
#include "harness.h"

#include <string.h>

#define QUIET_REPLY "$17\r\n{\"state\":\"quiet\"}\r\n"
#define TERMINATE_REPLY "$21\r\n{\"state\":\"terminate\"}\r\n"

static void beat_running_worker_ok(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_worker(srv, "beat-worker");
    TH_OK(w, "BEAT {\"wid\":\"beat-worker\"}");
    TH_OK(w, "BEAT {\"wid\":\"beat-worker\",\"rss_kb\":123456}");
    TH_OK(w, "BEAT {\"rss_kb\": 1, \"wid\": \"beat-worker\"}");
    TH_OK(w, "BEAT {\"wid\":\"beat-worker\",\"current_state\":\"\"}");
    TH_OK(w, "BEAT {\"wid\":\"beat-worker\",\"current_state\":\"running\"}");
}

static void beat_states_only_move_forward(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_worker(srv, "state-worker");
    TH_EXPECT_RAW(w, QUIET_REPLY, "BEAT {\"wid\":\"state-worker\",\"current_state\":\"quiet\"}");
    TH_EXPECT_RAW(w, QUIET_REPLY, "BEAT {\"wid\":\"state-worker\"}");
    TH_EXPECT_RAW(w, QUIET_REPLY, "BEAT {\"wid\":\"state-worker\",\"current_state\":\"\"}");
    TH_EXPECT_RAW(w, QUIET_REPLY, "BEAT {\"wid\":\"state-worker\",\"current_state\":\"running\"}");
    TH_EXPECT_RAW(w, TERMINATE_REPLY,
                  "BEAT {\"wid\":\"state-worker\",\"current_state\":\"terminate\"}");
    TH_EXPECT_RAW(w, TERMINATE_REPLY,
                  "BEAT {\"wid\":\"state-worker\",\"current_state\":\"quiet\"}");
    TH_EXPECT_RAW(w, TERMINATE_REPLY, "BEAT {\"wid\":\"state-worker\"}");

    /* A running worker may also jump straight to terminate. */
    struct th_conn *w2 = th_worker(srv, "jump-worker");
    TH_EXPECT_RAW(w2, TERMINATE_REPLY,
                  "BEAT {\"wid\":\"jump-worker\",\"current_state\":\"terminate\"}");
}

static void beat_unknown_worker_error(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    TH_EXPECT(p, "-ERR unknown worker nosuch-worker", "BEAT {\"wid\":\"nosuch-worker\"}");
    TH_EXPECT_PREFIX(p, "-ERR unknown worker", "BEAT {}");
    struct th_conn *w = th_worker(srv, "real-worker");
    TH_EXPECT(w, "-ERR unknown worker other-worker", "BEAT {\"wid\":\"other-worker\"}");
    TH_OK(w, "BEAT {\"wid\":\"real-worker\"}");
}

static void beat_from_other_connection_accepted(void) {
    struct th_server *srv = th_server_start(NULL);
    th_worker(srv, "remote-worker");
    struct th_conn *p = th_producer(srv);
    /* The BEAT's wid need not match the connection's wid. */
    TH_OK(p, "BEAT {\"wid\":\"remote-worker\"}");
    TH_EXPECT_RAW(p, QUIET_REPLY, "BEAT {\"wid\":\"remote-worker\",\"current_state\":\"quiet\"}");
}

static void beat_malformed_payload_errors(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_worker(srv, "bad-beat-worker");
    TH_EXPECT(w, "-ERR invalid BEAT {bad", "BEAT {bad");
    TH_EXPECT(w, "-ERR invalid BEAT []", "BEAT []");
    TH_OK(w, "BEAT {\"wid\":\"bad-beat-worker\"}");
}

static void quiet_and_terminate_stop_fetch_on_every_connection(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    struct th_conn *quiet_a = th_worker(srv, "quiet-worker");
    struct th_conn *quiet_b = th_worker(srv, "quiet-worker");
    struct th_conn *term = th_worker(srv, "term-worker");
    TH_PUSH(p, "job-wait-0001", NULL);

    TH_EXPECT_RAW(quiet_a, QUIET_REPLY,
                  "BEAT {\"wid\":\"quiet-worker\",\"current_state\":\"quiet\"}");
    TH_EXPECT_RAW(p, TERMINATE_REPLY,
                  "BEAT {\"wid\":\"term-worker\",\"current_state\":\"terminate\"}");

    /* Every connection of a quiet or terminating wid waits its 2 s and gets no job, even the
     * ones that did not send the BEAT. */
    th_send(quiet_a, "FETCH default");
    th_send(quiet_b, "FETCH default");
    th_send(term, "FETCH default");
    struct th_conn *waiting[] = { quiet_a, quiet_b, term };
    for (int i = 0; i < 3; i++) {
        th_read(waiting[i], 5000);
        TH_REPLY(waiting[i], "$-1");
    }
    TH_EQ_INT(TH_QUEUE_SIZE(p, "default"), 1);

    struct th_conn *busy = th_worker(srv, "busy-worker");
    TH_FETCH_JID(busy, "default", "job-wait-0001");
}

static void quiet_worker_fetch_waits_two_seconds(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_worker(srv, "slow-quiet-worker");
    TH_EXPECT_RAW(w, QUIET_REPLY,
                  "BEAT {\"wid\":\"slow-quiet-worker\",\"current_state\":\"quiet\"}");
    TH_EXPECT(w, "$-1", "FETCH default");
    TH_RANGE(w->reply.elapsed, 1.8, 3.0);
}

static void worker_reaped_after_60s_without_beat(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    struct th_conn *silent_a = th_worker(srv, "silent-worker");
    struct th_conn *silent_b = th_worker(srv, "silent-worker");
    struct th_conn *beating = th_worker(srv, "beating-worker");
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 2);

    TH_CLOCK(p, 40);
    TH_OK(beating, "BEAT {\"wid\":\"beating-worker\"}");
    TH_CLOCK(p, 19);
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 2);

    /* Past 60 s without BEAT the worker is dropped and all its sockets are closed. */
    TH_CLOCK(p, 6);
    TH_EXPECT_CLOSED(silent_a, 3000);
    TH_EXPECT_CLOSED(silent_b, 3000);
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 1);
    TH_EXPECT(p, "-ERR unknown worker silent-worker", "BEAT {\"wid\":\"silent-worker\"}");
    TH_OK(beating, "BEAT {\"wid\":\"beating-worker\"}");

    /* A new HELLO registers the wid again. */
    struct th_conn *back = th_worker(srv, "silent-worker");
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 2);
    TH_OK(back, "BEAT {\"wid\":\"silent-worker\"}");
}

static void reaping_worker_with_waiting_fetch(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "parked-worker");
    th_send(w, "FETCH parked");
    th_sleep_ms(100);

    /* The reaper closes the socket while its FETCH is still waiting. */
    TH_CLOCK(p, 61);
    TH_EXPECT_CLOSED(w, 3000);
    TH_PUSH(p, "job-parked-0001", "\"queue\":\"parked\"");
    th_sleep_ms(2500);
    TH_EQ_INT(TH_QUEUE_SIZE(p, "parked"), 1);
    TH_INFO_EQ(p, "faktory.sets.working", 0);
    struct th_conn *w2 = th_producer(srv);
    TH_FETCH_JID(w2, "parked", "job-parked-0001");
}

static void beating_worker_is_never_reaped(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "steady-worker");
    for (int i = 0; i < 6; i++) {
        TH_CLOCK(p, 45);
        TH_OK(w, "BEAT {\"wid\":\"steady-worker\"}");
    }
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 1);
}

static void worker_registers_again_after_disconnect(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "returning-worker");
    TH_OK(w, "BEAT {\"wid\":\"returning-worker\"}");
    th_close(w);
    th_sleep_ms(100);
    w = th_worker(srv, "returning-worker");
    TH_OK(w, "BEAT {\"wid\":\"returning-worker\"}");
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 1);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(beat_running_worker_ok),
        TH_CASE(beat_states_only_move_forward),
        TH_CASE(beat_unknown_worker_error),
        TH_CASE(beat_from_other_connection_accepted),
        TH_CASE(beat_malformed_payload_errors),
        TH_CASE(quiet_and_terminate_stop_fetch_on_every_connection),
        TH_CASE(quiet_worker_fetch_waits_two_seconds),
        TH_CASE(worker_reaped_after_60s_without_beat),
        TH_CASE(reaping_worker_with_waiting_fetch),
        TH_CASE(beating_worker_is_never_reaped),
        TH_CASE(worker_registers_again_after_disconnect),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
