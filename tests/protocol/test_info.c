/* INFO: the document shape that clients and dashboards read, and sizes that are current right
 * after each command. */
#include "harness.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

static void check_is_integer(json_t *info, const char *path) {
    if (!json_is_integer(th_json_get(info, path))) {
        th_fail("INFO has no integer at %s", path);
    }
}

static void info_shape_has_every_client_field(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    json_t *info = TH_INFO(c);

    /* Exactly the four top-level keys of the reference. */
    TH_EQ_INT(json_object_size(info), 4);
    TH_CHECK(json_is_string(json_object_get(info, "now")));
    TH_CHECK(json_is_string(json_object_get(info, "server_utc_time")));
    TH_CHECK(json_is_object(json_object_get(info, "faktory")));
    TH_CHECK(json_is_object(json_object_get(info, "server")));

    static const char *const integers[] = {
        "faktory.total_failures", "faktory.total_processed", "faktory.total_enqueued",
        "faktory.total_queues", "faktory.sets.dead", "faktory.sets.retries",
        "faktory.sets.scheduled", "faktory.sets.working", "faktory.tasks.Busy.size",
        "faktory.tasks.Dead.size", "faktory.tasks.Retries.size", "faktory.tasks.Scheduled.size",
        "faktory.tasks.Workers.size", "server.uptime", "server.connections",
        "server.command_count", "server.used_memory_mb",
    };
    for (size_t i = 0; i < sizeof integers / sizeof integers[0]; i++) {
        check_is_integer(info, integers[i]);
    }
    TH_CHECK(json_is_object(th_json_get(info, "faktory.queues")));
    TH_EQ_STR(TH_JSTR(info, "server.description"), "fabrik");
    TH_EQ_STR(TH_JSTR(info, "server.faktory_version"), "1.10.0");
    TH_CHECK(strlen(TH_JSTR(info, "server.fabrik_version")) > 0);

    /* now is RFC 3339 UTC, and server_utc_time is "HH:MM:SS UTC". */
    const char *now = TH_JSTR(info, "now");
    TH_EQ_INT(now[strlen(now) - 1], 'Z');
    TH_TIME(info, "now");
    const char *utc = TH_JSTR(info, "server_utc_time");
    TH_EQ_INT(strlen(utc), 12);
    TH_CHECK(isdigit((unsigned char)utc[0]) && isdigit((unsigned char)utc[1]) && utc[2] == ':' &&
             isdigit((unsigned char)utc[3]) && isdigit((unsigned char)utc[4]) && utc[5] == ':' &&
             isdigit((unsigned char)utc[6]) && isdigit((unsigned char)utc[7]));
    TH_EQ_STR(utc + 8, " UTC");
}

static void info_sizes_current_after_each_command(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);

    TH_PUSH(c, "job-retry-0001", NULL);
    TH_FETCH_JID(c, "default", "job-retry-0001");
    TH_OK(c, "FAIL {\"jid\":\"job-retry-0001\",\"errtype\":\"E\",\"message\":\"m\"}");
    TH_INFO_EQ(c, "faktory.sets.retries", 1);

    TH_PUSH(c, "job-dead-0001", "\"retry\":-1");
    TH_FETCH_JID(c, "default", "job-dead-0001");
    TH_OK(c, "FAIL {\"jid\":\"job-dead-0001\",\"errtype\":\"E\",\"message\":\"m\"}");
    TH_INFO_EQ(c, "faktory.sets.dead", 1);

    TH_PUSH(c, "job-done-0001", NULL);
    TH_FETCH_JID(c, "default", "job-done-0001");
    TH_OK(c, "ACK {\"jid\":\"job-done-0001\"}");

    TH_PUSH(c, "job-busy-0001", NULL);
    TH_FETCH_JID(c, "default", "job-busy-0001");
    TH_INFO_EQ(c, "faktory.sets.working", 1);

    char at[64];
    th_format_time(TH_SERVER_TIME(c) + 3600, at, sizeof at);
    TH_PUSH(c, "job-later-0001", th_fmt("\"at\":\"%s\"", at));
    TH_INFO_EQ(c, "faktory.sets.scheduled", 1);

    TH_PUSH(c, "job-queued-0001", NULL);
    TH_PUSH(c, "job-queued-0002", NULL);
    TH_PUSH(c, "job-other-0001", "\"queue\":\"other\"");

    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.default"), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.other"), 1);
    TH_EQ_INT(json_object_size(th_json_get(info, "faktory.queues")), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.total_enqueued"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.total_queues"), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Busy.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Dead.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Retries.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Scheduled.size"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 2);

    /* Consuming a queue keeps its name listed with 0. */
    TH_FETCH_JID(c, "other", "job-other-0001");
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.other"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_enqueued"), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 2);
}

static void info_counts_connections_and_commands(void) {
    th_require_private_server();
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *a = th_producer(srv);
    struct th_conn *b = th_worker(srv, "info-worker");
    json_t *info = TH_INFO(a);
    TH_EQ_INT(TH_JINT(info, "server.connections"), 2);
    long long commands = TH_JINT(info, "server.command_count");

    for (int i = 0; i < 5; i++) {
        TH_OK(b, "BEAT {\"wid\":\"info-worker\"}");
    }
    info = TH_INFO(a);
    TH_RANGE(TH_JINT(info, "server.command_count"), commands + 5, commands + 7);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Workers.size"), 1);

    th_close(b);
    long long connections = 2;
    for (int i = 0; i < 50 && connections != 1; i++) {
        th_sleep_ms(20);
        connections = TH_INFO_INT(a, "server.connections");
    }
    TH_EQ_INT(connections, 1);
}

static void info_uptime_and_memory_plausible(void) {
    th_require_private_server();
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    json_t *info = TH_INFO(c);
    TH_RANGE(TH_JINT(info, "server.uptime"), 0, 60);
    TH_RANGE(TH_JINT(info, "server.used_memory_mb"), 0, 4096);
    double now = TH_TIME(info, "now");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    TH_RANGE(now, (double)ts.tv_sec - 5, (double)ts.tv_sec + 5);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(info_shape_has_every_client_field),
        TH_CASE(info_sizes_current_after_each_command),
        TH_CASE(info_counts_connections_and_commands),
        TH_CASE(info_uptime_and_memory_plausible),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
