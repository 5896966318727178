/* Malformed input must get -ERR (or a clean close for binary junk) and must never take the
 * server or other connections down. */
#include "harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Deterministic bytes so that a failure can be reproduced. */
static uint64_t random_state = 0x9e3779b97f4a7c15ULL;

static unsigned char random_byte(void) {
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    return (unsigned char)(random_state >> 24);
}

/* Checks that the server still serves a fresh connection and the given one. */
static void check_still_serving(struct th_server *srv, struct th_conn *c) {
    TH_CHECK(th_server_alive(srv));
    struct th_conn *probe = th_producer(srv);
    TH_CHECK(th_cmd(probe, "INFO")->kind == TH_BULK);
    th_close(probe);
    if (c) {
        TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
    }
}

static void bare_verbs_answer_error_naming_verb(void) {
    static const char *const verbs[] = { "PUSH", "PUSHB", "ACK", "FAIL", "BEAT", "MUTATE",
                                         "QUEUE", "QUEUE PAUSE", "QUEUE RESUME", "QUEUE REMOVE",
                                         "PUSH ", "ACK ", "FAIL ", "BEAT " };
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_worker(srv, "bare-worker");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        const struct th_reply *r = th_cmd(c, "%s", verbs[i]);
        TH_EQ_INT(r->kind, TH_ERROR);
        TH_CHECK(strncmp(r->line, "-ERR ", 5) == 0);
        char verb[16];
        snprintf(verb, sizeof verb, "%s", verbs[i]);
        verb[strcspn(verb, " ")] = '\0';
        if (!strstr(r->line, verb)) {
            th_fail("the reply to \"%s\" does not name the verb: %s", verbs[i], r->line);
        }
        TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
    }
    check_still_serving(srv, c);
}

static void malformed_json_answered_with_error(void) {
    static const char *const lines[] = {
        "PUSH {not json", "PUSH []", "PUSH \"x\"", "PUSH 1", "PUSH null", "PUSH {}",
        "PUSH {\"jid\":\"12345678\",\"jobtype\":\"T\",\"args\":[}",
        "PUSHB [", "ACK [", "FAIL [", "BEAT [", "BEAT 1",
        "MUTATE [", "MUTATE {\"cmd\":1}",
        ("MUTATE {\"cmd\":\"kill\",\"target\":\"retries\","
         "\"filter\":{\"jids\":\"not-a-list\"}}"),
        "MUTATE {\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":[]}",
        "FAIL {\"jid\":\"x\",\"backtrace\":\"not-a-list\"}",
        "QUEUE LATENCY", "DEBUG",
    };
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const struct th_reply *r = th_cmd(c, "%s", lines[i]);
        /* QUEUE LATENCY with no names may return an empty map. All others are errors. */
        if (strcmp(lines[i], "QUEUE LATENCY") == 0 && r->kind == TH_BULK) {
            continue;
        }
        if (r->kind != TH_ERROR) {
            th_fail("expected -ERR for \"%s\", got %s", lines[i], r->line);
        }
    }
    check_still_serving(srv, c);
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void empty_and_nul_lines_answered_with_error(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
#define RAW_LINE(text) { text, sizeof text - 1 }
    static const struct {
        const char *bytes;
        size_t len;
    } lines[] = {
        RAW_LINE("\r\n"),
        RAW_LINE("\n"),
        RAW_LINE(" \r\n"),
        RAW_LINE("\0\r\n"),
        RAW_LINE("INFO\0\r\n"),
        RAW_LINE("PUSH {\"jid\":\"abc\0defgh\",\"jobtype\":\"T\",\"args\":[]}\r\n"),
        RAW_LINE("\0\0\0\0\0\0\0\0\n"),
    };
#undef RAW_LINE
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        TH_EQ_INT(th_send_raw(c, lines[i].bytes, lines[i].len), 0);
        const struct th_reply *r = th_read(c, 5000);
        if (r->kind != TH_ERROR) {
            th_fail("expected -ERR for input line %zu, got %s", i, r->line);
        }
    }
    check_still_serving(srv, c);
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void random_megabyte_line_no_crash(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    enum { SIZE = 1 << 20 };
    unsigned char *junk = th_keep(malloc(SIZE + 2));
    for (size_t i = 0; i < SIZE; i++) {
        unsigned char b = random_byte();
        junk[i] = b == '\n' || b == '\r' ? 'x' : b;
    }
    junk[SIZE] = '\r';
    junk[SIZE + 1] = '\n';
    th_send_raw(c, junk, SIZE + 2);
    const struct th_reply *r = th_read(c, 15000);
    /* One line of junk gets one error, or the server drops the connection. */
    TH_CHECK(r->kind == TH_ERROR || r->kind == TH_CLOSED);
    if (r->kind == TH_ERROR) {
        TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
    }
    check_still_serving(srv, NULL);
}

static void random_binary_with_newlines_no_crash(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *bystander = th_worker(srv, "bystander");
    for (int round = 0; round < 4; round++) {
        struct th_conn *c = th_producer(srv);
        enum { SIZE = 256 * 1024 };
        unsigned char *junk = th_keep(malloc(SIZE));
        for (size_t i = 0; i < SIZE; i++) {
            junk[i] = random_byte();
        }
        th_send_raw(c, junk, SIZE);
        /* Read whatever comes back until the replies stop or the server closes. */
        for (;;) {
            const struct th_reply *r = th_read(c, 500);
            if (r->kind == TH_TIMEOUT || r->kind == TH_CLOSED) {
                break;
            }
        }
        th_close(c);
    }
    check_still_serving(srv, bystander);
    TH_OK(bystander, "BEAT {\"wid\":\"bystander\"}");
}

static void junk_instead_of_hello_closes(void) {
    struct th_server *srv = th_server_start(NULL);
    for (int round = 0; round < 3; round++) {
        struct th_conn *c = th_connect(srv);
        th_greeting(c);
        unsigned char junk[4096];
        for (size_t i = 0; i < sizeof junk; i++) {
            junk[i] = random_byte();
        }
        junk[sizeof junk - 1] = '\n';
        th_send_raw(c, junk, sizeof junk);
        TH_EXPECT_CLOSED(c, 5000);
        th_close(c);
    }
    check_still_serving(srv, NULL);
}

static void abrupt_disconnects_do_not_disturb_others(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    /* Connections that vanish at every stage: before the greeting is read, mid-HELLO, mid
     * command, while blocked in FETCH and right after END. */
    for (int i = 0; i < 40; i++) {
        struct th_conn *c = th_connect(srv);

        switch (i % 5) {
        case 0:
            break;
        case 1:
            th_greeting(c);
            th_send_raw(c, "HELLO {\"v\":", 11);
            break;
        case 2:
            th_greeting(c);
            th_send(c, "HELLO {\"v\":2,\"wid\":\"churn-%d\"}", i);
            th_read(c, 5000);
            th_send_raw(c, "PUSH {\"jid\":", 12);
            break;
        case 3:
            th_greeting(c);
            th_send(c, "HELLO {\"v\":2}");
            th_read(c, 5000);
            th_send(c, "FETCH empty-queue");
            break;
        default:
            th_greeting(c);
            th_send(c, "HELLO {\"v\":2}");
            th_read(c, 5000);
            th_send(c, "END");
            break;
        }

        th_close(c);
    }
    th_sleep_ms(100);
    /* A job must not go to a FETCH whose connection is gone. */
    TH_PUSH(p, "job-after-churn", "\"queue\":\"empty-queue\"");
    TH_FETCH_JID(p, "empty-queue", "job-after-churn");
    long long connections = -1;
    for (int i = 0; i < 100 && connections != 1; i++) {
        connections = TH_INFO_INT(p, "server.connections");
        th_sleep_ms(20);
    }
    TH_EQ_INT(connections, 1);
    /* Let the 2-second waits of the abandoned FETCHes run out. */
    th_sleep_ms(2500);
    check_still_serving(srv, p);
}

static void deeply_nested_json_rejected_or_stored(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    enum { DEPTH = 100000 };
    char *open = th_keep(malloc(DEPTH + 1));
    char *close = th_keep(malloc(DEPTH + 1));
    memset(open, '[', DEPTH);
    memset(close, ']', DEPTH);
    open[DEPTH] = close[DEPTH] = '\0';
    static const char *const verbs[] = { "PUSH", "PUSHB", "ACK", "FAIL", "BEAT", "MUTATE" };
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        const struct th_reply *r =
            th_cmd(c, "%s {\"jid\":\"job-deep-0001\",\"jobtype\":\"T\",\"wid\":\"w\","
                      "\"args\":%s%s}", verbs[i], open, close);
        TH_CHECK(r->kind == TH_ERROR || r->kind == TH_SIMPLE || r->kind == TH_BULK);
    }
    TH_CHECK(th_cmd(c, "PUSH %s%s", open, close)->kind == TH_ERROR);
    check_still_serving(srv, c);
}

static void special_characters_in_jid_round_trip(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    /* The jid is \"quote\\back\u00e9 */
    const char *jid_json = "\\\"quote\\\\back\\u00e9";
    TH_OK(c, "PUSH {\"jid\":\"%s\",\"jobtype\":\"T\",\"args\":[]}", jid_json);
    json_t *job = TH_FETCH(c, "default");
    TH_CHECK(job != NULL);
    TH_EQ_STR(TH_JSTR(job, "jid"), "\"quote\\back\xc3\xa9");
    TH_OK(c, "FAIL {\"jid\":\"%s\",\"errtype\":\"E\",\"message\":\"m\"}", jid_json);
    TH_OK(c, "MUTATE {\"cmd\":\"kill\",\"target\":\"retries\",\"filter\":{\"jids\":[\"%s\"]}}",
          jid_json);
    TH_INFO_EQ(c, "faktory.sets.dead", 1);
    TH_OK(c, "MUTATE {\"cmd\":\"requeue\",\"target\":\"dead\",\"filter\":{\"jids\":[\"%s\"]}}",
          jid_json);
    job = TH_FETCH(c, "default");
    TH_CHECK(job != NULL);
    TH_EQ_STR(TH_JSTR(job, "jid"), "\"quote\\back\xc3\xa9");
    TH_OK(c, "ACK {\"jid\":\"%s\"}", jid_json);
    TH_INFO_EQ(c, "faktory.sets.working", 0);
}

static void odd_fetch_queue_lists(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-odd-0001", NULL);
    TH_FETCH_JID(c, "default default", "job-odd-0001");
    /* fabrik bounds the list at 256 names, and the 256th name still counts. */
    char *many = th_fmt("q0");
    for (int i = 1; i < 256; i++) {
        many = th_fmt("%s q%d", many, i);
    }
    TH_PUSH(c, "job-odd-0002", "\"queue\":\"q255\"");
    TH_FETCH_JID(c, many, "job-odd-0002");
    TH_EXPECT_PREFIX(c, "-ERR", "FETCH %s q256", many);
    /* Names that could never hold a job may be rejected or simply wait. */
    const struct th_reply *r = th_cmd(c, "FETCH a:b");
    TH_CHECK(r->kind == TH_ERROR || r->kind == TH_NULL);
    r = th_cmd(c, "FETCH default  other");
    TH_CHECK(r->kind == TH_ERROR || r->kind == TH_NULL);
    check_still_serving(srv, c);
}

static void reset_right_after_command(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    for (int i = 0; i < 30; i++) {
        TH_PUSH(p, th_fmt("job-reset-%04d", i), NULL);
    }
    /* Each client sends a command and resets the connection before the reply can be written,
     * which happens after the commit. */
    for (int i = 0; i < 60; i++) {
        struct th_conn *c = th_worker(srv, th_fmt("reset-worker-%d", i % 3));
        if (i % 2 == 0) {
            th_send(c, "FETCH default");
        } else {
            th_send(c, "PUSH {\"jid\":\"job-lost-reply-%04d\",\"jobtype\":\"T\",\"args\":[]}",
                    i);
        }
        struct linger reset = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        th_close(c);
    }
    th_sleep_ms(300);
    check_still_serving(srv, p);

    /* A job whose FETCH reply was lost is reserved and comes back when that expires, so
     * every job is either queued or working. */
    json_t *info = TH_INFO(p);
    long long queued = TH_JINT(info, "faktory.queues.default");
    long long working = TH_JINT(info, "faktory.sets.working");
    fprintf(stderr, "after resets: %lld queued, %lld working\n", queued, working);
    TH_EQ_INT(queued + working, 30 + 30);
}

static void slow_reader_does_not_block_others(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    TH_PUSH(p, "job-slow-0001", "\"args\":[\"padding padding padding padding padding padding\"]");
    struct th_conn *slow = th_producer(srv);
    /* Thousands of INFO replies that the client never reads fill both socket buffers. */
    char *batch = th_fmt("INFO\r\n");
    for (int i = 0; i < 10; i++) {
        batch = th_fmt("%s%s", batch, batch);
    }
    for (int i = 0; i < 8; i++) {
        if (th_send_raw(slow, batch, strlen(batch)) != 0) {
            break;
        }
    }
    th_sleep_ms(200);
    struct th_conn *other = th_producer(srv);
    TH_FETCH_JID(other, "default", "job-slow-0001");
    TH_OK(other, "ACK {\"jid\":\"job-slow-0001\"}");
    TH_CHECK(th_cmd(p, "INFO")->kind == TH_BULK);
    th_close(slow);
    check_still_serving(srv, p);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(bare_verbs_answer_error_naming_verb),
        TH_CASE(malformed_json_answered_with_error),
        TH_CASE(empty_and_nul_lines_answered_with_error),
        TH_CASE(random_megabyte_line_no_crash),
        TH_CASE(random_binary_with_newlines_no_crash),
        TH_CASE(junk_instead_of_hello_closes),
        TH_CASE(abrupt_disconnects_do_not_disturb_others),
        TH_CASE(deeply_nested_json_rejected_or_stored),
        TH_CASE(special_characters_in_jid_round_trip),
        TH_CASE(odd_fetch_queue_lists),
        TH_CASE(reset_right_after_command),
        TH_CASE(slow_reader_does_not_block_others),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
