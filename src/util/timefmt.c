/* RFC 3339 parsing and formatting without locale or time-zone state. */
#include "util/timefmt.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

double time_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double time_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads exactly n digits at *p; returns -1 when one is missing. */
static int read_digits(const char **p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    return v;
}

/* Days from 1970-01-01 to the given civil date (proleptic Gregorian). */
static long days_from_civil(long y, int m, int d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

int time_parse_rfc3339(const char *text, double *out, char *err, size_t errlen) {
    const char *p = text;
    int y = read_digits(&p, 4);
    if (y < 0 || *p++ != '-')
        goto bad_date;
    int mo = read_digits(&p, 2);
    if (mo < 1 || mo > 12 || *p++ != '-')
        goto bad_date;
    int d = read_digits(&p, 2);
    if (d < 1 || d > days_in_month(y, mo))
        goto bad_date;
    if (*p != 'T') {
        snprintf(err, errlen, "expected 'T' between date and time, as in 2030-01-01T10:00:00Z");
        return -1;
    }
    p++;
    int h = read_digits(&p, 2);
    if (h < 0 || h > 23 || *p++ != ':')
        goto bad_time;
    int mi = read_digits(&p, 2);
    if (mi < 0 || mi > 59 || *p++ != ':')
        goto bad_time;
    /* Second 60 (a leap second) is rejected, as Go's parser in Faktory rejects it. */
    int s = read_digits(&p, 2);
    if (s < 0 || s > 59)
        goto bad_time;

    double frac = 0;
    if (*p == '.') {
        p++;
        double scale = 0.1;
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 9) {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++;
            digits++;
        }
        if (digits == 0 || isdigit((unsigned char)*p))
            goto bad_time;
    }

    long offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh = read_digits(&p, 2);
        if (oh < 0 || oh > 23 || *p++ != ':')
            goto bad_zone;
        int om = read_digits(&p, 2);
        if (om < 0 || om > 59)
            goto bad_zone;
        offset = sign * (oh * 3600L + om * 60L);
    } else {
        goto bad_zone;
    }
    if (*p != '\0') {
        snprintf(err, errlen, "unexpected text after the time zone");
        return -1;
    }

    long days = days_from_civil(y, mo, d);
    *out = (double)(days * 86400L + h * 3600L + mi * 60L + s - offset) + frac;
    return 0;

bad_date:
    snprintf(err, errlen, "invalid date, expected YYYY-MM-DD");
    return -1;
bad_time:
    snprintf(err, errlen, "invalid time of day, expected hh:mm:ss with an optional fraction");
    return -1;
bad_zone:
    snprintf(err, errlen, "missing or invalid time zone, expected Z or +hh:mm");
    return -1;
}

char *time_format_rfc3339(double t, char *out) {
    double whole = floor(t);
    long micros = lround((t - whole) * 1e6);
    if (micros >= 1000000) {
        whole += 1;
        micros -= 1000000;
    }
    time_t secs = (time_t)whole;
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = (int)strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    if (micros > 0) {
        char frac[24];
        snprintf(frac, sizeof frac, "%06ld", micros);
        int len = 6;
        while (len > 0 && frac[len - 1] == '0')
            len--;
        frac[len] = '\0';
        n += snprintf(out + n, (size_t)(32 - n), ".%s", frac);
    }
    snprintf(out + n, (size_t)(32 - n), "Z");
    return out;
}

char *time_format_day(double t, char *out) {
    time_t secs = (time_t)floor(t);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
    return out;
}
