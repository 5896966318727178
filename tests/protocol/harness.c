/* Implementation of the protocol test harness: the case runner (one forked child per case),
 * the server process manager, the RESP client and the checks. See harness.h for the contract. */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS 8
#define MAX_CONNS 512
#define COMMAND_TIMEOUT_MS 10000
#define READY_TIMEOUT_S 10.0
#define STOP_TIMEOUT_S 30.0
#define SHOWN_BYTES 400

/* ---- state of the running case (each case runs in its own child process) ---- */

static const char *server_binary;

const char *th_server_binary(void) {
    return server_binary;
}
static const char *external_addr;
static char suite_dir[PATH_MAX / 2];
static char case_dir[PATH_MAX];
static const char *case_name;

static struct th_server *servers[MAX_SERVERS];
static size_t server_count;
static struct th_conn *conns[MAX_CONNS];
static size_t conn_count;

static void **kept_ptrs;
static size_t kept_ptr_count, kept_ptr_cap;
static json_t **kept_json;
static size_t kept_json_count, kept_json_cap;

static void release_kept(void);
static void dump_server_logs(void);

double th_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void th_sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *th_case_dir(void) {
    return case_dir;
}

/* Prints text with control bytes escaped, cut to SHOWN_BYTES bytes. */
static void print_escaped(FILE *out, const char *text, size_t len) {
    if (!text) {
        fputs("(null)", out);
        return;
    }
    fputc('"', out);
    size_t shown = len < SHOWN_BYTES ? len : SHOWN_BYTES;
    for (size_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\r') {
            fputs("\\r", out);
        } else if (ch == '\n') {
            fputs("\\n", out);
        } else if (ch == '"' || ch == '\\') {
            fprintf(out, "\\%c", ch);
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(out, "\\x%02x", ch);
        } else {
            fputc(ch, out);
        }
    }
    fputc('"', out);
    if (shown < len) {
        fprintf(out, "... (%zu bytes)", len);
    }
}

/* ---- ending a case ---- */

static void kill_servers(void) {
    for (size_t i = 0; i < server_count; i++) {
        struct th_server *srv = servers[i];
        if (srv->pid > 0) {
            kill(srv->pid, SIGKILL);
            waitpid(srv->pid, NULL, 0);
            srv->pid = 0;
        }
    }
}

static void close_conns(void) {
    for (size_t i = 0; i < conn_count; i++) {
        if (conns[i]) {
            th_close(conns[i]);
        }
    }
    conn_count = 0;
}

static _Noreturn void end_case(int status) {
    if (status != 0 && status != 77) {
        dump_server_logs();
    }
    kill_servers();
    close_conns();
    release_kept();
    fflush(stdout);
    fflush(stderr);
    /* _exit skips the leak check of this helper process: the server is what is under test. */
    _exit(status);
}

void th_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    end_case(1);
}

void th_skip(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "skipped: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    end_case(77);
}

/* Prints the last lines of every server log of the case, so a failure shows what the server
 * logged (including sanitizer reports) around it. */
static void dump_server_logs(void) {
    for (size_t i = 0; i < server_count; i++) {
        const char *path = servers[i]->log_path;
        if (!path) {
            continue;
        }
        FILE *f = fopen(path, "r");
        if (!f) {
            continue;
        }
        static char ring[60][512];
        size_t n = 0;
        while (fgets(ring[n % 60], sizeof ring[0], f)) {
            n++;
        }
        fclose(f);
        size_t first = n > 60 ? n - 60 : 0;
        fprintf(stderr, "---- last %zu lines of %s ----\n", n - first, path);
        for (size_t k = first; k < n; k++) {
            fputs(ring[k % 60], stderr);
            size_t len = strlen(ring[k % 60]);
            if (len == 0 || ring[k % 60][len - 1] != '\n') {
                fputc('\n', stderr);
            }
        }
        fprintf(stderr, "---- end of server log ----\n");
    }
}

/* ---- memory kept until the case ends ---- */

void *th_keep(void *heap_ptr) {
    if (!heap_ptr) {
        th_fail("out of memory");
    }
    if (kept_ptr_count == kept_ptr_cap) {
        kept_ptr_cap = kept_ptr_cap ? kept_ptr_cap * 2 : 64;
        kept_ptrs = realloc(kept_ptrs, kept_ptr_cap * sizeof *kept_ptrs);
        if (!kept_ptrs) {
            abort();
        }
    }
    kept_ptrs[kept_ptr_count++] = heap_ptr;
    return heap_ptr;
}

json_t *th_keep_json(json_t *value) {
    if (!value) {
        return NULL;
    }
    if (kept_json_count == kept_json_cap) {
        kept_json_cap = kept_json_cap ? kept_json_cap * 2 : 64;
        kept_json = realloc(kept_json, kept_json_cap * sizeof *kept_json);
        if (!kept_json) {
            abort();
        }
    }
    kept_json[kept_json_count++] = value;
    return value;
}

static void release_kept(void) {
    for (size_t i = 0; i < kept_json_count; i++) {
        json_decref(kept_json[i]);
    }
    free(kept_json);
    kept_json = NULL;
    kept_json_count = kept_json_cap = 0;
    for (size_t i = 0; i < kept_ptr_count; i++) {
        free(kept_ptrs[i]);
    }
    free(kept_ptrs);
    kept_ptrs = NULL;
    kept_ptr_count = kept_ptr_cap = 0;
}

char *th_fmt(const char *fmt, ...) {
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0) {
        th_fail("out of memory");
    }
    return th_keep(out);
}

void th_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        th_fail("cannot create %s: %s", path, strerror(errno));
    }
    size_t len = strlen(text);
    if (fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        th_fail("cannot write %s: %s", path, strerror(errno));
    }
}

/* ---- the runner ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Detaches every mount point below dir (tests may mount a tmpfs) so it can be removed. */
static void unmount_below(const char *dir) {
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f) {
        return;
    }
    char line[4096];
    size_t dir_len = strlen(dir);
    while (fgets(line, sizeof line, f)) {
        char source[1024], target[2048];
        if (sscanf(line, "%1023s %2047s", source, target) != 2) {
            continue;
        }
        if (strncmp(target, dir, dir_len) == 0 && target[dir_len] == '/') {
            umount2(target, MNT_DETACH);
        }
    }
    fclose(f);
}

static void remove_tree(const char *dir) {
    unmount_below(dir);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool case_selected(const char *name, int filter_count, char **filters) {
    if (filter_count == 0) {
        return true;
    }
    for (int i = 0; i < filter_count; i++) {
        if (strstr(name, filters[i])) {
            return true;
        }
    }
    return false;
}

static double env_seconds(const char *name, double fallback) {
    const char *value = getenv(name);
    if (!value || !*value) {
        return fallback;
    }
    double seconds = strtod(value, NULL);
    return seconds > 0 ? seconds : fallback;
}

/* Waits for the case's child and kills its whole process group after timeout seconds. Returns
 * the wait status, or -1 when it timed out. */
static int wait_case(pid_t pid, double timeout) {
    double deadline = th_now() + timeout;
    for (;;) {
        int status;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            kill(-pid, SIGKILL);
            return status;
        }
        if (th_now() > deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        th_sleep_ms(20);
    }
}

static void run_case_child(const struct th_case *tc) {
    setpgid(0, 0);
    case_name = tc->name;
    tc->run();

    /* A case that returns has passed its checks. A clean shutdown of every server it started
     * is part of passing, because it surfaces sanitizer reports and leaks at exit. */
    close_conns();
    for (size_t i = 0; i < server_count; i++) {
        if (servers[i]->pid > 0) {
            th_server_stop(servers[i]);
        }
    }
    end_case(0);
}

int th_main(int argc, char **argv, const struct th_case *cases, size_t count) {
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    char **filters = calloc((size_t)argc, sizeof *filters);
    int filter_count = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server_binary = argv[++i];
        } else if (strcmp(argv[i], "--list") == 0) {
            for (size_t k = 0; k < count; k++) {
                printf("%s\n", cases[k].name);
            }
            free(filters);
            return 0;
        } else {
            filters[filter_count++] = argv[i];
        }
    }
    if (!server_binary) {
        server_binary = getenv("FABRIK_BIN");
    }
    external_addr = getenv("FABRIK_TEST_ADDR");
    if (external_addr && !*external_addr) {
        external_addr = NULL;
    }
    if (!external_addr && (!server_binary || access(server_binary, X_OK) != 0)) {
        fprintf(stderr, "server binary not found: pass --server PATH or set FABRIK_BIN "
                        "(got %s)\n", server_binary ? server_binary : "nothing");
        free(filters);
        return 1;
    }

    snprintf(suite_dir, sizeof suite_dir, "%s/fabrik-protocol-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(suite_dir)) {
        fprintf(stderr, "cannot create a temporary directory: %s\n", strerror(errno));
        free(filters);
        return 1;
    }

    bool keep = getenv("FABRIK_TEST_KEEP") && strcmp(getenv("FABRIK_TEST_KEEP"), "1") == 0;
    double case_timeout = env_seconds("FABRIK_TEST_CASE_TIMEOUT", 90);
    double suite_deadline = th_now() + env_seconds("FABRIK_TEST_TIMEOUT", 900);
    int passed = 0, failed = 0, skipped = 0;

    for (size_t k = 0; k < count; k++) {
        const struct th_case *tc = &cases[k];
        if (!case_selected(tc->name, filter_count, filters)) {
            continue;
        }
        double left = suite_deadline - th_now();
        if (left <= 0) {
            printf("[ FAIL ] %s (the suite ran out of time before this case)\n", tc->name);
            failed++;
            continue;
        }
        int n = snprintf(case_dir, sizeof case_dir, "%s/%s", suite_dir, tc->name);
        if (n < 0 || (size_t)n >= sizeof case_dir) {
            fprintf(stderr, "the temporary path for case %s is too long\n", tc->name);
            failed++;
            continue;
        }
        mkdir(case_dir, 0700);
        printf("[ RUN  ] %s\n", tc->name);
        fflush(stdout);
        fflush(stderr);

        double started = th_now();
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "fork failed: %s\n", strerror(errno));
            failed++;
            continue;
        }
        if (pid == 0) {
            free(filters);
            run_case_child(tc);
        }
        setpgid(pid, pid);
        double timeout = case_timeout < left ? case_timeout : left;
        int status = wait_case(pid, timeout);
        double took = th_now() - started;

        if (status == -1) {
            printf("[ FAIL ] %s (timed out after %.0f s)\n", tc->name, timeout);
            failed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("[   OK ] %s (%.2f s)\n", tc->name, took);
            passed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            printf("[ SKIP ] %s\n", tc->name);
            skipped++;
        } else if (WIFSIGNALED(status)) {
            printf("[ FAIL ] %s (killed by signal %d: %s)\n", tc->name, WTERMSIG(status),
                   strsignal(WTERMSIG(status)));
            failed++;
        } else {
            printf("[ FAIL ] %s (%.2f s)\n", tc->name, took);
            failed++;
        }
        if (!keep) {
            remove_tree(case_dir);
        }
    }
    if (!keep) {
        remove_tree(suite_dir);
    } else {
        printf("kept temporary files in %s\n", suite_dir);
    }
    free(filters);

    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (failed > 0) {
        return 1;
    }
    return passed == 0 && skipped > 0 ? 77 : 0;
}

/* ---- the server process ---- */

void th_require_private_server(void) {
    if (external_addr) {
        th_skip("this case needs a server of its own (FABRIK_TEST_ADDR is set)");
    }
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        th_fail("cannot find a free port: %s", strerror(errno));
    }
    close(fd);
    return ntohs(addr.sin_port);
}

static bool opts_need_private_server(const struct th_server_opts *opts) {
    return opts && (opts->toml || opts->password || opts->environment || opts->data_dir ||
                    opts->tls || opts->env[0]);
}

static char *make_dir(const char *prefix) {
    char *path = th_fmt("%s/%s-XXXXXX", case_dir, prefix);
    if (!mkdtemp(path)) {
        th_fail("cannot create %s: %s", path, strerror(errno));
    }
    return path;
}

/* Creates a self-signed certificate for 127.0.0.1 in the config directory. The files are
 * written under temporary names and renamed, so a reloading server never reads a partial file. */
static void make_certificate(struct th_server *srv) {
    char *key = th_fmt("%s/private.key.pem", srv->config_dir);
    char *cert = th_fmt("%s/public.cert.pem", srv->config_dir);
    char *new_key = th_fmt("%s/new.key.tmp", srv->config_dir);
    char *new_cert = th_fmt("%s/new.cert.tmp", srv->config_dir);
    char *cmd = th_fmt("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                       "-nodes -keyout '%s' -out '%s' -days 2 -subj /CN=127.0.0.1 "
                       "-addext subjectAltName=IP:127.0.0.1 >'%s/openssl.log' 2>&1",
                       new_key, new_cert, case_dir);
    int rc = system(cmd);
    if (rc != 0) {
        th_fail("openssl could not create a certificate (status %d), see %s/openssl.log", rc,
                case_dir);
    }
    if (rename(new_key, key) != 0 || rename(new_cert, cert) != 0) {
        th_fail("cannot move the new certificate into %s: %s", srv->config_dir,
                strerror(errno));
    }

    if (srv->ssl_ctx) {
        /* Open connections keep their own reference to the old context. */
        SSL_CTX_free(srv->ssl_ctx);
        srv->ssl_ctx = NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_load_verify_locations(ctx, cert, NULL) != 1) {
        th_fail("cannot load %s into a TLS client context", cert);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), "127.0.0.1");
    srv->ssl_ctx = ctx;
}

static void exec_server(const struct th_server *srv, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(126);
    }
    int log_fd = open(srv->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null_fd = open("/dev/null", O_RDONLY);
    if (log_fd < 0 || null_fd < 0) {
        _exit(126);
    }
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);

    unsetenv("FAKTORY_PASSWORD");
    unsetenv("FAKTORY_ENV");
    unsetenv("FAKTORY_SKIP_PASSWORD");
    if (srv->opts.password) {
        setenv("FAKTORY_PASSWORD", srv->opts.password, 1);
    }
    for (size_t i = 0; i < 4 && srv->opts.env[i]; i++) {
        putenv((char *)srv->opts.env[i]);
    }

    char bind[64];
    snprintf(bind, sizeof bind, "127.0.0.1:%d", srv->port);
    const char *environment = srv->opts.environment ? srv->opts.environment : "development";
    execl(server_binary, server_binary, "-b", bind, "-w", "127.0.0.1:0", "-d", srv->data_dir,
          "-c", srv->config_dir, "-e", environment, "-l", "debug", (char *)NULL);
    _exit(127);
}

static bool port_accepts(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static bool log_mentions(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        found = strcasestr(line, needle) != NULL;
    }
    fclose(f);
    return found;
}

/* Starts the process and waits until its port accepts. With pick_port it retries on a new
 * port when the chosen one was taken in the meantime. */
static void spawn_server(struct th_server *srv, bool pick_port) {
    for (int attempt = 0;; attempt++) {
        if (pick_port) {
            srv->port = free_port();
        }
        fflush(stdout);
        fflush(stderr);
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
            th_fail("fork failed: %s", strerror(errno));
        }
        if (pid == 0) {
            exec_server(srv, parent);
        }
        srv->pid = pid;

        double deadline = th_now() + READY_TIMEOUT_S;
        while (th_now() < deadline) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                srv->pid = 0;
                bool in_use = log_mentions(srv->log_path, "in use");
                if (pick_port && in_use && attempt < 5) {
                    break;
                }
                th_fail("the server exited during start-up (status 0x%x); see its log below",
                        (unsigned)status);
            }
            if (port_accepts(srv->port)) {
                return;
            }
            th_sleep_ms(10);
        }
        if (srv->pid > 0) {
            th_fail("the server did not accept connections on 127.0.0.1:%d within %.0f s",
                    srv->port, READY_TIMEOUT_S);
        }
    }
}

static struct th_server *start_external(const struct th_server_opts *opts) {
    if (opts_need_private_server(opts)) {
        th_require_private_server();
    }
    struct th_server *srv = th_keep(calloc(1, sizeof *srv));
    srv->external = true;
    const char *colon = strrchr(external_addr, ':');
    if (!colon || (size_t)(colon - external_addr) >= sizeof srv->host) {
        th_fail("FABRIK_TEST_ADDR must be host:port, got %s", external_addr);
    }
    memcpy(srv->host, external_addr, (size_t)(colon - external_addr));
    srv->port = atoi(colon + 1);
    if (server_count < MAX_SERVERS) {
        servers[server_count++] = srv;
    }

    struct th_conn *c = th_producer(srv);
    TH_OK(c, "FLUSH");
    th_close(c);
    return srv;
}

struct th_server *th_server_start(const struct th_server_opts *opts) {
    if (external_addr) {
        return start_external(opts);
    }
    if (server_count == MAX_SERVERS) {
        th_fail("a case may start at most %d servers", MAX_SERVERS);
    }
    struct th_server *srv = th_keep(calloc(1, sizeof *srv));
    if (opts) {
        srv->opts = *opts;
    }
    snprintf(srv->host, sizeof srv->host, "127.0.0.1");
    srv->password = srv->opts.password ? th_fmt("%s", srv->opts.password) : NULL;
    srv->tls = srv->opts.tls;
    srv->data_dir = srv->opts.data_dir ? th_fmt("%s", srv->opts.data_dir) : make_dir("data");
    srv->config_dir = make_dir("config");
    srv->log_path = th_fmt("%s/server-%zu.log", case_dir, server_count);
    servers[server_count++] = srv;

    char *conf_d = th_fmt("%s/conf.d", srv->config_dir);
    if (mkdir(conf_d, 0700) != 0) {
        th_fail("cannot create %s: %s", conf_d, strerror(errno));
    }
    if (srv->opts.toml) {
        th_write_file(th_fmt("%s/test.toml", conf_d), srv->opts.toml);
    }
    if (srv->tls) {
        make_certificate(srv);
    }
    spawn_server(srv, true);
    return srv;
}

/* Waits up to timeout seconds for the process to exit. Returns its status, or -1. */
static int wait_exit(pid_t pid, double timeout) {
    double deadline = th_now() + timeout;
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return status;
        }
        if (th_now() > deadline) {
            return -1;
        }
        th_sleep_ms(5);
    }
}

void th_server_stop(struct th_server *srv) {
    if (srv->external) {
        return;
    }
    if (srv->pid <= 0) {
        th_fail("th_server_stop: the server is not running");
    }
    pid_t pid = srv->pid;
    kill(pid, SIGTERM);
    int status = wait_exit(pid, STOP_TIMEOUT_S);
    if (status == -1) {
        th_fail("the server did not exit within %.0f s of SIGTERM", STOP_TIMEOUT_S);
    }
    srv->pid = 0;
    if (WIFSIGNALED(status)) {
        th_fail("after SIGTERM the server died from signal %d (%s) instead of exiting with 0",
                WTERMSIG(status), strsignal(WTERMSIG(status)));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        th_fail("after SIGTERM the server exited with status %d, expected 0",
                WEXITSTATUS(status));
    }
}

void th_server_kill(struct th_server *srv) {
    th_require_private_server();
    if (srv->pid <= 0) {
        th_fail("th_server_kill: the server is not running");
    }
    kill(srv->pid, SIGKILL);
    waitpid(srv->pid, NULL, 0);
    srv->pid = 0;
}

void th_server_restart(struct th_server *srv) {
    th_require_private_server();
    if (srv->pid > 0) {
        th_fail("th_server_restart: the server is still running");
    }
    spawn_server(srv, false);
}

void th_server_signal(struct th_server *srv, int sig) {
    th_require_private_server();
    if (srv->pid <= 0 || kill(srv->pid, sig) != 0) {
        th_fail("cannot signal the server: it is not running");
    }
}

void th_server_new_certificate(struct th_server *srv) {
    th_require_private_server();
    make_certificate(srv);
}

bool th_server_alive(struct th_server *srv) {
    if (srv->external) {
        return port_accepts(srv->port);
    }
    if (srv->pid <= 0) {
        return false;
    }
    int status;
    if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
        srv->pid = 0;
        fprintf(stderr, "the server exited unexpectedly (status 0x%x)\n", (unsigned)status);
        return false;
    }
    return true;
}

bool th_server_log_contains(struct th_server *srv, const char *needle) {
    th_require_private_server();
    return log_mentions(srv->log_path, needle);
}

long th_server_peak_rss_kb(struct th_server *srv) {
    if (srv->pid <= 0) {
        return -1;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)srv->pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb;
}

/* ---- connections ---- */

static int tcp_connect(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        th_fail("socket: %s", strerror(errno));
    }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        th_fail("not an IPv4 address: %s", host);
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        th_fail("cannot connect to %s:%d: %s", host, port, strerror(errno));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A server that stops reading must fail the case, not hang it. */
    struct timeval tv = { 30, 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static struct th_conn *register_conn(struct th_server *srv, int fd) {
    struct th_conn *c = calloc(1, sizeof *c);
    if (!c) {
        th_fail("out of memory");
    }
    c->fd = fd;
    c->srv = srv;
    for (size_t i = 0; i < conn_count; i++) {
        if (!conns[i]) {
            conns[i] = c;
            return c;
        }
    }
    if (conn_count == MAX_CONNS) {
        th_fail("a case may open at most %d connections at once", MAX_CONNS);
    }
    conns[conn_count++] = c;
    return c;
}

struct th_conn *th_connect_plain(struct th_server *srv) {
    return register_conn(srv, tcp_connect(srv->host, srv->port));
}

struct th_conn *th_connect(struct th_server *srv) {
    struct th_conn *c = th_connect_plain(srv);
    if (!srv->tls) {
        return c;
    }
    struct timeval tv = { 10, 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL *ssl = SSL_new(srv->ssl_ctx);
    SSL_set_fd(ssl, c->fd);
    SSL_set_tlsext_host_name(ssl, "127.0.0.1");
    if (SSL_connect(ssl) != 1) {
        unsigned long err = ERR_get_error();
        char text[256];
        ERR_error_string_n(err, text, sizeof text);
        SSL_free(ssl);
        th_fail("TLS handshake with the server failed: %s", text);
    }
    c->ssl = ssl;
    return c;
}

static void free_reply(struct th_reply *r) {
    free(r->line);
    free(r->body);
    free(r->raw);
    memset(r, 0, sizeof *r);
}

void th_close(struct th_conn *c) {
    if (!c) {
        return;
    }
    for (size_t i = 0; i < conn_count; i++) {
        if (conns[i] == c) {
            conns[i] = NULL;
        }
    }
    if (c->ssl) {
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    free_reply(&c->reply);
    free(c->buf);
    free(c->last_cmd);
    free(c);
}

int th_send_raw(struct th_conn *c, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n;
        if (c->ssl) {
            int chunk = len > (1 << 20) ? (1 << 20) : (int)len;
            n = SSL_write(c->ssl, p, chunk);
            if (n <= 0) {
                return -1;
            }
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                th_fail("the server stopped reading: a send blocked for 30 s");
            }
            if (n < 0) {
                return -1;
            }
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void remember_command(struct th_conn *c, const char *text, size_t len) {
    free(c->last_cmd);
    size_t shown = len < 200 ? len : 200;
    c->last_cmd = malloc(shown + 16);
    if (c->last_cmd) {
        memcpy(c->last_cmd, text, shown);
        strcpy(c->last_cmd + shown, shown < len ? "..." : "");
    }
}

static void send_line(struct th_conn *c, const char *eol, const char *fmt, va_list ap) {
    char *line = NULL;
    int n = vasprintf(&line, fmt, ap);
    if (n < 0) {
        th_fail("out of memory");
    }
    remember_command(c, line, (size_t)n);
    int rc = th_send_raw(c, line, (size_t)n);
    if (rc == 0) {
        rc = th_send_raw(c, eol, strlen(eol));
    }
    free(line);
    /* A send error means the server closed the connection, and the next read reports it. */
    (void)rc;
}

void th_send(struct th_conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    send_line(c, "\r\n", fmt, ap);
    va_end(ap);
}

void th_send_lf(struct th_conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    send_line(c, "\n", fmt, ap);
    va_end(ap);
}

/* Receives more bytes into c->buf. Returns the count, 0 when the peer closed, -1 on timeout. */
static ssize_t receive(struct th_conn *c, int timeout_ms) {
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) {
            th_fail("out of memory");
        }
    }
    bool pending = c->ssl && SSL_pending(c->ssl) > 0;
    if (!pending) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int rc = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms);
        if (rc < 0 && errno == EINTR) {
            return -1;
        }
        if (rc == 0) {
            return -1;
        }
    }
    size_t room = c->cap - c->len;
    if (c->ssl) {
        int n = SSL_read(c->ssl, c->buf + c->len, room > INT_MAX ? INT_MAX : (int)room);
        if (n > 0) {
            c->len += (size_t)n;
            return n;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            return -1;
        }
        return 0;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, room, 0);
    if (n > 0) {
        c->len += (size_t)n;
        return n;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return -1;
    }
    return 0; /* EOF or a reset: either way the server closed the connection */
}

static char *dup_bytes(const char *p, size_t n) {
    char *out = malloc(n + 1);
    if (!out) {
        th_fail("out of memory");
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

/* Parses one complete reply at the start of c->buf into c->reply. Returns true when complete. */
static bool parse_reply(struct th_conn *c) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (!nl) {
        return false;
    }
    size_t line_end = (size_t)(nl - c->buf);
    if (line_end == 0 || c->buf[line_end - 1] != '\r') {
        fprintf(stderr, "reply line: ");
        print_escaped(stderr, c->buf, line_end + 1);
        fputc('\n', stderr);
        th_fail("the server ended a reply line with a bare LF; RESP needs CRLF");
    }
    size_t line_len = line_end - 1;
    size_t total = line_end + 1;
    struct th_reply *r = &c->reply;
    r->line = dup_bytes(c->buf, line_len);

    switch (c->buf[0]) {
    case '+':
        r->kind = TH_SIMPLE;
        break;
    case '-':
        r->kind = TH_ERROR;
        break;
    case '$': {
        char *end = NULL;
        long long n = strtoll(r->line + 1, &end, 10);
        if (end == r->line + 1 || *end != '\0' || n < -1) {
            th_fail("malformed bulk header \"%s\"", r->line);
        }
        if (n == -1) {
            r->kind = TH_NULL;
            break;
        }
        if (c->len < total + (size_t)n + 2) {
            free(r->line);
            r->line = NULL;
            return false;
        }
        if (c->buf[total + (size_t)n] != '\r' || c->buf[total + (size_t)n + 1] != '\n') {
            th_fail("bulk reply of %lld bytes is not followed by CRLF", n);
        }
        r->kind = TH_BULK;
        r->body = dup_bytes(c->buf + total, (size_t)n);
        r->body_len = (size_t)n;
        total += (size_t)n + 2;
        break;
    }
    default:
        r->kind = TH_OTHER;
        break;
    }
    r->raw = dup_bytes(c->buf, total);
    r->raw_len = total;
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    return true;
}

const struct th_reply *th_read(struct th_conn *c, int timeout_ms) {
    free_reply(&c->reply);
    double started = th_now();
    double deadline = started + timeout_ms / 1000.0;
    for (;;) {
        if (c->len > 0 && parse_reply(c)) {
            break;
        }
        int left = (int)((deadline - th_now()) * 1000);
        if (left <= 0) {
            c->reply.kind = TH_TIMEOUT;
            c->reply.line = dup_bytes("<timeout>", 9);
            break;
        }
        ssize_t n = receive(c, left);
        if (n == 0) {
            c->reply.kind = TH_CLOSED;
            c->reply.line = dup_bytes("<closed>", 8);
            c->reply.raw = dup_bytes(c->buf ? c->buf : "", c->len);
            c->reply.raw_len = c->len;
            c->len = 0;
            break;
        }
    }
    c->reply.elapsed = th_now() - started;
    return &c->reply;
}

size_t th_drain(struct th_conn *c, int timeout_ms, const char **data, bool *was_closed) {
    free_reply(&c->reply);
    double deadline = th_now() + timeout_ms / 1000.0;
    bool closed = false;
    while (!closed) {
        int left = (int)((deadline - th_now()) * 1000);
        if (left <= 0) {
            break;
        }
        closed = receive(c, left) == 0;
    }
    c->reply.kind = closed ? TH_CLOSED : TH_TIMEOUT;
    c->reply.line = dup_bytes(closed ? "<closed>" : "<timeout>", closed ? 8 : 9);
    c->reply.raw = dup_bytes(c->buf ? c->buf : "", c->len);
    c->reply.raw_len = c->len;
    c->len = 0;
    *data = c->reply.raw;
    *was_closed = closed;
    return c->reply.raw_len;
}

const struct th_reply *th_cmd(struct th_conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    send_line(c, "\r\n", fmt, ap);
    va_end(ap);
    return th_read(c, COMMAND_TIMEOUT_MS);
}

/* ---- handshake ---- */

void th_password_hash(const char *password, const char *salt, long rounds, char out[65]) {
    size_t plen = strlen(password), slen = strlen(salt);
    unsigned char *input = malloc(plen + slen + 1);
    if (!input) {
        th_fail("out of memory");
    }
    memcpy(input, password, plen);
    memcpy(input + plen, salt, slen);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(input, plen + slen, digest);
    free(input);
    for (long i = 1; i < rounds; i++) {
        SHA256(digest, sizeof digest, digest);
    }
    for (size_t i = 0; i < sizeof digest; i++) {
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    }
}

json_t *th_greeting(struct th_conn *c) {
    const struct th_reply *r = th_read(c, COMMAND_TIMEOUT_MS);
    if (r->kind != TH_SIMPLE || strncmp(r->line, "+HI ", 4) != 0) {
        fprintf(stderr, "greeting: ");
        print_escaped(stderr, r->raw ? r->raw : r->line, r->raw ? r->raw_len : strlen(r->line));
        fputc('\n', stderr);
        th_fail("expected a +HI greeting, got %s", r->line);
    }
    return TH_JSON(r->line + 4, strlen(r->line + 4));
}

static struct th_conn *hello(struct th_server *srv, const char *wid) {
    struct th_conn *c = th_connect(srv);
    json_t *greeting = th_greeting(c);

    json_t *msg = json_pack("{s:s, s:i}", "hostname", "protocol-test", "v", 2);
    if (wid) {
        json_object_set_new(msg, "wid", json_string(wid));
        json_object_set_new(msg, "pid", json_integer(getpid()));
        json_object_set_new(msg, "labels", json_pack("[s]", "test"));
    }
    json_t *salt = json_object_get(greeting, "s");
    if (json_is_string(salt)) {
        if (!srv->password) {
            json_decref(msg);
            th_fail("the server asked for a password but the case configured none");
        }
        char hash[65];
        th_password_hash(srv->password, json_string_value(salt),
                         (long)json_integer_value(json_object_get(greeting, "i")), hash);
        json_object_set_new(msg, "pwdhash", json_string(hash));
    }
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    th_keep(text);
    TH_OK(c, "HELLO %s", text);
    return c;
}

struct th_conn *th_producer(struct th_server *srv) {
    return hello(srv, NULL);
}

struct th_conn *th_worker(struct th_server *srv, const char *wid) {
    return hello(srv, wid);
}

/* ---- checks ---- */

static _Noreturn void check_failed(void) {
    end_case(1);
}

void th_check_at(const char *file, int line, bool ok, const char *expr) {
    if (!ok) {
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
        check_failed();
    }
}

void th_check_int_at(const char *file, int line, const char *expr, long long actual,
                     long long expected) {
    if (actual != expected) {
        fprintf(stderr, "%s:%d: %s\n  actual:   %lld\n  expected: %lld\n", file, line, expr,
                actual, expected);
        check_failed();
    }
}

void th_check_str_at(const char *file, int line, const char *expr, const char *actual,
                     const char *expected) {
    if (actual && expected && strcmp(actual, expected) == 0) {
        return;
    }
    if (!actual && !expected) {
        return;
    }
    fprintf(stderr, "%s:%d: %s\n  actual:   ", file, line, expr);
    print_escaped(stderr, actual, actual ? strlen(actual) : 0);
    fprintf(stderr, "\n  expected: ");
    print_escaped(stderr, expected, expected ? strlen(expected) : 0);
    fputc('\n', stderr);
    check_failed();
}

void th_check_range_at(const char *file, int line, const char *expr, double actual, double lo,
                       double hi) {
    if (!(actual >= lo && actual <= hi)) {
        fprintf(stderr, "%s:%d: %s\n  actual:   %.6f\n  expected: between %.6f and %.6f\n",
                file, line, expr, actual, lo, hi);
        check_failed();
    }
}

static void report_reply(const char *file, int line, struct th_conn *c, const char *what) {
    const struct th_reply *r = &c->reply;
    fprintf(stderr, "%s:%d: %s\n  command:  ", file, line, what);
    print_escaped(stderr, c->last_cmd, c->last_cmd ? strlen(c->last_cmd) : 0);
    fprintf(stderr, "\n  reply:    ");
    if (r->raw && r->raw_len > 0) {
        print_escaped(stderr, r->raw, r->raw_len);
    } else {
        fputs(r->line ? r->line : "(none)", stderr);
    }
    fprintf(stderr, " after %.3f s\n", r->elapsed);
}

void th_check_reply_at(const char *file, int line, struct th_conn *c, const char *expected) {
    const struct th_reply *r = &c->reply;
    if (r->line && strcmp(r->line, expected) == 0 && r->kind != TH_BULK) {
        return;
    }
    report_reply(file, line, c, "unexpected reply");
    fprintf(stderr, "  expected: ");
    print_escaped(stderr, expected, strlen(expected));
    fputc('\n', stderr);
    check_failed();
}

void th_expect_line_at(const char *file, int line, struct th_conn *c, const char *expected,
                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    send_line(c, "\r\n", fmt, ap);
    va_end(ap);
    th_read(c, COMMAND_TIMEOUT_MS);
    th_check_reply_at(file, line, c, expected);
}

void th_expect_prefix_at(const char *file, int line, struct th_conn *c, const char *prefix,
                         const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    send_line(c, "\r\n", fmt, ap);
    va_end(ap);
    const struct th_reply *r = th_read(c, COMMAND_TIMEOUT_MS);
    if (r->kind == TH_ERROR && strncmp(r->line, prefix, strlen(prefix)) == 0) {
        return;
    }
    report_reply(file, line, c, "unexpected reply");
    fprintf(stderr, "  expected an error starting with ");
    print_escaped(stderr, prefix, strlen(prefix));
    fputc('\n', stderr);
    check_failed();
}

void th_expect_raw_at(const char *file, int line, struct th_conn *c, const char *expected_raw,
                      const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    send_line(c, "\r\n", fmt, ap);
    va_end(ap);
    const struct th_reply *r = th_read(c, COMMAND_TIMEOUT_MS);
    size_t len = strlen(expected_raw);
    if (r->raw && r->raw_len == len && memcmp(r->raw, expected_raw, len) == 0 &&
        r->kind != TH_CLOSED) {
        return;
    }
    report_reply(file, line, c, "unexpected reply bytes");
    fprintf(stderr, "  expected: ");
    print_escaped(stderr, expected_raw, len);
    fputc('\n', stderr);
    check_failed();
}

double th_expect_closed_at(const char *file, int line, struct th_conn *c, int timeout_ms,
                           bool silent) {
    double started = th_now();
    for (;;) {
        int left = timeout_ms - (int)((th_now() - started) * 1000);
        const struct th_reply *r = th_read(c, left > 0 ? left : 0);
        if (r->kind == TH_CLOSED && (r->raw_len == 0 || !silent)) {
            return th_now() - started;
        }
        if (r->kind == TH_TIMEOUT) {
            report_reply(file, line, c, "expected the server to close the connection");
            fprintf(stderr, "  the connection was still open after %.1f s\n",
                    timeout_ms / 1000.0);
            check_failed();
        }
        if (silent) {
            report_reply(file, line, c, "expected the server to close the connection silently");
            check_failed();
        }
    }
}

/* ---- JSON ---- */

json_t *th_json_at(const char *file, int line, const char *text, size_t len) {
    json_error_t err;
    json_t *value = json_loadb(text, len, JSON_DECODE_ANY, &err);
    if (!value) {
        fprintf(stderr, "%s:%d: invalid JSON (%s at position %d): ", file, line, err.text,
                err.position);
        print_escaped(stderr, text, len);
        fputc('\n', stderr);
        check_failed();
    }
    return th_keep_json(value);
}

json_t *th_json_get(json_t *root, const char *path) {
    char key[256];
    const char *p = path;
    json_t *node = root;
    while (node && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key) {
            return NULL;
        }
        memcpy(key, p, n);
        key[n] = '\0';
        node = json_is_object(node) ? json_object_get(node, key) : NULL;
        p += n + (dot ? 1 : 0);
    }
    return node;
}

static _Noreturn void json_path_failed(const char *file, int line, json_t *root,
                                       const char *path, const char *wanted) {
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    fprintf(stderr, "%s:%d: expected %s at \"%s\" in ", file, line, wanted, path);
    print_escaped(stderr, text, text ? strlen(text) : 0);
    fputc('\n', stderr);
    free(text);
    check_failed();
}

long long th_json_int_at(const char *file, int line, json_t *root, const char *path) {
    json_t *node = th_json_get(root, path);
    if (!json_is_integer(node)) {
        json_path_failed(file, line, root, path, "an integer");
    }
    return json_integer_value(node);
}

const char *th_json_str_at(const char *file, int line, json_t *root, const char *path) {
    json_t *node = th_json_get(root, path);
    if (!json_is_string(node)) {
        json_path_failed(file, line, root, path, "a string");
    }
    return json_string_value(node);
}

json_t *th_info_at(const char *file, int line, struct th_conn *c) {
    const struct th_reply *r = th_cmd(c, "INFO");
    if (r->kind != TH_BULK) {
        report_reply(file, line, c, "INFO did not return a bulk string");
        check_failed();
    }
    json_t *info = th_json_at(file, line, r->body, r->body_len);
    if (!json_is_object(info)) {
        json_path_failed(file, line, info, "", "an object");
    }
    return info;
}

long long th_info_int_at(const char *file, int line, struct th_conn *c, const char *path) {
    return th_json_int_at(file, line, th_info_at(file, line, c), path);
}

long long th_queue_size_at(const char *file, int line, struct th_conn *c, const char *queue) {
    json_t *info = th_info_at(file, line, c);
    json_t *queues = th_json_get(info, "faktory.queues");
    if (!json_is_object(queues)) {
        json_path_failed(file, line, info, "faktory.queues", "an object");
    }
    json_t *size = json_object_get(queues, queue);
    if (!size) {
        return 0;
    }
    if (!json_is_integer(size)) {
        json_path_failed(file, line, queues, queue, "an integer");
    }
    return json_integer_value(size);
}

void th_push_at(const char *file, int line, struct th_conn *c, const char *jid,
                const char *extra) {
    th_expect_line_at(file, line, c, "+OK",
                      "PUSH {\"jid\":\"%s\",\"jobtype\":\"T\",\"args\":[1]%s%s}", jid,
                      extra ? "," : "", extra ? extra : "");
}

json_t *th_fetch_at(const char *file, int line, struct th_conn *c, const char *queues) {
    const struct th_reply *r = th_cmd(c, "FETCH %s", queues);
    if (r->kind == TH_NULL) {
        return NULL;
    }
    if (r->kind != TH_BULK) {
        report_reply(file, line, c, "FETCH returned neither a job nor $-1");
        check_failed();
    }
    json_t *job = th_json_at(file, line, r->body, r->body_len);
    if (!json_is_object(job)) {
        json_path_failed(file, line, job, "", "a job object");
    }
    return job;
}

json_t *th_fetch_jid_at(const char *file, int line, struct th_conn *c, const char *queues,
                        const char *jid) {
    json_t *job = th_fetch_at(file, line, c, queues);
    if (!job) {
        fprintf(stderr, "%s:%d: FETCH %s returned $-1 after %.3f s, expected job %s\n", file,
                line, queues, c->reply.elapsed, jid);
        check_failed();
    }
    th_check_str_at(file, line, "jid of the fetched job", th_json_str_at(file, line, job, "jid"),
                    jid);
    return job;
}

void th_clock_at(const char *file, int line, struct th_conn *c, double seconds) {
    th_expect_line_at(file, line, c, "+OK", "DEBUG CLOCK %.3f", seconds);
}

/* ---- time ---- */

static bool all_digits(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i])) {
            return false;
        }
    }
    return true;
}

int th_parse_time(const char *text, double *out) {
    /* YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM) */
    size_t len = strlen(text);
    if (len < 20 || !all_digits(text, 4) || text[4] != '-' || !all_digits(text + 5, 2) ||
        text[7] != '-' || !all_digits(text + 8, 2) || text[10] != 'T' ||
        !all_digits(text + 11, 2) || text[13] != ':' || !all_digits(text + 14, 2) ||
        text[16] != ':' || !all_digits(text + 17, 2)) {
        return -1;
    }

    struct tm tm = { 0 };
    tm.tm_year = atoi(text) - 1900;
    tm.tm_mon = atoi(text + 5) - 1;
    tm.tm_mday = atoi(text + 8);
    tm.tm_hour = atoi(text + 11);
    tm.tm_min = atoi(text + 14);
    tm.tm_sec = atoi(text + 17);

    const char *p = text + 19;
    double fraction = 0;
    if (*p == '.') {
        const char *start = ++p;
        while (isdigit((unsigned char)*p)) {
            p++;
        }
        if (p == start || p - start > 9) {
            return -1;
        }
        fraction = strtod(start - 1, NULL);
    }

    long offset = 0;
    if (*p == 'Z' && p[1] == '\0') {
        offset = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && all_digits(p + 1, 2) &&
               p[3] == ':' && all_digits(p + 4, 2)) {
        offset = (atol(p + 1) * 3600 + atol(p + 4) * 60) * (*p == '-' ? -1 : 1);
    } else {
        return -1;
    }
    *out = (double)timegm(&tm) - (double)offset + fraction;
    return 0;
}

double th_time_at(const char *file, int line, json_t *root, const char *path) {
    const char *text = th_json_str_at(file, line, root, path);
    double t;
    if (th_parse_time(text, &t) != 0) {
        json_path_failed(file, line, root, path, "an RFC 3339 timestamp");
    }
    return t;
}

void th_format_time(double unix_seconds, char *out, size_t size) {
    time_t whole = (time_t)floor(unix_seconds);
    long nanos = lround((unix_seconds - (double)whole) * 1e9);
    if (nanos >= 1000000000L) {
        whole++;
        nanos -= 1000000000L;
    }
    struct tm tm;
    gmtime_r(&whole, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%09ldZ", date, nanos);
}

double th_server_time_at(const char *file, int line, struct th_conn *c) {
    return th_time_at(file, line, th_info_at(file, line, c), "now");
}
