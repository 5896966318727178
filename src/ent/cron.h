/* Cron: [[cron]] entries that push a job on a schedule. The expression parser and the
 * next-run computation are pure (the caller passes the time); time zones come from the
 * system's tz database. No Debian package offers a C cron parser, so this one is written here
 * and fuzzed (fuzz/fuzz_cron.c).
 *
 * Daylight-saving rule, for an entry with a time zone that has DST: a wall time that does not
 * exist on a spring-forward day (02:30 when clocks jump from 02:00 to 03:00) runs once, at the
 * first minute after the gap (03:00); a wall time that occurs twice on a fall-back day (01:30)
 * runs once, at its first occurrence. */
#ifndef FABRIK_CRON_H
#define FABRIK_CRON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed 5-field expression as bit sets. */
struct cron_expr {
    uint64_t minutes;   /* bits 0..59 */
    uint32_t hours;     /* bits 0..23 */
    uint32_t days;      /* bits 1..31 */
    uint16_t months;    /* bits 1..12 */
    uint8_t weekdays;   /* bits 0..6, Sunday = 0 */
    bool any_day;       /* day-of-month field was "*" */
    bool any_weekday;   /* day-of-week field was "*" */
};

/* Parses "m h dom mon dow" (numbers, names JAN-DEC and SUN-SAT, '*', ranges a-b, steps /n,
 * lists a,b; 7 is also Sunday) or @yearly, @annually, @monthly, @weekly, @daily, @midnight,
 * @hourly. Returns 0, or -1 with err naming the field and the reason. */
int cron_parse(const char *text, struct cron_expr *out, char *err, size_t errlen);

/* The first run time strictly after `after` (Unix seconds), in time zone tz (an IANA name
 * such as "America/New_York"; NULL or "" means UTC). Returns 0 when none exists in the next
 * five years (for example "0 0 30 2 *"). */
double cron_next(const struct cron_expr *e, const char *tz, double after);

/* Whether tz names a zone of the system's tz database ("UTC" always does). */
bool cron_zone_exists(const char *tz);

enum cron_catch_up { CRON_CATCH_UP_ONCE, CRON_CATCH_UP_SKIP };

/* One [[cron]] entry. */
struct cron_entry {
    char key[65];          /* SHA-256 of the entry's definition: its identity across restarts */
    char *schedule;
    char *timezone;        /* NULL for UTC */
    struct cron_expr expr;
    json_t *job;           /* template: jobtype, queue, args, retry, reserve_for, custom */
    enum cron_catch_up catch_up;
    char *source;          /* "<file> entry N" for messages and the web UI */
    double last_run;       /* scheduled time of the last run, 0 if never */
    double next_run;       /* 0 when the schedule never fires again */
};

struct cron_set {
    struct cron_entry *entries;
    size_t n;
};

/* Reads every [[cron]] entry of document. conf_dir (the conf.d directory, may be NULL) is
 * only used to name the file of an entry in messages. Returns 0, or -1 with err naming the
 * file, the entry and the field. */
int cron_load(const json_t *document, const char *conf_dir, struct cron_set *out, char *err,
              size_t errlen);

/* A new job from the entry's template with a fresh jid (owned by the caller). */
json_t *cron_make_job(const struct cron_entry *entry);

void cron_set_free(struct cron_set *set);

#endif
