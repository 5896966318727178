/* fabrikctl and the two examples, run as programs against the real server. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"

/* Runs fabrikctl with the given arguments (NULL-terminated) against srv and returns the exit
 * status; *out receives stdout. */
static int ctl(struct th_server *srv, char **out, ...) {
    const char *argv[32] = {ct_binary("FABRIKCTL_BIN")};
    size_t n = 1;
    va_list ap;
    va_start(ap, out);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) != NULL && n < 31)
        argv[n++] = arg;
    va_end(ap);
    argv[n] = NULL;
    const char *env[] = {
        th_fmt("FAKTORY_URL=%s", srv ? ct_url(srv) : "tcp://127.0.0.1:1"),
        th_fmt("FABRIK_WEB_URL=http://127.0.0.1:%d", srv ? ct_web_port(srv) : 1),
        NULL,
    };
    return ct_run(argv, env, out);
}

static json_t *parse(const char *text) {
    json_t *doc = th_keep_json(json_loads(text, JSON_DECODE_ANY, NULL));
    if (!doc)
        th_fail("fabrikctl printed invalid JSON: %s", text);
    return doc;
}

static void ctl_push_and_stats(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    char *out = NULL;
    TH_EQ_INT(ctl(srv, &out, "push", "Email", "a@b.c", "42", "--queue", "mail", "--priority",
                  "7", "--jid", "ctl-push-job-01", NULL), 0);
    TH_EQ_STR(out, "pushed ctl-push-job-01\n");
    TH_EQ_INT(ctl(srv, &out, "push", "Later", "--in", "3600", "--json", NULL), 0);
    TH_CHECK(strlen(TH_JSTR(parse(out), "jid")) == FABRIK_JID_LEN);

    struct th_conn *raw = th_producer(srv);
    json_t *job = TH_FETCH_JID(raw, "mail", "ctl-push-job-01");
    TH_EQ_INT(TH_JINT(job, "priority"), 7);
    TH_EQ_STR(json_string_value(json_array_get(json_object_get(job, "args"), 0)), "a@b.c");
    TH_EQ_INT(json_integer_value(json_array_get(json_object_get(job, "args"), 1)), 42);
    TH_OK(raw, "ACK {\"jid\":\"ctl-push-job-01\"}");

    TH_EQ_INT(ctl(srv, &out, "stats", NULL), 0);
    TH_CHECK(strstr(out, "processed          1") != NULL);
    TH_CHECK(strstr(out, "scheduled          1") != NULL);
    TH_EQ_INT(ctl(srv, &out, "stats", "--json", NULL), 0);
    json_t *info = parse(out);
    TH_EQ_INT(TH_JINT(info, "faktory.total_processed"), 1);
    TH_EQ_STR(TH_JSTR(info, "server.description"), "fabrik");
}

static void ctl_queue_commands(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    char *out = NULL;
    TH_EQ_INT(ctl(srv, &out, "push", "T", "-q", "work", NULL), 0);
    TH_EQ_INT(ctl(srv, &out, "push", "T", "-q", "other", NULL), 0);

    TH_EQ_INT(ctl(srv, &out, "queue", "pause", "work", NULL), 0);
    TH_EQ_STR(out, "paused work\n");
    TH_EQ_INT(ctl(srv, &out, "queues", NULL), 0);
    TH_CHECK(strstr(out, "QUEUE") != NULL);
    TH_CHECK(strstr(out, "work") != NULL && strstr(out, "yes") != NULL);
    TH_EQ_INT(ctl(srv, &out, "queues", "--json", NULL), 0);
    json_t *queues = parse(out);
    TH_EQ_INT(json_array_size(queues), 2);
    json_t *other = json_array_get(queues, 0);
    json_t *work = json_array_get(queues, 1);
    TH_EQ_STR(TH_JSTR(work, "name"), "work");
    TH_CHECK(json_is_true(json_object_get(work, "paused")));
    TH_CHECK(json_is_false(json_object_get(other, "paused")));
    TH_EQ_INT(TH_JINT(work, "size"), 1);

    TH_EQ_INT(ctl(srv, &out, "queue", "resume", "work", "--json", NULL), 0);
    TH_EQ_STR(out, "{\"ok\":true}\n");
    TH_EQ_INT(ctl(srv, &out, "queue", "clear", "work", NULL), 0);
    TH_EQ_INT(ctl(srv, &out, "queues", "--json", NULL), 0);
    TH_EQ_INT(json_array_size(parse(out)), 1);
}

static void ctl_set_commands(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    char *out = NULL;
    for (int i = 1; i <= 3; i++)
        TH_EQ_INT(ctl(srv, &out, "push", "Later", "--in", "3600", "--jid",
                      th_fmt("ctl-set-job-%d", i), NULL), 0);

    TH_EQ_INT(ctl(srv, &out, "list", "scheduled", NULL), 0);
    TH_CHECK(strstr(out, "ctl-set-job-2") != NULL);
    TH_CHECK(strstr(out, "3 jobs in scheduled") != NULL);
    TH_EQ_INT(ctl(srv, &out, "list", "scheduled", "--json", "--per-page", "2", NULL), 0);
    json_t *page = parse(out);
    TH_EQ_INT(TH_JINT(page, "total"), 3);
    TH_EQ_INT(json_array_size(json_object_get(page, "jobs")), 2);

    TH_EQ_INT(ctl(srv, &out, "retry", "scheduled", "ctl-set-job-1", NULL), 0);
    TH_EQ_INT(ctl(srv, &out, "kill", "scheduled", "ctl-set-job-2", NULL), 0);
    TH_EQ_INT(ctl(srv, &out, "list", "dead", "--json", NULL), 0);
    TH_EQ_INT(TH_JINT(parse(out), "total"), 1);
    TH_EQ_INT(ctl(srv, &out, "discard", "scheduled", "--all", NULL), 0);
    TH_EQ_INT(ctl(srv, &out, "stats", "--json", NULL), 0);
    json_t *info = parse(out);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.dead"), 1);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.default"), 1);
}

static void ctl_batch_and_track(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    struct th_conn *raw = th_producer(srv);
    const struct th_reply *r = th_cmd(raw, "BATCH NEW {\"description\":\"ctl batch\","
                                           "\"success\":{\"jobtype\":\"Done\",\"args\":[]}}");
    TH_EQ_INT(r->kind, TH_BULK);
    const char *bid = th_fmt("%s", r->body);
    TH_OK(raw, "PUSH {\"jid\":\"ctl-batch-job-1\",\"jobtype\":\"T\",\"args\":[],"
               "\"custom\":{\"bid\":\"%s\"}}", bid);
    TH_OK(raw, "BATCH COMMIT %s", bid);

    char *out = NULL;
    TH_EQ_INT(ctl(srv, &out, "batch", "status", bid, NULL), 0);
    TH_CHECK(strstr(out, "description    ctl batch\n") != NULL);
    TH_CHECK(strstr(out, "pending        1\n") != NULL);
    TH_EQ_INT(ctl(srv, &out, "batch", "status", bid, "--json", NULL), 0);
    json_t *status = parse(out);
    TH_EQ_STR(TH_JSTR(status, "bid"), bid);
    TH_EQ_INT(TH_JINT(status, "total"), 1);
    /* An unknown batch is a server error: exit 1 and nothing on stdout. */
    TH_EQ_INT(ctl(srv, &out, "batch", "status", "b-unknown", NULL), 1);
    TH_EQ_STR(out, "");

    TH_OK(raw, "PUSH {\"jid\":\"ctl-track-job1\",\"jobtype\":\"T\",\"args\":[],"
               "\"queue\":\"tracked\",\"custom\":{\"track\":1}}");
    TH_FETCH_JID(raw, "tracked", "ctl-track-job1");
    TH_OK(raw, "TRACK SET {\"jid\":\"ctl-track-job1\",\"percent\":40,\"desc\":\"halfway\"}");
    TH_EQ_INT(ctl(srv, &out, "track", "get", "ctl-track-job1", NULL), 0);
    TH_CHECK(strstr(out, "desc           halfway\n") != NULL);
    TH_EQ_INT(ctl(srv, &out, "track", "get", "ctl-track-job1", "--json", NULL), 0);
    json_t *track = parse(out);
    TH_EQ_STR(TH_JSTR(track, "state"), "working");
    TH_EQ_INT(TH_JINT(track, "percent"), 40);
    TH_EQ_INT(ctl(srv, &out, "track", "get", "ctl-no-such-job", "--json", NULL), 0);
    TH_EQ_STR(TH_JSTR(parse(out), "state"), "unknown");
}

/* A backup through fabrikctl, restored into a second server that must hold the same jobs. */
static void ctl_backup_and_restore(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    char *out = NULL;
    TH_EQ_INT(ctl(srv, &out, "push", "T", "--queue", "saved", "--jid", "ctl-backup-job1", NULL),
              0);
    TH_EQ_INT(ctl(srv, &out, "push", "Later", "--in", "3600", NULL), 0);

    TH_EQ_INT(ctl(srv, &out, "backup", NULL), 0);
    TH_CHECK(strstr(out, "jobs       queued 1, scheduled 1, retries 0, working 0, dead 0\n")
             != NULL);
    TH_EQ_INT(ctl(srv, &out, "backup", "--json", NULL), 0);
    json_t *made = parse(out);
    TH_EQ_INT(TH_JINT(made, "jobs.queued"), 1);
    TH_EQ_INT(TH_JINT(made, "jobs.scheduled"), 1);
    const char *file = TH_JSTR(made, "file");
    TH_CHECK(strncmp(file, srv->data_dir, strlen(srv->data_dir)) == 0);
    struct stat st;
    TH_EQ_INT(stat(file, &st), 0);
    TH_EQ_INT(st.st_size, TH_JINT(made, "bytes"));

    TH_EQ_INT(ctl(srv, &out, "backup", "list", NULL), 0);
    TH_CHECK(strstr(out, TH_JSTR(made, "name")) != NULL);
    TH_CHECK(strstr(out, "-- 2 backups in ") != NULL);
    TH_EQ_INT(ctl(srv, &out, "backup", "list", "--json", NULL), 0);
    TH_EQ_INT(json_array_size(json_object_get(parse(out), "backups")), 2);
    /* A trailing slash on the web URL is ignored. */
    const char *slashed = th_fmt("http://127.0.0.1:%d/", ct_web_port(srv));
    TH_EQ_INT(ctl(srv, &out, "backup", "list", "--web-url", slashed, NULL), 0);
    TH_CHECK(strstr(out, "-- 2 backups in ") != NULL);

    const char *restored = th_fmt("%s/restored", srv->data_dir);
    TH_EQ_INT(mkdir(restored, 0700), 0);
    TH_EQ_INT(rename(file, th_fmt("%s/fabrik.db", restored)), 0);
    struct th_server *copy = th_server_start(&(struct th_server_opts){.data_dir = restored});
    struct th_conn *raw = th_producer(copy);
    TH_INFO_EQ(raw, "faktory.queues.saved", 1);
    TH_INFO_EQ(raw, "faktory.sets.scheduled", 1);
    TH_FETCH_JID(raw, "saved", "ctl-backup-job1");
}

static void ctl_usage_errors(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    char *out = NULL;
    TH_EQ_INT(ctl(srv, &out, NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "frobnicate", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "push", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "push", "T", "--priority", "12", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "push", "T", "--args", "{}", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "push", "T", "--custom", "[1]", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "push", "T", "--no-such-option", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "queue", "explode", "q", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "kill", "dead", "job-x-0001", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "queue", "pause", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "list", "morgue", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "retry", "dead", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "retry", "dead", "jid-1", "--all", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "batch", "open", "b-1", NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "backup", "now", NULL), 2);
    /* Web URLs must be http or https and parse; an ftp:// URL used to wait for a greeting. */
    static const char *const bad_web_urls[] = {"ftp://127.0.0.1:7420", "http://127.0.0.1:99999",
                                               "http://[::1", "127.0.0.1:7420", ""};
    for (size_t i = 0; i < sizeof bad_web_urls / sizeof bad_web_urls[0]; i++)
        TH_EQ_INT(ctl(srv, &out, "backup", "--web-url", bad_web_urls[i], NULL), 2);
    TH_EQ_INT(ctl(srv, &out, "stats", "--url", "http://127.0.0.1:1", NULL), 2);
    /* A server error: the server rejects an invalid queue name. */
    TH_EQ_INT(ctl(srv, &out, "push", "T", "--queue", "bad/name", NULL), 1);
    TH_EQ_INT(ctl(srv, &out, "list", "retries", "--page", "0", NULL), 2);

    static const char *const commands[] = {"push", "stats", "queues", "queue", "list", "retry",
                                           "kill", "discard", "batch", "track", "backup"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        TH_EQ_INT(ctl(srv, &out, commands[i], "--help", NULL), 0);
        TH_CHECK(strncmp(out, "usage: fabrikctl ", 17) == 0);
    }
    TH_EQ_INT(ctl(srv, &out, "--help", NULL), 0);
    TH_CHECK(strstr(out, "exit status") != NULL);
    TH_EQ_INT(ctl(srv, &out, "--version", NULL), 0);
}

static void ctl_connection_and_auth_errors(void) {
    char *out = NULL;
    /* Nothing listens on port 1 of 127.0.0.1. */
    TH_EQ_INT(ctl(NULL, &out, "stats", NULL), 3);
    TH_EQ_INT(ctl(NULL, &out, "list", "dead", NULL), 3);
    TH_EQ_INT(ctl(NULL, &out, "backup", NULL), 3);

    struct th_server *srv = ct_server_start_web("ctl-secret");
    TH_EQ_INT(ctl(srv, &out, "stats", "--json", NULL), 0);
    TH_EQ_INT(ctl(srv, &out, "stats", "--password", "wrong", NULL), 4);
    /* The web API uses the same password, from the URL or --password. */
    TH_EQ_INT(ctl(srv, &out, "queues", NULL), 0);
    TH_EQ_INT(ctl(srv, &out, "queues", "--password", "wrong", NULL), 4);
    TH_EQ_INT(ctl(srv, &out, "backup", "--password", "wrong", NULL), 4);
    TH_EQ_INT(ctl(srv, &out, "backup", "list", NULL), 0);
}

static void examples_push_and_work(void) {
    struct th_server *srv = th_server_start(NULL);
    const char *producer[] = {ct_binary("FABRIK_EXAMPLE_PRODUCER"), "ops@example.com", NULL};
    const char *env[] = {th_fmt("FAKTORY_URL=%s", ct_url(srv)), NULL};
    char *out = NULL;
    TH_EQ_INT(ct_run(producer, env, &out), 0);
    TH_EQ_INT(strlen(out), FABRIK_JID_LEN + 1);

    /* The worker runs until SIGTERM; its output shows the job. */
    int pipefd[2];
    TH_CHECK(pipe(pipefd) == 0);
    const char *worker = ct_binary("FABRIK_EXAMPLE_WORKER");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        putenv((char *)env[0]);
        execl(worker, worker, "2", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    char line[256] = "";
    FILE *f = fdopen(pipefd[0], "r");
    TH_CHECK(fgets(line, sizeof line, f) != NULL);
    TH_CHECK(strstr(line, "sending mail to ops@example.com") != NULL);
    struct th_conn *raw = th_producer(srv);
    TH_CHECK(CT_WAIT(TH_INFO_INT(raw, "faktory.total_processed") == 1, 5000));

    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    fclose(f);
    TH_CHECK(WIFEXITED(status));
    TH_EQ_INT(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(ctl_push_and_stats),
        TH_CASE(ctl_queue_commands),
        TH_CASE(ctl_set_commands),
        TH_CASE(ctl_batch_and_track),
        TH_CASE(ctl_backup_and_restore),
        TH_CASE(ctl_usage_errors),
        TH_CASE(ctl_connection_and_auth_errors),
        TH_CASE(examples_push_and_work),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
