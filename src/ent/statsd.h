/* statsd / DogStatsD metrics export. Job counters and run times are recorded as jobs are pushed
 * and finish. Gauges of the server's state (the web UI's counters, queue sizes and latencies,
 * throttles) are sent every 30 seconds of the server clock, so DEBUG CLOCK moves them too.
 * Everything goes over UDP to one address as DogStatsD lines, "name:value|type|#tag:v,tag:v",
 * several lines per packet. docs/metrics.md lists every metric.
 *
 * Configuration: the [statsd] table of the merged TOML document (location, namespace, tags,
 * bufferSize, queueLatency) and the DD_DOGSTATSD_URL environment variable, whose udp://host:port
 * replaces the table's location. This module does no event-loop work: the server calls
 * statsd_report from a 100 ms timer and from DEBUG CLOCK. */
#ifndef FABRIK_STATSD_H
#define FABRIK_STATSD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct engine;

#define STATSD_ENV_URL "DD_DOGSTATSD_URL"
#define STATSD_DEFAULT_NAMESPACE "faktory."
#define STATSD_DEFAULT_BUFFER_SIZE 15
#define STATSD_MAX_BUFFER_SIZE 1000
/* A packet is sent before another line would take it past this many bytes, which keeps it
 * inside a 1500-byte Ethernet MTU after the IP and UDP headers. */
#define STATSD_PACKET_BYTES 1400
/* Maximum line length plus one. A line over STATSD_PACKET_BYTES travels in a packet of its own. */
#define STATSD_MAX_LINE_BYTES 2048
#define STATSD_FLUSH_SECONDS 0.1
#define STATSD_GAUGE_SECONDS 30.0
/* Maximum tag length that Datadog keeps whole. */
#define STATSD_MAX_TAG_BYTES 200

struct statsd_config {
    char *location;            /* "host:port" of the statsd server */
    bool location_from_env;    /* location came from DD_DOGSTATSD_URL */
    char *metric_namespace;    /* the namespace key: prefix of every metric name */
    char **tags;               /* added to every metric, each "name" or "name:value" */
    size_t ntags;
    int buffer_size;           /* lines per packet at most */
    char **latency_queues;     /* queues whose latency is reported, without duplicates */
    size_t nlatency_queues;
};

/* Reads the [statsd] table of document (NULL means an empty document) and env_url, the value of
 * DD_DOGSTATSD_URL (NULL or "" when unset). Returns 1 with out filled when statsd is configured,
 * 0 when neither is present (out zeroed), or -1 with a message in err that names [statsd] and
 * the key, or DD_DOGSTATSD_URL, and the fix. out is zeroed on entry and owned by the caller
 * after any return (statsd_config_free). */
int statsd_config_parse(const json_t *document, const char *env_url, struct statsd_config *out,
                        char *err, size_t errlen);

void statsd_config_free(struct statsd_config *cfg);

/* Checks one tag of the tags key. Returns NULL when it is valid, or the reason it is not. */
const char *statsd_tag_problem(const char *tag);

/* Writes a metric value: integers without a fraction, other values with at most three
 * decimals. out needs 32 bytes. Returns out. */
char *statsd_format_value(double value, char *out);

/* Writes one DogStatsD line, "<namespace><name>:<value>|<type>", followed by "|#" and the tags
 * when tags or global_tags is not empty (both are comma-separated lists, either may be NULL).
 * Returns the length, or 0 when the line needs size bytes or more. */
size_t statsd_format_line(char *out, size_t size, const char *metric_namespace, const char *name,
                          double value, const char *type, const char *tags,
                          const char *global_tags);

/* Joins lines into packets of at most max_lines lines separated by '\n' and, unless a single
 * line is longer, at most STATSD_PACKET_BYTES bytes, and hands each full packet to send. */
struct statsd_packer {
    char data[STATSD_MAX_LINE_BYTES];
    size_t len;
    int lines;
    int max_lines;
    void (*send)(void *ctx, const char *data, size_t len, int lines);
    void *ctx;
};

/* Adds one line (without '\n'). Returns 0, or -1 when the line is empty or longer than
 * STATSD_MAX_LINE_BYTES - 1 (nothing is added). */
int statsd_packer_add(struct statsd_packer *p, const char *line, size_t len);

/* Sends the packet in progress, if it contains any line. */
void statsd_packer_flush(struct statsd_packer *p);

/* One exporter: its configuration, its UDP socket and the metrics not sent yet. */
struct statsd;

/* Counts of what the exporter sent and dropped since it was opened. */
struct statsd_stats {
    uint64_t packets_sent;
    uint64_t lines_sent;
    uint64_t packets_dropped;  /* rejected by the socket (EAGAIN, ENOBUFS or another error) */
    uint64_t lines_dropped;    /* lines of dropped packets, plus lines too long to send */
};

/* Resolves cfg's location and opens a non-blocking UDP socket to it. Takes cfg's contents
 * (cfg is zeroed). Returns 0, or -1 with err naming the location's source and the cause.
 * NOTE: resolving a host name blocks the caller; give an IP address to avoid that. */
int statsd_open(struct statsd **out, struct statsd_config *cfg, char *err, size_t errlen);

/* Parses document and the DD_DOGSTATSD_URL environment variable, then opens an exporter.
 * Returns 0 with *out NULL when statsd is not configured, 0 with *out set, or -1 with err. */
int statsd_setup(struct statsd **out, const json_t *document, char *err, size_t errlen);

/* Checks document's [statsd] table and DD_DOGSTATSD_URL as statsd_setup would, without
 * resolving the location or opening a socket. Returns 0, or -1 with err. */
int statsd_check(const json_t *document, char *err, size_t errlen);

/* Logs the exporter's settings in one info line (event statsd_enabled). */
void statsd_log_config(const struct statsd *st);

/* Continues old's gauge schedule and drop-log rate limit in fresh after a reload, so SIGHUP
 * does not delay the gauges. */
void statsd_adopt(struct statsd *fresh, const struct statsd *old);

/* Sends every pending metric, logs drops not logged yet, closes the socket and frees st (NULL
 * is accepted). */
void statsd_close(struct statsd *st);

/* Adds delta to a counter; counters with the same name and tags are summed until the next
 * statsd_flush, as DogStatsD clients do to save packets. tags may be NULL. */
void statsd_count(struct statsd *st, const char *name, int64_t delta, const char *tags);

/* Records one timing in milliseconds, and a gauge. tags may be NULL. */
void statsd_timing(struct statsd *st, const char *name, double milliseconds, const char *tags);
void statsd_gauge(struct statsd *st, const char *name, double value, const char *tags);

/* Sends the summed counters and the packet in progress. */
void statsd_flush(struct statsd *st);

/* Engine observers (struct engine's on_pushed and on_finished); ctx is the exporter. */
void statsd_on_pushed(void *ctx, const char *jobtype, const char *queue);
void statsd_on_finished(void *ctx, const char *jobtype, const char *queue, bool success,
                        double run_seconds);

/* Figures that the server keeps outside the engine. */
struct statsd_server_figures {
    int connections;         /* open FWP connections past the handshake */
    int64_t workers;         /* registered worker processes */
    uint64_t commands;       /* FWP commands handled since start */
    double uptime_seconds;
};

/* Sends every gauge now: the global figures, queue.size and queue.paused for every queue,
 * queue.latency for the configured queues and the throttle gauges. Returns 0, or -1 when a
 * queue latency could not be read from the store (the other gauges are still sent). */
int statsd_send_gauges(struct statsd *st, struct engine *e, const struct statsd_server_figures *f);

/* The periodic work: sends the gauges at the first call and then whenever now (the server
 * clock) is STATSD_GAUGE_SECONDS past the previous gauges, flushes everything pending and logs
 * drops (at most one line per 30 s). */
void statsd_report(struct statsd *st, struct engine *e, const struct statsd_server_figures *f,
                   double now);

void statsd_get_stats(const struct statsd *st, struct statsd_stats *out);

/* The exporter's configuration, for logs and tests. */
const struct statsd_config *statsd_get_config(const struct statsd *st);

#endif
