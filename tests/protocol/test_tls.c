/* TLS on the FWP port: a full session over TLS, plaintext clients on a TLS port and TLS clients
 * on a plaintext port. The certificate is a fresh self-signed one in the config directory. */
#include "harness.h"

#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

static void tls_client_full_session(void) {
    struct th_server_opts opts = { .tls = true };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_connect(srv);
    th_greeting(c);
    TH_EQ_STR(c->reply.raw, "+HI {\"v\":2}\r\n");
    TH_OK(c, "HELLO {\"v\":2}");
    TH_PUSH(c, "job-tls-0001", "\"args\":[\"over tls\"]");

    struct th_conn *w = th_worker(srv, "tls-worker");
    json_t *job = TH_FETCH_JID(w, "default", "job-tls-0001");
    TH_EQ_STR(json_string_value(json_array_get(json_object_get(job, "args"), 0)), "over tls");
    TH_OK(w, "BEAT {\"wid\":\"tls-worker\"}");
    TH_OK(w, "ACK {\"jid\":\"job-tls-0001\"}");
    TH_INFO_EQ(c, "faktory.total_processed", 1);
    TH_EXPECT(w, "$-1", "FETCH default");
}

static void tls_large_job_and_pipelining(void) {
    struct th_server_opts opts = { .tls = true };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    enum { SIZE = 4 * 1024 * 1024 };
    char *arg = th_keep(malloc(SIZE + 1));
    for (size_t i = 0; i < SIZE; i++) {
        arg[i] = (char)('a' + i % 26);
    }
    arg[SIZE] = '\0';
    th_send(c, "PUSH {\"jid\":\"job-tls-big\",\"jobtype\":\"T\",\"args\":[\"%s\"]}", arg);
    th_read(c, 30000);
    TH_REPLY(c, "+OK");
    th_send(c, "FETCH default");
    const struct th_reply *r = th_read(c, 30000);
    TH_EQ_INT(r->kind, TH_BULK);
    json_t *job = TH_JSON(r->body, r->body_len);
    TH_EQ_STR(json_string_value(json_array_get(json_object_get(job, "args"), 0)), arg);

    /* Several commands in one TLS record get their replies in order. */
    const char *batch = "ACK {\"jid\":\"job-tls-big\"}\r\nCMD\r\nINFO\r\n";
    TH_EQ_INT(th_send_raw(c, batch, strlen(batch)), 0);
    th_read(c, 5000);
    TH_REPLY(c, "+OK");
    th_read(c, 5000);
    TH_REPLY(c, "-ERR unknown command CMD");
    TH_EQ_INT(th_read(c, 5000)->kind, TH_BULK);
}

static void tls_with_password(void) {
    struct th_server_opts opts = { .tls = true, .password = "tls-secret" };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-tls-0002", NULL);
    TH_FETCH_JID(c, "default", "job-tls-0002");
}

static void plaintext_client_to_tls_port_closed_quietly(void) {
    struct th_server_opts opts = { .tls = true };
    struct th_server *srv = th_server_start(&opts);
    for (int i = 0; i < 10; i++) {
        struct th_conn *c = th_connect_plain(srv);
        const char *data;
        bool closed;
        /* A TLS port never sends the plaintext greeting. */
        size_t n = th_drain(c, i == 0 ? 500 : 50, &data, &closed);
        TH_EQ_INT(n, 0);
        th_send(c, "HELLO {\"v\":2}");
        th_send(c, "PUSH {\"jid\":\"job-plain-0001\",\"jobtype\":\"T\",\"args\":[]}");
        n = th_drain(c, 5000, &data, &closed);
        TH_CHECK(closed);
        /* A TLS alert may arrive, but a plaintext reply must not. */
        TH_CHECK(n < 3 || memcmp(data, "+HI", 3) != 0);
        TH_CHECK(n < 3 || memcmp(data, "+OK", 3) != 0);
        th_close(c);
    }

    /* A client that stops in the middle of a handshake does not disturb the server. */
    struct th_conn *partial = th_connect_plain(srv);
    th_send_raw(partial, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    th_close(partial);

    TH_CHECK(th_server_alive(srv));
    struct th_conn *c = th_producer(srv);
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void tls_client_to_plain_port_fails_cleanly(void) {
    struct th_server *srv = th_server_start(NULL);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    TH_CHECK(ctx != NULL);
    for (int i = 0; i < 3; i++) {
        struct th_conn *c = th_connect_plain(srv);
        struct timeval tv = { 5, 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, c->fd);
        /* The server greets in plaintext, which is no TLS record. */
        TH_CHECK(SSL_connect(ssl) != 1);
        SSL_free(ssl);
        th_close(c);
    }
    SSL_CTX_free(ctx);
    TH_CHECK(th_server_alive(srv));
    struct th_conn *c = th_producer(srv);
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
}

static void certificate_rotated_on_sighup(void) {
    struct th_server_opts opts = { .tls = true };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *before = th_producer(srv);
    TH_PUSH(before, "job-rotate-0001", NULL);

    th_server_new_certificate(srv);
    th_server_signal(srv, SIGHUP);
    th_sleep_ms(300);

    /* The harness now trusts only the new certificate, so this handshake proves the server
     * presents it. The session opened before the reload carries on. */
    struct th_conn *after = th_producer(srv);
    TH_FETCH_JID(after, "default", "job-rotate-0001");
    TH_OK(before, "ACK {\"jid\":\"job-rotate-0001\"}");
    TH_INFO_EQ(after, "faktory.total_processed", 1);
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(tls_client_full_session),
        TH_CASE(tls_large_job_and_pipelining),
        TH_CASE(tls_with_password),
        TH_CASE(plaintext_client_to_tls_port_closed_quietly),
        TH_CASE(tls_client_to_plain_port_fails_cleanly),
        TH_CASE(certificate_rotated_on_sighup),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
