/* Unit tests of the FWP line parser (proto_parse_line) and the RESP reply encoders (resp_*).
 * The network layer hands the parser one line without its LF, so a CRLF line arrives here
 * with a trailing CR and a bare-LF line without one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"
#include "util/buf.h"

/* Checks that the bytes in b are exactly the C string expected, which contains no NUL. */
#define assert_buf_equal(b, expected)                                                    \
    do {                                                                                 \
        const struct buf *b_ = (b);                                                      \
        const char *expected_ = (expected);                                              \
        assert_non_null(b_->data);                                                       \
        assert_string_equal(b_->data, expected_);                                        \
        assert_int_equal(b_->len, strlen(expected_));                                    \
    } while (0)

static int parse(const char *line, size_t len, struct proto_command *cmd, char *err,
                 size_t errlen) {
    err[0] = '\0';
    return proto_parse_line(line, len, cmd, err, errlen);
}

/* Parses a NUL-free C string as one line. */
static int parse_str(const char *line, struct proto_command *cmd, char *err, size_t errlen) {
    return parse(line, strlen(line), cmd, err, errlen);
}

static void parse_verb_without_args(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("INFO", &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "INFO");
    assert_false(cmd.has_args);
    assert_string_equal(cmd.args, "");
    assert_int_equal(cmd.args_len, 0);
}

static void parse_verb_and_args(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    const char *line = "PUSH {\"jid\":\"abcdefgh\",\"jobtype\":\"T\",\"args\":[]}";
    assert_int_equal(parse_str(line, &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "PUSH");
    assert_true(cmd.has_args);
    assert_ptr_equal(cmd.args, line + 5);
    assert_int_equal(cmd.args_len, strlen(line) - 5);
}

static void parse_keeps_spaces_inside_args(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("FETCH critical  default ", &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "FETCH");
    assert_int_equal(cmd.args_len, strlen("critical  default "));
    assert_memory_equal(cmd.args, "critical  default ", cmd.args_len);
}

static void parse_crlf_drops_cr(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("ACK {\"jid\":\"x\"}\r", &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "ACK");
    assert_int_equal(cmd.args_len, strlen("{\"jid\":\"x\"}"));
    assert_memory_equal(cmd.args, "{\"jid\":\"x\"}", cmd.args_len);
}

static void parse_crlf_verb_only(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("END\r", &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "END");
    assert_false(cmd.has_args);
    assert_int_equal(cmd.args_len, 0);
}

static void parse_bare_lf_line(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("BEAT {\"wid\":\"w1\"}", &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "BEAT");
    assert_int_equal(cmd.args_len, strlen("{\"wid\":\"w1\"}"));
}

static void parse_drops_only_one_cr(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("FLUSH x\r\r", &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.args_len, 2);
    assert_memory_equal(cmd.args, "x\r", 2);
}

static void parse_trailing_space_means_empty_args(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("FETCH ", &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "FETCH");
    assert_true(cmd.has_args);
    assert_int_equal(cmd.args_len, 0);
}

static void parse_trailing_space_before_cr(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("QUEUE \r", &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "QUEUE");
    assert_true(cmd.has_args);
    assert_int_equal(cmd.args_len, 0);
}

static void parse_empty_line_rejected(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse("", 0, &cmd, err, sizeof err), -1);
    assert_string_equal(err, "empty command line; send a command such as INFO");
}

static void parse_lone_cr_rejected(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("\r", &cmd, err, sizeof err), -1);
    assert_string_equal(err, "empty command line; send a command such as INFO");
}

static void parse_nul_byte_rejected(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    static const char line[] = "INFO\0junk";
    assert_int_equal(parse(line, sizeof line - 1, &cmd, err, sizeof err), -1);
    assert_string_equal(err, "command line contains a NUL byte");
}

static void parse_nul_byte_in_args_rejected(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    static const char line[] = "PUSH {\"a\":\"\0\"}\r";
    assert_int_equal(parse(line, sizeof line - 1, &cmd, err, sizeof err), -1);
    assert_string_equal(err, "command line contains a NUL byte");
}

static void parse_leading_space_rejected(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str(" INFO", &cmd, err, sizeof err), -1);
    assert_string_equal(err, "unknown command ");
}

static void parse_verb_of_max_length_accepted(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    char line[PROTO_MAX_VERB + 8];
    memset(line, 'V', PROTO_MAX_VERB);
    strcpy(line + PROTO_MAX_VERB, " a");
    assert_int_equal(parse_str(line, &cmd, err, sizeof err), 0);
    assert_int_equal(strlen(cmd.verb), PROTO_MAX_VERB);
    assert_int_equal(cmd.args_len, 1);
}

static void parse_over_long_verb_rejected(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    char line[PROTO_MAX_VERB + 2];
    memset(line, 'V', PROTO_MAX_VERB + 1);
    line[PROTO_MAX_VERB + 1] = '\0';
    assert_int_equal(parse_str(line, &cmd, err, sizeof err), -1);
    assert_string_equal(err, "unknown command VVVVVVVVVVVVVVVVV");
}

static void parse_over_long_verb_sample_cut(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ args", &cmd, err, sizeof err), -1);
    assert_string_equal(err, "unknown command ABCDEFGHIJKLMNOPQRST...");
}

static void parse_over_long_verb_sample_printable(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    const char line[] = "\x01\x02\xff\x7fxxxxxxxxxxxxxxxxx";
    assert_int_equal(parse(line, sizeof line - 1, &cmd, err, sizeof err), -1);
    assert_string_equal(err, "unknown command ????xxxxxxxxxxxxxxxx...");
}

static void parse_lowercase_verb_kept_as_sent(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[128];
    assert_int_equal(parse_str("info", &cmd, err, sizeof err), 0);
    assert_string_equal(cmd.verb, "info");
}

static void parse_error_truncated_to_errlen(void **state) {
    (void)state;
    struct proto_command cmd;
    char err[8];
    assert_int_equal(parse("", 0, &cmd, err, sizeof err), -1);
    assert_string_equal(err, "empty c");
}

static void resp_ok_bytes(void **state) {
    (void)state;
    struct buf b = {0};
    resp_ok(&b);
    assert_buf_equal(&b, "+OK\r\n");
    buf_free(&b);
}

static void resp_null_bytes(void **state) {
    (void)state;
    struct buf b = {0};
    resp_null(&b);
    assert_buf_equal(&b, "$-1\r\n");
    buf_free(&b);
}

static void resp_simple_bytes(void **state) {
    (void)state;
    struct buf b = {0};
    resp_simple(&b, "HI {\"v\":2}");
    assert_buf_equal(&b, "+HI {\"v\":2}\r\n");
    buf_free(&b);
}

static void resp_bulk_bytes(void **state) {
    (void)state;
    struct buf b = {0};
    resp_bulk(&b, "{\"state\":\"quiet\"}", 17);
    assert_buf_equal(&b, "$17\r\n{\"state\":\"quiet\"}\r\n");
    buf_free(&b);
}

static void resp_bulk_empty(void **state) {
    (void)state;
    struct buf b = {0};
    resp_bulk(&b, "", 0);
    assert_buf_equal(&b, "$0\r\n\r\n");
    buf_free(&b);
}

static void resp_bulk_keeps_binary_bytes(void **state) {
    (void)state;
    struct buf b = {0};
    static const char data[] = "a\r\n\0b";
    resp_bulk(&b, data, sizeof data - 1);
    static const char expected[] = "$5\r\na\r\n\0b\r\n";
    assert_int_equal(b.len, sizeof expected - 1);
    assert_memory_equal(b.data, expected, sizeof expected - 1);
    buf_free(&b);
}

static void resp_bulk_large_length(void **state) {
    (void)state;
    struct buf b = {0};
    size_t n = 70000;
    char *data = test_malloc(n);
    memset(data, 'x', n);
    resp_bulk(&b, data, n);
    assert_int_equal(b.len, strlen("$70000\r\n") + n + 2);
    assert_memory_equal(b.data, "$70000\r\n", 8);
    assert_memory_equal(b.data + b.len - 2, "\r\n", 2);
    test_free(data);
    buf_free(&b);
}

static void resp_appends_to_existing_bytes(void **state) {
    (void)state;
    struct buf b = {0};
    resp_ok(&b);
    resp_null(&b);
    resp_error(&b, "x");
    assert_buf_equal(&b, "+OK\r\n$-1\r\n-ERR x\r\n");
    buf_free(&b);
}

static void resp_error_adds_err_code(void **state) {
    (void)state;
    struct buf b = {0};
    resp_error(&b, "jobs must have a jobtype parameter");
    assert_buf_equal(&b, "-ERR jobs must have a jobtype parameter\r\n");
    buf_free(&b);
}

static void resp_coded_error_bytes(void **state) {
    (void)state;
    struct buf b = {0};
    resp_coded_error(&b, "NOTUNIQUE", "Job not unique");
    assert_buf_equal(&b, "-NOTUNIQUE Job not unique\r\n");
    buf_free(&b);
}

static void resp_error_capitalised_word_gets_err(void **state) {
    (void)state;
    struct buf b = {0};
    resp_error(&b, "Invalid password");
    assert_buf_equal(&b, "-ERR Invalid password\r\n");
    buf_free(&b);
}

static void resp_error_short_caps_word_gets_err(void **state) {
    (void)state;
    struct buf b = {0};
    resp_error(&b, "OK then");
    assert_buf_equal(&b, "-ERR OK then\r\n");
    buf_free(&b);
}

/* Messages built from a verb start with capital letters and a space, as a coded error does.
 * resp_error must still send them with the ERR code, as Faktory does. */
static void resp_error_verb_message_gets_err(void **state) {
    (void)state;
    struct buf b = {0};
    resp_error(&b, "PUSH requires an argument: PUSH <job JSON>");
    assert_buf_equal(&b, "-ERR PUSH requires an argument: PUSH <job JSON>\r\n");
    buf_free(&b);
}

static void resp_error_queue_latency_gets_err(void **state) {
    (void)state;
    struct buf b = {0};
    resp_error(&b, "QUEUE LATENCY does not support wildcards");
    assert_buf_equal(&b, "-ERR QUEUE LATENCY does not support wildcards\r\n");
    buf_free(&b);
}

static void resp_error_replaces_cr_and_lf(void **state) {
    (void)state;
    struct buf b = {0};
    resp_error(&b, "line one\r\nline two\nthree\r");
    assert_buf_equal(&b, "-ERR line one  line two three \r\n");
    buf_free(&b);
}

static void resp_coded_error_replaces_newline(void **state) {
    (void)state;
    struct buf b = {0};
    resp_coded_error(&b, "NOTUNIQUE", "a\nb\r");
    assert_buf_equal(&b, "-NOTUNIQUE a b \r\n");
    buf_free(&b);
}

static void resp_error_earlier_bytes_untouched(void **state) {
    (void)state;
    struct buf b = {0};
    resp_bulk(&b, "\r\n", 2);
    resp_error(&b, "x\ny");
    assert_buf_equal(&b, "$2\r\n\r\n\r\n-ERR x y\r\n");
    buf_free(&b);
}

static void resp_error_empty_message(void **state) {
    (void)state;
    struct buf b = {0};
    resp_error(&b, "");
    assert_buf_equal(&b, "-ERR \r\n");
    buf_free(&b);
}

static void resp_errorf_formats(void **state) {
    (void)state;
    struct buf b = {0};
    resp_errorf(&b, "Job not found %s", "job-a-0001");
    assert_buf_equal(&b, "-ERR Job not found job-a-0001\r\n");
    buf_free(&b);
}

static void resp_errorf_replaces_newlines_in_args(void **state) {
    (void)state;
    struct buf b = {0};
    resp_errorf(&b, "invalid ACK %s", "{\"jid\":\n\"x\"}");
    assert_buf_equal(&b, "-ERR invalid ACK {\"jid\": \"x\"}\r\n");
    buf_free(&b);
}

static void resp_errorf_long_message_framed(void **state) {
    (void)state;
    struct buf b = {0};
    char arg[3000];
    memset(arg, 'a', sizeof arg - 1);
    arg[sizeof arg - 1] = '\0';
    resp_errorf(&b, "invalid FAIL %s", arg);
    assert_true(b.len > 5);
    assert_memory_equal(b.data, "-ERR invalid FAIL a", 19);
    assert_memory_equal(b.data + b.len - 2, "\r\n", 2);
    assert_null(memchr(b.data, '\n', b.len - 1));
    buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_verb_without_args),
        cmocka_unit_test(parse_verb_and_args),
        cmocka_unit_test(parse_keeps_spaces_inside_args),
        cmocka_unit_test(parse_crlf_drops_cr),
        cmocka_unit_test(parse_crlf_verb_only),
        cmocka_unit_test(parse_bare_lf_line),
        cmocka_unit_test(parse_drops_only_one_cr),
        cmocka_unit_test(parse_trailing_space_means_empty_args),
        cmocka_unit_test(parse_trailing_space_before_cr),
        cmocka_unit_test(parse_empty_line_rejected),
        cmocka_unit_test(parse_lone_cr_rejected),
        cmocka_unit_test(parse_nul_byte_rejected),
        cmocka_unit_test(parse_nul_byte_in_args_rejected),
        cmocka_unit_test(parse_leading_space_rejected),
        cmocka_unit_test(parse_verb_of_max_length_accepted),
        cmocka_unit_test(parse_over_long_verb_rejected),
        cmocka_unit_test(parse_over_long_verb_sample_cut),
        cmocka_unit_test(parse_over_long_verb_sample_printable),
        cmocka_unit_test(parse_lowercase_verb_kept_as_sent),
        cmocka_unit_test(parse_error_truncated_to_errlen),
        cmocka_unit_test(resp_ok_bytes),
        cmocka_unit_test(resp_null_bytes),
        cmocka_unit_test(resp_simple_bytes),
        cmocka_unit_test(resp_bulk_bytes),
        cmocka_unit_test(resp_bulk_empty),
        cmocka_unit_test(resp_bulk_keeps_binary_bytes),
        cmocka_unit_test(resp_bulk_large_length),
        cmocka_unit_test(resp_appends_to_existing_bytes),
        cmocka_unit_test(resp_error_adds_err_code),
        cmocka_unit_test(resp_coded_error_bytes),
        cmocka_unit_test(resp_error_capitalised_word_gets_err),
        cmocka_unit_test(resp_error_short_caps_word_gets_err),
        cmocka_unit_test(resp_error_verb_message_gets_err),
        cmocka_unit_test(resp_error_queue_latency_gets_err),
        cmocka_unit_test(resp_error_replaces_cr_and_lf),
        cmocka_unit_test(resp_coded_error_replaces_newline),
        cmocka_unit_test(resp_error_earlier_bytes_untouched),
        cmocka_unit_test(resp_error_empty_message),
        cmocka_unit_test(resp_errorf_formats),
        cmocka_unit_test(resp_errorf_replaces_newlines_in_args),
        cmocka_unit_test(resp_errorf_long_message_framed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
