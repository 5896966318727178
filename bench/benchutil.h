/* Helpers shared by the benchmark drivers in bench/: a monotonic clock, CPU time, latency
 * histograms, loopback sockets and free-port lookup. */
#ifndef FABRIK_BENCH_BENCHUTIL_H
#define FABRIK_BENCH_BENCHUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint64_t bench_now_ns(void);
double bench_seconds_between(uint64_t from_ns, uint64_t to_ns);
/* User plus system CPU seconds of this process. */
double bench_cpu_seconds(void);
/* User plus system CPU seconds of the calling thread. */
double bench_thread_cpu_seconds(void);

/* A log-linear histogram of nanoseconds: values below 128 get a bucket each and larger values
 * keep their top 7 bits, so a reported percentile is within 1% of a recorded value. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_HALF (HIST_SUB / 2)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_HALF)

struct histogram {
    uint32_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max_ns;
};

void hist_add(struct histogram *h, uint64_t ns);
void hist_merge(struct histogram *into, const struct histogram *from);
/* Returns the value at quantile q (0 < q <= 1) in nanoseconds, or 0 for an empty histogram. */
uint64_t hist_quantile(const struct histogram *h, double q);
/* Returns {"count", "p50_us", "p99_us", "max_us"}, the shape every driver prints. */
json_t *hist_json(const struct histogram *h);

/* Opens a TCP connection to 127.0.0.1:port with TCP_NODELAY and a receive timeout. Returns the
 * socket, or -1 with errno set. The drivers talk to servers on this machine only. */
int bench_connect_loopback(int port, int recv_timeout_seconds);
/* Sends all len bytes. Returns 0, or -1 with errno set. */
int bench_send_all(int fd, const void *data, size_t len);
/* Prints a TCP port that is free on 127.0.0.1 now and returns 0, or 1 after an error. Another
 * process may take it before the caller's server binds it, so callers retry with a new port
 * when the bind fails. */
int bench_print_free_port(const char *program);

#endif
