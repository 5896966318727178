/* Unit tests of RFC 3339 parsing and formatting (time_parse_rfc3339, time_format_rfc3339,
 * time_format_day). Expected epoch values were computed with Python's datetime in UTC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/timefmt.h"

/* Parses text and checks the result is within 1 microsecond of expected. */
#define assert_parses_to(text, expected)                                                  \
    do {                                                                                  \
        double got_ = -1;                                                                 \
        char err_[128] = "";                                                              \
        int rc_ = time_parse_rfc3339((text), &got_, err_, sizeof err_);                   \
        if (rc_ != 0)                                                                     \
            fail_msg("\"%s\" rejected: %s", (text), err_);                                \
        if (fabs(got_ - (double)(expected)) > 1e-6)                                       \
            fail_msg("\"%s\" parsed to %.9f, expected %.9f", (text), got_,                \
                     (double)(expected));                                                 \
    } while (0)

/* Checks that text is rejected with exactly message. */
#define assert_rejected_with(text, message)                                               \
    do {                                                                                  \
        double got_ = 0;                                                                  \
        char err_[128] = "";                                                              \
        int rc_ = time_parse_rfc3339((text), &got_, err_, sizeof err_);                   \
        if (rc_ != -1)                                                                    \
            fail_msg("\"%s\" accepted as %.9f", (text), got_);                            \
        assert_string_equal(err_, (message));                                             \
    } while (0)

#define BAD_DATE "invalid date, expected YYYY-MM-DD"
#define BAD_T "expected 'T' between date and time, as in 2030-01-01T10:00:00Z"
#define BAD_TIME "invalid time of day, expected hh:mm:ss with an optional fraction"
#define BAD_ZONE "missing or invalid time zone, expected Z or +hh:mm"
#define TRAILING "unexpected text after the time zone"

/* ---- parsing ---- */

static void parse_utc_z(void **state) {
    (void)state;
    assert_parses_to("2017-08-17T18:55:26Z", 1502996126);
}

static void parse_epoch(void **state) {
    (void)state;
    assert_parses_to("1970-01-01T00:00:00Z", 0);
}

static void parse_before_epoch(void **state) {
    (void)state;
    assert_parses_to("1969-12-31T23:59:59Z", -1);
}

static void parse_positive_offset(void **state) {
    (void)state;
    assert_parses_to("2030-01-01T10:00:00+02:00", 1893484800);
}

static void parse_negative_offset(void **state) {
    (void)state;
    assert_parses_to("2030-01-01T03:30:00-04:30", 1893484800);
}

static void parse_zero_offsets(void **state) {
    (void)state;
    assert_parses_to("2030-01-01T08:00:00+00:00", 1893484800);
    assert_parses_to("2030-01-01T08:00:00-00:00", 1893484800);
}

static void parse_offset_crosses_day(void **state) {
    (void)state;
    /* 2024-03-01T01:00:00+02:00 is still February 29th in UTC. */
    assert_parses_to("2024-03-01T01:00:00+02:00", 1709208000 + 11 * 3600);
}

static void parse_largest_offset(void **state) {
    (void)state;
    assert_parses_to("2030-01-01T08:00:00+23:59", 1893484800 - 23 * 3600 - 59 * 60);
}

static void parse_fraction_one_digit(void **state) {
    (void)state;
    assert_parses_to("2017-08-17T18:55:26.5Z", 1502996126.5);
}

static void parse_fraction_six_digits(void **state) {
    (void)state;
    assert_parses_to("2017-08-17T18:55:26.554544Z", 1502996126.554544);
}

static void parse_fraction_nine_digits(void **state) {
    (void)state;
    assert_parses_to("2017-08-17T18:55:26.123456789Z", 1502996126.123456789);
}

static void parse_fraction_every_length(void **state) {
    (void)state;
    const char *digits = "999999999";
    for (int n = 1; n <= 9; n++) {
        char text[64];
        snprintf(text, sizeof text, "1970-01-01T00:00:00.%.*sZ", n, digits);
        assert_parses_to(text, 1.0 - pow(10, -n));
    }
}

static void parse_fraction_with_offset(void **state) {
    (void)state;
    assert_parses_to("2030-01-01T10:00:00.25+02:00", 1893484800.25);
}

static void parse_fraction_of_zeros(void **state) {
    (void)state;
    assert_parses_to("2030-01-01T08:00:00.000000000Z", 1893484800);
}

static void parse_leap_day_2024(void **state) {
    (void)state;
    assert_parses_to("2024-02-29T12:00:00Z", 1709208000);
}

static void parse_leap_day_2000(void **state) {
    (void)state;
    assert_parses_to("2000-02-29T00:00:00Z", 951782400);
}

static void parse_days_across_leap_day(void **state) {
    (void)state;
    double a, b;
    char err[128];
    assert_int_equal(time_parse_rfc3339("2024-02-28T00:00:00Z", &a, err, sizeof err), 0);
    assert_int_equal(time_parse_rfc3339("2024-03-01T00:00:00Z", &b, err, sizeof err), 0);
    assert_true(b - a == 2 * 86400);
}

static void parse_end_of_year(void **state) {
    (void)state;
    assert_parses_to("2024-12-31T23:59:59Z", 1735689599);
}

static void parse_year_extremes(void **state) {
    (void)state;
    assert_parses_to("0000-01-01T00:00:00Z", -62167219200.0);
    assert_parses_to("0001-01-01T00:00:00Z", -62135596800.0);
    assert_parses_to("9999-12-31T23:59:59Z", 253402300799.0);
}

static void parse_rejects_non_leap_feb_29(void **state) {
    (void)state;
    assert_rejected_with("2023-02-29T00:00:00Z", BAD_DATE);
}

static void parse_rejects_century_feb_29(void **state) {
    (void)state;
    assert_rejected_with("1900-02-29T00:00:00Z", BAD_DATE);
}

static void parse_rejects_day_31_of_april(void **state) {
    (void)state;
    assert_rejected_with("2024-04-31T00:00:00Z", BAD_DATE);
}

static void parse_rejects_bad_month_and_day(void **state) {
    (void)state;
    assert_rejected_with("2030-00-10T00:00:00Z", BAD_DATE);
    assert_rejected_with("2030-13-01T00:00:00Z", BAD_DATE);
    assert_rejected_with("2030-01-00T00:00:00Z", BAD_DATE);
    assert_rejected_with("2030-01-32T00:00:00Z", BAD_DATE);
}

static void parse_rejects_short_fields(void **state) {
    (void)state;
    assert_rejected_with("2030-1-01T10:00:00Z", BAD_DATE);
    assert_rejected_with("2030-01-1T10:00:00Z", BAD_DATE);
    assert_rejected_with("30-01-01T10:00:00Z", BAD_DATE);
    assert_rejected_with("2030-01-01T1:00:00Z", BAD_TIME);
    assert_rejected_with("2030-01-01T10:0:00Z", BAD_TIME);
    assert_rejected_with("2030-01-01T10:00:0Z", BAD_TIME);
}

static void parse_rejects_wrong_separators(void **state) {
    (void)state;
    assert_rejected_with("2030/01/01T10:00:00Z", BAD_DATE);
    assert_rejected_with("2030-01-01T10.00.00Z", BAD_TIME);
}

static void parse_rejects_empty(void **state) {
    (void)state;
    assert_rejected_with("", BAD_DATE);
}

static void parse_rejects_date_only(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01", BAD_T);
}

static void parse_rejects_space_separator(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01 10:00:00Z", BAD_T);
}

static void parse_rejects_leading_space(void **state) {
    (void)state;
    assert_rejected_with(" 2030-01-01T10:00:00Z", BAD_DATE);
}

static void parse_rejects_missing_zone(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01T10:00:00", BAD_ZONE);
}

static void parse_rejects_bad_time_of_day(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01T24:00:00Z", BAD_TIME);
    assert_rejected_with("2030-01-01T10:60:00Z", BAD_TIME);
    assert_rejected_with("2030-01-01T10:00:61Z", BAD_TIME);
}

static void parse_rejects_fraction_without_digits(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01T10:00:00.Z", BAD_TIME);
}

static void parse_rejects_ten_fraction_digits(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01T10:00:00.1234567890Z", BAD_TIME);
}

static void parse_rejects_comma_fraction(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01T10:00:00,5Z", BAD_ZONE);
}

static void parse_rejects_bad_offsets(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01T10:00:00+0200", BAD_ZONE);
    assert_rejected_with("2030-01-01T10:00:00+02", BAD_ZONE);
    assert_rejected_with("2030-01-01T10:00:00+24:00", BAD_ZONE);
    assert_rejected_with("2030-01-01T10:00:00+02:60", BAD_ZONE);
    assert_rejected_with("2030-01-01T10:00:00 +02:00", BAD_ZONE);
    assert_rejected_with("2030-01-01T10:00:00UTC", BAD_ZONE);
}

static void parse_rejects_trailing_text(void **state) {
    (void)state;
    assert_rejected_with("2030-01-01T10:00:00Zjunk", TRAILING);
    assert_rejected_with("2030-01-01T10:00:00Z ", TRAILING);
    assert_rejected_with("2030-01-01T10:00:00+02:00:00", TRAILING);
}

static void parse_rejects_words(void **state) {
    (void)state;
    assert_rejected_with("tomorrow", BAD_DATE);
    assert_rejected_with("1893484800", BAD_DATE);
}

static void parse_failure_leaves_output(void **state) {
    (void)state;
    double out = 42;
    char err[128];
    assert_int_equal(time_parse_rfc3339("2030-01-01T10:00:00", &out, err, sizeof err), -1);
    assert_true(out == 42);
}

/* ---- formatting ---- */

static void format_whole_second(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1502996126, out), "2017-08-17T18:55:26Z");
}

static void format_returns_out(void **state) {
    (void)state;
    char out[32];
    assert_ptr_equal(time_format_rfc3339(0, out), out);
}

static void format_epoch(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(0, out), "1970-01-01T00:00:00Z");
}

static void format_half_second(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1502996126.5, out), "2017-08-17T18:55:26.5Z");
}

static void format_microseconds(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1502996126.554544, out),
                        "2017-08-17T18:55:26.554544Z");
}

static void format_trims_trailing_zeros(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1502996126.12, out), "2017-08-17T18:55:26.12Z");
    assert_string_equal(time_format_rfc3339(1502996126.1, out), "2017-08-17T18:55:26.1Z");
    assert_string_equal(time_format_rfc3339(1502996126.000001, out),
                        "2017-08-17T18:55:26.000001Z");
}

static void format_rounds_to_microseconds(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1.1234567, out), "1970-01-01T00:00:01.123457Z");
}

static void format_rounds_tiny_fraction_away(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1502996126.0000004, out), "2017-08-17T18:55:26Z");
}

static void format_rounds_up_to_next_second(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1502996126.9999996, out), "2017-08-17T18:55:27Z");
}

static void format_rounds_up_across_year(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1735689599.9999999, out), "2025-01-01T00:00:00Z");
}

static void format_leap_day(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(1709208000, out), "2024-02-29T12:00:00Z");
}

static void format_before_epoch(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(-1, out), "1969-12-31T23:59:59Z");
    assert_string_equal(time_format_rfc3339(-0.5, out), "1969-12-31T23:59:59.5Z");
}

static void format_year_9999(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(time_format_rfc3339(253402300799.0, out), "9999-12-31T23:59:59Z");
}

static void format_parse_round_trip(void **state) {
    (void)state;
    static const double times[] = {0,           1,           1502996126.554544, 1709208000.25,
                                   1893484800,  951782400.5, 1735689599.999999, -86400.75,
                                   4102444800.000001};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char out[32];
        time_format_rfc3339(times[i], out);
        assert_parses_to(out, times[i]);
    }
}

static void format_day_of_time(void **state) {
    (void)state;
    char out[11];
    assert_string_equal(time_format_day(1502996126.9, out), "2017-08-17");
    assert_string_equal(time_format_day(1709251199, out), "2024-02-29");
    assert_string_equal(time_format_day(1709251200, out), "2024-03-01");
}

static void format_day_before_epoch(void **state) {
    (void)state;
    char out[11];
    assert_string_equal(time_format_day(-0.5, out), "1969-12-31");
}

/* ---- clocks ---- */

static void wall_clock_is_current(void **state) {
    (void)state;
    /* 2025-01-01T00:00:00Z: any machine running these tests is past it. */
    assert_true(time_wall() > 1735689600.0);
}

static void monotonic_clock_never_goes_back(void **state) {
    (void)state;
    double last = time_mono();
    for (int i = 0; i < 1000; i++) {
        double now = time_mono();
        assert_true(now >= last);
        last = now;
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_utc_z),
        cmocka_unit_test(parse_epoch),
        cmocka_unit_test(parse_before_epoch),
        cmocka_unit_test(parse_positive_offset),
        cmocka_unit_test(parse_negative_offset),
        cmocka_unit_test(parse_zero_offsets),
        cmocka_unit_test(parse_offset_crosses_day),
        cmocka_unit_test(parse_largest_offset),
        cmocka_unit_test(parse_fraction_one_digit),
        cmocka_unit_test(parse_fraction_six_digits),
        cmocka_unit_test(parse_fraction_nine_digits),
        cmocka_unit_test(parse_fraction_every_length),
        cmocka_unit_test(parse_fraction_with_offset),
        cmocka_unit_test(parse_fraction_of_zeros),
        cmocka_unit_test(parse_leap_day_2024),
        cmocka_unit_test(parse_leap_day_2000),
        cmocka_unit_test(parse_days_across_leap_day),
        cmocka_unit_test(parse_end_of_year),
        cmocka_unit_test(parse_year_extremes),
        cmocka_unit_test(parse_rejects_non_leap_feb_29),
        cmocka_unit_test(parse_rejects_century_feb_29),
        cmocka_unit_test(parse_rejects_day_31_of_april),
        cmocka_unit_test(parse_rejects_bad_month_and_day),
        cmocka_unit_test(parse_rejects_short_fields),
        cmocka_unit_test(parse_rejects_wrong_separators),
        cmocka_unit_test(parse_rejects_empty),
        cmocka_unit_test(parse_rejects_date_only),
        cmocka_unit_test(parse_rejects_space_separator),
        cmocka_unit_test(parse_rejects_leading_space),
        cmocka_unit_test(parse_rejects_missing_zone),
        cmocka_unit_test(parse_rejects_bad_time_of_day),
        cmocka_unit_test(parse_rejects_fraction_without_digits),
        cmocka_unit_test(parse_rejects_ten_fraction_digits),
        cmocka_unit_test(parse_rejects_comma_fraction),
        cmocka_unit_test(parse_rejects_bad_offsets),
        cmocka_unit_test(parse_rejects_trailing_text),
        cmocka_unit_test(parse_rejects_words),
        cmocka_unit_test(parse_failure_leaves_output),
        cmocka_unit_test(format_whole_second),
        cmocka_unit_test(format_returns_out),
        cmocka_unit_test(format_epoch),
        cmocka_unit_test(format_half_second),
        cmocka_unit_test(format_microseconds),
        cmocka_unit_test(format_trims_trailing_zeros),
        cmocka_unit_test(format_rounds_to_microseconds),
        cmocka_unit_test(format_rounds_tiny_fraction_away),
        cmocka_unit_test(format_rounds_up_to_next_second),
        cmocka_unit_test(format_rounds_up_across_year),
        cmocka_unit_test(format_leap_day),
        cmocka_unit_test(format_before_epoch),
        cmocka_unit_test(format_year_9999),
        cmocka_unit_test(format_parse_round_trip),
        cmocka_unit_test(format_day_of_time),
        cmocka_unit_test(format_day_before_epoch),
        cmocka_unit_test(wall_clock_is_current),
        cmocka_unit_test(monotonic_clock_never_goes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
