/* Job tracking against the real server. A job pushed with custom.track = 1 (or true) has a
 * record that TRACK GET reports: its state (enqueued, working, success, failed, dead), the time
 * of its last update and the progress that TRACK SET stored. TRACK SET also moves the job's
 * reservation deadline with reserve_until: never earlier, at most 24 hours ahead. The cases
 * cover each state change, validation, the reservation extension (a long job that would
 * otherwise run twice), how long records are kept, the tracking_ttl_seconds key, and records
 * and extensions that survive SIGKILL. Server time moves with DEBUG CLOCK. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

/* ---- helpers ---- */

static const char *tracked(const char *extra) {
    return th_fmt("\"custom\":{\"track\":1}%s%s", extra ? "," : "", extra ? extra : "");
}

/* Sends TRACK GET jid and returns the parsed document, failing unless it is a bulk string. */
static json_t *track_get_at(const char *file, int line, struct th_conn *c, const char *jid) {
    th_send(c, "TRACK GET %s", jid);
    const struct th_reply *r = th_read(c, 10000);
    if (r->kind != TH_BULK)
        th_fail_at(file, line, "TRACK GET %s: expected a bulk string, got %s", jid, r->line);
    return th_json_at(file, line, r->body, r->body_len);
}
#define TRACK_GET(c, jid) track_get_at(__FILE__, __LINE__, c, jid)

/* Checks the state that TRACK GET reports for jid. */
#define EXPECT_STATE(c, jid, state) TH_EQ_STR(TH_JSTR(TRACK_GET(c, jid), "state"), state)

/* The server's time plus seconds as RFC 3339 text. */
static const char *time_plus(struct th_conn *c, double seconds) {
    char text[64];
    th_format_time(TH_SERVER_TIME(c) + seconds, text, sizeof text);
    return th_fmt("%s", text);
}

static void fail(struct th_conn *c, const char *jid) {
    TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"planned\"}", jid);
}

/* ---- TRACK GET ---- */

static void unknown_jid_reports_unknown(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const char *doc = "{\"jid\":\"nope-0001\",\"state\":\"unknown\",\"updated_at\":\"\"}";
    TH_EXPECT_RAW(c, th_fmt("$%zu\r\n%s\r\n", strlen(doc), doc), "TRACK GET nope-0001");
    th_server_stop(srv);
}

/* Only custom.track 1 or true turns tracking on. */
static void untracked_job_reports_unknown(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "plain-0001", NULL);
    TH_PUSH(c, "zero-0001", "\"custom\":{\"track\":0}");
    TH_PUSH(c, "string-0001", "\"custom\":{\"track\":\"1\"}");
    TH_PUSH(c, "false-0001", "\"custom\":{\"track\":false}");
    TH_PUSH(c, "true-0001", "\"custom\":{\"track\":true}");
    TH_PUSH(c, "one-0001", tracked(NULL));
    EXPECT_STATE(c, "plain-0001", "unknown");
    EXPECT_STATE(c, "zero-0001", "unknown");
    EXPECT_STATE(c, "string-0001", "unknown");
    EXPECT_STATE(c, "false-0001", "unknown");
    EXPECT_STATE(c, "true-0001", "enqueued");
    EXPECT_STATE(c, "one-0001", "enqueued");

    /* TRACK SET for an untracked job is accepted and stores nothing. */
    TH_OK(c, "TRACK SET {\"jid\":\"plain-0001\",\"percent\":10}");
    json_t *doc = TRACK_GET(c, "plain-0001");
    TH_EQ_STR(TH_JSTR(doc, "state"), "unknown");
    TH_CHECK(json_object_get(doc, "percent") == NULL);
    th_server_stop(srv);
}

/* Enqueued, working with progress, then success with the last progress kept. */
static void lifecycle_with_progress(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "life-0001", tracked(NULL));
    json_t *doc = TRACK_GET(c, "life-0001");
    TH_EQ_STR(TH_JSTR(doc, "jid"), "life-0001");
    TH_EQ_STR(TH_JSTR(doc, "state"), "enqueued");
    double now = TH_SERVER_TIME(c);
    TH_RANGE(TH_TIME(doc, "updated_at"), now - 5, now + 1);
    TH_CHECK(json_object_get(doc, "percent") == NULL);
    TH_CHECK(json_object_get(doc, "desc") == NULL);

    TH_FETCH_JID(c, "default", "life-0001");
    EXPECT_STATE(c, "life-0001", "working");
    TH_OK(c, "TRACK SET {\"jid\":\"life-0001\",\"percent\":50,\"desc\":\"half way\"}");
    doc = TRACK_GET(c, "life-0001");
    TH_EQ_STR(TH_JSTR(doc, "state"), "working");
    TH_EQ_INT(TH_JINT(doc, "percent"), 50);
    TH_EQ_STR(TH_JSTR(doc, "desc"), "half way");

    /* Omitted and null fields keep what was stored. */
    TH_OK(c, "TRACK SET {\"jid\":\"life-0001\",\"percent\":75,\"desc\":null}");
    doc = TRACK_GET(c, "life-0001");
    TH_EQ_INT(TH_JINT(doc, "percent"), 75);
    TH_EQ_STR(TH_JSTR(doc, "desc"), "half way");
    TH_OK(c, "TRACK SET {\"jid\":\"life-0001\",\"desc\":\"almost\"}");
    doc = TRACK_GET(c, "life-0001");
    TH_EQ_INT(TH_JINT(doc, "percent"), 75);
    TH_EQ_STR(TH_JSTR(doc, "desc"), "almost");

    TH_OK(c, "ACK {\"jid\":\"life-0001\"}");
    doc = TRACK_GET(c, "life-0001");
    TH_EQ_STR(TH_JSTR(doc, "state"), "success");
    TH_EQ_INT(TH_JINT(doc, "percent"), 75);
    TH_EQ_STR(TH_JSTR(doc, "desc"), "almost");

    /* TRACK SET after the job finished is accepted. */
    TH_OK(c, "TRACK SET {\"jid\":\"life-0001\",\"percent\":100,\"desc\":\"done\"}");
    doc = TRACK_GET(c, "life-0001");
    TH_EQ_STR(TH_JSTR(doc, "state"), "success");
    TH_EQ_INT(TH_JINT(doc, "percent"), 100);
    TH_EQ_STR(TH_JSTR(doc, "desc"), "done");
    th_server_stop(srv);
}

static void failure_states(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "fail-0001", tracked("\"retry\":1"));
    TH_PUSH(c, "drop-0001", tracked("\"retry\":0"));
    TH_FETCH_JID(c, "default", "fail-0001");
    fail(c, "fail-0001");
    EXPECT_STATE(c, "fail-0001", "failed");
    TH_FETCH_JID(c, "default", "drop-0001");
    fail(c, "drop-0001");
    EXPECT_STATE(c, "drop-0001", "failed");

    /* The retry brings it back into its queue, then it dies. */
    TH_CLOCK(c, 60);
    EXPECT_STATE(c, "fail-0001", "enqueued");
    TH_FETCH_JID(c, "default", "fail-0001");
    EXPECT_STATE(c, "fail-0001", "working");
    fail(c, "fail-0001");
    EXPECT_STATE(c, "fail-0001", "dead");

    /* Retried from the dead set by MUTATE: enqueued again. */
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\",\"filter\":{\"jids\":[\"fail-0001\"]}}");
    EXPECT_STATE(c, "fail-0001", "enqueued");
    th_server_stop(srv);
}

static void scheduled_job_enqueued(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "sched-0001", tracked(th_fmt("\"at\":\"%s\"", time_plus(c, 600))));
    EXPECT_STATE(c, "sched-0001", "enqueued");
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"scheduled\",\"filter\":{\"jids\":[\"sched-0001\"]}}");
    EXPECT_STATE(c, "sched-0001", "dead");
    th_server_stop(srv);
}

static void pushb_jobs_tracked(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT_RAW(c, "$2\r\n{}\r\n",
              "PUSHB [{\"jid\":\"pushb-0001\",\"jobtype\":\"T\",\"args\":[],\"custom\":{\"track\":1}},"
              "{\"jid\":\"pushb-0002\",\"jobtype\":\"T\",\"args\":[]}]");
    EXPECT_STATE(c, "pushb-0001", "enqueued");
    EXPECT_STATE(c, "pushb-0002", "unknown");
    th_server_stop(srv);
}

/* ---- validation ---- */

static void invalid_requests_rejected(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "val-0001", tracked(NULL));
    static const char *const percent_rule =
        "-ERR invalid percent: it must be an integer from 0 to 100";
    TH_EXPECT(c, percent_rule, "TRACK SET {\"jid\":\"val-0001\",\"percent\":101}");
    TH_EXPECT(c, percent_rule, "TRACK SET {\"jid\":\"val-0001\",\"percent\":-1}");
    TH_EXPECT(c, percent_rule, "TRACK SET {\"jid\":\"val-0001\",\"percent\":50.5}");
    TH_EXPECT(c, percent_rule, "TRACK SET {\"jid\":\"val-0001\",\"percent\":\"50\"}");
    TH_EXPECT(c, "-ERR invalid desc: it must be a string or null",
              "TRACK SET {\"jid\":\"val-0001\",\"desc\":5}");
    TH_EXPECT_PREFIX(c, "-ERR invalid reserve_until \"tomorrow\": ",
                     "TRACK SET {\"jid\":\"val-0001\",\"reserve_until\":\"tomorrow\"}");
    TH_EXPECT(c,
              "-ERR invalid reserve_until: it must be an RFC 3339 time string such as "
              "\"2030-01-01T10:00:00Z\"",
              "TRACK SET {\"jid\":\"val-0001\",\"reserve_until\":1700000000}");
    static const char *const jid_rule =
        "-ERR invalid jid: TRACK SET needs the job's jid as a non-empty string";
    TH_EXPECT(c, jid_rule, "TRACK SET {\"percent\":5}");
    TH_EXPECT(c, jid_rule, "TRACK SET {\"jid\":\"\"}");
    TH_EXPECT(c, jid_rule, "TRACK SET {\"jid\":5}");
    TH_EXPECT_PREFIX(c, "-ERR TRACK SET takes a JSON object", "TRACK SET [1]");
    TH_EXPECT_PREFIX(c, "-ERR invalid JSON: ", "TRACK SET {\"jid\":");
    TH_EXPECT_PREFIX(c, "-ERR TRACK takes TRACK SET ", "TRACK FOO x");
    TH_EXPECT_PREFIX(c, "-ERR TRACK takes TRACK SET ", "TRACK SET");
    TH_EXPECT_PREFIX(c, "-ERR TRACK requires an argument", "TRACK");
    TH_EXPECT(c, "-ERR TRACK GET takes one jid: TRACK GET <jid>", "TRACK GET");
    TH_EXPECT(c, "-ERR TRACK GET takes one jid: TRACK GET <jid>", "TRACK GET a b");

    /* Nothing of the rejected requests was stored, and lower-case verbs work. */
    json_t *doc = TRACK_GET(c, "val-0001");
    TH_CHECK(json_object_get(doc, "percent") == NULL);
    TH_OK(c, "TRACK set {\"jid\":\"val-0001\",\"percent\":0}");
    th_send(c, "TRACK get val-0001");
    const struct th_reply *r = th_read(c, 10000);
    TH_EQ_INT(r->kind, TH_BULK);
    TH_EQ_INT(TH_JINT(TH_JSON(r->body, r->body_len), "percent"), 0);
    th_server_stop(srv);
}

/* A description over 1000 bytes is cut at a character boundary. */
static void long_description_cut(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "long-0001", tracked(NULL));
    /* 999 ASCII bytes, then a 2-byte character that would end at byte 1001. */
    char desc[1200];
    memset(desc, 'x', 999);
    strcpy(desc + 999, "\xc3\xa9tail");
    TH_OK(c, "TRACK SET {\"jid\":\"long-0001\",\"desc\":\"%s\"}", desc);
    const char *stored = TH_JSTR(TRACK_GET(c, "long-0001"), "desc");
    TH_EQ_INT(strlen(stored), 999);
    th_server_stop(srv);
}

/* ---- reservation extension ---- */

/* A long job extends its 60 s reservation to 10 minutes, so a second worker never gets it. */
static void reserve_until_extends_reservation(void) {
    struct th_server *srv = th_server_start(NULL);
    /* Producers without a wid: workers that send no BEAT would be reaped as the clock moves. */
    struct th_conn *w1 = th_producer(srv);
    struct th_conn *w2 = th_producer(srv);
    TH_PUSH(w1, "long-job-0001", tracked("\"reserve_for\":60"));
    TH_FETCH_JID(w1, "default", "long-job-0001");
    TH_CLOCK(w1, 30);
    TH_OK(w1, "TRACK SET {\"jid\":\"long-job-0001\",\"reserve_until\":\"%s\"}",
          time_plus(w1, 600));
    TH_CLOCK(w1, 100);
    TH_INFO_EQ(w1, "faktory.sets.working", 1);
    TH_CHECK(TH_FETCH(w2, "default") == NULL);
    TH_CLOCK(w1, 400);
    TH_INFO_EQ(w1, "faktory.sets.working", 1);
    EXPECT_STATE(w1, "long-job-0001", "working");

    /* Past the extended deadline the reservation expires as usual. */
    TH_CLOCK(w1, 110);
    TH_INFO_EQ(w1, "faktory.sets.working", 0);
    TH_INFO_EQ(w1, "faktory.sets.retries", 1);
    EXPECT_STATE(w1, "long-job-0001", "failed");
    th_server_stop(srv);
}

/* A time before the current deadline changes nothing. */
static void reserve_until_never_shortens(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "short-0001", tracked("\"reserve_for\":600"));
    TH_FETCH_JID(c, "default", "short-0001");
    TH_OK(c, "TRACK SET {\"jid\":\"short-0001\",\"reserve_until\":\"%s\"}", time_plus(c, 100));
    TH_OK(c, "TRACK SET {\"jid\":\"short-0001\",\"reserve_until\":\"%s\"}", time_plus(c, -100));
    TH_CLOCK(c, 300);
    TH_INFO_EQ(c, "faktory.sets.working", 1);
    TH_CLOCK(c, 310);
    TH_INFO_EQ(c, "faktory.sets.working", 0);
    th_server_stop(srv);
}

/* More than 24 hours ahead is cut to 24 hours. */
static void reserve_until_capped_at_one_day(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "cap-0001", tracked("\"reserve_for\":60"));
    TH_FETCH_JID(c, "default", "cap-0001");
    TH_OK(c, "TRACK SET {\"jid\":\"cap-0001\",\"reserve_until\":\"%s\"}",
          time_plus(c, 3 * 86400));
    TH_CLOCK(c, 86400 - 60);
    TH_INFO_EQ(c, "faktory.sets.working", 1);
    TH_CLOCK(c, 70);
    TH_INFO_EQ(c, "faktory.sets.working", 0);
    TH_INFO_EQ(c, "faktory.sets.retries", 1);
    th_server_stop(srv);
}

/* The extension works for a job pushed without custom.track too. */
static void reserve_until_for_untracked_job(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "untr-0001", "\"reserve_for\":60");
    TH_FETCH_JID(c, "default", "untr-0001");
    TH_OK(c, "TRACK SET {\"jid\":\"untr-0001\",\"reserve_until\":\"%s\"}", time_plus(c, 300));
    TH_CLOCK(c, 200);
    TH_INFO_EQ(c, "faktory.sets.working", 1);
    EXPECT_STATE(c, "untr-0001", "unknown");
    TH_CLOCK(c, 110);
    TH_INFO_EQ(c, "faktory.sets.working", 0);
    th_server_stop(srv);
}

/* ---- how long records live ---- */

static void finished_record_expires(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "ttl-done", tracked(NULL));
    TH_PUSH(c, "ttl-waiting", tracked(NULL));
    TH_FETCH_JID(c, "default", "ttl-done");
    TH_OK(c, "ACK {\"jid\":\"ttl-done\"}");

    /* The default keeps a finished job's record 30 minutes after its last update; a job that
     * can still run keeps its record. */
    TH_CLOCK(c, 1000);
    TH_OK(c, "TRACK SET {\"jid\":\"ttl-done\",\"percent\":100}");
    TH_CLOCK(c, 1790);
    EXPECT_STATE(c, "ttl-done", "success");
    TH_CLOCK(c, 20);
    EXPECT_STATE(c, "ttl-done", "unknown");
    EXPECT_STATE(c, "ttl-waiting", "enqueued");
    th_server_stop(srv);
}

static void configured_ttl(void) {
    struct th_server_opts opts = {.toml = "[fabrik]\ntracking_ttl_seconds = 120\n"};
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "cfg-0001", tracked("\"retry\":0"));
    TH_FETCH_JID(c, "default", "cfg-0001");
    fail(c, "cfg-0001");
    TH_CLOCK(c, 110);
    EXPECT_STATE(c, "cfg-0001", "failed");
    TH_CLOCK(c, 20);
    EXPECT_STATE(c, "cfg-0001", "unknown");
    th_server_stop(srv);
}

static void flush_clears_records(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "flush-0001", tracked(NULL));
    TH_OK(c, "FLUSH");
    EXPECT_STATE(c, "flush-0001", "unknown");
    th_server_stop(srv);
}

/* A tracked member of a batch: both follow the job. */
static void tracked_job_in_batch(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    const struct th_reply *r =
        th_cmd(c, "BATCH NEW {\"success\":{\"jobtype\":\"Done\",\"args\":[],\"queue\":\"cb\"}}");
    TH_EQ_INT(r->kind, TH_BULK);
    const char *bid = th_fmt("%s", r->body);
    TH_PUSH(c, "member-0001", th_fmt("\"custom\":{\"bid\":\"%s\",\"track\":1}", bid));
    TH_OK(c, "BATCH COMMIT %s", bid);
    EXPECT_STATE(c, "member-0001", "enqueued");
    TH_FETCH_JID(c, "default", "member-0001");
    TH_OK(c, "TRACK SET {\"jid\":\"member-0001\",\"percent\":90}");
    TH_OK(c, "ACK {\"jid\":\"member-0001\"}");
    json_t *doc = TRACK_GET(c, "member-0001");
    TH_EQ_STR(TH_JSTR(doc, "state"), "success");
    TH_EQ_INT(TH_JINT(doc, "percent"), 90);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "cb"), 1);
    th_server_stop(srv);
}

/* ---- durability ---- */

/* Progress and the extended reservation survive a crash: the job is not handed out again at
 * its old deadline after the restart. */
static void records_and_extension_survive_sigkill(void) {
    th_require_private_server();
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "crash-0001", tracked("\"reserve_for\":60"));
    TH_PUSH(c, "crash-0002", tracked(NULL));
    TH_FETCH_JID(c, "default", "crash-0001");
    TH_OK(c, "TRACK SET {\"jid\":\"crash-0001\",\"percent\":40,\"desc\":\"copying\","
             "\"reserve_until\":\"%s\"}",
          time_plus(c, 600));

    th_server_kill(srv);
    th_server_restart(srv);
    c = th_producer(srv);
    json_t *doc = TRACK_GET(c, "crash-0001");
    TH_EQ_STR(TH_JSTR(doc, "state"), "working");
    TH_EQ_INT(TH_JINT(doc, "percent"), 40);
    TH_EQ_STR(TH_JSTR(doc, "desc"), "copying");
    EXPECT_STATE(c, "crash-0002", "enqueued");

    /* The restarted server's clock starts from real time again. */
    TH_CLOCK(c, 120);
    TH_INFO_EQ(c, "faktory.sets.working", 1);
    TH_FETCH_JID(c, "default", "crash-0002");
    TH_CHECK(TH_FETCH(c, "default") == NULL);
    TH_CLOCK(c, 400);
    TH_INFO_EQ(c, "faktory.sets.working", 2);
    TH_OK(c, "ACK {\"jid\":\"crash-0001\"}");
    EXPECT_STATE(c, "crash-0001", "success");
    th_server_stop(srv);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(unknown_jid_reports_unknown),
        TH_CASE(untracked_job_reports_unknown),
        TH_CASE(lifecycle_with_progress),
        TH_CASE(failure_states),
        TH_CASE(scheduled_job_enqueued),
        TH_CASE(pushb_jobs_tracked),
        TH_CASE(invalid_requests_rejected),
        TH_CASE(long_description_cut),
        TH_CASE(reserve_until_extends_reservation),
        TH_CASE(reserve_until_never_shortens),
        TH_CASE(reserve_until_capped_at_one_day),
        TH_CASE(reserve_until_for_untracked_job),
        TH_CASE(finished_record_expires),
        TH_CASE(configured_ttl),
        TH_CASE(flush_clears_records),
        TH_CASE(tracked_job_in_batch),
        TH_CASE(records_and_extension_survive_sigkill),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
