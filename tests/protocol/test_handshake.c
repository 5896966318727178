/* The +HI greeting, the HELLO variants that real client libraries send, the password challenge
 * and the connection cap. */
#include "harness.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD "s3cret"

/* Connects, reads the greeting, sends one HELLO line and returns the connection. */
static struct th_conn *send_hello(struct th_server *srv, const char *body) {
    struct th_conn *c = th_connect(srv);
    th_greeting(c);
    th_send(c, "HELLO %s", body);
    return c;
}

static bool is_lower_hex(const char *s) {
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s) && !(*s >= 'a' && *s <= 'f')) {
            return false;
        }
    }
    return true;
}

static void greeting_without_password_is_exact(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_connect(srv);
    const struct th_reply *r = th_read(c, 5000);
    TH_EQ_INT(r->raw_len, strlen("+HI {\"v\":2}\r\n"));
    TH_EQ_STR(r->raw, "+HI {\"v\":2}\r\n");
}

static void greeting_with_password_has_fresh_salt(void) {
    struct th_server_opts opts = { .password = PASSWORD };
    struct th_server *srv = th_server_start(&opts);
    const char *salts[4];
    for (int i = 0; i < 4; i++) {
        struct th_conn *c = th_connect(srv);
        json_t *hi = th_greeting(c);
        /* Node splits the greeting on the first space, so the JSON must be compact, and the
         * hand-written reference greeting puts v, i, s in this order. */
        TH_CHECK(strncmp(c->reply.line, "+HI {\"v\":2,\"i\":", 15) == 0);
        TH_CHECK(strchr(c->reply.line + 4, ' ') == NULL);
        TH_EQ_INT(json_object_size(hi), 3);
        TH_EQ_INT(TH_JINT(hi, "v"), 2);
        TH_RANGE(TH_JINT(hi, "i"), 4000, 8095);
        const char *salt = TH_JSTR(hi, "s");
        TH_CHECK(is_lower_hex(salt));
        TH_RANGE(strlen(salt), 1, 16);
        salts[i] = th_fmt("%s", salt);
        th_close(c);
    }
    TH_CHECK(strcmp(salts[0], salts[1]) != 0 || strcmp(salts[1], salts[2]) != 0);
    TH_CHECK(strcmp(salts[0], salts[3]) != 0 || strcmp(salts[2], salts[3]) != 0);
}

static void hello_variants_from_clients_accepted(void) {
    static const char *const bodies[] = {
        "{\"hostname\":\"vm\",\"v\":2}",
        "{\"v\":2}",
        "{}",
        "{\"wid\":\"\",\"hostname\":\"vm\",\"pid\":29181,\"labels\":[\"ruby-3.1.2\"],"
        "\"username\":null,\"v\":2}",
        "{\"hostname\":\"vm\",\"wid\":null,\"pid\":1,\"pwdhash\":null,\"v\":2}",
        "{\"hostname\": \"vm\", \"pid\": 28427, \"labels\": []}",
        "{\"hostname\":\"vm\",\"wid\":\"\",\"username\":\"\",\"pwdhash\":\"\","
        "\"labels\":[\"golang\"],\"pid\":32685,\"v\":2}",
        "{\"v\": 2, \"hostname\": \"127.0.0.1\", \"wid\": \"pyfworker1\", \"pid\": 28530, "
        "\"labels\": [\"python\"]}",
        "{\"hostname\":\"vm\",\"v\":2,\"labels\":[\"x\"],\"pid\":28336,\"wid\":\"123\"}",
        "{\"wid\":\"fail\",\"v\":2}",
        "{\"wid\":\"w-extra\",\"rss_kb\":1234,\"salt\":\"ignored\",\"v\":2}",
        "{ \"v\" : 2 , \"wid\" : \"spaced-wid\" }",
    };
    struct th_server *srv = th_server_start(NULL);
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct th_conn *c = send_hello(srv, bodies[i]);
        th_read(c, 5000);
        TH_REPLY(c, "+OK");
        TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
        th_close(c);
    }
}

static void hello_with_bare_lf_accepted(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_connect(srv);
    th_greeting(c);
    th_send_lf(c, "HELLO {\"wid\":\"\",\"hostname\":\"vm\",\"pid\":1,\"labels\":[],\"v\":2}");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    th_send_lf(c, "PUSH {\"jid\":\"job-lf-0001\",\"jobtype\":\"T\",\"args\":[]}");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    th_send_lf(c, "INFO");
    TH_CHECK(th_read(c, 5000)->kind == TH_BULK);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
}

static void hello_with_wid_registers_worker_at_once(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *p = th_producer(srv);
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 0);

    th_worker(srv, "123");
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 1);

    /* Pooled clients open many connections with one wid: still one worker process. */
    th_worker(srv, "123");
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 1);

    th_worker(srv, "fail");
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 2);

    /* Empty and null wids are producers. */
    struct th_conn *c = send_hello(srv, "{\"wid\":\"\",\"v\":2}");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    c = send_hello(srv, "{\"wid\":null,\"v\":2}");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    TH_INFO_EQ(p, "faktory.tasks.Workers.size", 2);
}

static void bad_hello_closes_silently(void) {
    static const char *const lines[] = {
        "HELLO {",
        "HELLO \"x\"",
        "HELLO []",
        "HELLO",
        "hello {}",
        "HELLO{}",
        "HELLO {\"v\":2} trailing",
        "HELLO {\"pid\":\"123\"}",
        "HELLO {\"v\":\"2\"}",
        "HELLO {\"v\":300}",
        "INFO",
        "PUSH {\"jid\":\"job-early-01\",\"jobtype\":\"T\",\"args\":[]}",
    };
    struct th_server *srv = th_server_start(NULL);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct th_conn *c = th_connect(srv);
        th_greeting(c);
        th_send(c, "%s", lines[i]);
        TH_EXPECT_CLOSED(c, 3000);
        th_close(c);
    }
    struct th_conn *p = th_producer(srv);
    TH_EQ_INT(TH_QUEUE_SIZE(p, "default"), 0);
}

static void hello_after_handshake_is_unknown_command(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_producer(srv);
    TH_EXPECT(c, "-ERR unknown command HELLO", "HELLO {\"v\":2}");
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
}

static void handshake_deadline_closes_idle_connection(void) {
    struct th_server *srv = th_server_start(NULL);
    double started = th_now();
    struct th_conn *c = th_connect(srv);
    th_greeting(c);
    TH_EXPECT_CLOSED(c, 4000);
    TH_RANGE(th_now() - started, 1.5, 3.5);

    /* A partial line does not extend the deadline either. */
    started = th_now();
    c = th_connect(srv);
    th_greeting(c);
    th_send_raw(c, "HELLO {\"v\"", 10);
    TH_EXPECT_CLOSED(c, 4000);
    TH_RANGE(th_now() - started, 1.5, 3.5);

    /* A completed handshake has no idle timeout. */
    struct th_conn *p = th_producer(srv);
    th_sleep_ms(2500);
    TH_CHECK(th_cmd(p, "INFO")->kind == TH_BULK);
}

static void password_hash_matches_known_vectors(void) {
    char hash[65];
    th_password_hash("foobar", "55104dc76695721d", 1545, hash);
    TH_EQ_STR(hash, "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec30");
    th_password_hash("foobar", "55104dc76695721d", 1, hash);
    TH_EQ_STR(hash, "bda5ef54df4404655456165c27f46764614a296cdafcaffc747b7ab7cc1ea313");
    th_password_hash("foobar", "55104dc76695721d", 4000, hash);
    TH_EQ_STR(hash, "0e8bc234bcd7a155f410527c8ee1aa4abded4f9bdcc2598d41aee00ad1090529");
}

/* Connects, responds to the challenge with a hash of `rounds` rounds (or the greeting's i when
 * rounds is 0) and the given version field, and returns the connection after the reply. */
static struct th_conn *hello_with_hash(struct th_server *srv, const char *password,
                                       long rounds, const char *version_field) {
    struct th_conn *c = th_connect(srv);
    json_t *hi = th_greeting(c);
    char hash[65];
    th_password_hash(password, TH_JSTR(hi, "s"), rounds ? rounds : TH_JINT(hi, "i"), hash);
    th_send(c, "HELLO {\"hostname\":\"vm\"%s,\"pwdhash\":\"%s\"}", version_field, hash);
    th_read(c, 5000);
    return c;
}

static void password_correct_hash_accepted(void) {
    struct th_server_opts opts = { .password = PASSWORD };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = hello_with_hash(srv, PASSWORD, 0, ",\"v\":2");
    TH_REPLY(c, "+OK");
    TH_OK(c, "PUSH {\"jid\":\"job-pass-001\",\"jobtype\":\"T\",\"args\":[]}");

    /* The harness's own worker handshake takes the same path. */
    struct th_conn *w = th_worker(srv, "pw-worker");
    TH_FETCH_JID(w, "default", "job-pass-001");
}

static void password_legacy_single_round_accepted(void) {
    struct th_server_opts opts = { .password = PASSWORD };
    struct th_server *srv = th_server_start(&opts);

    /* Clients older than protocol 2 (and one Python client that omits v) hash once. */
    struct th_conn *c = hello_with_hash(srv, PASSWORD, 1, ",\"v\":1");
    TH_REPLY(c, "+OK");
    c = hello_with_hash(srv, PASSWORD, 1, "");
    TH_REPLY(c, "+OK");
    c = hello_with_hash(srv, PASSWORD, 1, ",\"v\":null");
    TH_REPLY(c, "+OK");

    /* A v2 client must use the greeting's iteration count. */
    c = hello_with_hash(srv, PASSWORD, 1, ",\"v\":2");
    TH_REPLY(c, "-ERR Invalid password");
    TH_EXPECT_CLOSED(c, 3000);
}

static void password_wrong_hash_rejected_then_closed(void) {
    struct th_server_opts opts = { .password = PASSWORD };
    struct th_server *srv = th_server_start(&opts);

    struct th_conn *c = hello_with_hash(srv, "wrong", 0, ",\"v\":2");
    TH_REPLY(c, "-ERR Invalid password");
    TH_EXPECT_CLOSED(c, 3000);

    c = send_hello(srv, "{\"v\":2}");
    th_read(c, 5000);
    TH_REPLY(c, "-ERR Invalid password");
    TH_EXPECT_CLOSED(c, 3000);

    c = send_hello(srv, "{\"v\":2,\"pwdhash\":\"\"}");
    th_read(c, 5000);
    TH_REPLY(c, "-ERR Invalid password");
    TH_EXPECT_CLOSED(c, 3000);

    c = send_hello(srv, "{\"v\":2,\"pwdhash\":null}");
    th_read(c, 5000);
    TH_REPLY(c, "-ERR Invalid password");
    TH_EXPECT_CLOSED(c, 3000);

    /* The hash of another connection's salt is wrong for this one. */
    struct th_conn *first = th_connect(srv);
    json_t *hi = th_greeting(first);
    char hash[65];
    th_password_hash(PASSWORD, TH_JSTR(hi, "s"), TH_JINT(hi, "i"), hash);
    struct th_conn *second = th_connect(srv);
    json_t *hi2 = th_greeting(second);
    if (strcmp(TH_JSTR(hi, "s"), TH_JSTR(hi2, "s")) != 0) {
        th_send(second, "HELLO {\"v\":2,\"pwdhash\":\"%s\"}", hash);
        th_read(second, 5000);
        TH_REPLY(second, "-ERR Invalid password");
    }
    th_send(first, "HELLO {\"v\":2,\"pwdhash\":\"%s\"}", hash);
    th_read(first, 5000);
    TH_REPLY(first, "+OK");
}

static void password_read_from_file(void) {
    th_require_private_server();
    char *path = th_fmt("%s/password.txt", th_case_dir());
    th_write_file(path, "from-a-file\n");
    struct th_server_opts opts = { .password = path };
    struct th_server *srv = th_server_start(&opts);
    /* The file's trimmed content is the password, not the path. */
    struct th_conn *c = hello_with_hash(srv, "from-a-file", 0, ",\"v\":2");
    TH_REPLY(c, "+OK");
    c = hello_with_hash(srv, path, 0, ",\"v\":2");
    TH_REPLY(c, "-ERR Invalid password");
}

static void password_file_reloaded_on_sighup(void) {
    th_require_private_server();
    char *path = th_fmt("%s/password.txt", th_case_dir());
    th_write_file(path, "first-password");
    struct th_server_opts opts = { .password = path };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *before = hello_with_hash(srv, "first-password", 0, ",\"v\":2");
    TH_REPLY(before, "+OK");

    th_write_file(path, "second-password");
    th_server_signal(srv, SIGHUP);
    th_sleep_ms(300);

    /* New connections need the new password, and open ones are not disturbed. */
    struct th_conn *c = hello_with_hash(srv, "second-password", 0, ",\"v\":2");
    TH_REPLY(c, "+OK");
    c = hello_with_hash(srv, "first-password", 0, ",\"v\":2");
    TH_REPLY(c, "-ERR Invalid password");
    TH_CHECK(th_cmd(before, "INFO")->kind == TH_BULK);
}

static void pwdhash_to_server_without_password_accepted(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = send_hello(srv, "{\"v\":2,\"pwdhash\":\"0123456789abcdef\"}");
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
}

static void connection_cap_rejects_extra_connection(void) {
    struct th_server_opts opts = { .toml = "[fabrik]\nmax_connections = 2\n" };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c1 = th_producer(srv);
    struct th_conn *c2 = th_worker(srv, "cap-worker");

    /* The error arrives unsolicited right after +OK, before any command. */
    struct th_conn *c3 = send_hello(srv, "{\"v\":2}");
    th_read(c3, 5000);
    TH_REPLY(c3, "+OK");
    th_read(c3, 5000);
    TH_REPLY(c3, "-ERR too many connections: 3");
    TH_EXPECT_CLOSED(c3, 3000);

    TH_CHECK(th_cmd(c1, "INFO")->kind == TH_BULK);
    TH_CHECK(th_cmd(c2, "INFO")->kind == TH_BULK);

    /* A closed connection frees its place as soon as the server has seen it close. */
    th_close(c2);
    for (int attempt = 0;; attempt++) {
        struct th_conn *c4 = send_hello(srv, "{\"v\":2}");
        th_read(c4, 5000);
        TH_REPLY(c4, "+OK");
        if (th_read(c4, 200)->kind == TH_TIMEOUT) {
            TH_CHECK(th_cmd(c4, "INFO")->kind == TH_BULK);
            break;
        }
        TH_REPLY(c4, "-ERR too many connections: 3");
        if (attempt == 20) {
            th_fail("the closed connection still counts against max_connections");
        }
        th_close(c4);
    }
}

static void connection_cap_counts_only_open_connections(void) {
    struct th_server_opts opts = { .toml = "[fabrik]\nmax_connections = 2\n" };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c1 = th_producer(srv);
    th_producer(srv);

    /* Rejected connections must not keep counting once they are closed. */
    for (int i = 0; i < 3; i++) {
        struct th_conn *extra = send_hello(srv, "{\"v\":2}");
        th_read(extra, 5000);
        TH_REPLY(extra, "+OK");
        th_read(extra, 5000);
        TH_REPLY(extra, "-ERR too many connections: 3");
        TH_EXPECT_CLOSED(extra, 3000);
        th_close(extra);
    }
    TH_INFO_EQ(c1, "server.connections", 2);
}

static void concurrent_password_handshakes(void) {
    struct th_server_opts opts = { .password = PASSWORD };
    struct th_server *srv = th_server_start(&opts);
    enum { CONNS = 40 };
    struct th_conn *conns[CONNS];
    for (int i = 0; i < CONNS; i++) {
        conns[i] = th_connect(srv);
        json_t *hi = th_greeting(conns[i]);
        char hash[65];
        th_password_hash(i % 4 == 3 ? "wrong" : PASSWORD, TH_JSTR(hi, "s"), TH_JINT(hi, "i"),
                         hash);
        th_send(conns[i], "HELLO {\"v\":2,\"wid\":\"hash-worker-%d\",\"pwdhash\":\"%s\"}", i,
                hash);
        /* Some clients disappear while their hash is still being checked. */
        if (i % 5 == 4) {
            th_close(conns[i]);
            conns[i] = NULL;
        }
    }
    for (int i = 0; i < CONNS; i++) {
        if (!conns[i]) {
            continue;
        }
        th_read(conns[i], 10000);
        TH_REPLY(conns[i], i % 4 == 3 ? "-ERR Invalid password" : "+OK");
    }
    struct th_conn *p = th_producer(srv);
    TH_CHECK(th_cmd(p, "INFO")->kind == TH_BULK);
}

static void hello_split_across_packets(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_connect(srv);
    th_greeting(c);
    const char *parts[] = { "HEL", "LO {\"v\"", ":2,\"wid\":\"split", "-worker\"}\r", "\n" };
    for (int i = 0; i < 5; i++) {
        TH_EQ_INT(th_send_raw(c, parts[i], strlen(parts[i])), 0);
        th_sleep_ms(30);
    }
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    TH_OK(c, "BEAT {\"wid\":\"split-worker\"}");
}

static void oversized_line_before_hello_closes(void) {
    struct th_server *srv = th_server_start(NULL);
    struct th_conn *c = th_connect(srv);
    th_greeting(c);
    /* An unauthenticated client cannot make the server buffer a long line. */
    char *chunk = th_keep(malloc(1 << 20));
    memset(chunk, 'x', 1 << 20);
    TH_EQ_INT(th_send_raw(c, "HELLO {\"hostname\":\"", 19), 0);
    for (int i = 0; i < 64; i++) {
        if (th_send_raw(c, chunk, 1 << 20) != 0) {
            break;
        }
    }
    const char *data;
    bool closed;
    th_drain(c, 5000, &data, &closed);
    TH_CHECK(closed);
    struct th_conn *p = th_producer(srv);
    TH_CHECK(th_cmd(p, "INFO")->kind == TH_BULK);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(greeting_without_password_is_exact),
        TH_CASE(greeting_with_password_has_fresh_salt),
        TH_CASE(hello_variants_from_clients_accepted),
        TH_CASE(hello_with_bare_lf_accepted),
        TH_CASE(hello_with_wid_registers_worker_at_once),
        TH_CASE(bad_hello_closes_silently),
        TH_CASE(hello_after_handshake_is_unknown_command),
        TH_CASE(handshake_deadline_closes_idle_connection),
        TH_CASE(password_hash_matches_known_vectors),
        TH_CASE(password_correct_hash_accepted),
        TH_CASE(password_legacy_single_round_accepted),
        TH_CASE(password_wrong_hash_rejected_then_closed),
        TH_CASE(password_read_from_file),
        TH_CASE(password_file_reloaded_on_sighup),
        TH_CASE(pwdhash_to_server_without_password_accepted),
        TH_CASE(connection_cap_rejects_extra_connection),
        TH_CASE(connection_cap_counts_only_open_connections),
        TH_CASE(concurrent_password_handshakes),
        TH_CASE(hello_split_across_packets),
        TH_CASE(oversized_line_before_hello_closes),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
