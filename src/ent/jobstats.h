/* Job counts and run times per job type and queue since start, for /metrics. Job types come
 * from clients, so the number of distinct (job type, queue) pairs is capped: pairs beyond the
 * cap are counted under the job type "_other". */
#ifndef FABRIK_JOBSTATS_H
#define FABRIK_JOBSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#define JOBSTATS_MAX_PAIRS 1000
#define JOBSTATS_BUCKETS 12

/* Upper bounds (seconds) of the run-time histogram buckets. */
extern const double jobstats_bounds[JOBSTATS_BUCKETS];

struct jobstats_entry {
    char *key;               /* "<jobtype>\x1f<queue>" */
    char *jobtype;
    char *queue;
    int64_t pushed, succeeded, failed;
    /* Run-time histograms by outcome: [0] success, [1] failure; last slot is +Inf. */
    uint64_t buckets[2][JOBSTATS_BUCKETS + 1];
    double run_seconds[2];
    UT_hash_handle hh;
};

struct jobstats {
    struct jobstats_entry *by_key;
    size_t count;
};

void jobstats_pushed(struct jobstats *st, const char *jobtype, const char *queue);
/* run_seconds: from FETCH to ACK or FAIL. */
void jobstats_finished(struct jobstats *st, const char *jobtype, const char *queue, bool success,
                       double run_seconds);
void jobstats_free(struct jobstats *st);

#endif
