/* Fuzz target for the FWP line parser and the RESP encoders. The input is one line as the
 * network layer hands it over (LF already removed). The target checks the parser's contract
 * and that every encoder keeps a reply framed, whatever bytes the message contains. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto/proto.h"
#include "util/buf.h"

/* Checks that out contains exactly one simple or error line: prefix, body, CRLF at the end. */
static void check_one_line(const struct buf *out, const char *prefix) {
    size_t plen = strlen(prefix);
    FUZZ_CHECK(out->len >= plen + 2);
    FUZZ_CHECK(memcmp(out->data, prefix, plen) == 0);
    FUZZ_CHECK(memcmp(out->data + out->len - 2, "\r\n", 2) == 0);
    FUZZ_CHECK(memchr(out->data, '\r', out->len - 2) == NULL);
    FUZZ_CHECK(memchr(out->data, '\n', out->len - 2) == NULL);
}

static void check_parse(const char *line, size_t size) {
    struct proto_command cmd;
    char err[128];
    int rc = proto_parse_line(line, size, &cmd, err, sizeof err);
    size_t len = size > 0 && line[size - 1] == '\r' ? size - 1 : size;

    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(err[0] != '\0');
        struct buf out = {0};
        resp_error(&out, err);
        check_one_line(&out, "-ERR ");
        buf_free(&out);
        return;
    }

    size_t verb_len = strlen(cmd.verb);
    FUZZ_CHECK(len > 0);
    FUZZ_CHECK(memchr(line, '\0', len) == NULL);
    FUZZ_CHECK(verb_len >= 1 && verb_len <= PROTO_MAX_VERB);
    FUZZ_CHECK(memcmp(cmd.verb, line, verb_len) == 0);
    FUZZ_CHECK(memchr(cmd.verb, ' ', verb_len) == NULL);
    if (cmd.has_args) {
        FUZZ_CHECK(line[verb_len] == ' ');
        FUZZ_CHECK(cmd.args == line + verb_len + 1);
        FUZZ_CHECK(verb_len + 1 + cmd.args_len == len);
    } else {
        FUZZ_CHECK(verb_len == len);
        FUZZ_CHECK(cmd.args_len == 0);
        FUZZ_CHECK(cmd.args != NULL && cmd.args[0] == '\0');
    }
}

static void check_encoders(const char *line, size_t size) {
    /* The C-string encoders see the input up to its first NUL, as they would see a message
     * that was built from client bytes. */
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, line, size);
    text[size] = '\0';
    struct buf out = {0};

    resp_error(&out, text);
    check_one_line(&out, "-ERR ");
    FUZZ_CHECK(out.len == 5 + strlen(text) + 2);
    buf_reset(&out);

    resp_coded_error(&out, "NOTUNIQUE", text);
    check_one_line(&out, "-NOTUNIQUE ");
    buf_reset(&out);

    resp_errorf(&out, "invalid ACK %s", text);
    check_one_line(&out, "-ERR invalid ACK ");
    buf_reset(&out);

    resp_simple(&out, text);
    FUZZ_CHECK(out.len == strlen(text) + 3);
    FUZZ_CHECK(out.data[0] == '+');
    buf_reset(&out);

    resp_bulk(&out, line, size);
    char header[32];
    int hlen = snprintf(header, sizeof header, "$%zu\r\n", size);
    FUZZ_CHECK(out.len == (size_t)hlen + size + 2);
    FUZZ_CHECK(memcmp(out.data, header, (size_t)hlen) == 0);
    FUZZ_CHECK(size == 0 || memcmp(out.data + hlen, line, size) == 0);
    FUZZ_CHECK(memcmp(out.data + out.len - 2, "\r\n", 2) == 0);
    buf_reset(&out);

    resp_null(&out);
    resp_ok(&out);
    FUZZ_CHECK(out.len == 10);

    buf_free(&out);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *line = (const char *)data;
    check_parse(line, size);
    check_encoders(line, size);
    return 0;
}
