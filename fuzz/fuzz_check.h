/* Invariant checks shared by the fuzz targets. A failed check prints the condition and aborts,
 * which libFuzzer reports as a crash and saves the input that caused it. */
#ifndef FABRIK_FUZZ_CHECK_H
#define FABRIK_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
