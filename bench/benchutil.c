#include "benchutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double bench_seconds_between(uint64_t from_ns, uint64_t to_ns) {
    return (double)(to_ns - from_ns) / 1e9;
}

double bench_cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double bench_thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- histograms ----------------------------------------------------------------------- */

static int hist_index(uint64_t ns) {
    if (ns < HIST_SUB)
        return (int)ns;
    int msb = 63 - __builtin_clzll(ns);
    int shift = msb - (HIST_SUB_BITS - 1);
    int mantissa = (int)(ns >> shift);   /* HIST_HALF .. HIST_SUB - 1 */
    return HIST_SUB + (msb - HIST_SUB_BITS) * HIST_HALF + (mantissa - HIST_HALF);
}

/* Returns the middle of bucket index. */
static uint64_t hist_value(int index) {
    if (index < HIST_SUB)
        return (uint64_t)index;
    int k = index - HIST_SUB;
    int msb = HIST_SUB_BITS + k / HIST_HALF;
    uint64_t mantissa = (uint64_t)(HIST_HALF + k % HIST_HALF);
    int shift = msb - (HIST_SUB_BITS - 1);
    return (mantissa << shift) + ((1ull << shift) >> 1);
}

void hist_add(struct histogram *h, uint64_t ns) {
    h->counts[hist_index(ns)]++;
    h->total++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void hist_merge(struct histogram *into, const struct histogram *from) {
    for (int i = 0; i < HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total += from->total;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
}

uint64_t hist_quantile(const struct histogram *h, double q) {
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->total);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t value = hist_value(i);
            return value < h->max_ns ? value : h->max_ns;
        }
    }
    return h->max_ns;
}

json_t *hist_json(const struct histogram *h) {
    return json_pack("{s:I, s:f, s:f, s:f}", "count", (json_int_t)h->total, "p50_us",
                     (double)hist_quantile(h, 0.50) / 1e3, "p99_us",
                     (double)hist_quantile(h, 0.99) / 1e3, "max_us", (double)h->max_ns / 1e3);
}

/* ---- sockets -------------------------------------------------------------------------- */

int bench_connect_loopback(int port, int recv_timeout_seconds) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    int one = 1;
    struct timeval timeout = {.tv_sec = recv_timeout_seconds};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (recv_timeout_seconds > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
}

int bench_send_all(int fd, const void *data, size_t len) {
    const char *p = data;
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, p + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        sent += (size_t)n;
    }
    return 0;
}

int bench_print_free_port(const char *program) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        fprintf(stderr, "%s: binding a port on 127.0.0.1 failed: %s\n", program, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    printf("%d\n", ntohs(addr.sin_port));
    close(fd);
    return 0;
}
