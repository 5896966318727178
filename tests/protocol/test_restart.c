/* Durability across restarts: jobs in every state, paused queues, counters and reservations
 * survive a clean stop (SIGTERM) and a crash (SIGKILL). */
#include "harness.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Leaves one job in each state: queued (default and the paused queue "held"), scheduled,
 * retry, dead and two working, and counts 3 processed and 2 failures. */
static void build_every_state(struct th_conn *c) {
    TH_PUSH(c, "job-retry-0001", NULL);
    TH_FETCH_JID(c, "default", "job-retry-0001");
    TH_OK(c, "FAIL {\"jid\":\"job-retry-0001\",\"errtype\":\"E\",\"message\":\"m\"}");

    TH_PUSH(c, "job-dead-0001", "\"retry\":-1");
    TH_FETCH_JID(c, "default", "job-dead-0001");
    TH_OK(c, "FAIL {\"jid\":\"job-dead-0001\",\"errtype\":\"E\",\"message\":\"m\"}");

    TH_PUSH(c, "job-done-0001", NULL);
    TH_FETCH_JID(c, "default", "job-done-0001");
    TH_OK(c, "ACK {\"jid\":\"job-done-0001\"}");

    TH_PUSH(c, "job-busy-0001", "\"reserve_for\":600");
    TH_FETCH_JID(c, "default", "job-busy-0001");
    TH_PUSH(c, "job-busy-0002", "\"reserve_for\":600");
    TH_FETCH_JID(c, "default", "job-busy-0002");

    char at[64];
    th_format_time(TH_SERVER_TIME(c) + 3600, at, sizeof at);
    TH_PUSH(c, "job-later-0001", th_fmt("\"at\":\"%s\"", at));

    TH_OK(c, "PUSH {\"jid\":\"job-queued-0001\",\"jobtype\":\"Keep\",\"args\":[1,\"x\",{\"y\":"
             "9007199254740993}],\"custom\":{\"c\":true},\"extra\":\"field\",\"priority\":7}");
    TH_PUSH(c, "job-held-0001", "\"queue\":\"held\"");
    TH_OK(c, "QUEUE PAUSE held");
}

static void check_every_state(struct th_conn *c) {
    json_t *info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.default"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.held"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.tasks.Busy.size"), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 2);

    /* The paused queue is still paused, and the queued job is unchanged. */
    json_t *job = TH_FETCH_JID(c, "held default", "job-queued-0001");
    TH_EQ_STR(TH_JSTR(job, "jobtype"), "Keep");
    TH_CHECK(strstr(c->reply.body, "9007199254740993") != NULL);
    TH_CHECK(json_is_true(th_json_get(job, "custom.c")));
    TH_EQ_STR(TH_JSTR(job, "extra"), "field");

    /* Restored reservations can still be acknowledged and failed. */
    TH_OK(c, "ACK {\"jid\":\"job-busy-0001\"}");
    TH_OK(c, "FAIL {\"jid\":\"job-busy-0002\",\"errtype\":\"E\",\"message\":\"after restart\"}");
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 2);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 5);
    TH_EQ_INT(TH_JINT(info, "faktory.total_failures"), 3);

    TH_OK(c, "QUEUE RESUME held");
    TH_FETCH_JID(c, "held", "job-held-0001");
    TH_OK(c, "ACK {\"jid\":\"job-queued-0001\"}");
    TH_OK(c, "ACK {\"jid\":\"job-held-0001\"}");
    TH_INFO_EQ(c, "faktory.sets.working", 0);

    /* Scheduled and retry jobs still come due. */
    TH_CLOCK(c, 3700);
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.retries"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.default"), 3);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\"}");
    TH_INFO_EQ(c, "faktory.queues.default", 4);
}

static void state_survives_sigterm_restart(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    build_every_state(c);
    th_close(c);
    th_server_stop(srv);
    th_server_restart(srv);
    check_every_state(th_producer(srv));
}

static void state_survives_sigkill_restart(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    build_every_state(c);
    /* Every +OK above was committed before it was sent, so a crash right now loses nothing. */
    th_server_kill(srv);
    th_close(c);
    th_server_restart(srv);
    check_every_state(th_producer(srv));
}

static void state_survives_sigkill_with_os_durability(void) {
    /* "os" skips the fsync, which still survives a crash of the process itself. */
    struct th_server_opts opts = { .toml = "[fabrik]\ndurability = \"os\"\n" };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    build_every_state(c);
    th_server_kill(srv);
    th_close(c);
    th_server_restart(srv);
    check_every_state(th_producer(srv));
}

static void restart_twice_keeps_counts_exact(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    for (int i = 0; i < 50; i++) {
        TH_PUSH(c, th_fmt("job-count-%04d", i), NULL);
    }
    th_server_kill(srv);
    th_server_restart(srv);
    c = th_producer(srv);
    for (int i = 50; i < 100; i++) {
        TH_PUSH(c, th_fmt("job-count-%04d", i), NULL);
    }
    th_server_stop(srv);
    th_server_restart(srv);
    c = th_producer(srv);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 100);
    for (int i = 0; i < 100; i++) {
        TH_FETCH_JID(c, "default", th_fmt("job-count-%04d", i));
    }
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 0);
}

static void expired_reservation_after_restart_goes_to_retry(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    /* A minimal client's job: no retry key at all. */
    TH_OK(c, "PUSH {\"jid\":\"job-boot-0001\",\"jobtype\":\"T\",\"args\":[],\"reserve_for\":60}");
    TH_FETCH_JID(c, "default", "job-boot-0001");
    th_close(c);
    th_server_stop(srv);
    th_server_restart(srv);

    c = th_producer(srv);
    TH_INFO_EQ(c, "faktory.sets.working", 1);
    TH_CLOCK(c, 61);
    TH_INFO_EQ(c, "faktory.sets.working", 0);
    TH_INFO_EQ(c, "faktory.sets.retries", 1);
    TH_CLOCK(c, 45);
    json_t *job = TH_FETCH_JID(c, "default", "job-boot-0001");
    TH_EQ_STR(TH_JSTR(job, "failure.errtype"), "ReservationExpired");
    TH_EQ_INT(TH_JINT(job, "failure.remaining"), 25);
    TH_EQ_INT(TH_JINT(job, "retry"), 25);
}

static void restored_reservation_can_be_acked_after_crash(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *w = th_worker(srv, "restart-worker");
    TH_PUSH(w, "job-crash-0001", NULL);
    TH_FETCH_JID(w, "default", "job-crash-0001");
    th_server_kill(srv);
    th_server_restart(srv);

    /* The worker reconnects and acknowledges the job it was running. */
    th_close(w);
    w = th_worker(srv, "restart-worker");
    TH_INFO_EQ(w, "faktory.sets.working", 1);
    TH_OK(w, "ACK {\"jid\":\"job-crash-0001\"}");
    json_t *info = TH_INFO(w);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.working"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.total_enqueued"), 0);
}

static void sigterm_during_blocked_fetch_exits_cleanly(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    struct th_conn *w = th_worker(srv, "waiting-worker");
    TH_PUSH(p, "job-kept-0001", "\"queue\":\"kept\"");
    th_send(w, "FETCH empty");
    th_sleep_ms(200);
    double started = th_now();
    th_server_stop(srv);
    TH_RANGE(th_now() - started, 0, 5);

    th_server_restart(srv);
    p = th_producer(srv);
    TH_FETCH_JID(p, "kept", "job-kept-0001");
}

/* A second server on a data directory in use must not start: SQLite's exclusive lock stops it
 * with a message that names the likely cause. */
static void second_server_on_same_data_dir_refused(void) {
    th_require_private_server();
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    TH_PUSH(p, "job-lock-0001", NULL);

    char *log_path = th_fmt("%s/second.log", th_case_dir());
    char *config_dir = th_fmt("%s/second-config", th_case_dir());
    if (mkdir(config_dir, 0700) != 0)
        th_fail("cannot create %s: %s", config_dir, strerror(errno));
    /* Its own free port, so only the data directory is shared. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (probe < 0 || bind(probe, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(probe, (struct sockaddr *)&addr, &len) != 0)
        th_fail("cannot find a free port: %s", strerror(errno));
    close(probe);
    char *binding = th_fmt("127.0.0.1:%d", ntohs(addr.sin_port));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        th_fail("fork failed: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(th_server_binary(), th_server_binary(), "-b", binding, "-w", "127.0.0.1:0",
              "-d", srv->data_dir, "-c", config_dir, "-e", "development", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    double deadline = th_now() + 10;
    pid_t done = 0;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && th_now() < deadline)
        th_sleep_ms(20);
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        th_fail("a second server on the same data directory kept running");
    }
    TH_CHECK(WIFEXITED(status));
    TH_CHECK(WEXITSTATUS(status) != 0);
    char log[4096] = "";
    FILE *f = fopen(log_path, "r");
    if (f) {
        size_t n = fread(log, 1, sizeof log - 1, f);
        log[n] = '\0';
        fclose(f);
    }
    TH_CHECK(strstr(log, "another fabrik is probably using this data directory") != NULL);

    /* The first server still owns its data and works. */
    TH_EQ_INT(TH_QUEUE_SIZE(p, "default"), 1);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(state_survives_sigterm_restart),
        TH_CASE(state_survives_sigkill_restart),
        TH_CASE(state_survives_sigkill_with_os_durability),
        TH_CASE(restart_twice_keeps_counts_exact),
        TH_CASE(expired_reservation_after_restart_goes_to_retry),
        TH_CASE(restored_reservation_can_be_acked_after_crash),
        TH_CASE(sigterm_during_blocked_fetch_exits_cleanly),
        TH_CASE(second_server_on_same_data_dir_refused),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
