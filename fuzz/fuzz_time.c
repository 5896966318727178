/* Fuzz target for RFC 3339 parsing (the "at" field of a job). An accepted time must be finite,
 * inside the range that four-digit years and offsets allow, and survive a format and parse
 * round trip to within a microsecond (plus the double's rounding for far dates). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "util/timefmt.h"

/* 0000-01-01T00:00:00Z minus the largest offset, and 9999-12-31T23:59:60Z plus it. */
#define EARLIEST (-62167219200.0 - 86400.0)
#define LATEST (253402300800.0 + 86400.0)
/* 1000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the years that format as four digits. */
#define FOUR_DIGIT_START (-30610224000.0)
#define FOUR_DIGIT_END 253402300800.0

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';

    double t = 0;
    char err[128];
    err[0] = '\0';
    if (time_parse_rfc3339(text, &t, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        free(text);
        return 0;
    }
    FUZZ_CHECK(isfinite(t));
    FUZZ_CHECK(t >= EARLIEST && t <= LATEST);

    char out[32];
    FUZZ_CHECK(time_format_rfc3339(t, out) == out);
    FUZZ_CHECK(strlen(out) < sizeof out);
    FUZZ_CHECK(out[strlen(out) - 1] == 'Z');

    if (t >= FOUR_DIGIT_START && t < FOUR_DIGIT_END - 1) {
        double back = 0;
        FUZZ_CHECK(time_parse_rfc3339(out, &back, err, sizeof err) == 0);
        FUZZ_CHECK(fabs(back - t) <= 1e-6 + fabs(t) * 1e-15);

        /* The formatted text is canonical: formatting it again gives the same text. */
        char again[32];
        time_format_rfc3339(back, again);
        FUZZ_CHECK(strcmp(out, again) == 0);

        char day[11];
        time_format_day(back, day);
        FUZZ_CHECK(strlen(day) == 10);
        FUZZ_CHECK(strncmp(day, out, 10) == 0);
    }
    free(text);
    return 0;
}
