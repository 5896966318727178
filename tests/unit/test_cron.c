/* Unit tests of cron: the expression parser (cron_parse), zone names (cron_zone_exists),
 * [[cron]] entries read from conf.d files (cron_load) and the jobs they make (cron_make_job).
 * Next-run times (cron_next) are checked in UTC and across daylight-saving changes. Each check
 * passes an explicit `after` time, so no clock is involved. Expected Unix times were computed
 * with Python's zoneinfo from the system's tz database, with fold=0 for the first occurrence
 * of a repeated wall time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <ftw.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config/config.h"
#include "ent/cron.h"

#define NY "America/New_York"
#define BERLIN "Europe/Berlin"

/* ---- helpers ---- */

/* Every bit from lo to hi set. */
static uint64_t bit_range(int lo, int hi) {
    uint64_t bits = 0;
    for (int v = lo; v <= hi; v++)
        bits |= 1ULL << v;
    return bits;
}

static uint64_t bit_list(int count, ...) {
    va_list ap;
    va_start(ap, count);
    uint64_t bits = 0;
    for (int i = 0; i < count; i++)
        bits |= 1ULL << va_arg(ap, int);
    va_end(ap);
    return bits;
}

static struct cron_expr parse_ok(const char *text) {
    struct cron_expr e;
    char err[256] = "";
    if (cron_parse(text, &e, err, sizeof err) != 0)
        fail_msg("\"%s\" rejected: %s", text, err);
    return e;
}

/* Checks that text is rejected with exactly message. */
#define assert_rejected_with(text, message)                                          \
    do {                                                                             \
        struct cron_expr e_;                                                         \
        char err_[256] = "";                                                         \
        if (cron_parse((text), &e_, err_, sizeof err_) != -1)                        \
            fail_msg("\"%s\" accepted", (text));                                     \
        assert_string_equal(err_, (message));                                        \
    } while (0)

/* Checks that cron_next of schedule in tz after `after` is exactly expected (Unix seconds). */
#define assert_next(schedule, tz, after, expected)                                   \
    do {                                                                             \
        struct cron_expr e_ = parse_ok(schedule);                                    \
        double got_ = cron_next(&e_, (tz), (double)(after));                         \
        if (got_ != (double)(expected))                                              \
            fail_msg("%s in %s after %.3f: got %.0f, expected %.0f", (schedule),     \
                     (tz) ? (tz) : "UTC", (double)(after), got_, (double)(expected)); \
    } while (0)

/* Fills runs with the first count run times of schedule in tz after `after`. */
static void collect_runs(const char *schedule, const char *tz, double after, double *runs,
                         int count) {
    struct cron_expr e = parse_ok(schedule);
    double t = after;
    for (int i = 0; i < count; i++) {
        t = cron_next(&e, tz, t);
        runs[i] = t;
    }
}

static void assert_runs(const char *schedule, const char *tz, double after,
                        const double *expected, int count) {
    double runs[32];
    assert_true(count <= 32);
    collect_runs(schedule, tz, after, runs, count);
    for (int i = 0; i < count; i++) {
        if (runs[i] != expected[i])
            fail_msg("%s in %s, run %d after %.0f: got %.0f, expected %.0f", schedule,
                     tz ? tz : "UTC", i + 1, after, runs[i], expected[i]);
    }
}

/* Unix seconds of a UTC calendar time. */
static double utc(int year, int month, int day, int hour, int minute) {
    struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
                    .tm_hour = hour, .tm_min = minute};
    return (double)timegm(&tm);
}

/* ---- parser: syntax forms ---- */

static void parse_all_stars(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("* * * * *");
    assert_true(e.minutes == bit_range(0, 59));
    assert_true(e.hours == bit_range(0, 23));
    assert_true(e.days == bit_range(1, 31));
    assert_true(e.months == bit_range(1, 12));
    assert_true(e.weekdays == bit_range(0, 6));
    assert_true(e.any_day);
    assert_true(e.any_weekday);
}

static void parse_single_values(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("5 4 3 2 1");
    assert_true(e.minutes == bit_list(1, 5));
    assert_true(e.hours == bit_list(1, 4));
    assert_true(e.days == bit_list(1, 3));
    assert_true(e.months == bit_list(1, 2));
    assert_true(e.weekdays == bit_list(1, 1));
    assert_false(e.any_day);
    assert_false(e.any_weekday);
}

static void parse_field_bounds(void **state) {
    (void)state;
    struct cron_expr low = parse_ok("0 0 1 1 0");
    assert_true(low.minutes == 1);
    assert_true(low.hours == 1);
    assert_true(low.days == bit_list(1, 1));
    assert_true(low.months == bit_list(1, 1));
    assert_true(low.weekdays == 1);
    struct cron_expr high = parse_ok("59 23 31 12 6");
    assert_true(high.minutes == bit_list(1, 59));
    assert_true(high.hours == bit_list(1, 23));
    assert_true(high.days == bit_list(1, 31));
    assert_true(high.months == bit_list(1, 12));
    assert_true(high.weekdays == bit_list(1, 6));
}

static void parse_ranges(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("10-15 9-17 1-7 3-5 1-5");
    assert_true(e.minutes == bit_range(10, 15));
    assert_true(e.hours == bit_range(9, 17));
    assert_true(e.days == bit_range(1, 7));
    assert_true(e.months == bit_range(3, 5));
    assert_true(e.weekdays == bit_range(1, 5));
}

static void parse_single_value_range(void **state) {
    (void)state;
    assert_true(parse_ok("7-7 * * * *").minutes == bit_list(1, 7));
}

static void parse_star_steps(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("*/15 */6 */10 */4 */2");
    assert_true(e.minutes == bit_list(4, 0, 15, 30, 45));
    assert_true(e.hours == bit_list(4, 0, 6, 12, 18));
    assert_true(e.days == bit_list(4, 1, 11, 21, 31));
    assert_true(e.months == bit_list(3, 1, 5, 9));
    assert_true(e.weekdays == bit_list(4, 0, 2, 4, 6));
    /* A star with a step still counts as a restricted field for the day rule. */
    assert_false(e.any_day);
    assert_false(e.any_weekday);
}

static void parse_range_steps(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("10-40/10 8-18/5 * * *");
    assert_true(e.minutes == bit_list(4, 10, 20, 30, 40));
    assert_true(e.hours == bit_list(3, 8, 13, 18));
}

static void parse_start_step_runs_to_field_end(void **state) {
    (void)state;
    /* "a/n" means a, a+n, ... up to the largest value of the field. */
    struct cron_expr e = parse_ok("5/20 3/8 20/5 11/1 3/2");
    assert_true(e.minutes == bit_list(3, 5, 25, 45));
    assert_true(e.hours == bit_list(3, 3, 11, 19));
    assert_true(e.days == bit_list(3, 20, 25, 30));
    assert_true(e.months == bit_list(2, 11, 12));
    assert_true(e.weekdays == bit_list(2, 3, 5));
}

static void parse_step_larger_than_field(void **state) {
    (void)state;
    assert_true(parse_ok("*/60 * * * *").minutes == 1);
    assert_true(parse_ok("*/9999 * * * *").minutes == 1);
}

static void parse_lists(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("0,15,45 1,13 1,15 1,7 0,3");
    assert_true(e.minutes == bit_list(3, 0, 15, 45));
    assert_true(e.hours == bit_list(2, 1, 13));
    assert_true(e.days == bit_list(2, 1, 15));
    assert_true(e.months == bit_list(2, 1, 7));
    assert_true(e.weekdays == bit_list(2, 0, 3));
}

static void parse_mixed_list(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("1-3,10,*/20,50-56/3 * * * *");
    assert_true(e.minutes == (bit_range(1, 3) | bit_list(7, 10, 0, 20, 40, 50, 53, 56)));
}

static void parse_star_inside_list(void **state) {
    (void)state;
    /* Only a field that is exactly "*" leaves the day rule unrestricted. */
    struct cron_expr e = parse_ok("* * 1,* * *");
    assert_true(e.days == bit_range(1, 31));
    assert_false(e.any_day);
}

static void parse_leading_zeros(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("05 09 01 02 0003");
    assert_true(e.minutes == bit_list(1, 5));
    assert_true(e.hours == bit_list(1, 9));
    assert_true(e.days == bit_list(1, 1));
    assert_true(e.months == bit_list(1, 2));
    assert_true(e.weekdays == bit_list(1, 3));
}

static void parse_whitespace(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("  0\t9   *  *\t1-5  ");
    assert_true(e.minutes == 1);
    assert_true(e.hours == bit_list(1, 9));
    assert_true(e.weekdays == bit_range(1, 5));
    assert_true(e.any_day);
}

/* ---- parser: names ---- */

static void parse_month_names(void **state) {
    (void)state;
    static const char *const names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                        "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
    for (int i = 0; i < 12; i++) {
        char text[32];
        snprintf(text, sizeof text, "0 0 1 %s *", names[i]);
        assert_true(parse_ok(text).months == bit_list(1, i + 1));
    }
}

static void parse_day_names(void **state) {
    (void)state;
    static const char *const names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
    for (int i = 0; i < 7; i++) {
        char text[32];
        snprintf(text, sizeof text, "0 0 * * %s", names[i]);
        assert_true(parse_ok(text).weekdays == bit_list(1, i));
    }
}

static void parse_names_ignore_case(void **state) {
    (void)state;
    assert_true(parse_ok("0 0 1 jan *").months == bit_list(1, 1));
    assert_true(parse_ok("0 0 1 Dec *").months == bit_list(1, 12));
    assert_true(parse_ok("0 0 * * fri").weekdays == bit_list(1, 5));
    assert_true(parse_ok("0 0 * * sUn").weekdays == 1);
}

static void parse_name_ranges_lists_steps(void **state) {
    (void)state;
    struct cron_expr e = parse_ok("0 0 * MAR-MAY,OCT MON-FRI");
    assert_true(e.months == (bit_range(3, 5) | bit_list(1, 10)));
    assert_true(e.weekdays == bit_range(1, 5));
    assert_true(parse_ok("0 0 * JAN-DEC/3 *").months == bit_list(4, 1, 4, 7, 10));
    assert_true(parse_ok("0 0 * * MON,WED,FRI").weekdays == bit_list(3, 1, 3, 5));
    assert_true(parse_ok("0 0 * * MON/2").weekdays == bit_list(3, 1, 3, 5));
    assert_true(parse_ok("0 0 * FEB-6 *").months == bit_range(2, 6));
}

/* ---- parser: 7 is Sunday ---- */

static void parse_seven_is_sunday(void **state) {
    (void)state;
    assert_true(parse_ok("0 0 * * 7").weekdays == 1);
    assert_true(parse_ok("0 0 * * 0,7").weekdays == 1);
}

static void parse_range_to_seven(void **state) {
    (void)state;
    assert_true(parse_ok("0 0 * * 5-7").weekdays == bit_list(3, 5, 6, 0));
    assert_true(parse_ok("0 0 * * 1-7").weekdays == bit_range(0, 6));
    assert_true(parse_ok("0 0 * * 0-7").weekdays == bit_range(0, 6));
    assert_true(parse_ok("0 0 * * FRI-7").weekdays == bit_list(3, 5, 6, 0));
}

static void parse_weekday_star_excludes_seven(void **state) {
    (void)state;
    /* "*" covers 0-6; Sunday appears once. */
    assert_true(parse_ok("0 0 * * */3").weekdays == bit_list(3, 0, 3, 6));
}

/* ---- parser: macros ---- */

static void assert_macro(const char *macro, const char *expansion) {
    struct cron_expr a = parse_ok(macro);
    struct cron_expr b = parse_ok(expansion);
    if (a.minutes != b.minutes || a.hours != b.hours || a.days != b.days ||
        a.months != b.months || a.weekdays != b.weekdays || a.any_day != b.any_day ||
        a.any_weekday != b.any_weekday)
        fail_msg("%s does not parse like \"%s\"", macro, expansion);
}

static void parse_macros(void **state) {
    (void)state;
    assert_macro("@yearly", "0 0 1 1 *");
    assert_macro("@annually", "0 0 1 1 *");
    assert_macro("@monthly", "0 0 1 * *");
    assert_macro("@weekly", "0 0 * * 0");
    assert_macro("@daily", "0 0 * * *");
    assert_macro("@midnight", "0 0 * * *");
    assert_macro("@hourly", "0 * * * *");
}

static void parse_macro_with_spaces(void **state) {
    (void)state;
    assert_macro("  @hourly\t ", "0 * * * *");
}

/* ---- parser: errors ---- */

static void reject_field_counts(void **state) {
    (void)state;
    assert_rejected_with("",
                         "expected 5 fields (minute hour day-of-month month day-of-week), found 0");
    assert_rejected_with("   ",
                         "expected 5 fields (minute hour day-of-month month day-of-week), found 0");
    assert_rejected_with("* * * *",
                         "expected 5 fields (minute hour day-of-month month day-of-week), found 4");
    assert_rejected_with("0 9",
                         "expected 5 fields (minute hour day-of-month month day-of-week), found 2");
    assert_rejected_with("* * * * * *", "expected 5 fields, found more: \"*\"");
    assert_rejected_with("0 0 1 1 * 2030", "expected 5 fields, found more: \"2030\"");
}

static void reject_values_out_of_range(void **state) {
    (void)state;
    assert_rejected_with("60 * * * *", "minute: 60 is outside 0-59");
    assert_rejected_with("* 24 * * *", "hour: 24 is outside 0-23");
    assert_rejected_with("* * 0 * *", "day of month: 0 is outside 1-31");
    assert_rejected_with("* * 32 * *", "day of month: 32 is outside 1-31");
    assert_rejected_with("* * * 0 *", "month: 0 is outside 1-12");
    assert_rejected_with("* * * 13 *", "month: 13 is outside 1-12");
    assert_rejected_with("* * * * 8", "day of week: 8 is outside 0-7");
    assert_rejected_with("0-60 * * * *", "minute: 60 is outside 0-59");
    assert_rejected_with("1,2,99 * * * *", "minute: 99 is outside 0-59");
}

static void reject_backward_ranges(void **state) {
    (void)state;
    assert_rejected_with("30-10 * * * *",
                         "minute: the range 30-10 runs backwards; write the smaller value first");
    assert_rejected_with("0 0 * * FRI-MON",
                         "day of week: the range 5-1 runs backwards; write the smaller value "
                         "first");
    assert_rejected_with("0 0 * DEC-JAN *",
                         "month: the range 12-1 runs backwards; write the smaller value first");
}

static void reject_bad_steps(void **state) {
    (void)state;
    static const char *const texts[] = {"*/0 * * * *", "*/ * * * *", "*/x * * * *",
                                        "1-5/0 * * * *", "* */-1 * * *"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const char *field = i == 4 ? "hour" : "minute";
        char message[128];
        snprintf(message, sizeof message, "%s: a step /n needs a whole number n of at least 1",
                 field);
        assert_rejected_with(texts[i], message);
    }
}

static void reject_empty_list_items(void **state) {
    (void)state;
    assert_rejected_with("1,,2 * * * *", "minute: empty list item");
    assert_rejected_with("1, * * * *", "minute: empty list item");
    assert_rejected_with(",1 * * * *", "minute: empty list item");
    assert_rejected_with("* * * * MON,", "day of week: empty list item");
}

static void reject_words_and_signs(void **state) {
    (void)state;
    assert_rejected_with("x * * * *",
                         "minute: \"x\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("-1 * * * *",
                         "minute: \"-1\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("1-2-3 * * * *",
                         "minute: \"-3\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("5x * * * *",
                         "minute: \"x\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("1- * * * *",
                         "minute: \"\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("** * * * *",
                         "minute: \"*\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("? * * * *",
                         "minute: \"?\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("L * * * *",
                         "minute: \"L\" is not a number, a name, *, a range a-b or a step /n");
}

static void reject_names_in_wrong_field(void **state) {
    (void)state;
    assert_rejected_with("MON * * * *",
                         "minute: \"MON\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("0 0 * MON *",
                         "month: \"MON\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("0 0 JAN * *",
                         "day of month: \"JAN\" is not a number, a name, *, a range a-b or a "
                         "step /n");
    assert_rejected_with("0 0 * * JAN",
                         "day of week: \"JAN\" is not a number, a name, *, a range a-b or a step "
                         "/n");
}

static void reject_long_names(void **state) {
    (void)state;
    /* Only the three-letter names exist; the message quotes what follows the matched name. */
    struct cron_expr e;
    char err[256];
    assert_int_equal(cron_parse("0 0 * * MONDAY", &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "day of week: "));
    assert_int_equal(cron_parse("0 0 1 JANUARY *", &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "month: "));
}

static void reject_five_digit_numbers(void **state) {
    (void)state;
    assert_rejected_with("00000 * * * *",
                         "minute: \"0\" is not a number, a name, *, a range a-b or a step /n");
    assert_rejected_with("*/10000 * * * *",
                         "minute: \"0\" is not a number, a name, *, a range a-b or a step /n");
}

static void reject_seven_with_step(void **state) {
    (void)state;
    /* "7/n" would run from Sunday (7) to Saturday (6); the parser rejects it. */
    struct cron_expr e;
    char err[256];
    assert_int_equal(cron_parse("0 0 * * 7/1", &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "day of week: "));
}

static void reject_unknown_macros(void **state) {
    (void)state;
    assert_rejected_with("@reboot",
                         "unknown macro \"@reboot\"; use @yearly, @monthly, @weekly, @daily or "
                         "@hourly");
    assert_rejected_with("@every 5m",
                         "unknown macro \"@every 5m\"; use @yearly, @monthly, @weekly, @daily "
                         "or @hourly");
    assert_rejected_with("@DAILY",
                         "unknown macro \"@DAILY\"; use @yearly, @monthly, @weekly, @daily or "
                         "@hourly");
    assert_rejected_with("@daily *",
                         "unknown macro \"@daily *\"; use @yearly, @monthly, @weekly, @daily or "
                         "@hourly");
    assert_rejected_with("@dailyx",
                         "unknown macro \"@dailyx\"; use @yearly, @monthly, @weekly, @daily or "
                         "@hourly");
    assert_rejected_with("@", "unknown macro \"@\"; use @yearly, @monthly, @weekly, @daily or "
                              "@hourly");
}

static void reject_with_tiny_error_buffer(void **state) {
    (void)state;
    /* The message is cut to the buffer, never written past it. */
    struct cron_expr e;
    char err[8];
    memset(err, 'z', sizeof err);
    assert_int_equal(cron_parse("99 * * * *", &e, err, sizeof err), -1);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(cron_parse("@nope", &e, err, sizeof err), -1);
    assert_int_equal(strlen(err), sizeof err - 1);
}

/* ---- cron_next in UTC ---- */

static void next_every_minute(void **state) {
    (void)state;
    double noon = utc(2026, 6, 15, 12, 0);
    assert_next("* * * * *", NULL, noon, noon + 60);
    assert_next("* * * * *", NULL, noon + 30, noon + 60);
    assert_next("* * * * *", NULL, noon + 59.999, noon + 60);
    assert_next("* * * * *", NULL, noon - 0.5, noon);
}

static void next_is_strictly_after(void **state) {
    (void)state;
    double nine = utc(2026, 6, 15, 9, 0);
    assert_next("0 9 * * *", NULL, nine - 1, nine);
    assert_next("0 9 * * *", NULL, nine, nine + 86400);
    assert_next("0 9 * * *", NULL, nine + 0.25, nine + 86400);
}

static void next_utc_zone_spellings(void **state) {
    (void)state;
    double noon = utc(2026, 6, 15, 12, 0);
    assert_next("30 14 * * *", NULL, noon, noon + 2.5 * 3600);
    assert_next("30 14 * * *", "", noon, noon + 2.5 * 3600);
    assert_next("30 14 * * *", "UTC", noon, noon + 2.5 * 3600);
    assert_next("30 14 * * *", "Etc/UTC", noon, noon + 2.5 * 3600);
}

static void next_across_year(void **state) {
    (void)state;
    assert_next("@yearly", NULL, utc(2026, 6, 15, 12, 0), utc(2027, 1, 1, 0, 0));
    assert_next("59 23 31 12 *", NULL, utc(2026, 12, 31, 23, 59), utc(2027, 12, 31, 23, 59));
    assert_next("0 0 * * *", NULL, utc(2026, 12, 31, 23, 59) + 59, utc(2027, 1, 1, 0, 0));
}

static void next_across_months(void **state) {
    (void)state;
    assert_next("@monthly", NULL, utc(2026, 1, 31, 0, 0), utc(2026, 2, 1, 0, 0));
    /* Months without a 31st are skipped. */
    double expected[] = {utc(2026, 5, 31, 0, 0), utc(2026, 7, 31, 0, 0), utc(2026, 8, 31, 0, 0),
                         utc(2026, 10, 31, 0, 0), utc(2026, 12, 31, 0, 0),
                         utc(2027, 1, 31, 0, 0)};
    assert_runs("0 0 31 * *", NULL, utc(2026, 4, 1, 0, 0), expected, 6);
}

static void next_in_named_months(void **state) {
    (void)state;
    double expected[] = {utc(2026, 6, 1, 6, 0), utc(2026, 12, 1, 6, 0), utc(2027, 6, 1, 6, 0)};
    assert_runs("0 6 1 JUN,DEC *", NULL, utc(2026, 1, 1, 0, 0), expected, 3);
}

static void next_leap_day(void **state) {
    (void)state;
    double expected[] = {utc(2028, 2, 29, 0, 0), utc(2032, 2, 29, 0, 0),
                         utc(2036, 2, 29, 0, 0)};
    assert_runs("0 0 29 2 *", NULL, utc(2026, 3, 1, 0, 0), expected, 3);
}

static void next_leap_day_from_leap_year(void **state) {
    (void)state;
    assert_next("0 12 29 FEB *", NULL, utc(2028, 2, 28, 12, 0), utc(2028, 2, 29, 12, 0));
    assert_next("0 12 29 FEB *", NULL, utc(2028, 2, 29, 12, 0), utc(2032, 2, 29, 12, 0));
}

static void next_end_of_february(void **state) {
    (void)state;
    /* 2026 is not a leap year: the day after the 28th is March 1. */
    assert_next("0 0 * * *", NULL, utc(2026, 2, 28, 0, 0), utc(2026, 3, 1, 0, 0));
    assert_next("0 0 * * *", NULL, utc(2028, 2, 28, 0, 0), utc(2028, 2, 29, 0, 0));
}

static void next_never_returns_zero(void **state) {
    (void)state;
    struct cron_expr feb30 = parse_ok("0 0 30 2 *");
    assert_true(cron_next(&feb30, NULL, utc(2026, 1, 1, 0, 0)) == 0);
    struct cron_expr apr31 = parse_ok("0 0 31 APR *");
    assert_true(cron_next(&apr31, NULL, utc(2026, 1, 1, 0, 0)) == 0);
    struct cron_expr nov31 = parse_ok("0 0 31 11 *");
    assert_true(cron_next(&nov31, NY, utc(2026, 1, 1, 0, 0)) == 0);
}

static void next_weekday(void **state) {
    (void)state;
    /* 2026-06-15 is a Monday. */
    double expected[] = {utc(2026, 6, 22, 8, 0), utc(2026, 6, 29, 8, 0), utc(2026, 7, 6, 8, 0)};
    assert_runs("0 8 * * MON", NULL, utc(2026, 6, 15, 8, 0), expected, 3);
}

static void next_seven_equals_zero(void **state) {
    (void)state;
    double after = utc(2026, 6, 15, 0, 0);
    double sundays[] = {utc(2026, 6, 21, 0, 0), utc(2026, 6, 28, 0, 0)};
    assert_runs("0 0 * * 7", NULL, after, sundays, 2);
    assert_runs("0 0 * * 0", NULL, after, sundays, 2);
    assert_runs("0 0 * * SUN", NULL, after, sundays, 2);
    assert_runs("@weekly", NULL, after, sundays, 2);
}

static void next_weekdays_only(void **state) {
    (void)state;
    /* From Friday 2026-06-19 09:00 the next weekday run is Monday. */
    assert_next("0 9 * * 1-5", NULL, utc(2026, 6, 19, 9, 0), utc(2026, 6, 22, 9, 0));
}

/* ---- the day-of-month / day-of-week rule ---- */

static void day_rule_either_when_both_restricted(void **state) {
    (void)state;
    /* The 13th or any Friday: 2026-02-13 is itself a Friday, 2026-03-13 is a Friday too. */
    double expected[] = {utc(2026, 2, 6, 0, 0), utc(2026, 2, 13, 0, 0), utc(2026, 2, 20, 0, 0),
                         utc(2026, 2, 27, 0, 0), utc(2026, 3, 6, 0, 0), utc(2026, 3, 13, 0, 0),
                         utc(2026, 3, 20, 0, 0), utc(2026, 3, 27, 0, 0), utc(2026, 4, 3, 0, 0),
                         utc(2026, 4, 10, 0, 0), utc(2026, 4, 13, 0, 0)};
    assert_runs("0 0 13 * FRI", NULL, utc(2026, 2, 1, 0, 0), expected, 11);
}

static void day_rule_first_or_monday(void **state) {
    (void)state;
    /* 2026-06-01 is a Monday, 2026-07-01 a Wednesday. */
    double expected[] = {utc(2026, 6, 1, 0, 0), utc(2026, 6, 8, 0, 0), utc(2026, 6, 15, 0, 0),
                         utc(2026, 6, 22, 0, 0), utc(2026, 6, 29, 0, 0), utc(2026, 7, 1, 0, 0),
                         utc(2026, 7, 6, 0, 0)};
    assert_runs("0 0 1 * 1", NULL, utc(2026, 5, 31, 0, 0), expected, 7);
}

static void day_rule_month_still_applies(void **state) {
    (void)state;
    /* Both day fields restricted, month restricted: the 1st or a Sunday, in March only. */
    assert_next("0 0 1 MAR SUN", NULL, utc(2026, 3, 31, 0, 0), utc(2027, 3, 1, 0, 0));
}

static void day_rule_dom_only(void **state) {
    (void)state;
    double expected[] = {utc(2026, 6, 15, 0, 0), utc(2026, 7, 15, 0, 0)};
    assert_runs("0 0 15 * *", NULL, utc(2026, 6, 1, 0, 0), expected, 2);
}

static void day_rule_dow_only(void **state) {
    (void)state;
    double expected[] = {utc(2026, 6, 3, 0, 0), utc(2026, 6, 10, 0, 0)};
    assert_runs("0 0 * * WED", NULL, utc(2026, 6, 1, 0, 0), expected, 2);
}

static void day_rule_star_step_is_restricted(void **state) {
    (void)state;
    /* "*" with a step counts as restricted, so with Monday this means odd days or Mondays.
     * 2026-06-01 is a Monday: runs on 1, 3, 5, 7, 8 (Monday), 9. */
    double expected[] = {utc(2026, 6, 3, 0, 0), utc(2026, 6, 5, 0, 0), utc(2026, 6, 7, 0, 0),
                         utc(2026, 6, 8, 0, 0), utc(2026, 6, 9, 0, 0)};
    assert_runs("0 0 */2 * MON", NULL, utc(2026, 6, 1, 0, 0), expected, 5);
}

/* ---- cron_next: runs follow each other ---- */

static void next_sequence_increases(void **state) {
    (void)state;
    static const char *const schedules[] = {"*/7 * * * *", "13 */5 * * 1-5", "@hourly",
                                            "0 0 1,15 * *", "30 2 * * *"};
    static const char *const zones[] = {NULL, NY, BERLIN, "Australia/Lord_Howe"};
    for (size_t s = 0; s < sizeof schedules / sizeof schedules[0]; s++) {
        for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
            double runs[32];
            collect_runs(schedules[s], zones[z], utc(2026, 1, 1, 0, 0), runs, 32);
            for (int i = 1; i < 32; i++) {
                if (!(runs[i] > runs[i - 1]))
                    fail_msg("%s in %s: run %d (%.0f) is not after run %d (%.0f)", schedules[s],
                             zones[z] ? zones[z] : "UTC", i + 1, runs[i], i, runs[i - 1]);
                if (fmod(runs[i], 60) != 0)
                    fail_msg("%s: run %.0f is not on a whole minute", schedules[s], runs[i]);
            }
        }
    }
}

static void next_step_wraps_within_hour(void **state) {
    (void)state;
    double base = utc(2026, 6, 15, 10, 0);
    double expected[] = {base + 7 * 60,  base + 14 * 60, base + 21 * 60, base + 28 * 60,
                         base + 35 * 60, base + 42 * 60, base + 49 * 60, base + 56 * 60,
                         base + 60 * 60};
    assert_runs("*/7 * * * *", NULL, base, expected, 9);
}

/* ---- time zones ---- */

static void next_in_fixed_offset_zone(void **state) {
    (void)state;
    /* Asia/Tokyo is UTC+9 with no DST: 09:00 there is 00:00 UTC. */
    assert_next("0 9 * * *", "Asia/Tokyo", utc(2026, 6, 15, 12, 0), utc(2026, 6, 16, 0, 0));
    /* Asia/Kolkata is UTC+5:30. */
    assert_next("0 9 * * *", "Asia/Kolkata", utc(2026, 6, 15, 12, 0), utc(2026, 6, 16, 3, 30));
}

static void next_local_day_differs_from_utc_day(void **state) {
    (void)state;
    /* Monday 00:30 in New York (EDT, UTC-4) is Monday 04:30 UTC; Sunday 22:00 in New York is
     * already Monday in UTC but does not match MON. */
    assert_next("30 0 * * MON", NY, utc(2026, 6, 15, 2, 0), utc(2026, 6, 15, 4, 30));
    assert_next("0 22 * * MON", NY, utc(2026, 6, 14, 0, 0), utc(2026, 6, 16, 2, 0));
}

static void next_does_not_change_process_zone(void **state) {
    (void)state;
    setenv("TZ", "Asia/Tokyo", 1);
    tzset();
    struct cron_expr e = parse_ok("0 9 * * *");
    cron_next(&e, NY, utc(2026, 6, 15, 12, 0));
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    unsetenv("TZ");
    tzset();
    cron_next(&e, NY, utc(2026, 6, 15, 12, 0));
    assert_null(getenv("TZ"));
}

/* ---- DST: America/New_York, 2026-03-08 (02:00 EST -> 03:00 EDT) ---- */

static void ny_spring_missing_time_runs_at_three(void **state) {
    (void)state;
    /* 02:30 does not exist on 2026-03-08: it runs once, at 03:00 EDT (07:00 UTC); the next day
     * it is 02:30 EDT again. */
    double expected[] = {1772953200 /* 03-08 03:00 EDT */, 1773037800 /* 03-09 02:30 EDT */};
    assert_runs("30 2 * * *", NY, 1772902800 /* 03-07 12:00 EST */, expected, 2);
}

static void ny_spring_missing_hour_start(void **state) {
    (void)state;
    assert_next("0 2 * * *", NY, 1772902800 /* 03-07 12:00 EST */, 1772953200);
}

static void ny_spring_nine_once_per_day(void **state) {
    (void)state;
    /* 09:00 local on 03-06 .. 03-10: 14:00 UTC before the change, 13:00 UTC after it. */
    double expected[] = {1772805600, 1772892000, 1772974800, 1773061200, 1773147600};
    assert_runs("0 9 * * *", NY, 1772773200 /* 03-06 00:00 EST */, expected, 5);
}

static void ny_spring_half_hourly(void **state) {
    (void)state;
    /* 01:00 EST, 01:30 EST, then 02:00 and 02:30 are missing and run once, at 03:00 EDT;
     * 03:30 EDT follows. */
    double expected[] = {1772949600, 1772951400, 1772953200, 1772955000};
    assert_runs("*/30 * * * *", NY, 1772949600 - 60, expected, 4);
}

static void ny_spring_after_gap_run(void **state) {
    (void)state;
    /* After the 03:00 EDT run (for 02:30), the next is 03:30, not 03:00 again. */
    assert_next("*/30 * * * *", NY, 1772953200, 1772955000);
    assert_next("30 2 * * *", NY, 1772953200, 1773037800);
}

/* ---- DST: America/New_York, 2026-11-01 (02:00 EDT -> 01:00 EST) ---- */

static void ny_fall_repeated_time_runs_first(void **state) {
    (void)state;
    /* 01:30 occurs twice; it runs at the first one (01:30 EDT, 05:30 UTC) only, and the next
     * run is 01:30 EST the following day. */
    double expected[] = {1793511000 /* 11-01 01:30 EDT */, 1793601000 /* 11-02 01:30 EST */};
    assert_runs("30 1 * * *", NY, 1793462400 /* 10-31 12:00 EDT */, expected, 2);
}

static void ny_fall_second_pass_does_not_run(void **state) {
    (void)state;
    /* After the first 01:30 (even from inside the repeated hour) the second 01:30 is skipped. */
    assert_next("30 1 * * *", NY, 1793511000, 1793601000);
    assert_next("30 1 * * *", NY, 1793513400 /* 01:10 EST, second pass */, 1793601000);
    assert_next("30 1 * * *", NY, 1793514600 /* 01:30 EST, second pass */, 1793601000);
}

static void ny_fall_half_hourly(void **state) {
    (void)state;
    /* 00:30, 01:00 and 01:30 EDT; 01:00 and 01:30 EST repeat wall times and do not run;
     * then 02:00 and 02:30 EST. */
    double expected[] = {1793507400, 1793509200, 1793511000, 1793516400, 1793518200};
    assert_runs("*/30 * * * *", NY, 1793507400 - 60, expected, 5);
}

static void ny_fall_half_hourly_from_second_pass(void **state) {
    (void)state;
    assert_next("*/30 * * * *", NY, 1793513400 /* 01:10 EST */, 1793516400 /* 02:00 EST */);
}

static void ny_fall_nine_once_per_day(void **state) {
    (void)state;
    /* 09:00 local on 10-30 .. 11-03: 13:00 UTC before the change, 14:00 UTC after it. */
    double expected[] = {1793365200, 1793451600, 1793541600, 1793628000, 1793714400};
    assert_runs("0 9 * * *", NY, 1793332800 /* 10-30 00:00 EDT */, expected, 5);
}

static void ny_fall_hourly_skips_repeat(void **state) {
    (void)state;
    /* Hourly: 00:00 EDT, 01:00 EDT, then 02:00 EST; the repeated 01:00 EST does not run, so
     * two hours of real time pass between the last two runs. */
    double expected[] = {1793505600, 1793509200, 1793516400, 1793520000};
    assert_runs("@hourly", NY, 1793505600 - 60, expected, 4);
}

/* ---- DST: restart-like computations at 09:00 New York ---- */

static void ny_restart_before_run(void **state) {
    (void)state;
    /* A stored last run just before 09:00 (08:59:59): the 09:00 run comes next, that day. */
    assert_next("0 9 * * *", NY, 1773147599 /* 03-10 08:59:59 EDT */, 1773147600);
    assert_next("0 9 * * *", NY, 1793541599 /* 11-01 08:59:59 EST */, 1793541600);
}

static void ny_restart_at_run(void **state) {
    (void)state;
    /* A stored last run of 09:00 itself: the next is 09:00 the next day, never 09:00 again. */
    assert_next("0 9 * * *", NY, 1773147600, 1773234000);
    assert_next("0 9 * * *", NY, 1773147600.5, 1773234000);
    assert_next("0 9 * * *", NY, 1793541600, 1793628000);
}

/* ---- DST: Europe/Berlin, 2026-03-29 and 2026-10-25 ---- */

static void berlin_spring_missing_time(void **state) {
    (void)state;
    /* 02:00 CET -> 03:00 CEST: 02:30 runs at 03:00 CEST (01:00 UTC), then 02:30 CEST. */
    double expected[] = {1774746000, 1774830600};
    assert_runs("30 2 * * *", BERLIN, 1774695600 /* 03-28 12:00 CET */, expected, 2);
}

static void berlin_fall_repeated_time(void **state) {
    (void)state;
    /* 03:00 CEST -> 02:00 CET: 02:30 runs at the first one (00:30 UTC), then the next day. */
    double expected[] = {1792888200, 1792978200};
    assert_runs("30 2 * * *", BERLIN, 1792836000 /* 10-24 12:00 CEST */, expected, 2);
    assert_next("30 2 * * *", BERLIN, 1792890900 /* 02:15 CET, second pass */, 1792978200);
}

static void berlin_fall_half_hourly(void **state) {
    (void)state;
    /* 02:00 and 02:30 CEST run; the CET repeats do not; 03:00 CET follows. */
    double expected[] = {1792886400, 1792888200, 1792893600};
    assert_runs("*/30 * * * *", BERLIN, 1792886400 - 60, expected, 3);
}

static void berlin_nine_once_per_day(void **state) {
    (void)state;
    double spring[] = {1774598400, 1774684800, 1774767600, 1774854000, 1774940400};
    assert_runs("0 9 * * *", BERLIN, 1774566000 /* 03-27 00:00 CET */, spring, 5);
    double fall[] = {1792738800, 1792825200, 1792915200, 1793001600, 1793088000};
    assert_runs("0 9 * * *", BERLIN, 1792706400 /* 10-23 00:00 CEST */, fall, 5);
}

/* ---- DST in zones with unusual rules ---- */

static void lord_howe_half_hour_shift(void **state) {
    (void)state;
    /* Australia/Lord_Howe moves by 30 minutes: on 2026-10-04 02:00 becomes 02:30, so 02:15
     * runs at 02:30; on 2026-04-05 01:30-02:00 repeats and 01:45 runs at its first one. */
    assert_next("15 2 * * *", "Australia/Lord_Howe", 1790991000 /* 10-03 12:00 */, 1791041400);
    assert_next("45 1 * * *", "Australia/Lord_Howe", 1775264400 /* 04-04 12:00 */,
                1775313000 + 15 * 60);
}

static void dublin_negative_dst(void **state) {
    (void)state;
    /* Europe/Dublin marks winter time as the DST offset in the tz database; the rule still
     * holds: 01:30 is missing on 2026-03-29 (runs at 02:00 IST) and repeated on 2026-10-25
     * (runs at its first occurrence, IST). */
    assert_next("30 1 * * *", "Europe/Dublin", 1774699200 /* 03-28 12:00 GMT */, 1774746000);
    assert_next("30 1 * * *", "Europe/Dublin", 1792839600 /* 10-24 12:00 IST */, 1792888200);
}

static void havana_midnight_gap(void **state) {
    (void)state;
    /* America/Havana skips from 00:00 to 01:00 on 2026-03-08: midnight runs at 01:00. */
    double expected[] = {1772946000 /* 03-08 01:00 CDT */, 1773028800 /* 03-09 00:00 CDT */};
    assert_runs("0 0 * * *", "America/Havana", 1772902800 /* 03-07 12:00 CST */, expected, 2);
}

/* ---- zone names ---- */

static void zone_names_that_exist(void **state) {
    (void)state;
    assert_true(cron_zone_exists(NULL));
    assert_true(cron_zone_exists(""));
    assert_true(cron_zone_exists("UTC"));
    assert_true(cron_zone_exists(NY));
    assert_true(cron_zone_exists(BERLIN));
    assert_true(cron_zone_exists("Etc/GMT+5"));
}

static void zone_names_rejected(void **state) {
    (void)state;
    assert_false(cron_zone_exists("Mars/Olympus_Mons"));
    assert_false(cron_zone_exists("america/new_york"));
    assert_false(cron_zone_exists("America"));            /* a directory */
    assert_false(cron_zone_exists("/etc/passwd"));
    assert_false(cron_zone_exists("../../../etc/passwd"));
    assert_false(cron_zone_exists("America/../Europe/Berlin"));
    assert_false(cron_zone_exists("EST+5"));              /* a POSIX TZ string */
    char long_name[300];
    memset(long_name, 'A', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_false(cron_zone_exists(long_name));
}

/* The tz database directory also contains data files that are not zones (zone.tab,
 * iso3166.tab, tzdata.zi, leapseconds). cron_zone_exists accepts them today, and glibc then
 * reads the entry's schedule in UTC without a warning. */
static void zone_rejects_tz_data_tables(void **state) {
    (void)state;
    assert_false(cron_zone_exists("zone.tab"));
    assert_false(cron_zone_exists("iso3166.tab"));
    assert_false(cron_zone_exists("tzdata.zi"));
    assert_false(cron_zone_exists("leapseconds"));
}

/* ---- cron_load: entries from conf.d files ---- */

struct conf_fixture {
    char root[64];
    char config_dir[128];
    char conf_d[160];
    struct config cfg;
    struct cron_set set;
    char err[1024];
};

static int conf_setup(void **state) {
    struct conf_fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/fabrik-cron-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->config_dir, sizeof f->config_dir, "%s/conf", f->root);
    snprintf(f->conf_d, sizeof f->conf_d, "%s/conf.d", f->config_dir);
    if (mkdir(f->config_dir, 0700) != 0 || mkdir(f->conf_d, 0700) != 0)
        return -1;
    unsetenv("FAKTORY_ENV");
    unsetenv("FAKTORY_PASSWORD");
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int conf_teardown(void **state) {
    struct conf_fixture *f = *state;
    cron_set_free(&f->set);
    config_free(&f->cfg);
    nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void write_conf(struct conf_fixture *f, const char *name, const char *content) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->conf_d, name);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    assert_true(fputs(content, out) >= 0);
    assert_int_equal(fclose(out), 0);
}

/* Reads the conf.d files the way the server does (config_load merges them into one document)
 * and runs cron_load on the result. Returns cron_load's result, with its message in f->err. */
static int load_conf(struct conf_fixture *f) {
    char *argv[] = {"fabrik", "-c", f->config_dir, NULL};
    enum config_action action;
    config_free(&f->cfg);
    memset(&f->cfg, 0, sizeof f->cfg);
    if (config_load(&f->cfg, 3, argv, &action, f->err, sizeof f->err) != 0)
        fail_msg("config_load failed: %s", f->err);
    cron_set_free(&f->set);
    f->err[0] = '\0';
    return cron_load(f->cfg.document, f->conf_d, &f->set, f->err, sizeof f->err);
}

static void load_ok(struct conf_fixture *f) {
    if (load_conf(f) != 0)
        fail_msg("cron_load failed: %s", f->err);
}

/* Loads content as the only file, cron.toml, and expects "<path> entry 1: <message>". */
static void assert_load_error(struct conf_fixture *f, const char *content, const char *message) {
    write_conf(f, "cron.toml", content);
    if (load_conf(f) != -1)
        fail_msg("accepted:\n%s", content);
    char expected[1024];
    snprintf(expected, sizeof expected, "%s/cron.toml entry 1: %s", f->conf_d, message);
    assert_string_equal(f->err, expected);
    assert_int_equal(f->set.n, 0);
    assert_null(f->set.entries);
}

#define JOB_X "[cron.job]\ntype = \"X\"\n"

static void load_no_entries(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "fabrik.toml", "[fabrik]\ndurability = \"os\"\n");
    load_ok(f);
    assert_int_equal(f->set.n, 0);
    assert_int_equal(cron_load(NULL, NULL, &f->set, f->err, sizeof f->err), 0);
    assert_int_equal(f->set.n, 0);
}

static void load_without_conf_dir(void **state) {
    struct conf_fixture *f = *state;
    /* Without the directory, messages count entries across the merged document. */
    json_t *doc = json_loads("{\"cron\":[{\"schedule\":\"@daily\",\"job\":{\"type\":\"X\"}},"
                             "{\"schedule\":\"@daily\",\"job\":{}}]}",
                             0, NULL);
    assert_non_null(doc);
    assert_int_equal(cron_load(doc, NULL, &f->set, f->err, sizeof f->err), -1);
    assert_string_equal(f->err, "conf.d entry 2: job.type is required, as in type = "
                                "\"NightlyReport\"");
    json_decref(doc);
}

static void load_full_entry(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml",
               "[[cron]]\n"
               "schedule = \"*/5 * * * *\"\n"
               "timezone = \"America/New_York\"\n"
               "catch_up = \"skip\"\n"
               "[cron.job]\n"
               "type = \"FiveJob\"\n"
               "queue = \"critical\"\n"
               "args = [1, \"two\", {three = 3}]\n"
               "retry = 3\n"
               "reserve_for = 600\n"
               "priority = 8\n"
               "[cron.job.custom]\n"
               "expires_in = 60\n");
    load_ok(f);
    assert_int_equal(f->set.n, 1);
    const struct cron_entry *c = &f->set.entries[0];
    assert_string_equal(c->schedule, "*/5 * * * *");
    assert_string_equal(c->timezone, NY);
    assert_int_equal(c->catch_up, CRON_CATCH_UP_SKIP);
    char source[256];
    snprintf(source, sizeof source, "%s/cron.toml entry 1", f->conf_d);
    assert_string_equal(c->source, source);
    assert_true(c->expr.minutes == bit_list(12, 0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55));
    assert_true(c->last_run == 0);

    json_t *expected = json_loads("{\"jobtype\":\"FiveJob\",\"queue\":\"critical\","
                                  "\"args\":[1,\"two\",{\"three\":3}],\"retry\":3,"
                                  "\"reserve_for\":600,\"priority\":8,"
                                  "\"custom\":{\"expires_in\":60}}",
                                  0, NULL);
    assert_non_null(expected);
    if (!json_equal(c->job, expected)) {
        char *got = json_dumps(c->job, JSON_SORT_KEYS);
        fail_msg("job template %s", got);
    }
    json_decref(expected);
}

static void load_defaults(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml", "[[cron]]\nschedule = \"@daily\"\n" JOB_X);
    load_ok(f);
    const struct cron_entry *c = &f->set.entries[0];
    assert_null(c->timezone);
    assert_int_equal(c->catch_up, CRON_CATCH_UP_ONCE);
    json_t *expected = json_pack("{s:s, s:[]}", "jobtype", "X", "args");
    assert_true(json_equal(c->job, expected));
    json_decref(expected);
}

static void load_catch_up_once(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml", "[[cron]]\nschedule = \"@daily\"\ncatch_up = \"once\"\n" JOB_X);
    load_ok(f);
    assert_int_equal(f->set.entries[0].catch_up, CRON_CATCH_UP_ONCE);
}

static void load_empty_timezone_is_utc(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml", "[[cron]]\nschedule = \"@daily\"\ntimezone = \"\"\n" JOB_X);
    load_ok(f);
    assert_null(f->set.entries[0].timezone);
}

static void load_entries_of_all_files_add_up(void **state) {
    struct conf_fixture *f = *state;
    /* b.toml has no final newline; the files are read in byte order (A < a < b). */
    write_conf(f, "b.toml", "[[cron]]\nschedule = \"3 * * * *\"\n[cron.job]\ntype = \"B\"");
    write_conf(f, "a.toml",
               "[[cron]]\nschedule = \"1 * * * *\"\n[cron.job]\ntype = \"A1\"\n"
               "[[cron]]\nschedule = \"2 * * * *\"\n[cron.job]\ntype = \"A2\"\n");
    write_conf(f, "A.toml", "[fabrik]\ndurability = \"os\"\n");
    write_conf(f, "notes.txt", "[[cron]]\nschedule = \"bad\"\n");
    load_ok(f);
    assert_int_equal(f->set.n, 3);
    static const char *const types[] = {"A1", "A2", "B"};
    static const char *const sources[] = {"a.toml entry 1", "a.toml entry 2", "b.toml entry 1"};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(json_string_value(json_object_get(f->set.entries[i].job, "jobtype")),
                            types[i]);
        char source[256];
        snprintf(source, sizeof source, "%s/%s", f->conf_d, sources[i]);
        assert_string_equal(f->set.entries[i].source, source);
    }
}

static void load_error_names_file_and_entry(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "a.toml",
               "[[cron]]\nschedule = \"@hourly\"\n" JOB_X
               "[[cron]]\nschedule = \"@daily\"\n" JOB_X);
    write_conf(f, "b.toml",
               "[[cron]]\nschedule = \"@weekly\"\n" JOB_X
               "[[cron]]\nschedule = \"0 0 * * 8\"\n" JOB_X);
    assert_int_equal(load_conf(f), -1);
    char expected[512];
    snprintf(expected, sizeof expected,
             "%s/b.toml entry 2: schedule \"0 0 * * 8\": day of week: 8 is outside 0-7",
             f->conf_d);
    assert_string_equal(f->err, expected);
    assert_int_equal(f->set.n, 0);
}

static void load_error_unknown_key(void **state) {
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\ntz = \"UTC\"\n" JOB_X,
                      "unknown key \"tz\"; [[cron]] takes schedule, timezone, catch_up and a "
                      "[cron.job] table");
}

static void load_error_missing_schedule(void **state) {
    assert_load_error(*state, "[[cron]]\n" JOB_X,
                      "schedule is required, as in schedule = \"*/5 * * * *\"");
}

static void load_error_schedule_not_string(void **state) {
    assert_load_error(*state, "[[cron]]\nschedule = 5\n" JOB_X,
                      "schedule is required, as in schedule = \"*/5 * * * *\"");
}

static void load_error_bad_schedule(void **state) {
    assert_load_error(*state, "[[cron]]\nschedule = \"61 * * * *\"\n" JOB_X,
                      "schedule \"61 * * * *\": minute: 61 is outside 0-59");
}

static void load_error_bad_timezone(void **state) {
    static const char *const suffix =
        " is not a zone of the tz database; use a name such as \"America/New_York\" or "
        "\"UTC\"";
    static const char *const zones[][2] = {
        {"\"Mars/Olympus\"", "\"Mars/Olympus\""},
        {"5", "\"(not a string)\""},
        {"\"EST+5\"", "\"EST+5\""},
    };
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        char content[256], message[256];
        snprintf(content, sizeof content, "[[cron]]\nschedule = \"@daily\"\ntimezone = %s\n%s",
                 zones[i][0], JOB_X);
        snprintf(message, sizeof message, "timezone %s%s", zones[i][1], suffix);
        assert_load_error(*state, content, message);
    }
}

static void load_error_bad_catch_up(void **state) {
    static const char *const message = "catch_up must be \"once\" or \"skip\"";
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\ncatch_up = \"all\"\n" JOB_X,
                      message);
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\ncatch_up = true\n" JOB_X,
                      message);
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\ncatch_up = \"ONCE\"\n" JOB_X,
                      message);
}

static void load_error_missing_job(void **state) {
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\n",
                      "missing [cron.job] table with at least type = \"JobType\"");
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\njob = \"X\"\n",
                      "missing [cron.job] table with at least type = \"JobType\"");
}

static void load_error_missing_type(void **state) {
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\n[cron.job]\nqueue = \"q\"\n",
                      "job.type is required, as in type = \"NightlyReport\"");
}

static void load_error_unknown_job_key(void **state) {
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\n" JOB_X "jobtype = \"Y\"\n",
                      "job.jobtype is not a job field; use type, queue, args, retry, "
                      "reserve_for, priority or custom");
    assert_load_error(*state, "[[cron]]\nschedule = \"@daily\"\n" JOB_X "at = \"x\"\n",
                      "job.at is not a job field; use type, queue, args, retry, "
                      "reserve_for, priority or custom");
}

static void load_error_job_field_types(void **state) {
    static const struct {
        const char *line;
        const char *field;
    } cases[] = {
        {"type = 5", "type"},           {"queue = 5", "queue"},
        {"args = \"x\"", "args"},       {"args = {a = 1}", "args"},
        {"retry = \"3\"", "retry"},     {"retry = 2.5", "retry"},
        {"reserve_for = \"600\"", "reserve_for"}, {"priority = \"high\"", "priority"},
        {"custom = [1]", "custom"},     {"custom = \"x\"", "custom"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char content[256];
        snprintf(content, sizeof content, "[[cron]]\nschedule = \"@daily\"\n[cron.job]\n%s\n%s",
                 cases[i].line, strcmp(cases[i].field, "type") == 0 ? "" : "type = \"X\"\n");
        char message[128];
        snprintf(message, sizeof message, "job.%s has the wrong type", cases[i].field);
        assert_load_error(*state, content, message);
    }
}

static void load_error_invalid_queue(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml",
               "[[cron]]\nschedule = \"@daily\"\n" JOB_X "queue = \"bad queue\"\n");
    assert_int_equal(load_conf(f), -1);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/cron.toml entry 1: job: ", f->conf_d);
    assert_memory_equal(f->err, prefix, strlen(prefix));
    assert_non_null(strstr(f->err, "bad queue"));
}

static void load_error_cron_table(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml", "[cron]\nschedule = \"@daily\"\n");
    assert_int_equal(load_conf(f), -1);
    assert_string_equal(f->err, "cron must be an array of tables: write [[cron]], not [cron]");
}

static void load_error_entry_not_table(void **state) {
    assert_load_error(*state, "cron = [1]\n", "[[cron]] entries must be tables");
}

static void load_error_stops_at_first(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml",
               "[[cron]]\nschedule = \"@daily\"\n" JOB_X
               "[[cron]]\nschedule = \"bad\"\n" JOB_X
               "[[cron]]\nschedule = \"@daily\"\n[cron.job]\n");
    assert_int_equal(load_conf(f), -1);
    assert_non_null(strstr(f->err, "cron.toml entry 2: schedule \"bad\""));
}

/* ---- entry keys ---- */

static const char *first_key(struct conf_fixture *f, const char *content, char out[65]) {
    write_conf(f, "cron.toml", content);
    load_ok(f);
    memcpy(out, f->set.entries[0].key, 65);
    return out;
}

static bool is_lower_hex(const char *text, size_t len) {
    if (strlen(text) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)text[i]) && !(text[i] >= 'a' && text[i] <= 'f'))
            return false;
    }
    return true;
}

static void key_is_sha256_hex(void **state) {
    char key[65];
    first_key(*state, "[[cron]]\nschedule = \"@daily\"\n" JOB_X, key);
    assert_true(is_lower_hex(key, 64));
}

static void key_is_stable(void **state) {
    struct conf_fixture *f = *state;
    char first[65];
    first_key(f, "[[cron]]\nschedule = \"@daily\"\n" JOB_X "queue = \"q\"\n", first);

    /* The same definition in another file, with other key order and layout: same key. */
    char old_path[256];
    snprintf(old_path, sizeof old_path, "%s/cron.toml", f->conf_d);
    assert_int_equal(remove(old_path), 0);
    write_conf(f, "other.toml",
               "[[cron]]\njob = { queue = \"q\", type = \"X\" }\nschedule = \"@daily\"\n"
               "[[cron]]\nschedule = \"@hourly\"\n" JOB_X);
    load_ok(f);
    assert_string_equal(f->set.entries[0].key, first);
    assert_string_not_equal(f->set.entries[1].key, first);
}

static void key_changes_with_definition(void **state) {
    struct conf_fixture *f = *state;
    char base[65], other[65];
    first_key(f, "[[cron]]\nschedule = \"@daily\"\n" JOB_X, base);
    static const char *const variants[] = {
        "[[cron]]\nschedule = \"0 0 * * *\"\n" JOB_X,
        "[[cron]]\nschedule = \"@daily\"\ntimezone = \"UTC\"\n" JOB_X,
        "[[cron]]\nschedule = \"@daily\"\ncatch_up = \"skip\"\n" JOB_X,
        "[[cron]]\nschedule = \"@daily\"\n" JOB_X "args = [1]\n",
        "[[cron]]\nschedule = \"@daily\"\n[cron.job]\ntype = \"Y\"\n",
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        first_key(f, variants[i], other);
        if (strcmp(base, other) == 0)
            fail_msg("same key for a changed entry:\n%s", variants[i]);
    }
}

/* ---- cron_make_job ---- */

static void make_job_copies_template(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml",
               "[[cron]]\nschedule = \"@daily\"\n" JOB_X "queue = \"q\"\nargs = [1, 2]\n"
               "retry = 0\nreserve_for = 30\n[cron.job.custom]\nexpires_in = 60\n");
    load_ok(f);
    json_t *job = cron_make_job(&f->set.entries[0]);
    assert_string_equal(json_string_value(json_object_get(job, "jobtype")), "X");
    assert_string_equal(json_string_value(json_object_get(job, "queue")), "q");
    assert_int_equal(json_array_size(json_object_get(job, "args")), 2);
    assert_int_equal(json_integer_value(json_object_get(job, "retry")), 0);
    assert_int_equal(json_integer_value(json_object_get(job, "reserve_for")), 30);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(job, "custom"),
                                                        "expires_in")),
                     60);
    assert_true(is_lower_hex(json_string_value(json_object_get(job, "jid")), 24));
    /* The template itself gets no jid, and the job is a deep copy. */
    assert_null(json_object_get(f->set.entries[0].job, "jid"));
    json_array_append_new(json_object_get(job, "args"), json_integer(3));
    assert_int_equal(json_array_size(json_object_get(f->set.entries[0].job, "args")), 2);
    json_decref(job);
}

static void make_job_fresh_jids(void **state) {
    struct conf_fixture *f = *state;
    write_conf(f, "cron.toml", "[[cron]]\nschedule = \"@daily\"\n" JOB_X);
    load_ok(f);
    char seen[50][25];
    for (int i = 0; i < 50; i++) {
        json_t *job = cron_make_job(&f->set.entries[0]);
        const char *jid = json_string_value(json_object_get(job, "jid"));
        assert_true(is_lower_hex(jid, 24));
        for (int k = 0; k < i; k++)
            assert_string_not_equal(seen[k], jid);
        snprintf(seen[i], sizeof seen[i], "%s", jid);
        json_decref(job);
    }
}

static void set_free_twice(void **state) {
    (void)state;
    struct cron_set set = {0};
    cron_set_free(&set);
    cron_set_free(&set);
    assert_int_equal(set.n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_all_stars),
        cmocka_unit_test(parse_single_values),
        cmocka_unit_test(parse_field_bounds),
        cmocka_unit_test(parse_ranges),
        cmocka_unit_test(parse_single_value_range),
        cmocka_unit_test(parse_star_steps),
        cmocka_unit_test(parse_range_steps),
        cmocka_unit_test(parse_start_step_runs_to_field_end),
        cmocka_unit_test(parse_step_larger_than_field),
        cmocka_unit_test(parse_lists),
        cmocka_unit_test(parse_mixed_list),
        cmocka_unit_test(parse_star_inside_list),
        cmocka_unit_test(parse_leading_zeros),
        cmocka_unit_test(parse_whitespace),
        cmocka_unit_test(parse_month_names),
        cmocka_unit_test(parse_day_names),
        cmocka_unit_test(parse_names_ignore_case),
        cmocka_unit_test(parse_name_ranges_lists_steps),
        cmocka_unit_test(parse_seven_is_sunday),
        cmocka_unit_test(parse_range_to_seven),
        cmocka_unit_test(parse_weekday_star_excludes_seven),
        cmocka_unit_test(parse_macros),
        cmocka_unit_test(parse_macro_with_spaces),
        cmocka_unit_test(reject_field_counts),
        cmocka_unit_test(reject_values_out_of_range),
        cmocka_unit_test(reject_backward_ranges),
        cmocka_unit_test(reject_bad_steps),
        cmocka_unit_test(reject_empty_list_items),
        cmocka_unit_test(reject_words_and_signs),
        cmocka_unit_test(reject_names_in_wrong_field),
        cmocka_unit_test(reject_long_names),
        cmocka_unit_test(reject_five_digit_numbers),
        cmocka_unit_test(reject_seven_with_step),
        cmocka_unit_test(reject_unknown_macros),
        cmocka_unit_test(reject_with_tiny_error_buffer),
        cmocka_unit_test(next_every_minute),
        cmocka_unit_test(next_is_strictly_after),
        cmocka_unit_test(next_utc_zone_spellings),
        cmocka_unit_test(next_across_year),
        cmocka_unit_test(next_across_months),
        cmocka_unit_test(next_in_named_months),
        cmocka_unit_test(next_leap_day),
        cmocka_unit_test(next_leap_day_from_leap_year),
        cmocka_unit_test(next_end_of_february),
        cmocka_unit_test(next_never_returns_zero),
        cmocka_unit_test(next_weekday),
        cmocka_unit_test(next_seven_equals_zero),
        cmocka_unit_test(next_weekdays_only),
        cmocka_unit_test(day_rule_either_when_both_restricted),
        cmocka_unit_test(day_rule_first_or_monday),
        cmocka_unit_test(day_rule_month_still_applies),
        cmocka_unit_test(day_rule_dom_only),
        cmocka_unit_test(day_rule_dow_only),
        cmocka_unit_test(day_rule_star_step_is_restricted),
        cmocka_unit_test(next_sequence_increases),
        cmocka_unit_test(next_step_wraps_within_hour),
        cmocka_unit_test(next_in_fixed_offset_zone),
        cmocka_unit_test(next_local_day_differs_from_utc_day),
        cmocka_unit_test(next_does_not_change_process_zone),
        cmocka_unit_test(ny_spring_missing_time_runs_at_three),
        cmocka_unit_test(ny_spring_missing_hour_start),
        cmocka_unit_test(ny_spring_nine_once_per_day),
        cmocka_unit_test(ny_spring_half_hourly),
        cmocka_unit_test(ny_spring_after_gap_run),
        cmocka_unit_test(ny_fall_repeated_time_runs_first),
        cmocka_unit_test(ny_fall_second_pass_does_not_run),
        cmocka_unit_test(ny_fall_half_hourly),
        cmocka_unit_test(ny_fall_half_hourly_from_second_pass),
        cmocka_unit_test(ny_fall_nine_once_per_day),
        cmocka_unit_test(ny_fall_hourly_skips_repeat),
        cmocka_unit_test(ny_restart_before_run),
        cmocka_unit_test(ny_restart_at_run),
        cmocka_unit_test(berlin_spring_missing_time),
        cmocka_unit_test(berlin_fall_repeated_time),
        cmocka_unit_test(berlin_fall_half_hourly),
        cmocka_unit_test(berlin_nine_once_per_day),
        cmocka_unit_test(lord_howe_half_hour_shift),
        cmocka_unit_test(dublin_negative_dst),
        cmocka_unit_test(havana_midnight_gap),
        cmocka_unit_test(zone_names_that_exist),
        cmocka_unit_test(zone_names_rejected),
        cmocka_unit_test(zone_rejects_tz_data_tables),
        cmocka_unit_test_setup_teardown(load_no_entries, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_without_conf_dir, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_full_entry, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_defaults, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_catch_up_once, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_empty_timezone_is_utc, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_entries_of_all_files_add_up, conf_setup,
                                        conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_names_file_and_entry, conf_setup,
                                        conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_unknown_key, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_missing_schedule, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_schedule_not_string, conf_setup,
                                        conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_bad_schedule, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_bad_timezone, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_bad_catch_up, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_missing_job, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_missing_type, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_unknown_job_key, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_job_field_types, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_invalid_queue, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_cron_table, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_entry_not_table, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(load_error_stops_at_first, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(key_is_sha256_hex, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(key_is_stable, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(key_changes_with_definition, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(make_job_copies_template, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(make_job_fresh_jids, conf_setup, conf_teardown),
        cmocka_unit_test(set_free_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
