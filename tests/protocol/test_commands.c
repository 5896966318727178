/* Command dispatch: unknown verbs, END, FLUSH, the subsystems that are not there yet, DEBUG
 * outside development, bare LF line endings and several commands in one packet. */
#include "harness.h"

#include <signal.h>
#include <string.h>

static void unknown_commands_are_errors(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT(c, "-ERR unknown command CMD", "CMD foo");
    /* Verbs are case-sensitive. */
    TH_EXPECT(c, "-ERR unknown command info", "info");
    TH_EXPECT(c, "-ERR unknown command push",
              "push {\"jid\":\"job-lower-01\",\"jobtype\":\"T\",\"args\":[]}");
    TH_EXPECT(c, "-ERR unknown command FETCHX", "FETCHX default");
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void end_closes_without_reply(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    th_send(c, "END");
    TH_EXPECT_CLOSED(c, 3000);

    c = th_worker(srv, "ending-worker");
    th_send(c, "END anything after a space");
    TH_EXPECT_CLOSED(c, 3000);

    c = th_producer(srv);
    th_send_lf(c, "END");
    TH_EXPECT_CLOSED(c, 3000);
    TH_CHECK(th_server_alive(srv));
}

static void flush_removes_jobs_queues_and_counters(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    struct th_conn *w = th_worker(srv, "flush-worker");
    TH_PUSH(c, "job-retry-0001", NULL);
    TH_FETCH_JID(c, "default", "job-retry-0001");
    TH_OK(c, "FAIL {\"jid\":\"job-retry-0001\",\"errtype\":\"E\",\"message\":\"m\"}");
    TH_PUSH(c, "job-dead-0001", "\"retry\":-1");
    TH_FETCH_JID(c, "default", "job-dead-0001");
    TH_OK(c, "FAIL {\"jid\":\"job-dead-0001\",\"errtype\":\"E\",\"message\":\"m\"}");
    TH_PUSH(c, "job-busy-0001", NULL);
    TH_FETCH_JID(w, "default", "job-busy-0001");
    char at[64];
    th_format_time(TH_SERVER_TIME(c) + 3600, at, sizeof at);
    TH_PUSH(c, "job-later-0001", th_fmt("\"at\":\"%s\"", at));
    TH_PUSH(c, "job-paused-0001", "\"queue\":\"paused\"");
    TH_OK(c, "QUEUE PAUSE paused");

    TH_OK(c, "FLUSH");
    json_t *info = TH_INFO(c);
    TH_EQ_INT(json_object_size(th_json_get(info, "faktory.queues")), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_queues"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_enqueued"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Busy.size"), 0);
    /* Connected workers stay registered. */
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Workers.size"), 1);
    TH_OK(w, "BEAT {\"wid\":\"flush-worker\"}");

    /* The reservation is gone and so is the paused flag. */
    TH_EXPECT(w, "-ERR Job not found job-busy-0001", "FAIL {\"jid\":\"job-busy-0001\"}");
    TH_PUSH(c, "job-paused-0002", "\"queue\":\"paused\"");
    TH_FETCH_JID(c, "paused", "job-paused-0002");
    TH_CLOCK(c, 4000);
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

/* TRACK works without a tracked job: GET returns the unknown document, SET is accepted. */
static void track_without_tracked_job(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const struct th_reply *r = th_cmd(c, "TRACK GET job-a-0001");
    TH_EQ_INT(r->kind, TH_BULK);
    TH_EQ_STR(r->body, "{\"jid\":\"job-a-0001\",\"state\":\"unknown\",\"updated_at\":\"\"}");
    TH_OK(c, "TRACK SET {\"jid\":\"job-a-0001\",\"percent\":50}");
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
}

static void debug_clock_only_in_development(void) {
    struct th_server_opts opts = { .environment = "production",
                                   .env = { "FAKTORY_SKIP_PASSWORD=1" } };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT(c, "-ERR unknown command DEBUG", "DEBUG CLOCK 100");
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
}

static void debug_clock_rejects_bad_argument(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT_PREFIX(c, "-ERR", "DEBUG CLOCK");
    TH_EXPECT_PREFIX(c, "-ERR", "DEBUG CLOCK soon");
    TH_OK(c, "DEBUG CLOCK 1.5");
}

static void bare_lf_commands_work(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    th_send_lf(c, "PUSH {\"jid\":\"job-lf-0001\",\"jobtype\":\"T\",\"args\":[]}");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    th_send_lf(c, "FETCH default");
    TH_EQ_INT(th_read(c, 5000)->kind, TH_BULK);
    th_send_lf(c, "ACK {\"jid\":\"job-lf-0001\"}");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    th_send_lf(c, "QUEUE PAUSE default");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    th_send_lf(c, "CMD");
    th_read(c, 5000);
    TH_REPLY(c, "-ERR unknown command CMD");
    TH_INFO_EQ(c, "faktory.total_processed", 1);
}

static void several_commands_in_one_packet(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *batch = "PUSH {\"jid\":\"job-pipe-0001\",\"jobtype\":\"T\",\"args\":[]}\r\n"
                        "PUSH {\"jid\":\"job-pipe-0002\",\"jobtype\":\"T\",\"args\":[]}\n"
                        "FETCH default\r\n"
                        "CMD\r\n"
                        "ACK {\"jid\":\"job-pipe-0001\"}\r\n";
    TH_EQ_INT(th_send_raw(c, batch, strlen(batch)), 0);
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    TH_EQ_INT(th_read(c, 5000)->kind, TH_BULK);
    json_t *job = TH_JSON(c->reply.body, c->reply.body_len);
    TH_EQ_STR(TH_JSTR(job, "jid"), "job-pipe-0001");
    th_read(c, 5000);
    TH_REPLY(c, "-ERR unknown command CMD");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");

    /* A command split across packets is assembled. */
    TH_EQ_INT(th_send_raw(c, "FET", 3), 0);
    th_sleep_ms(50);
    TH_EQ_INT(th_send_raw(c, "CH def", 6), 0);
    th_sleep_ms(50);
    TH_EQ_INT(th_send_raw(c, "ault\r", 5), 0);
    th_sleep_ms(50);
    TH_EQ_INT(th_send_raw(c, "\n", 1), 0);
    TH_EQ_INT(th_read(c, 5000)->kind, TH_BULK);
    TH_INFO_EQ(c, "faktory.total_processed", 1);
}

static void commands_behind_blocked_fetch_wait_their_turn(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    /* Replies come in request order: the PUSH queued behind a waiting FETCH runs after it. */
    const char *batch = "FETCH later\r\n"
                        "PUSH {\"jid\":\"job-behind-01\",\"jobtype\":\"T\",\"args\":[],"
                        "\"queue\":\"later\"}\r\n"
                        "INFO\r\n";
    TH_EQ_INT(th_send_raw(c, batch, strlen(batch)), 0);
    th_read(c, 5000);
    TH_REPLY(c, "$-1");
    TH_RANGE(c->reply.elapsed, 1.8, 3.0);
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    TH_EQ_INT(th_read(c, 5000)->kind, TH_BULK);
    TH_FETCH_JID(c, "later", "job-behind-01");
}

static void flush_during_blocked_fetch(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_producer(srv);
    struct th_conn *p = th_producer(srv);
    th_send(w, "FETCH flushed");
    th_sleep_ms(100);
    TH_OK(p, "FLUSH");
    TH_PUSH(p, "job-after-flush", "\"queue\":\"flushed\"");
    const struct th_reply *r = th_read(w, 5000);
    TH_EQ_INT(r->kind, TH_BULK);
    TH_INFO_EQ(p, "faktory.sets.working", 1);
}

static void invalid_config_reload_keeps_running(void) {
    struct th_server_opts opts = { .toml = "[fabrik]\nmax_connections = 50\n" };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-reload-0001", NULL);
    th_write_file(th_fmt("%s/conf.d/test.toml", srv->config_dir), "[fabrik\nbroken = = 1\n");
    th_server_signal(srv, SIGHUP);
    th_sleep_ms(300);
    /* A reload that fails keeps the old configuration and the server keeps serving. */
    TH_CHECK(th_server_alive(srv));
    TH_FETCH_JID(c, "default", "job-reload-0001");
    struct th_conn *fresh = th_producer(srv);
    TH_CHECK(th_cmd(fresh, "INFO")->kind == TH_BULK);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(unknown_commands_are_errors),
        TH_CASE(end_closes_without_reply),
        TH_CASE(flush_removes_jobs_queues_and_counters),
        TH_CASE(track_without_tracked_job),
        TH_CASE(debug_clock_only_in_development),
        TH_CASE(debug_clock_rejects_bad_argument),
        TH_CASE(bare_lf_commands_work),
        TH_CASE(several_commands_in_one_packet),
        TH_CASE(commands_behind_blocked_fetch_wait_their_turn),
        TH_CASE(flush_during_blocked_fetch),
        TH_CASE(invalid_config_reload_keeps_running),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
