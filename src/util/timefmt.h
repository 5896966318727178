/* Time as seconds since the Unix epoch in a double (microsecond precision for current dates),
 * and its RFC 3339 text form. Pure functions: callers pass the time in. */
#ifndef FABRIK_TIMEFMT_H
#define FABRIK_TIMEFMT_H

#include <stddef.h>

/* Wall-clock time now, in seconds. */
double time_wall(void);

/* Monotonic time now, in seconds, for deadlines that must not follow clock changes. */
double time_mono(void);

/* Parses an RFC 3339 timestamp (date, 'T', time, optional fraction of 1-9 digits, then 'Z' or
 * an offset "+hh:mm"/"-hh:mm"). Returns 0 with *out set, or -1 with a reason in err. */
int time_parse_rfc3339(const char *text, double *out, char *err, size_t errlen);

/* Formats t as UTC RFC 3339 with up to 6 fraction digits, trailing zeros removed
 * ("2026-12-04T20:00:00.5Z"). out needs 32 bytes. Returns out. */
char *time_format_rfc3339(double t, char *out);

/* Formats the UTC date of t as "YYYY-MM-DD". out needs 11 bytes. Returns out. */
char *time_format_day(double t, char *out);

#endif
