/* Fuzz target for cron expressions (cron_parse) and next-run times (cron_next). The input is a
 * schedule, optionally followed by a newline and a zone name from a fixed list (an unknown
 * name means UTC), so the fuzzer reaches DST gaps and repeats without reading arbitrary files.
 *
 * Checks:
 * - a rejected schedule has a message;
 * - an accepted one has bits only inside each field's range, and at least one per field;
 * - every next run is 0, or a whole minute after the previous one;
 * - in UTC a run matches the expression, and no minute before it within a day does;
 * - in a zone a run matches the local wall time, unless it is the first minute after a gap. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ent/cron.h"
#include "fuzz_check.h"

/* 2026-03-01T00:00:00Z: the DST changes of March (America, Europe) and April (Lord Howe)
 * lie within the first runs of a daily or hourly schedule. */
#define AFTER 1772323200.0
#define RUNS 3

static const char *const zones[] = {"UTC", "America/New_York", "Europe/Berlin",
                                    "Australia/Lord_Howe", "America/Havana", "Asia/Kolkata"};

static bool bit(uint64_t bits, int n) {
    return (bits >> n) & 1;
}

static void check_fields(const struct cron_expr *e) {
    FUZZ_CHECK(e->minutes != 0 && (e->minutes >> 60) == 0);
    FUZZ_CHECK(e->hours != 0 && (e->hours >> 24) == 0);
    FUZZ_CHECK(e->days != 0 && (e->days & 1) == 0);
    FUZZ_CHECK(e->months != 0 && (e->months & 1) == 0 && (e->months >> 13) == 0);
    FUZZ_CHECK(e->weekdays != 0 && (e->weekdays >> 7) == 0);
    if (e->any_day)
        FUZZ_CHECK(e->days == 0xfffffffeu);
    if (e->any_weekday)
        FUZZ_CHECK(e->weekdays == 0x7f);
}

/* Whether the calendar fields of tm match e, with the rule for both day fields restricted. */
static bool matches(const struct cron_expr *e, const struct tm *tm) {
    if (!bit(e->minutes, tm->tm_min) || !bit(e->hours, tm->tm_hour) ||
        !bit(e->months, tm->tm_mon + 1))
        return false;
    bool dom = bit(e->days, tm->tm_mday);
    bool dow = bit(e->weekdays, tm->tm_wday);
    if (e->any_day && e->any_weekday)
        return true;
    if (e->any_day)
        return dow;
    if (e->any_weekday)
        return dom;
    return dom || dow;
}

static bool same_expr(const struct cron_expr *a, const struct cron_expr *b) {
    return a->minutes == b->minutes && a->hours == b->hours && a->days == b->days &&
           a->months == b->months && a->weekdays == b->weekdays && a->any_day == b->any_day &&
           a->any_weekday == b->any_weekday;
}

static void check_utc_run(const struct cron_expr *e, double after, double next) {
    struct tm tm;
    time_t t = (time_t)next;
    gmtime_r(&t, &tm);
    FUZZ_CHECK(matches(e, &tm));

    /* No earlier minute matches; checked within a day after `after` to bound the time. */
    time_t first = (time_t)floor(after / 60) * 60 + 60;
    for (time_t m = first; m < t && m < first + 86400; m += 60) {
        gmtime_r(&m, &tm);
        FUZZ_CHECK(!matches(e, &tm));
    }
}

/* A zoned run shows the scheduled wall time, unless a DST gap moved it: then the UTC offset
 * changed within the minute before it. */
static void check_zoned_run(const struct cron_expr *e, const char *zone, double next) {
    const char *saved = getenv("TZ");
    char *copy = saved ? strdup(saved) : NULL;
    setenv("TZ", zone, 1);
    tzset();
    time_t t = (time_t)next, before = t - 60;
    struct tm at, earlier;
    localtime_r(&t, &at);
    localtime_r(&before, &earlier);
    FUZZ_CHECK(matches(e, &at) || at.tm_gmtoff != earlier.tm_gmtoff);
    if (copy) {
        setenv("TZ", copy, 1);
        free(copy);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

static void check_runs(const struct cron_expr *e, const char *zone) {
    bool utc = strcmp(zone, "UTC") == 0;
    double after = AFTER;
    for (int i = 0; i < RUNS; i++) {
        double next = cron_next(e, utc ? NULL : zone, after);
        if (next == 0)
            return;
        FUZZ_CHECK(next > after);
        FUZZ_CHECK(fmod(next, 60) == 0);
        if (utc)
            check_utc_run(e, after, next);
        else
            check_zoned_run(e, zone, next);
        after = next;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';

    const char *zone = "UTC";
    char *newline = strchr(text, '\n');
    if (newline) {
        *newline = '\0';
        for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
            if (strcmp(newline + 1, zones[i]) == 0)
                zone = zones[i];
        }
    }

    struct cron_expr e;
    char err[200];
    memset(err, 0, sizeof err);
    if (cron_parse(text, &e, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
        free(text);
        return 0;
    }
    check_fields(&e);

    struct cron_expr again;
    FUZZ_CHECK(cron_parse(text, &again, err, sizeof err) == 0);
    FUZZ_CHECK(same_expr(&e, &again));

    check_runs(&e, zone);
    free(text);
    return 0;
}
