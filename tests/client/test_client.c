/* libfabrik connection and producer tests against the real server. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_util.h"

/* ---- URLs -------------------------------------------------------------------------------- */

static void url_parse_valid(void) {
    static const struct {
        const char *url, *host, *password;
        int port;
        bool tls;
    } cases[] = {
        {"tcp://localhost", "localhost", NULL, 7419, false},
        {"tcp://127.0.0.1:7419", "127.0.0.1", NULL, 7419, false},
        {"tcp://:s3cret@example.test:1234", "example.test", "s3cret", 1234, false},
        {"tcp://user:pw@h:1/", "h", "pw", 1, false},
        {"tcp+tls://:p%40ss%3a@[::1]:7000", "::1", "p@ss:", 7000, true},
        {"tcp+tls://faktory.internal", "faktory.internal", NULL, 7419, true},
        {"tcp://h:65535", "h", NULL, 65535, false},
        {"tcp://user@h", "h", NULL, 7419, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fabrik_url url;
        int rc = fabrik_url_parse(cases[i].url, &url);
        if (rc != 0)
            th_fail("fabrik_url_parse(\"%s\") returned %d", cases[i].url, rc);
        TH_EQ_STR(url.host, cases[i].host);
        TH_EQ_INT(url.port, cases[i].port);
        TH_EQ_INT(url.tls, cases[i].tls);
        if (cases[i].password)
            TH_EQ_STR(url.password, cases[i].password);
        else
            TH_CHECK(url.password == NULL);
        fabrik_url_clear(&url);
    }
}

static void url_parse_invalid(void) {
    static const char *const bad[] = {
        "", "localhost:7419", "http://h:7419", "tcp://", "tcp://:pw@", "tcp://h:0",
        "tcp://h:65536", "tcp://h:abc", "tcp://h:", "tcp://h:12/path", "tcp://[::1",
        "tcp://[::1]x", "tcp://:%zz@h", "tcp://:%4@h", "tcp://h h", "TCP://h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fabrik_url url;
        int rc = fabrik_url_parse(bad[i], &url);
        if (rc != FABRIK_EINVAL)
            th_fail("fabrik_url_parse(\"%s\") returned %d, expected FABRIK_EINVAL", bad[i], rc);
        TH_CHECK(url.host == NULL);
    }
    TH_EQ_INT(fabrik_url_parse(NULL, NULL), FABRIK_EINVAL);

    struct fabrik_options opts;
    fabrik_options_init(&opts);
    opts.url = "redis://127.0.0.1:6379";
    struct fabrik_client *c = (struct fabrik_client *)1;
    char err[256] = "";
    TH_EQ_INT(fabrik_client_open(&c, &opts, err, sizeof err), FABRIK_EINVAL);
    TH_CHECK(c == NULL);
    TH_CHECK(strstr(err, "redis://127.0.0.1:6379") != NULL);
}

static void url_from_environment(void) {
    unsetenv("FAKTORY_PROVIDER");
    unsetenv("FAKTORY_URL");
    TH_EQ_STR(fabrik_url_from_env(), "tcp://127.0.0.1:7419");

    setenv("FAKTORY_URL", "tcp://:pw@10.0.0.1:1", 1);
    TH_EQ_STR(fabrik_url_from_env(), "tcp://:pw@10.0.0.1:1");

    setenv("FAKTORY_PROVIDER", "MY_FAKTORY", 1);
    setenv("MY_FAKTORY", "tcp+tls://queue.test:9000", 1);
    TH_EQ_STR(fabrik_url_from_env(), "tcp+tls://queue.test:9000");

    unsetenv("MY_FAKTORY");
    TH_CHECK(fabrik_url_from_env() == NULL);

    setenv("FAKTORY_PROVIDER", "tcp://127.0.0.1:7419", 1);
    TH_CHECK(fabrik_url_from_env() == NULL);
}

static void url_environment_connects(void) {
    struct th_server *srv = th_server_start(NULL);
    setenv("FAKTORY_PROVIDER", "QUEUE_URL", 1);
    setenv("QUEUE_URL", ct_url(srv), 1);
    struct fabrik_client *c = NULL;
    char err[256];
    int rc = fabrik_client_open(&c, NULL, err, sizeof err);
    if (rc != 0)
        th_fail("open from FAKTORY_PROVIDER failed: %s", err);
    CT_OK(c, fabrik_command(c, "FLUSH", NULL));
    fabrik_client_close(c);
}

/* ---- handshake --------------------------------------------------------------------------- */

static int open_with(struct th_server *srv, const char *url, const char *password,
                     char *err, size_t errlen) {
    struct fabrik_options opts;
    ct_options(srv, &opts);
    opts.url = url;
    opts.password = password;
    struct fabrik_client *c = NULL;
    int rc = fabrik_client_open(&c, &opts, err, errlen);
    if (rc == 0) {
        char *info = NULL;
        CT_OK(c, fabrik_info(c, &info));
        fabrik_free(info);
        fabrik_client_close(c);
    }
    return rc;
}

static void password_handshake(void) {
    struct th_server_opts so = {.password = "s3cret words"};
    struct th_server *srv = th_server_start(&so);
    char err[256];
    const char *base = th_fmt("tcp://127.0.0.1:%d", srv->port);

    TH_EQ_INT(open_with(srv, th_fmt("tcp://:s3cret%%20words@127.0.0.1:%d", srv->port), NULL,
                        err, sizeof err), 0);
    TH_EQ_INT(open_with(srv, base, "s3cret words", err, sizeof err), 0);
    /* The options' password wins over the URL's. */
    TH_EQ_INT(open_with(srv, th_fmt("tcp://:wrong@127.0.0.1:%d", srv->port), "s3cret words",
                        err, sizeof err), 0);

    TH_EQ_INT(open_with(srv, base, "wrong", err, sizeof err), FABRIK_EAUTH);
    TH_CHECK(strstr(err, "Invalid password") != NULL);
    TH_EQ_INT(open_with(srv, base, NULL, err, sizeof err), FABRIK_EAUTH);
    TH_CHECK(strstr(err, "requires a password") != NULL);
}

static void hello_registers_worker(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    struct fabrik_options opts;
    ct_options(srv, &opts);
    const char *labels[] = {"c", "test", NULL};
    opts.wid = "wid-hello-test";
    opts.labels = labels;
    opts.hostname = "client-test-host";
    struct fabrik_client *c = NULL;
    CT_OK(c, fabrik_client_open(&c, &opts, NULL, 0));

    json_t *busy = NULL;
    TH_EQ_INT(ct_http(srv, "GET", "/api/busy", NULL, &busy), 200);
    json_t *worker = json_array_get(json_object_get(busy, "workers"), 0);
    TH_EQ_STR(json_string_value(json_object_get(worker, "wid")), "wid-hello-test");
    TH_EQ_STR(json_string_value(json_object_get(worker, "hostname")), "client-test-host");
    TH_EQ_INT(json_integer_value(json_object_get(worker, "pid")), getpid());
    TH_EQ_INT(json_array_size(json_object_get(worker, "labels")), 2);
    CT_OK(c, fabrik_command(c, "BEAT {\"wid\":\"wid-hello-test\"}", NULL));
    fabrik_client_close(c);
}

static void tls_verifies_server(void) {
    struct th_server_opts so = {.tls = true};
    struct th_server *srv = th_server_start(&so);
    char err[256];
    const char *url = th_fmt("tcp+tls://127.0.0.1:%d", srv->port);

    /* ct_options trusts the generated certificate as the CA file. */
    TH_EQ_INT(open_with(srv, url, NULL, err, sizeof err), 0);

    struct fabrik_options opts;
    fabrik_options_init(&opts);
    opts.url = url;
    struct fabrik_client *c = NULL;
    TH_EQ_INT(fabrik_client_open(&c, &opts, err, sizeof err), FABRIK_ETLS);
    TH_CHECK(strstr(err, "certificate") != NULL);

    opts.tls_skip_verify = true;
    CT_OK(c, fabrik_client_open(&c, &opts, err, sizeof err));
    TH_CHECK(fabrik_push(c, "{\"jid\":\"tls-job-000001\",\"jobtype\":\"T\",\"args\":[]}") == 0);
    fabrik_client_close(c);

    opts.tls_skip_verify = false;
    opts.ca_file = th_fmt("%s/no-such-file.pem", th_case_dir());
    TH_EQ_INT(fabrik_client_open(&c, &opts, err, sizeof err), FABRIK_ETLS);

    /* A plain connection to the TLS port gets no greeting. */
    opts.url = th_fmt("tcp://127.0.0.1:%d", srv->port);
    opts.connect_timeout_ms = 1000;
    TH_CHECK(fabrik_client_open(&c, &opts, err, sizeof err) != 0);
}

/* ---- producer commands ------------------------------------------------------------------- */

static json_t *info(struct fabrik_client *c) {
    char *text = NULL;
    CT_OK(c, fabrik_info(c, &text));
    json_t *doc = th_keep_json(json_loads(text, 0, NULL));
    fabrik_free(text);
    TH_CHECK(doc != NULL);
    return doc;
}

static long long info_int(struct fabrik_client *c, const char *path) {
    return TH_JINT(info(c), path);
}

static long long queue_size(struct fabrik_client *c, const char *queue) {
    json_t *size = json_object_get(th_json_get(info(c), "faktory.queues"), queue);
    return size ? json_integer_value(size) : 0;
}

static void push_builder_and_json(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_client *c = ct_open(srv);

    struct fabrik_job *job = fabrik_job_new("Build");
    TH_CHECK(job != NULL);
    TH_EQ_INT(strlen(fabrik_job_jid(job)), FABRIK_JID_LEN);
    CT_OK(c, fabrik_job_set_queue(job, "builds"));
    CT_OK(c, fabrik_job_add_arg_int(job, 42));
    CT_OK(c, fabrik_job_add_arg_string(job, "x y"));
    CT_OK(c, fabrik_job_add_arg_json(job, "{\"k\":[1,2]}"));
    CT_OK(c, fabrik_job_set_priority(job, 9));
    CT_OK(c, fabrik_job_set_retry(job, 3));
    CT_OK(c, fabrik_job_set_custom(job, "team", "\"core\""));
    TH_EQ_INT(fabrik_job_set_args(job, "{}"), FABRIK_EINVAL);
    TH_EQ_INT(fabrik_job_add_arg_json(job, "{bad"), FABRIK_EINVAL);
    CT_OK(c, fabrik_job_set_jid(job, "builder-job-1"));
    CT_OK(c, fabrik_push_job(c, job));
    fabrik_job_free(job);

    struct th_conn *raw = th_producer(srv);
    json_t *fetched = TH_FETCH_JID(raw, "builds", "builder-job-1");
    TH_EQ_STR(TH_JSTR(fetched, "jobtype"), "Build");
    TH_EQ_INT(TH_JINT(fetched, "priority"), 9);
    TH_EQ_INT(TH_JINT(fetched, "retry"), 3);
    TH_EQ_STR(TH_JSTR(fetched, "custom.team"), "core");
    json_t *args = json_object_get(fetched, "args");
    TH_EQ_INT(json_integer_value(json_array_get(args, 0)), 42);
    TH_EQ_STR(json_string_value(json_array_get(args, 1)), "x y");
    TH_EQ_INT(json_array_size(json_object_get(json_array_get(args, 2), "k")), 2);

    /* Spaces in the JSON are re-encoded away before the line is sent. */
    CT_OK(c, fabrik_push(c, "{ \"jid\": \"json-job-0001\", \"jobtype\": \"J\", \"args\": [ ] }"));
    TH_EQ_INT(queue_size(c, "default"), 1);

    TH_EQ_INT(fabrik_push(c, "[1]"), FABRIK_EINVAL);
    TH_EQ_INT(fabrik_push(c, "{not json"), FABRIK_EINVAL);
    TH_EQ_INT(fabrik_push(c, "{\"jid\":\"no-type-job-1\",\"args\":[]}"), FABRIK_ESERVER);
    TH_EQ_STR(fabrik_client_error(c), "jobs must have a jobtype parameter");
    /* The connection stays usable after an error reply. */
    TH_EQ_INT(queue_size(c, "default"), 1);

    struct fabrik_job *later = fabrik_job_new("Later");
    CT_OK(c, fabrik_job_set_in(later, 3600));
    CT_OK(c, fabrik_push_job(c, later));
    fabrik_job_free(later);
    TH_EQ_INT(info_int(c, "faktory.sets.scheduled"), 1);
    fabrik_client_close(c);
}

static void push_bulk_reports_errors(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_client *c = ct_open(srv);

    struct fabrik_push_error *errors = NULL;
    size_t count = 99;
    CT_OK(c, fabrik_push_bulk(c, "[{\"jid\":\"bulk-job-00001\",\"jobtype\":\"B\",\"args\":[1]},"
                                 "{\"jid\":\"bulk-job-00002\",\"args\":[2]},"
                                 "{\"jid\":\"bulk-job-00003\",\"jobtype\":\"B\",\"args\":[3]}]",
                              &errors, &count));
    TH_EQ_INT(count, 1);
    TH_EQ_STR(errors[0].jid, "bulk-job-00002");
    TH_EQ_STR(errors[0].message, "jobs must have a jobtype parameter");
    TH_EQ_INT(errors[0].code, FABRIK_ESERVER);
    fabrik_push_errors_free(errors, count);
    TH_EQ_INT(queue_size(c, "default"), 2);

    CT_OK(c, fabrik_push_bulk(c, "[{\"jid\":\"bulk-job-00004\",\"jobtype\":\"B\",\"args\":[]}]",
                              &errors, &count));
    TH_EQ_INT(count, 0);
    fabrik_push_errors_free(errors, count);
    CT_OK(c, fabrik_push_bulk(c, "[]", NULL, NULL));
    TH_EQ_INT(fabrik_push_bulk(c, "{\"jid\":1}", &errors, &count), FABRIK_EINVAL);
    TH_CHECK(errors == NULL);
    TH_EQ_INT(queue_size(c, "default"), 3);
    fabrik_client_close(c);
}

static void queue_operations(void) {
    struct th_server *srv = ct_server_start_web(NULL);
    struct fabrik_client *c = ct_open(srv);
    CT_OK(c, fabrik_push(c, "{\"jid\":\"queue-job-001\",\"jobtype\":\"Q\",\"args\":[],"
                            "\"queue\":\"alpha\"}"));
    CT_OK(c, fabrik_push(c, "{\"jid\":\"queue-job-002\",\"jobtype\":\"Q\",\"args\":[],"
                            "\"queue\":\"beta\"}"));

    const char *alpha[] = {"alpha"};
    CT_OK(c, fabrik_queue_pause(c, alpha, 1));
    char *reply = (char *)"unset";
    CT_OK(c, fabrik_command(c, "FETCH alpha", &reply));
    TH_CHECK(reply == NULL);
    json_t *queues = NULL;
    TH_EQ_INT(ct_http(srv, "GET", "/api/queues/alpha", NULL, &queues), 200);
    TH_CHECK(json_is_true(th_json_get(queues, "queue.paused")));

    CT_OK(c, fabrik_queue_resume(c, alpha, 1));
    CT_OK(c, fabrik_command(c, "FETCH alpha", &reply));
    TH_CHECK(reply != NULL && strstr(reply, "queue-job-001"));
    fabrik_free(reply);

    const char *both[] = {"alpha", "beta"};
    char *latency = NULL;
    CT_OK(c, fabrik_queue_latency(c, both, 2, &latency));
    json_t *lat = th_keep_json(json_loads(latency, 0, NULL));
    fabrik_free(latency);
    TH_CHECK(json_is_number(json_object_get(lat, "alpha")));
    TH_CHECK(json_number_value(json_object_get(lat, "beta")) >= 0);

    const char *beta[] = {"beta"};
    CT_OK(c, fabrik_queue_remove(c, beta, 1));
    TH_EQ_INT(queue_size(c, "beta"), 0);

    const char *bad[] = {"has space"};
    TH_EQ_INT(fabrik_queue_pause(c, bad, 1), FABRIK_EINVAL);
    TH_EQ_INT(fabrik_queue_pause(c, alpha, 0), FABRIK_EINVAL);
    TH_EQ_INT(fabrik_queue_latency(c, (const char *[]){"*"}, 1, &latency), FABRIK_ESERVER);
    fabrik_client_close(c);
}

static void mutate_and_flush(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_client *c = ct_open(srv);
    for (int i = 1; i <= 3; i++) {
        struct fabrik_job *job = fabrik_job_new("Later");
        CT_OK(c, fabrik_job_set_jid(job, th_fmt("mutate-job-%d", i)));
        CT_OK(c, fabrik_job_set_in(job, 3600));
        CT_OK(c, fabrik_push_job(c, job));
        fabrik_job_free(job);
    }
    TH_EQ_INT(info_int(c, "faktory.sets.scheduled"), 3);

    CT_OK(c, fabrik_mutate(c, "requeue", "scheduled", "{\"jids\":[\"mutate-job-1\"]}"));
    TH_EQ_INT(queue_size(c, "default"), 1);
    CT_OK(c, fabrik_mutate(c, "kill", "scheduled", "{\"jids\":[\"mutate-job-2\"]}"));
    TH_EQ_INT(info_int(c, "faktory.sets.dead"), 1);
    CT_OK(c, fabrik_mutate(c, "discard", "dead", NULL));
    TH_EQ_INT(info_int(c, "faktory.sets.dead"), 0);
    TH_EQ_INT(info_int(c, "faktory.sets.scheduled"), 1);

    TH_EQ_INT(fabrik_mutate(c, "explode", "dead", NULL), FABRIK_ESERVER);
    TH_EQ_INT(fabrik_mutate(c, "kill", "scheduled", "[1]"), FABRIK_EINVAL);

    CT_OK(c, fabrik_flush(c));
    TH_EQ_INT(info_int(c, "faktory.sets.scheduled"), 0);
    TH_EQ_INT(queue_size(c, "default"), 0);

    TH_EQ_INT(fabrik_command(c, "NOSUCHVERB", NULL), FABRIK_ESERVER);
    TH_EQ_STR(fabrik_client_error(c), "unknown command NOSUCHVERB");
    TH_EQ_INT(fabrik_command(c, "INFO\r\nFLUSH", NULL), FABRIK_EINVAL);
    fabrik_client_close(c);
}

/* BATCH and TRACK: the server may not have them yet. Then every call must fail with the
 * server's message; once they exist, the full round trip is checked. */
static void batch_and_track(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_client *c = ct_open(srv);
    char *bid = NULL;
    int rc = fabrik_batch_new(c, "{\"description\":\"nightly\",\"success\":{\"jobtype\":\"Done\","
                                 "\"args\":[],\"queue\":\"callbacks\"}}", &bid);
    if (rc != 0) {
        TH_EQ_INT(rc, FABRIK_ESERVER);
        TH_EQ_STR(fabrik_client_error(c), "batch subsystem is not available yet");
        TH_EQ_INT(fabrik_batch_status(c, "b-unknown", &bid), FABRIK_ESERVER);
        TH_EQ_INT(fabrik_batch_commit(c, "b-unknown"), FABRIK_ESERVER);
        TH_EQ_INT(fabrik_batch_open(c, "b-unknown", NULL), FABRIK_ESERVER);
    } else {
        TH_CHECK(strncmp(bid, "b-", 2) == 0);
        struct fabrik_job *job = fabrik_job_new("InBatch");
        CT_OK(c, fabrik_job_set_custom(job, "bid", th_fmt("\"%s\"", bid)));
        CT_OK(c, fabrik_push_job(c, job));
        fabrik_job_free(job);
        char *opened = NULL;
        CT_OK(c, fabrik_batch_open(c, bid, &opened));
        TH_EQ_STR(opened, bid);
        fabrik_free(opened);
        CT_OK(c, fabrik_batch_commit(c, bid));
        char *status = NULL;
        CT_OK(c, fabrik_batch_status(c, bid, &status));
        json_t *doc = th_keep_json(json_loads(status, 0, NULL));
        fabrik_free(status);
        TH_EQ_STR(TH_JSTR(doc, "bid"), bid);
        TH_EQ_STR(TH_JSTR(doc, "description"), "nightly");
        TH_EQ_INT(TH_JINT(doc, "total"), 1);
        TH_EQ_INT(TH_JINT(doc, "pending"), 1);
        TH_EQ_INT(fabrik_batch_status(c, "b-unknown", &status), FABRIK_ESERVER);
        TH_CHECK(strstr(fabrik_client_error(c), "b-unknown") != NULL);
        fabrik_free(bid);
    }

    char *tracked = NULL;
    rc = fabrik_track_set(c, "track-job-0001", 50, "half way", NULL);
    if (rc != 0) {
        TH_EQ_INT(rc, FABRIK_ESERVER);
        TH_EQ_STR(fabrik_client_error(c), "tracking subsystem is not available yet");
        TH_EQ_INT(fabrik_track_get(c, "track-job-0001", &tracked), FABRIK_ESERVER);
    } else {
        CT_OK(c, fabrik_track_get(c, "track-job-0001", &tracked));
        json_t *doc = th_keep_json(json_loads(tracked, 0, NULL));
        fabrik_free(tracked);
        TH_EQ_STR(TH_JSTR(doc, "jid"), "track-job-0001");
        TH_CHECK(json_is_string(json_object_get(doc, "state")));
    }
    TH_EQ_INT(fabrik_track_set(c, "j", 101, NULL, NULL), FABRIK_EINVAL);
    TH_EQ_INT(fabrik_track_get(c, "has space", &tracked), FABRIK_EINVAL);
    fabrik_client_close(c);
}

static void error_codes_named(void) {
    static const int codes[] = {FABRIK_OK, FABRIK_EINVAL, FABRIK_ENOMEM, FABRIK_ECONNECT,
                                FABRIK_ETIMEDOUT, FABRIK_ETLS, FABRIK_EAUTH, FABRIK_EPROTOCOL,
                                FABRIK_ESERVER, FABRIK_ENOTUNIQUE, FABRIK_ECODED, FABRIK_ESTATE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        TH_CHECK(strcmp(fabrik_strerror(codes[i]), "unknown error code") != 0);
    TH_EQ_STR(fabrik_strerror(-1), "unknown error code");
}

/* ---- reconnecting ------------------------------------------------------------------------ */

static void reconnect_after_restart(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_options opts;
    ct_options(srv, &opts);
    opts.reconnect_attempts = 20;
    struct fabrik_client *c = NULL;
    CT_OK(c, fabrik_client_open(&c, &opts, NULL, 0));
    CT_OK(c, fabrik_push(c, "{\"jid\":\"restart-job-01\",\"jobtype\":\"R\",\"args\":[]}"));

    th_server_stop(srv);
    /* The first call notices the lost connection; it is not repeated. */
    int rc = fabrik_push(c, "{\"jid\":\"restart-job-02\",\"jobtype\":\"R\",\"args\":[]}");
    TH_CHECK(rc == FABRIK_ECONNECT || rc == FABRIK_ETIMEDOUT);
    th_server_restart(srv);

    CT_OK(c, fabrik_push(c, "{\"jid\":\"restart-job-03\",\"jobtype\":\"R\",\"args\":[]}"));
    TH_EQ_INT(fabrik_client_reconnects(c), 1);
    TH_EQ_INT(queue_size(c, "default"), 2);

    /* With the server gone for good, a call gives up after its attempts. */
    th_server_stop(srv);
    fabrik_client_close(c);
    opts.reconnect_attempts = 2;
    c = NULL;
    char err[256];
    TH_EQ_INT(fabrik_client_open(&c, &opts, err, sizeof err), FABRIK_ECONNECT);
    TH_CHECK(strstr(err, "Connection refused") != NULL);
}

struct info_call {
    struct fabrik_client *client;
    int rc;
};

static void *call_info(void *arg) {
    struct info_call *call = arg;
    char *text = NULL;
    call->rc = fabrik_info(call->client, &text);
    fabrik_free(text);
    return NULL;
}

static void reconnect_waits_for_server(void) {
    struct th_server *srv = th_server_start(NULL);
    struct fabrik_options opts;
    ct_options(srv, &opts);
    opts.reconnect_attempts = 40;
    opts.backoff_initial_ms = 100;
    opts.backoff_max_ms = 300;
    struct fabrik_client *c = NULL;
    CT_OK(c, fabrik_client_open(&c, &opts, NULL, 0));
    th_server_stop(srv);
    TH_CHECK(fabrik_command(c, "INFO", NULL) != 0);

    /* The server comes back while the next call is backing off between attempts. The server
     * is started from this thread because it dies with the thread that forked it. */
    struct info_call call = {.client = c, .rc = -1};
    pthread_t thread;
    pthread_create(&thread, NULL, call_info, &call);
    th_sleep_ms(600);
    th_server_restart(srv);
    pthread_join(thread, NULL);
    if (call.rc != 0)
        th_fail("INFO during the restart failed: %s", fabrik_client_error(c));
    TH_EQ_INT(fabrik_client_reconnects(c), 1);
    fabrik_client_close(c);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(url_parse_valid),
        TH_CASE(url_parse_invalid),
        TH_CASE(url_from_environment),
        TH_CASE(url_environment_connects),
        TH_CASE(password_handshake),
        TH_CASE(hello_registers_worker),
        TH_CASE(tls_verifies_server),
        TH_CASE(push_builder_and_json),
        TH_CASE(push_bulk_reports_errors),
        TH_CASE(queue_operations),
        TH_CASE(mutate_and_flush),
        TH_CASE(batch_and_track),
        TH_CASE(error_codes_named),
        TH_CASE(reconnect_after_restart),
        TH_CASE(reconnect_waits_for_server),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
