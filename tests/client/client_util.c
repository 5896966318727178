#include "client_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *ct_url(struct th_server *srv) {
    const char *scheme = srv->tls ? "tcp+tls" : "tcp";
    if (srv->password)
        return th_fmt("%s://:%s@127.0.0.1:%d", scheme, srv->password, srv->port);
    return th_fmt("%s://127.0.0.1:%d", scheme, srv->port);
}

void ct_options(struct th_server *srv, struct fabrik_options *opts) {
    fabrik_options_init(opts);
    opts->url = ct_url(srv);
    opts->backoff_initial_ms = 50;
    opts->backoff_max_ms = 500;
    if (srv->tls)
        opts->ca_file = th_fmt("%s/public.cert.pem", srv->config_dir);
}

struct fabrik_client *ct_open(struct th_server *srv) {
    struct fabrik_options opts;
    ct_options(srv, &opts);
    struct fabrik_client *c = NULL;
    char err[512];
    int rc = fabrik_client_open(&c, &opts, err, sizeof err);
    if (rc != 0)
        th_fail("cannot open a client for %s: %s (%s)", opts.url, err, fabrik_strerror(rc));
    return c;
}

void ct_ok_at(const char *file, int line, struct fabrik_client *c, int rc, const char *expr) {
    if (rc != 0)
        th_fail_at(file, line, "%s returned %d (%s): %s", expr, rc, fabrik_strerror(rc),
                   c ? fabrik_client_error(c) : "");
}

/* The harness starts servers with "-w 127.0.0.1:0", which disables the web port, so the
 * cases that need the HTTP API start their server here. The web port of each is kept in
 * this table. */
#define MAX_WEB_SERVERS 8
static struct {
    struct th_server *srv;
    int web_port;
} web_servers[MAX_WEB_SERVERS];

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        th_fail("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(addr.sin_port);
}

static bool port_accepts(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void exec_web_server(struct th_server *srv, int web_port, pid_t parent) {
    /* The server dies with the case process (more exactly, with the forking thread). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    int log_fd = open(srv->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null_fd = open("/dev/null", O_RDONLY);
    if (log_fd < 0 || null_fd < 0)
        _exit(126);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    unsetenv("FAKTORY_PASSWORD");
    unsetenv("FAKTORY_ENV");
    if (srv->password)
        setenv("FAKTORY_PASSWORD", srv->password, 1);
    char bind_fwp[64], bind_web[64];
    snprintf(bind_fwp, sizeof bind_fwp, "127.0.0.1:%d", srv->port);
    snprintf(bind_web, sizeof bind_web, "127.0.0.1:%d", web_port);
    const char *binary = th_server_binary();
    execl(binary, binary, "-b", bind_fwp, "-w", bind_web, "-d", srv->data_dir, "-c",
          srv->config_dir, "-e", "development", "-l", "debug", (char *)NULL);
    _exit(127);
}

static void spawn_web_server(struct th_server *srv, int web_port) {
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        th_fail("fork failed: %s", strerror(errno));
    if (pid == 0)
        exec_web_server(srv, web_port, parent);
    srv->pid = pid;
    double until = th_now() + 10;
    while (!(port_accepts(srv->port) && port_accepts(web_port))) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            srv->pid = 0;
            th_fail("the server exited during start-up (status 0x%x), log in %s",
                    (unsigned)status, srv->log_path);
        }
        if (th_now() > until)
            th_fail("the server did not open ports %d and %d within 10 s", srv->port, web_port);
        th_sleep_ms(10);
    }
}

struct th_server *ct_server_start_web(const char *password) {
    if (getenv("FABRIK_TEST_ADDR") && *getenv("FABRIK_TEST_ADDR"))
        th_skip("this case starts its own server with a web port");
    size_t slot = 0;
    while (slot < MAX_WEB_SERVERS && web_servers[slot].srv)
        slot++;
    if (slot == MAX_WEB_SERVERS)
        th_fail("a case may start at most %d servers with a web port", MAX_WEB_SERVERS);

    struct th_server *srv = th_keep(calloc(1, sizeof *srv));
    snprintf(srv->host, sizeof srv->host, "127.0.0.1");
    srv->password = password ? th_fmt("%s", password) : NULL;
    srv->data_dir = th_fmt("%s/web-data-%zu", th_case_dir(), slot);
    srv->config_dir = th_fmt("%s/web-config-%zu", th_case_dir(), slot);
    srv->log_path = th_fmt("%s/web-server-%zu.log", th_case_dir(), slot);
    if (mkdir(srv->data_dir, 0700) != 0 || mkdir(srv->config_dir, 0700) != 0 ||
        mkdir(th_fmt("%s/conf.d", srv->config_dir), 0700) != 0)
        th_fail("cannot create the server directories: %s", strerror(errno));
    srv->port = free_port();
    int web_port = free_port();
    while (web_port == srv->port)
        web_port = free_port();
    web_servers[slot].srv = srv;
    web_servers[slot].web_port = web_port;
    spawn_web_server(srv, web_port);
    return srv;
}

void ct_server_restart_web(struct th_server *srv) {
    if (srv->pid > 0)
        th_fail("ct_server_restart_web: the server is still running");
    spawn_web_server(srv, ct_web_port(srv));
}

int ct_web_port(struct th_server *srv) {
    for (size_t i = 0; i < MAX_WEB_SERVERS; i++) {
        if (web_servers[i].srv == srv)
            return web_servers[i].web_port;
    }
    th_fail("this server has no web port: start it with ct_server_start_web");
}

static char *read_all_fd(int fd, double timeout_s) {
    size_t len = 0, cap = 4096;
    /* Registered with th_keep only when complete, because realloc may move it. */
    char *buf = malloc(cap);
    if (!buf)
        th_fail("out of memory");
    double until = th_now() + timeout_s;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)((until - th_now()) * 1000);
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            th_fail("timed out reading a child's output");
        if (len + 1024 > cap) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (!grown)
                th_fail("out of memory");
            buf = grown;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return th_keep(buf);
}

int ct_http(struct th_server *srv, const char *method, const char *path, const char *body,
            json_t **response) {
    int port = ct_web_port(srv);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        th_fail("cannot connect to the web port %d: %s", port, strerror(errno));
    /* No Authorization header: the tests that use the web API run without a password. */
    char *request = th_fmt("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                           method, path, port, body ? strlen(body) : 0, body ? body : "");
    if (write(fd, request, strlen(request)) != (ssize_t)strlen(request))
        th_fail("cannot send the HTTP request");
    char *reply = read_all_fd(fd, 10);
    close(fd);
    int status = 0;
    if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1)
        th_fail("invalid HTTP response: %.200s", reply);
    const char *payload = strstr(reply, "\r\n\r\n");
    if (response)
        *response = payload ? th_keep_json(json_loads(payload + 4, 0, NULL)) : NULL;
    return status;
}

int ct_run(const char *const *argv, const char *const *env, char **out) {
    int pipefd[2];
    if (pipe(pipefd) != 0)
        th_fail("pipe failed: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        th_fail("fork failed: %s", strerror(errno));
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    char *text = read_all_fd(pipefd[0], 30);
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (out)
        *out = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const char *ct_binary(const char *variable) {
    const char *path = getenv(variable);
    if (!path || access(path, X_OK) != 0)
        th_skip("%s does not name an executable (CTest sets it)", variable);
    return path;
}
