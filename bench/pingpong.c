/* pingpong: the loopback round-trip ceiling for fabrik's benchmarks. A server thread with one
 * epoll loop (as fabrik's event loop is) answers every request line with "+OK\r\n", and N
 * client threads, one blocking TCP connection to 127.0.0.1 each, send a request and wait for
 * its reply, one in flight per connection, as fwpload does. No storage and no parsing beyond
 * finding the line end: the round trips per second are what one reply per command costs on
 * this machine, an upper bound for any server driven this way. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchutil.h"

#define MAX_CONNECTIONS 512
#define REPLY_TIMEOUT_SECONDS 30
/* A request the size of a short FWP command such as ACK {"jid":"..."}. */
#define REQUEST_BYTES 64
static const char reply_text[] = "+OK\r\n";

struct options {
    long round_trips;
    int connections;
    bool json;
};

struct server {
    int listen_fd;
    int epoll_fd;
    int port;
    atomic_bool stop;
    double cpu_seconds;       /* CPU time of the server thread, set when it ends */
};

struct client {
    int index;
    int port;
    long round_trips;
    struct histogram hist;
    pthread_barrier_t *start;
    char error[160];
    uint64_t finished_ns;
    pthread_t thread;
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: pingpong [options]\n"
            "\n"
            "Measures request/reply round trips over TCP on 127.0.0.1 between client threads\n"
            "and a one-thread epoll server in this process.\n"
            "\n"
            "options:\n"
            "  -n, --round-trips N    round trips in all (default 100000)\n"
            "  -c, --connections N    client connections, one thread each, 1 to %d\n"
            "                         (default 10)\n"
            "      --json             print the result as one JSON object on stdout\n"
            "  -h, --help             show this help\n",
            MAX_CONNECTIONS);
}

static int parse_options(int argc, char **argv, struct options *opt) {
    static const struct option longopts[] = {
        {"round-trips", required_argument, NULL, 'n'},
        {"connections", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.round_trips = 100000, .connections = 10};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":n:c:h", longopts, NULL)) != -1) {
        char *end = NULL;
        long value = 0;
        switch (ch) {
        case 'n':
        case 'c':
            errno = 0;
            value = strtol(optarg, &end, 10);
            if (errno || *end || value < 1 || (ch == 'c' && value > MAX_CONNECTIONS)) {
                fprintf(stderr, "pingpong: invalid %s \"%s\"\n",
                        ch == 'n' ? "--round-trips" : "--connections", optarg);
                return -1;
            }
            if (ch == 'n')
                opt->round_trips = value;
            else
                opt->connections = (int)value;
            break;
        case 'j':
            opt->json = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            fprintf(stderr, "pingpong: unknown option or missing value: %s (see --help)\n",
                    argv[optind - 1]);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "pingpong: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* ---- server --------------------------------------------------------------------------- */

static int server_listen(struct server *s) {
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(s->listen_fd, MAX_CONNECTIONS) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&addr, &len) != 0) {
        fprintf(stderr, "pingpong: listening on 127.0.0.1 failed: %s\n", strerror(errno));
        return -1;
    }
    s->port = ntohs(addr.sin_port);
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->listen_fd};
    return epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &ev);
}

static void server_accept(struct server *s) {
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Reads what fd has and sends one reply per complete request line in it. The clients send
 * the next request only after the reply, so a read never ends inside a request. */
static void server_serve(int fd) {
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            close(fd);
        return;
    }
    int lines = 0;
    for (ssize_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    char out[sizeof buf * (sizeof reply_text - 1)];   /* room for a reply per byte read */
    size_t len = 0;
    for (int i = 0; i < lines; i++) {
        memcpy(out + len, reply_text, sizeof reply_text - 1);
        len += sizeof reply_text - 1;
    }
    if (len > 0 && bench_send_all(fd, out, len) != 0)
        close(fd);
}

static void *server_main(void *arg) {
    struct server *s = arg;
    struct epoll_event events[64];
    while (!atomic_load(&s->stop)) {
        int n = epoll_wait(s->epoll_fd, events, 64, 100);
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == s->listen_fd)
                server_accept(s);
            else
                server_serve(events[i].data.fd);
        }
    }
    s->cpu_seconds = bench_thread_cpu_seconds();
    return NULL;
}

/* ---- clients -------------------------------------------------------------------------- */

static void *client_main(void *arg) {
    struct client *c = arg;
    char request[REQUEST_BYTES];
    memset(request, 'x', sizeof request);
    memcpy(request, "PING ", 5);
    request[REQUEST_BYTES - 2] = '\r';
    request[REQUEST_BYTES - 1] = '\n';
    int fd = bench_connect_loopback(c->port, REPLY_TIMEOUT_SECONDS);
    if (fd < 0)
        snprintf(c->error, sizeof c->error, "connect failed: %s", strerror(errno));
    pthread_barrier_wait(c->start);
    for (long i = 0; fd >= 0 && i < c->round_trips; i++) {
        uint64_t started = bench_now_ns();
        if (bench_send_all(fd, request, sizeof request) != 0) {
            snprintf(c->error, sizeof c->error, "send failed: %s", strerror(errno));
            break;
        }
        char reply[sizeof reply_text];
        size_t got = 0;
        while (got < sizeof reply_text - 1) {
            ssize_t n = recv(fd, reply + got, sizeof reply_text - 1 - got, 0);
            if (n <= 0 && !(n < 0 && errno == EINTR)) {
                snprintf(c->error, sizeof c->error, "recv failed: %s",
                         n == 0 ? "connection closed" : strerror(errno));
                goto out;
            }
            if (n > 0)
                got += (size_t)n;
        }
        hist_add(&c->hist, bench_now_ns() - started);
    }
out:
    c->finished_ns = bench_now_ns();
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int report(const struct options *opt, struct client *clients, double seconds,
                  double cpu, double server_cpu) {
    struct histogram *all = calloc(1, sizeof *all);
    const char *error = NULL;
    if (!all)
        abort();
    for (int i = 0; i < opt->connections; i++) {
        hist_merge(all, &clients[i].hist);
        if (!error && clients[i].error[0])
            error = clients[i].error;
    }
    long done = (long)all->total;
    json_t *doc = json_pack("{s:s, s:i, s:I, s:I, s:f, s:f, s:f, s:f, s:o, s:s?}", "mode",
                            "pingpong", "connections", opt->connections, "jobs_requested",
                            (json_int_t)opt->round_trips, "jobs", (json_int_t)done, "seconds",
                            seconds, "jobs_per_sec", seconds > 0 ? (double)done / seconds : 0.0,
                            "driver_cpu_seconds", cpu - server_cpu, "server_cpu_seconds",
                            server_cpu, "commands", json_pack("{s:o}", "ROUNDTRIP",
                                                              hist_json(all)),
                            "first_error", error);
    free(all);
    char *text = json_dumps(doc, (opt->json ? JSON_COMPACT : JSON_INDENT(2)) |
                                     JSON_REAL_PRECISION(7));
    printf("%s\n", text);
    free(text);
    json_decref(doc);
    if (error)
        fprintf(stderr, "pingpong: first error: %s\n", error);
    return error || done < opt->round_trips ? 1 : 0;
}

int main(int argc, char **argv) {
    struct options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    struct server server = {.listen_fd = -1, .epoll_fd = -1};
    if (server_listen(&server) != 0)
        return 1;
    pthread_t server_thread;
    pthread_create(&server_thread, NULL, server_main, &server);

    struct client *clients = calloc((size_t)opt.connections, sizeof *clients);
    pthread_barrier_t start;
    if (!clients)
        abort();
    pthread_barrier_init(&start, NULL, (unsigned)opt.connections + 1);
    for (int i = 0; i < opt.connections; i++) {
        clients[i] = (struct client){.index = i, .port = server.port, .start = &start};
        /* The round trips are spread over the connections; the first ones take the rest. */
        clients[i].round_trips = opt.round_trips / opt.connections +
                                 (i < opt.round_trips % opt.connections ? 1 : 0);
        pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
    }
    pthread_barrier_wait(&start);
    double cpu_before = bench_cpu_seconds();
    uint64_t started = bench_now_ns();
    uint64_t finished = started;
    for (int i = 0; i < opt.connections; i++) {
        pthread_join(clients[i].thread, NULL);
        if (clients[i].finished_ns > finished)
            finished = clients[i].finished_ns;
    }
    double cpu = bench_cpu_seconds() - cpu_before;
    atomic_store(&server.stop, true);
    pthread_join(server_thread, NULL);
    /* The server thread's CPU time includes the accepts before the clock started, a few ms. */
    rc = report(&opt, clients, bench_seconds_between(started, finished), cpu,
                server.cpu_seconds);
    pthread_barrier_destroy(&start);
    free(clients);
    close(server.listen_fd);
    close(server.epoll_fd);
    return rc;
}
