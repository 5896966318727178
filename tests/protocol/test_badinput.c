/* Malformed input must get -ERR (or a clean close for binary junk) and must never take the
 * server or other connections down. */
#include "harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
        "MUTATE [", "MUTATE {\"cmd\":1}", "MUTATE {\"cmd\":\"kill\",\"target\":\"retries\","
        "\"filter\":{\"jids\":\"not-a-list\"}}",
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
    TH_INFO_EQ(p, "server.connections", 1);
    /* Let the 2-second waits of the abandoned FETCHes run out. */
    th_sleep_ms(2500);
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
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
