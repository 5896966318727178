/* FWP request parsing and RESP reply encoding. No I/O: the network layer hands in one line
 * (without its LF) and gets back a command or an error; replies are appended to a buffer. */
#ifndef FABRIK_PROTO_H
#define FABRIK_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define PROTO_MAX_VERB 16

/* One command line split into its verb and the text after the first space. */
struct proto_command {
    char verb[PROTO_MAX_VERB + 1];
    const char *args;   /* borrowed from the line; "" when there is no space */
    size_t args_len;
    bool has_args;      /* a space followed the verb */
};

/* Splits line (len bytes, a trailing CR already allowed) into verb and arguments. A trailing
 * CR is dropped. Returns 0, or -1 with the reply text (without "-ERR ") in err: for an empty
 * line, a NUL byte, or a verb longer than any command. */
int proto_parse_line(const char *line, size_t len, struct proto_command *cmd, char *err,
                     size_t errlen);

void resp_ok(struct buf *out);
void resp_simple(struct buf *out, const char *text);
/* Appends "-ERR <message>"; CR and LF inside message become spaces so framing stays intact. */
void resp_error(struct buf *out, const char *message);
/* Appends "-<code> <message>" for the errors that clients tell apart, such as
 * "-NOTUNIQUE Job not unique". */
void resp_coded_error(struct buf *out, const char *code, const char *message);
void resp_errorf(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_bulk(struct buf *out, const char *data, size_t len);
void resp_null(struct buf *out);

#endif
