/* FWP line parsing and RESP encoding. */
#include "proto/proto.h"

#include <stdio.h>
#include <string.h>

int proto_parse_line(const char *line, size_t len, struct proto_command *cmd, char *err,
                     size_t errlen) {
    memset(cmd, 0, sizeof *cmd);
    cmd->args = "";
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0) {
        snprintf(err, errlen, "empty command line; send a command such as INFO");
        return -1;
    }
    if (memchr(line, '\0', len)) {
        snprintf(err, errlen, "command line contains a NUL byte");
        return -1;
    }

    const char *space = memchr(line, ' ', len);
    size_t verb_len = space ? (size_t)(space - line) : len;
    if (verb_len == 0 || verb_len > PROTO_MAX_VERB) {
        char sample[24];
        size_t n = verb_len < 20 ? verb_len : 20;
        for (size_t i = 0; i < n; i++)
            sample[i] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
        sample[n] = '\0';
        snprintf(err, errlen, "unknown command %s%s", sample, verb_len > n ? "..." : "");
        return -1;
    }
    memcpy(cmd->verb, line, verb_len);
    cmd->verb[verb_len] = '\0';
    if (space) {
        cmd->has_args = true;
        cmd->args = space + 1;
        cmd->args_len = len - verb_len - 1;
    }
    return 0;
}

void resp_ok(struct buf *out) {
    buf_append(out, "+OK\r\n", 5);
}

void resp_simple(struct buf *out, const char *text) {
    buf_append(out, "+", 1);
    buf_append_str(out, text);
    buf_append(out, "\r\n", 2);
}

/* Appends message with CR and LF replaced by spaces, so the reply stays one line. */
static void append_line_text(struct buf *out, const char *message) {
    size_t body = out->len;
    buf_append_str(out, message);
    for (size_t j = body; j < out->len; j++) {
        if (out->data[j] == '\r' || out->data[j] == '\n')
            out->data[j] = ' ';
    }
    buf_append(out, "\r\n", 2);
}

void resp_error(struct buf *out, const char *message) {
    buf_append(out, "-ERR ", 5);
    append_line_text(out, message);
}

void resp_coded_error(struct buf *out, const char *code, const char *message) {
    buf_append(out, "-", 1);
    buf_append_str(out, code);
    buf_append(out, " ", 1);
    append_line_text(out, message);
}

void resp_errorf(struct buf *out, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    resp_error(out, msg);
}

void resp_bulk(struct buf *out, const char *data, size_t len) {
    buf_printf(out, "$%zu\r\n", len);
    buf_append(out, data, len);
    buf_append(out, "\r\n", 2);
}

void resp_null(struct buf *out) {
    buf_append(out, "$-1\r\n", 5);
}
