/* Logging: one logfmt line per event on stderr, "ts=... level=... event=... key=value...".
 * The level check happens before any formatting, so debug lines cost nothing when off.
 * Callers pass the ids involved (conn, wid, jid, queue) as key=value pairs; never a password. */
#ifndef FABRIK_LOG_H
#define FABRIK_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern enum log_level log_threshold;

/* Sets the threshold; lines above it are dropped. */
void log_set_level(enum log_level level);

/* Parses "error", "warn", "info" or "debug"; returns 0, or -1 for any other text. */
int log_parse_level(const char *text, enum log_level *out);

/* Writes one line: event is a short snake_case name, fmt adds "key=value" pairs. */
void log_write(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(event, ...) \
    do { if (log_threshold >= LOG_ERROR) log_write(LOG_ERROR, event, __VA_ARGS__); } while (0)
#define log_warn(event, ...) \
    do { if (log_threshold >= LOG_WARN) log_write(LOG_WARN, event, __VA_ARGS__); } while (0)
#define log_info(event, ...) \
    do { if (log_threshold >= LOG_INFO) log_write(LOG_INFO, event, __VA_ARGS__); } while (0)
#define log_debug(event, ...) \
    do { if (log_threshold >= LOG_DEBUG) log_write(LOG_DEBUG, event, __VA_ARGS__); } while (0)

/* Copies at most max bytes of untrusted input into out (size >= 4*max+1) for a quoted logfmt
 * value: quotes and backslashes get a backslash, unprintable bytes become \xNN. Returns out. */
char *log_sample(char *out, const char *in, size_t len, size_t max);

#endif
