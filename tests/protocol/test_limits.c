/* Size limits: max_line_bytes and max_job_bytes lead to -ERR and keep the connection usable,
 * large jobs inside the limits round-trip byte for byte, and a huge line is skipped without
 * being buffered. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

/* Job JSON whose only arg is a string of len bytes (lives until the case ends). */
static char *job_with_arg(const char *jid, size_t len) {
    char *arg = malloc(len + 1);
    if (!arg) {
        th_fail("out of memory");
    }
    memset(arg, 'x', len);
    arg[len] = '\0';
    char *job = th_fmt("{\"jid\":\"%s\",\"jobtype\":\"T\",\"args\":[\"%s\"]}", jid, arg);
    free(arg);
    return job;
}

/* Checks that nothing more arrives on c, so an oversized line got exactly one reply. */
static void check_no_extra_reply(struct th_conn *c) {
    const struct th_reply *r = th_read(c, 300);
    if (r->kind != TH_TIMEOUT) {
        th_fail("unexpected extra reply %s", r->line);
    }
}

static void long_line_rejected_and_connection_usable(void) {
    struct th_server_opts opts = {
        .toml = "[fabrik]\nmax_line_bytes = 4096\nmax_job_bytes = 4000\n",
    };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);

    TH_OK(c, "PUSH %s", job_with_arg("job-fits-0001", 3000));
    TH_EXPECT_PREFIX(c, "-ERR job too large", "PUSH %s", job_with_arg("job-long-0001", 8000));
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
    TH_EXPECT_PREFIX(c, "-ERR job too large", "PUSHB [%s]", job_with_arg("job-long-0002", 8000));
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);

    char *junk = th_keep(malloc(9001));
    memset(junk, 'x', 9000);
    junk[9000] = '\0';
    TH_EXPECT_PREFIX(c, "-ERR", "ACK %s", junk);
    TH_EXPECT_PREFIX(c, "-ERR", "%s", junk);
    th_send_lf(c, "FAIL %s", junk);
    th_read(c, 5000);
    TH_EQ_INT(c->reply.kind, TH_ERROR);
    check_no_extra_reply(c);

    /* An oversized line that arrives in pieces still gets one reply at its end. */
    TH_EQ_INT(th_send_raw(c, "PUSH ", 5), 0);
    for (int i = 0; i < 4; i++) {
        TH_EQ_INT(th_send_raw(c, junk, 3000), 0);
        th_sleep_ms(50);
    }
    TH_EQ_INT(th_send_raw(c, "\r\n", 2), 0);
    th_read(c, 5000);
    TH_EQ_INT(c->reply.kind, TH_ERROR);
    TH_CHECK(strncmp(c->reply.line, "-ERR job too large", 18) == 0);
    check_no_extra_reply(c);

    TH_FETCH_JID(c, "default", "job-fits-0001");
    TH_INFO_EQ(c, "faktory.total_enqueued", 0);
}

static void job_above_max_job_bytes_rejected(void) {
    struct th_server_opts opts = {
        .toml = "[fabrik]\nmax_job_bytes = 2048\nmax_line_bytes = 65536\n",
    };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_OK(c, "PUSH %s", job_with_arg("job-small-0001", 1500));
    TH_EXPECT_PREFIX(c, "-ERR job too large", "PUSH %s", job_with_arg("job-big-0001", 3000));
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), 1);
    TH_FETCH_JID(c, "default", "job-small-0001");
}

/* Builds a string of len bytes mixing ASCII, characters JSON must escape and multi-byte UTF-8,
 * so a round trip through the server exercises escaping. */
static char *mixed_text(size_t len) {
    static const char *const pieces[] = { "abcdefghij", "\"quoted\"", "back\\slash", "\t",
                                          "\xc3\xa9", "\xe2\x82\xac", "<&>", "/" };
    char *s = th_keep(malloc(len + 1));
    size_t n = 0, k = 0;
    while (n < len) {
        const char *piece = pieces[k++ % 8];
        size_t plen = strlen(piece);
        if (n + plen > len) {
            memset(s + n, 'z', len - n);
            n = len;
            break;
        }
        memcpy(s + n, piece, plen);
        n += plen;
    }
    s[len] = '\0';
    return s;
}

static void large_jobs_round_trip_exactly(void) {
    struct th_server_opts opts = {
        .toml = "[fabrik]\nmax_job_bytes = 33554432\nmax_line_bytes = 41943040\n",
    };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    static const size_t sizes[] = { 64 * 1024, 1024 * 1024, 16 * 1024 * 1024 };
    for (size_t i = 0; i < 3; i++) {
        char *text = mixed_text(sizes[i]);
        json_t *sent = th_keep_json(json_pack("{s:s, s:s, s:[s]}", "jid",
                                              th_fmt("job-large-%04zu", i), "jobtype", "Large",
                                              "args", text));
        char *encoded = th_keep(json_dumps(sent, JSON_COMPACT));
        th_send(c, "PUSH %s", encoded);
        th_read(c, 60000);
        TH_REPLY(c, "+OK");

        th_send(c, "FETCH default");
        const struct th_reply *r = th_read(c, 60000);
        TH_EQ_INT(r->kind, TH_BULK);
        json_t *fetched = TH_JSON(r->body, r->body_len);
        TH_EQ_STR(TH_JSTR(fetched, "jid"), th_fmt("job-large-%04zu", i));
        const char *back = json_string_value(json_array_get(json_object_get(fetched, "args"), 0));
        TH_CHECK(back != NULL);
        TH_EQ_INT(json_string_length(json_array_get(json_object_get(fetched, "args"), 0)),
                  sizes[i]);
        TH_CHECK(memcmp(back, text, sizes[i]) == 0);
        /* fabrik stores the client's JSON, so even the escaped form comes back unchanged. */
        char *escaped = th_keep(json_dumps(json_array_get(json_object_get(sent, "args"), 0),
                                           JSON_ENCODE_ANY));
        TH_CHECK(strstr(r->body, escaped) != NULL);
        TH_OK(c, "ACK {\"jid\":\"job-large-%04zu\"}", i);
    }
}

static void huge_line_skipped_without_buffering(void) {
    th_require_private_server();
#if defined(__SANITIZE_ADDRESS__)
    /* ASan keeps freed memory in quarantine, so peak memory measures nothing useful here. */
    const size_t total = (size_t)128 << 20;
    const bool check_memory = false;
#else
    const size_t total = (size_t)1 << 30;
    const bool check_memory = true;
#endif
    struct th_server_opts opts = {
        .toml = "[fabrik]\nmax_line_bytes = 1048576\nmax_job_bytes = 1048576\n",
    };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    long rss_before = th_server_peak_rss_kb(srv);

    enum { CHUNK = 1 << 20 };
    char *chunk = th_keep(malloc(CHUNK));
    memset(chunk, 'a', CHUNK);
    const char *head = "PUSH {\"jid\":\"job-huge-0001\",\"jobtype\":\"T\",\"args\":[\"";
    TH_EQ_INT(th_send_raw(c, head, strlen(head)), 0);
    for (size_t sent = 0; sent < total; sent += CHUNK) {
        if (th_send_raw(c, chunk, CHUNK) != 0) {
            th_fail("the server closed the connection after %zu MiB of one line", sent >> 20);
        }
    }
    TH_EQ_INT(th_send_raw(c, "\"]}\r\n", 5), 0);
    th_read(c, 30000);
    TH_EQ_INT(c->reply.kind, TH_ERROR);
    TH_CHECK(strncmp(c->reply.line, "-ERR job too large", 18) == 0);
    check_no_extra_reply(c);
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);
    TH_OK(c, "PUSH {\"jid\":\"job-after-huge\",\"jobtype\":\"T\",\"args\":[]}");
    TH_FETCH_JID(c, "default", "job-after-huge");

    long rss_after = th_server_peak_rss_kb(srv);
    fprintf(stderr, "server peak RSS: %ld KiB before, %ld KiB after a %zu MiB line\n",
            rss_before, rss_after, total >> 20);
    if (check_memory && rss_before > 0) {
        TH_RANGE(rss_after - rss_before, 0, 64 * 1024);
    }
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(long_line_rejected_and_connection_usable),
        TH_CASE(job_above_max_job_bytes_rejected),
        TH_CASE(large_jobs_round_trip_exactly),
        TH_CASE(huge_line_skipped_without_buffering),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
