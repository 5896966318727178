/* Unit tests of the config module: flags, environment variables, conf.d TOML files, the
 * password rule, TLS detection and reload. Each test runs in a fresh temporary directory that
 * serves as the config directory, with every FAKTORY_* variable unset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

#define assert_contains(text, part)                                                     \
    do {                                                                                \
        const char *text_ = (text);                                                     \
        if (!text_ || !strstr(text_, (part)))                                           \
            fail_msg("\"%s\" does not contain \"%s\"", text_ ? text_ : "(null)", (part)); \
    } while (0)

#define assert_not_contains(text, part)                                        \
    do {                                                                       \
        if (strstr((text), (part)))                                            \
            fail_msg("\"%s\" should not contain \"%s\"", (text), (part));      \
    } while (0)

struct fixture {
    char root[64];         /* the temporary directory, removed after the test */
    char config_dir[128];  /* root/conf */
    char data_dir[128];    /* root/data */
    char err[1024];
    struct config cfg;
};

static const char *const env_names[] = {"FAKTORY_ENV", "FAKTORY_PASSWORD",
                                        "FAKTORY_SKIP_PASSWORD"};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/fabrik-config-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->config_dir, sizeof f->config_dir, "%s/conf", f->root);
    snprintf(f->data_dir, sizeof f->data_dir, "%s/data", f->root);
    char confd[160];
    snprintf(confd, sizeof confd, "%s/conf.d", f->config_dir);
    if (mkdir(f->config_dir, 0700) != 0 || mkdir(confd, 0700) != 0)
        return -1;
    clear_env();
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    struct fixture *f = *state;
    config_free(&f->cfg);
    nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    clear_env();
    free(f);
    return 0;
}

/* Writes content to <config dir>/name (name may contain "conf.d/"). */
static void write_conf(struct fixture *f, const char *name, const char *content) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->config_dir, name);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    assert_int_equal(fputs(content, out) >= 0, 1);
    assert_int_equal(fclose(out), 0);
}

/* Runs config_load with "fabrik -c <config dir>" followed by the NULL-terminated arguments. */
static int load_args(struct fixture *f, enum config_action *action, ...) {
    char *argv[32] = {"fabrik", "-c", f->config_dir};
    int argc = 3;
    va_list ap;
    va_start(ap, action);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = (char *)arg;
    va_end(ap);
    argv[argc] = NULL;
    config_free(&f->cfg);
    f->err[0] = '\0';
    return config_load(&f->cfg, argc, argv, action, f->err, sizeof f->err);
}

#define LOAD(f, ...) load_args((f), &action, __VA_ARGS__, (const char *)NULL)

/* Loads with the given arguments and expects success. */
#define LOAD_OK(f, ...)                                           \
    do {                                                          \
        int rc_ = LOAD(f, __VA_ARGS__);                           \
        if (rc_ != 0)                                             \
            fail_msg("config_load failed: %s", (f)->err);         \
        assert_int_equal(action, CONFIG_RUN);                     \
    } while (0)

/* Loads with the given arguments and expects failure. */
#define LOAD_FAIL(f, ...)                             \
    do {                                              \
        assert_int_equal(LOAD(f, __VA_ARGS__), -1);   \
        assert_true((f)->err[0] != '\0');             \
    } while (0)

/* Redirects a file descriptor into a temporary file until capture_end. */
struct capture {
    int fd;
    int saved;
    FILE *file;
};

static void capture_begin(struct capture *c, int fd) {
    fflush(NULL);
    c->fd = fd;
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->file), fd) >= 0);
}

/* Restores the descriptor and returns what was written (caller frees). */
static char *capture_end(struct capture *c) {
    fflush(NULL);
    dup2(c->saved, c->fd);
    close(c->saved);
    long size = ftell(c->file);
    if (size < 0)
        size = lseek(fileno(c->file), 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    rewind(c->file);
    size_t got = fread(text, 1, (size_t)size, c->file);
    text[got] = '\0';
    fclose(c->file);
    return text;
}

/* ---- defaults and flags ---- */

static void test_defaults(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    LOAD_OK(f, "-d", f->data_dir);
    struct config *cfg = &f->cfg;
    assert_string_equal(cfg->fwp_bind, "127.0.0.1:7419");
    assert_string_equal(cfg->web_bind, "127.0.0.1:7420");
    assert_string_equal(cfg->environment, "development");
    assert_int_equal(cfg->log_level, LOG_INFO);
    assert_string_equal(cfg->config_dir, f->config_dir);
    assert_null(cfg->password);
    assert_null(cfg->web_password);
    assert_false(cfg->skip_password);
    assert_int_equal(cfg->durability, DURABILITY_FSYNC);
    assert_int_equal(cfg->max_line_bytes, 33554432);
    assert_int_equal(cfg->max_job_bytes, 16777216);
    assert_int_equal(cfg->max_connections, 2000);
    assert_int_equal(cfg->dead_ttl_days, 180);
    assert_int_equal(cfg->tracking_ttl_seconds, 1800);
    assert_int_equal(cfg->dead_max, 100000);
    assert_null(cfg->tls_key_path);
    assert_null(cfg->tls_cert_path);
    assert_true(json_is_object(cfg->document));
    assert_int_equal(json_object_size(cfg->document), 0);
}

static void test_default_data_dir(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    LOAD_OK(f, "-l", "warn");
    assert_string_equal(f->cfg.data_dir, "./data");
}

static void test_short_flags(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    setenv("FAKTORY_SKIP_PASSWORD", "1", 1);
    LOAD_OK(f, "-b", "0.0.0.0:7000", "-w", "127.0.0.1:0", "-e", "production", "-l", "debug",
            "-d", f->data_dir);
    assert_string_equal(f->cfg.fwp_bind, "0.0.0.0:7000");
    assert_string_equal(f->cfg.web_bind, "127.0.0.1:0");
    assert_string_equal(f->cfg.environment, "production");
    assert_int_equal(f->cfg.log_level, LOG_DEBUG);
    assert_string_equal(f->cfg.data_dir, f->data_dir);
    assert_string_equal(f->cfg.config_dir, f->config_dir);
}

static void test_long_flags(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    char data_flag[200];
    snprintf(data_flag, sizeof data_flag, "--data-dir=%s", f->data_dir);
    setenv("FAKTORY_SKIP_PASSWORD", "true", 1);
    LOAD_OK(f, "--bind", ":7001", "--web-bind=[::1]:7002", "--environment", "staging",
            "--log-level=error", data_flag, "--config-dir", f->config_dir);
    assert_string_equal(f->cfg.fwp_bind, ":7001");
    assert_string_equal(f->cfg.web_bind, "[::1]:7002");
    assert_string_equal(f->cfg.environment, "staging");
    assert_int_equal(f->cfg.log_level, LOG_ERROR);
    assert_string_equal(f->cfg.data_dir, f->data_dir);
    assert_string_equal(f->cfg.config_dir, f->config_dir);
}

static void test_version_flag(void **state) {
    struct fixture *f = *state;
    enum config_action action = CONFIG_RUN;
    struct capture out;
    capture_begin(&out, STDOUT_FILENO);
    int rc = LOAD(f, "-v");
    char *text = capture_end(&out);
    assert_int_equal(rc, 0);
    assert_int_equal(action, CONFIG_EXIT_OK);
    assert_string_equal(text, "fabrik " FABRIK_VERSION "\n");
    free(text);

    capture_begin(&out, STDOUT_FILENO);
    rc = LOAD(f, "--version");
    text = capture_end(&out);
    assert_int_equal(rc, 0);
    assert_int_equal(action, CONFIG_EXIT_OK);
    assert_string_equal(text, "fabrik " FABRIK_VERSION "\n");
    free(text);
}

/* Replaces every run of white space by one space, so checks need not know where help wraps. */
static void squeeze_spaces(char *text) {
    char *out = text;
    for (const char *in = text; *in; in++) {
        bool space = *in == ' ' || *in == '\n';
        if (!space || (out > text && out[-1] != ' '))
            *out++ = space ? ' ' : *in;
    }
    *out = '\0';
}

static void test_help_flag(void **state) {
    struct fixture *f = *state;
    enum config_action action = CONFIG_RUN;
    struct capture out;
    capture_begin(&out, STDOUT_FILENO);
    int rc = LOAD(f, "-h");
    char *text = capture_end(&out);
    assert_int_equal(rc, 0);
    assert_int_equal(action, CONFIG_EXIT_OK);
    squeeze_spaces(text);
    const char *expected[] = {
        "-b, --bind HOST:PORT Address of the FWP listener",
        "Default: 127.0.0.1:7419.",
        "-w, --web-bind HOST:PORT Address of the web UI; port 0 disables the web UI.",
        "Default: 127.0.0.1:7420.",
        "-e, --environment ENV Development, staging or production",
        "Default: $FAKTORY_ENV, else development.",
        ("-l, --log-level LEVEL Minimum severity of the log lines written: error, warn, info or "
         "debug. Default: info."),
        "-d, --data-dir DIR Directory of the database file fabrik.db. Default: ./data.",
        "-c, --config-dir DIR Directory of conf.d/*.toml",
        "Default: /etc/fabrik.",
        "-v, --version Print \"fabrik <version>\" and exit.",
        "-h, --help Print this help and exit.",
        "FAKTORY_PASSWORD FWP password",
        "FAKTORY_SKIP_PASSWORD 1, true or yes",
        "[fabrik] max_line_bytes Maximum length of an FWP command line in bytes",
        "Default: 33554432. Range: 1024 to 2147483647.",
        "[fabrik] dead_max Maximum number of jobs kept in the dead set",
        "Range: 0 to 100000000.",
        "[web] password Web UI password",
        "[fabrik] durability",
        "Default: fsync. A change needs a restart",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        assert_contains(text, expected[i]);
    free(text);

    capture_begin(&out, STDOUT_FILENO);
    rc = LOAD(f, "--help");
    text = capture_end(&out);
    assert_int_equal(rc, 0);
    assert_int_equal(action, CONFIG_EXIT_OK);
    assert_contains(text, "Usage: fabrik");
    free(text);
}

static void test_bad_flags(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    static const struct {
        const char *args[3];
        const char *message;
    } cases[] = {
        {{"-x"}, "unknown option -x"},
        {{"--nope"}, "unknown option \"--nope\""},
        {{"-b"}, "option -b/--bind needs a value: HOST:PORT"},
        {{"--web-bind"}, "option -w/--web-bind needs a value"},
        {{"--version=1"}, "option -v/--version takes no value"},
        {{"-b", "localhost"}, "invalid value \"localhost\" for -b/--bind: expected HOST:PORT"},
        {{"-b", "127.0.0.1:0"}, "port from 1 to 65535"},
        {{"-b", "127.0.0.1:70000"}, "-b/--bind"},
        {{"-b", "::1:7419"}, "-b/--bind"},
        {{"-w", "127.0.0.1:x"}, "invalid value \"127.0.0.1:x\" for -w/--web-bind"},
        {{"-e", "prod"},
         "invalid value \"prod\" for -e/--environment: legal values are development, staging "
         "or production"},
        {{"-l", "trace"}, "for -l/--log-level: legal values are error, warn, info or debug"},
        {{"-d", ""}, "for -d/--data-dir: expected a directory path"},
        {{"extra"}, "unexpected argument \"extra\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *a = cases[i].args;
        int rc = a[1] ? LOAD(f, a[0], a[1]) : LOAD(f, a[0]);
        if (rc != -1)
            fail_msg("case %zu (%s) was accepted", i, a[0]);
        assert_contains(f->err, cases[i].message);
    }
}

static void test_missing_config_dir_flag(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    char missing[200];
    snprintf(missing, sizeof missing, "%s/nowhere", f->root);
    LOAD_FAIL(f, "-c", missing);
    assert_contains(f->err, missing);
    assert_contains(f->err, "-c/--config-dir");
}

static void test_binding_parser(void **state) {
    (void)state;
    char host[64];
    int port;
    assert_int_equal(config_parse_binding("127.0.0.1:7419", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7419);
    assert_int_equal(config_parse_binding(":7419", host, sizeof host, &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(config_parse_binding("[::1]:0", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(config_parse_binding("localhost:65535", host, sizeof host, &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 65535);
    assert_int_equal(config_parse_binding("localhost", host, sizeof host, &port), -1);
    assert_int_equal(config_parse_binding("localhost:", host, sizeof host, &port), -1);
    assert_int_equal(config_parse_binding("::1:7419", host, sizeof host, &port), -1);
    assert_int_equal(config_parse_binding("[]:7419", host, sizeof host, &port), -1);
    assert_int_equal(config_parse_binding("a b:7419", host, sizeof host, &port), -1);
    assert_int_equal(config_parse_binding("host:65536", host, sizeof host, &port), -1);
    assert_int_equal(config_parse_binding("host:+1", host, sizeof host, &port), -1);
    assert_int_equal(config_parse_binding("averyveryverylonghostname:1", host, 8, &port), -1);
}

/* ---- environment ---- */

static void test_faktory_env(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    setenv("FAKTORY_ENV", "staging", 1);
    setenv("FAKTORY_SKIP_PASSWORD", "yes", 1);
    LOAD_OK(f, "-l", "info");
    assert_string_equal(f->cfg.environment, "staging");
    assert_true(f->cfg.skip_password);

    /* The flag wins over the variable. */
    LOAD_OK(f, "-e", "production");
    assert_string_equal(f->cfg.environment, "production");

    /* An empty variable counts as unset. */
    setenv("FAKTORY_ENV", "", 1);
    LOAD_OK(f, "-l", "info");
    assert_string_equal(f->cfg.environment, "development");
}

static void test_bad_faktory_env(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    setenv("FAKTORY_ENV", "prod", 1);
    LOAD_FAIL(f, "-l", "info");
    assert_string_equal(f->err, "invalid value \"prod\" in FAKTORY_ENV: legal values are "
                                "development, staging or production");
    /* A valid flag hides the bad variable, as the flag wins. */
    LOAD_OK(f, "-e", "development");
}

static void test_skip_password_values(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    static const char *const on[] = {"1", "true", "yes", "TRUE", "Yes"};
    static const char *const off[] = {"0", "false", "no", ""};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        setenv("FAKTORY_SKIP_PASSWORD", on[i], 1);
        LOAD_OK(f, "-e", "production");
        assert_true(f->cfg.skip_password);
        assert_null(f->cfg.password);
    }
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        setenv("FAKTORY_SKIP_PASSWORD", off[i], 1);
        LOAD_FAIL(f, "-e", "production");
        assert_contains(f->err, "a password is required");
    }
    setenv("FAKTORY_SKIP_PASSWORD", "on", 1);
    LOAD_FAIL(f, "-e", "development");
    assert_contains(f->err, "invalid value \"on\" in FAKTORY_SKIP_PASSWORD");
}

/* ---- passwords ---- */

static void test_password_from_env(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    setenv("FAKTORY_PASSWORD", "s3cret", 1);
    LOAD_OK(f, "-e", "production");
    assert_string_equal(f->cfg.password, "s3cret");
    assert_null(f->cfg.web_password);
}

static void test_password_from_file_path(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "secret.txt", "  from-file \n\n");
    char path[256];
    snprintf(path, sizeof path, "%s/secret.txt", f->config_dir);
    setenv("FAKTORY_PASSWORD", path, 1);
    LOAD_OK(f, "-e", "staging");
    assert_string_equal(f->cfg.password, "from-file");
}

static void test_password_file_unreadable(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    char path[256];
    snprintf(path, sizeof path, "%s/no-such-file", f->config_dir);
    setenv("FAKTORY_PASSWORD", path, 1);
    LOAD_FAIL(f, "-e", "development");
    assert_contains(f->err, path);
    assert_contains(f->err, "FAKTORY_PASSWORD");
    assert_contains(f->err, "No such file");
}

static void test_password_from_toml(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[faktory]\npassword = \"toml-secret\"\n"
                                   "[web]\npassword = \"web-secret\"\n");
    LOAD_OK(f, "-e", "production");
    assert_string_equal(f->cfg.password, "toml-secret");
    assert_string_equal(f->cfg.web_password, "web-secret");
}

static void test_password_paths_in_toml(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "fwp.txt", "fwp-secret\n");
    write_conf(f, "web.txt", "web-secret\n");
    char toml[600];
    snprintf(toml, sizeof toml, "[faktory]\npassword = \"%s/fwp.txt\"\n"
                                "[web]\npassword = \"%s/web.txt\"\n", f->config_dir,
             f->config_dir);
    write_conf(f, "conf.d/a.toml", toml);
    LOAD_OK(f, "-e", "production");
    assert_string_equal(f->cfg.password, "fwp-secret");
    assert_string_equal(f->cfg.web_password, "web-secret");

    snprintf(toml, sizeof toml, "[web]\npassword = \"%s/missing.txt\"\n", f->config_dir);
    write_conf(f, "conf.d/a.toml", toml);
    LOAD_FAIL(f, "-e", "development");
    assert_contains(f->err, "missing.txt");
    assert_contains(f->err, "[web] password");
}

static void test_env_password_wins_over_toml(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[faktory]\npassword = \"toml-secret\"\n");
    setenv("FAKTORY_PASSWORD", "env-secret", 1);
    LOAD_OK(f, "-e", "production");
    assert_string_equal(f->cfg.password, "env-secret");

    /* Set but empty, the variable still wins and means no password. */
    setenv("FAKTORY_PASSWORD", "", 1);
    LOAD_OK(f, "-e", "development");
    assert_null(f->cfg.password);
}

static void test_password_required(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    static const char *const environments[] = {"staging", "production"};
    for (size_t i = 0; i < 2; i++) {
        LOAD_FAIL(f, "-e", environments[i]);
        assert_contains(f->err, "a password is required in staging or production");
        assert_contains(f->err, "FAKTORY_PASSWORD");
        assert_contains(f->err, "[faktory]");
        assert_contains(f->err, "FAKTORY_SKIP_PASSWORD=1");
    }
    /* An empty TOML password is no password. */
    write_conf(f, "conf.d/a.toml", "[faktory]\npassword = \"\"\n");
    LOAD_FAIL(f, "-e", "production");
    assert_contains(f->err, "a password is required");

    LOAD_OK(f, "-e", "development");
    assert_null(f->cfg.password);
}

static void test_password_fallback_file(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "password", "fallback-secret\n");
    LOAD_OK(f, "-e", "production");
    assert_string_equal(f->cfg.password, "fallback-secret");

    /* Development and a password from elsewhere do not read the file. */
    LOAD_OK(f, "-e", "development");
    assert_null(f->cfg.password);
    setenv("FAKTORY_PASSWORD", "env-secret", 1);
    LOAD_OK(f, "-e", "production");
    assert_string_equal(f->cfg.password, "env-secret");

    /* FAKTORY_SKIP_PASSWORD also skips the file. */
    unsetenv("FAKTORY_PASSWORD");
    setenv("FAKTORY_SKIP_PASSWORD", "1", 1);
    LOAD_OK(f, "-e", "production");
    assert_null(f->cfg.password);

    /* An empty file is no password. */
    unsetenv("FAKTORY_SKIP_PASSWORD");
    write_conf(f, "password", " \n");
    LOAD_FAIL(f, "-e", "production");
    assert_contains(f->err, "a password is required");
}

static void test_log_hides_passwords(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    setenv("FAKTORY_PASSWORD", "hunter2-secret", 1);
    LOAD_OK(f, "-e", "production");
    struct capture err;
    capture_begin(&err, STDERR_FILENO);
    config_log(&f->cfg);
    char *text = capture_end(&err);
    assert_contains(text, "level=info event=config ");
    assert_contains(text, " password=set web_password=unset");
    assert_contains(text, " fwp_bind=127.0.0.1:7419");
    assert_contains(text, " environment=production");
    assert_contains(text, " max_connections=2000");
    assert_contains(text, " durability=fsync");
    assert_contains(text, " tls=off");
    assert_not_contains(text, "hunter2");
    free(text);
}

static void test_error_hides_toml_password(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[faktory]\npassword = 12345678\n");
    LOAD_FAIL(f, "-e", "development");
    assert_contains(f->err, "[faktory] password: expected a string");
    assert_not_contains(f->err, "12345678");
}

/* ---- TOML files ---- */

static void test_conf_files_merged(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    /* a.toml has no final newline; the newline put between files keeps b.toml apart. */
    write_conf(f, "conf.d/a.toml", "[faktory]\nbinding = \"127.0.0.1:9001\"\n\n"
                                   "[[cron]]\nschedule = \"*/5 * * * *\"\n"
                                   "[cron.job]\ntype = \"A\"");
    write_conf(f, "conf.d/b.toml", "[[cron]]\nschedule = \"0 * * * *\"\n"
                                   "[cron.job]\ntype = \"B\"\n"
                                   "[throttles]\nbulk = { concurrency = 2, timeout = 60 }\n");
    write_conf(f, "conf.d/c.toml", "[fabrik]\nmax_connections = 50\n"
                                   "[web]\nbinding = \"127.0.0.1:9002\"\n");
    write_conf(f, "conf.d/ignored.txt", "this is not TOML [");
    write_conf(f, "conf.d/.hidden.toml", "this is not TOML [");
    LOAD_OK(f, "-e", "development");
    assert_string_equal(f->cfg.fwp_bind, "127.0.0.1:9001");
    assert_string_equal(f->cfg.web_bind, "127.0.0.1:9002");
    assert_int_equal(f->cfg.max_connections, 50);

    json_t *cron = json_object_get(f->cfg.document, "cron");
    assert_true(json_is_array(cron));
    assert_int_equal(json_array_size(cron), 2);
    json_t *first = json_object_get(json_object_get(json_array_get(cron, 0), "job"), "type");
    json_t *second = json_object_get(json_object_get(json_array_get(cron, 1), "job"), "type");
    assert_string_equal(json_string_value(first), "A");
    assert_string_equal(json_string_value(second), "B");
    json_t *bulk = json_object_get(json_object_get(f->cfg.document, "throttles"), "bulk");
    assert_int_equal(json_integer_value(json_object_get(bulk, "concurrency")), 2);
}

static void test_flag_wins_over_toml_binding(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[faktory]\nbinding = \"127.0.0.1:9001\"\n"
                                   "[web]\nbinding = \"127.0.0.1:9002\"\n"
                                   "[fabrik]\nlog_level = \"debug\"\n");
    LOAD_OK(f, "-b", "127.0.0.1:8001", "-w", "127.0.0.1:0", "-l", "warn");
    assert_string_equal(f->cfg.fwp_bind, "127.0.0.1:8001");
    assert_string_equal(f->cfg.web_bind, "127.0.0.1:0");
    assert_int_equal(f->cfg.log_level, LOG_WARN);

    LOAD_OK(f, "-e", "development");
    assert_int_equal(f->cfg.log_level, LOG_DEBUG);
}

static void test_same_table_in_two_files(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/10-a.toml", "# first\n[faktory]\nbinding = \"127.0.0.1:9001\"\n");
    write_conf(f, "conf.d/20-b.toml", "\n\n[faktory]\npassword = \"x\"\n");
    LOAD_FAIL(f, "-e", "development");
    char first[256], second[256];
    snprintf(first, sizeof first, "%s/conf.d/10-a.toml:2", f->config_dir);
    snprintf(second, sizeof second, "%s/conf.d/20-b.toml:3", f->config_dir);
    assert_contains(f->err, second);
    assert_contains(f->err, "cannot redefine existing table 'faktory'");
    assert_contains(f->err, first);
}

static void test_toml_parse_error_location(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[fabrik]\n# comment\nmax_connections = 10\n");
    write_conf(f, "conf.d/b.toml", "[web]\nbinding = \"127.0.0.1:9002\"\nbroken = = 1\n");
    LOAD_FAIL(f, "-e", "development");
    char where[256];
    snprintf(where, sizeof where, "%s/conf.d/b.toml:3:", f->config_dir);
    assert_contains(f->err, where);
    assert_contains(f->err, "invalid TOML");

    /* The last file without a final newline still maps to its own lines. */
    write_conf(f, "conf.d/b.toml", "[web]\nbinding = ");
    LOAD_FAIL(f, "-e", "development");
    snprintf(where, sizeof where, "%s/conf.d/b.toml:2:", f->config_dir);
    assert_contains(f->err, where);
}

static void test_toml_dates_become_rfc3339(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[dates]\n"
                                   "offset = 1979-05-27T07:32:00Z\n"
                                   "shifted = 1979-05-27T00:32:00.5-07:00\n"
                                   "local = 1979-05-27T07:32:00\n"
                                   "day = 1979-05-27\n"
                                   "clock = 07:32:00.999\n"
                                   "ratio = 0.25\n"
                                   "flag = true\n");
    LOAD_OK(f, "-e", "development");
    json_t *dates = json_object_get(f->cfg.document, "dates");
    assert_string_equal(json_string_value(json_object_get(dates, "offset")),
                        "1979-05-27T07:32:00Z");
    assert_string_equal(json_string_value(json_object_get(dates, "shifted")),
                        "1979-05-27T00:32:00.5-07:00");
    assert_string_equal(json_string_value(json_object_get(dates, "local")),
                        "1979-05-27T07:32:00");
    assert_string_equal(json_string_value(json_object_get(dates, "day")), "1979-05-27");
    assert_string_equal(json_string_value(json_object_get(dates, "clock")), "07:32:00.999");
    assert_true(json_real_value(json_object_get(dates, "ratio")) == 0.25);
    assert_true(json_is_true(json_object_get(dates, "flag")));
}

static void test_toml_nan_rejected(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[statsd]\n\nrate = nan\n");
    LOAD_FAIL(f, "-e", "development");
    char where[256];
    snprintf(where, sizeof where, "%s/conf.d/a.toml:3", f->config_dir);
    assert_contains(f->err, where);
    assert_contains(f->err, "inf and nan are not supported");
}

static void test_fabrik_keys_valid(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[fabrik]\n"
                                   "durability = \"os\"\n"
                                   "max_line_bytes = 2048\n"
                                   "max_job_bytes = 1024\n"
                                   "max_connections = 100000\n"
                                   "dead_ttl_days = 3650\n"
                                   "dead_max = 0\n"
                                   "tracking_ttl_seconds = 2592000\n"
                                   "log_level = \"error\"\n");
    LOAD_OK(f, "-e", "development");
    assert_int_equal(f->cfg.durability, DURABILITY_OS);
    assert_int_equal(f->cfg.max_line_bytes, 2048);
    assert_int_equal(f->cfg.max_job_bytes, 1024);
    assert_int_equal(f->cfg.max_connections, 100000);
    assert_int_equal(f->cfg.dead_ttl_days, 3650);
    assert_int_equal(f->cfg.dead_max, 0);
    assert_int_equal(f->cfg.tracking_ttl_seconds, 2592000);
    assert_int_equal(f->cfg.log_level, LOG_ERROR);

    write_conf(f, "conf.d/a.toml", "[fabrik]\n"
                                   "durability = \"fsync\"\n"
                                   "max_line_bytes = 1024\n"
                                   "max_job_bytes = 1024\n"
                                   "max_connections = 1\n"
                                   "dead_ttl_days = 1\n"
                                   "dead_max = 100000000\n");
    LOAD_OK(f, "-e", "development");
    assert_int_equal(f->cfg.durability, DURABILITY_FSYNC);
    assert_int_equal(f->cfg.max_line_bytes, 1024);
    assert_int_equal(f->cfg.max_connections, 1);
    assert_int_equal(f->cfg.dead_ttl_days, 1);
    assert_int_equal(f->cfg.dead_max, 100000000);
}

static void test_fabrik_keys_invalid(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    static const struct {
        const char *line;
        const char *message;
    } cases[] = {
        {"durability = \"never\"",
         "invalid value \"never\" for [fabrik] durability: legal values are \"fsync\" and \"os\""},
        {"durability = 1", "invalid value 1 for [fabrik] durability: expected a string"},
        {"max_line_bytes = 1023",
         "invalid value 1023 for [fabrik] max_line_bytes: allowed range is 1024 to"},
        {"max_line_bytes = \"big\"",
         "invalid value \"big\" for [fabrik] max_line_bytes: expected an integer"},
        {"max_job_bytes = 1023", "invalid value 1023 for [fabrik] max_job_bytes"},
        {"max_job_bytes = 1000000001", "allowed range is 1024 to 1000000000"},
        {"max_job_bytes = 64.5", "invalid value 64.5 for [fabrik] max_job_bytes: expected an "
                                 "integer"},
        {"max_connections = 0", "invalid value 0 for [fabrik] max_connections: allowed range "
                                "is 1 to 100000"},
        {"max_connections = 100001", "allowed range is 1 to 100000"},
        {"max_connections = true", "invalid value true for [fabrik] max_connections"},
        {"dead_ttl_days = 0", "[fabrik] dead_ttl_days: allowed range is 1 to 3650"},
        {"dead_ttl_days = 3651", "[fabrik] dead_ttl_days: allowed range is 1 to 3650"},
        {"dead_max = -1", "[fabrik] dead_max: allowed range is 0 to 100000000"},
        {"dead_max = 100000001", "[fabrik] dead_max: allowed range is 0 to 100000000"},
        {"tracking_ttl_seconds = 59",
         "[fabrik] tracking_ttl_seconds: allowed range is 60 to 2592000"},
        {"tracking_ttl_seconds = 2592001",
         "[fabrik] tracking_ttl_seconds: allowed range is 60 to 2592000"},
        {"tracking_ttl_seconds = \"30m\"",
         "invalid value \"30m\" for [fabrik] tracking_ttl_seconds: expected an integer"},
        {"log_level = \"loud\"", "[fabrik] log_level: legal values are error, warn, info"},
        {"log_level = [\"info\"]", "invalid value [\"info\"] for [fabrik] log_level"},
        {"max_line_bytes = 2048\nmax_job_bytes = 4096",
         "[fabrik] max_line_bytes (2048) is less than max_job_bytes (4096)"},
    };
    char where[256];
    snprintf(where, sizeof where, "%s/conf.d/limits.toml:", f->config_dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char toml[256];
        snprintf(toml, sizeof toml, "[fabrik]\n%s\n", cases[i].line);
        write_conf(f, "conf.d/limits.toml", toml);
        if (LOAD(f, "-e", "development") != -1)
            fail_msg("case %zu (%s) was accepted", i, cases[i].line);
        assert_contains(f->err, cases[i].message);
        assert_contains(f->err, where);
    }
}

static void test_other_tables_invalid(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[faktory]\nbinding = 7419\n");
    LOAD_FAIL(f, "-e", "development");
    assert_contains(f->err, "invalid value 7419 for [faktory] binding: expected a string");

    write_conf(f, "conf.d/a.toml", "[web]\nbinding = \"nowhere\"\n");
    LOAD_FAIL(f, "-e", "development");
    assert_contains(f->err, "a.toml:2: invalid value \"nowhere\" for [web] binding: expected "
                            "HOST:PORT with a port from 0 to 65535");

    write_conf(f, "conf.d/a.toml", "fabrik = 3\n");
    LOAD_FAIL(f, "-e", "development");
    assert_contains(f->err, "a.toml:1: fabrik must be a table");

    /* Keys that fabrik does not read in [faktory] and [web] are left alone. */
    write_conf(f, "conf.d/a.toml", "[web]\ntheme = \"dark\"\n");
    LOAD_OK(f, "-e", "development");
}

static void test_unknown_fabrik_key(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[fabrik]\nmax_connections = 10\nmax_conections = 10\n");
    LOAD_FAIL(f, "-e", "development");
    char where[256];
    snprintf(where, sizeof where, "%s/conf.d/a.toml:3", f->config_dir);
    assert_contains(f->err, where);
    assert_contains(f->err, "unknown key \"max_conections\" in [fabrik]");
    assert_contains(f->err, "max_connections");
}

/* ---- TLS ---- */

static void test_tls_both_files(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "private.key.pem", "key");
    write_conf(f, "public.cert.pem", "cert");
    LOAD_OK(f, "-e", "development");
    char key[256], cert[256];
    snprintf(key, sizeof key, "%s/private.key.pem", f->config_dir);
    snprintf(cert, sizeof cert, "%s/public.cert.pem", f->config_dir);
    assert_string_equal(f->cfg.tls_key_path, key);
    assert_string_equal(f->cfg.tls_cert_path, cert);
}

static void test_tls_one_file_missing(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    char key[256], cert[256];
    snprintf(key, sizeof key, "%s/private.key.pem", f->config_dir);
    snprintf(cert, sizeof cert, "%s/public.cert.pem", f->config_dir);

    write_conf(f, "private.key.pem", "key");
    LOAD_FAIL(f, "-e", "development");
    char expected[600];
    snprintf(expected, sizeof expected, "but %s is missing", cert);
    assert_contains(f->err, expected);

    assert_int_equal(unlink(key), 0);
    write_conf(f, "public.cert.pem", "cert");
    LOAD_FAIL(f, "-e", "development");
    snprintf(expected, sizeof expected, "but %s is missing", key);
    assert_contains(f->err, expected);
}

/* ---- reload ---- */

static void test_reload(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[faktory]\npassword = \"old-secret\"\n"
                                   "[web]\nbinding = \"127.0.0.1:9002\"\n"
                                   "[fabrik]\nmax_connections = 10\nlog_level = \"debug\"\n");
    LOAD_OK(f, "-b", "127.0.0.1:8001", "-e", "staging", "-l", "warn");

    write_conf(f, "conf.d/a.toml", "[faktory]\npassword = \"new-secret\"\n"
                                   "binding = \"127.0.0.1:9001\"\n"
                                   "[web]\nbinding = \"127.0.0.1:9003\"\n"
                                   "[fabrik]\nmax_connections = 20\ndurability = \"os\"\n"
                                   "log_level = \"debug\"\n"
                                   "[[cron]]\nschedule = \"@daily\"\n");
    struct config fresh;
    char err[1024];
    struct capture log;
    capture_begin(&log, STDERR_FILENO);
    int rc = config_reload(&f->cfg, &fresh, err, sizeof err);
    char *text = capture_end(&log);
    if (rc != 0)
        fail_msg("config_reload failed: %s", err);

    assert_string_equal(fresh.password, "new-secret");
    assert_int_equal(fresh.max_connections, 20);
    assert_true(json_is_array(json_object_get(fresh.document, "cron")));
    /* Flags stay: */
    assert_string_equal(fresh.fwp_bind, "127.0.0.1:8001");
    assert_int_equal(fresh.log_level, LOG_WARN);
    assert_string_equal(fresh.environment, "staging");
    assert_string_equal(fresh.config_dir, f->config_dir);
    /* Options that need a restart keep their value, with a warning: */
    assert_string_equal(fresh.web_bind, "127.0.0.1:9002");
    assert_int_equal(fresh.durability, DURABILITY_FSYNC);
    assert_contains(text, "event=config_restart_needed option=web_bind");
    assert_contains(text, "event=config_restart_needed option=durability");
    assert_not_contains(text, "option=fwp_bind");
    free(text);
    /* The old config is untouched. */
    assert_string_equal(f->cfg.password, "old-secret");
    assert_int_equal(f->cfg.max_connections, 10);
    config_free(&fresh);
}

static void test_reload_error_keeps_old(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    write_conf(f, "conf.d/a.toml", "[fabrik]\nmax_connections = 10\n");
    LOAD_OK(f, "-e", "development");

    write_conf(f, "conf.d/a.toml", "[fabrik]\nmax_connections = 0\n");
    struct config fresh;
    char err[1024];
    assert_int_equal(config_reload(&f->cfg, &fresh, err, sizeof err), -1);
    assert_contains(err, "[fabrik] max_connections");
    config_free(&fresh);
    assert_int_equal(f->cfg.max_connections, 10);

    /* The password rule applies on reload too. */
    write_conf(f, "conf.d/a.toml", "[faktory]\npassword = \"x\"\n");
    setenv("FAKTORY_SKIP_PASSWORD", "0", 1);
    LOAD_OK(f, "-e", "production");
    write_conf(f, "conf.d/a.toml", "[fabrik]\n");
    assert_int_equal(config_reload(&f->cfg, &fresh, err, sizeof err), -1);
    assert_contains(err, "a password is required");
    config_free(&fresh);
    assert_string_equal(f->cfg.password, "x");
}

static void test_reload_rereads_password_file(void **state) {
    struct fixture *f = *state;
    enum config_action action;
    char path[256];
    snprintf(path, sizeof path, "%s/secret.txt", f->config_dir);
    write_conf(f, "secret.txt", "first\n");
    setenv("FAKTORY_PASSWORD", path, 1);
    LOAD_OK(f, "-e", "production");
    assert_string_equal(f->cfg.password, "first");

    write_conf(f, "secret.txt", "second\n");
    struct config fresh;
    char err[1024];
    assert_int_equal(config_reload(&f->cfg, &fresh, err, sizeof err), 0);
    assert_string_equal(fresh.password, "second");
    config_free(&fresh);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_config_dir_flag, setup, teardown),
        cmocka_unit_test(test_binding_parser),
        cmocka_unit_test_setup_teardown(test_faktory_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_faktory_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_password_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_from_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_from_file_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_file_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_from_toml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_paths_in_toml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_password_wins_over_toml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_fallback_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_hides_passwords, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_hides_toml_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_files_merged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_wins_over_toml_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_table_in_two_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_toml_parse_error_location, setup, teardown),
        cmocka_unit_test_setup_teardown(test_toml_dates_become_rfc3339, setup, teardown),
        cmocka_unit_test_setup_teardown(test_toml_nan_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fabrik_keys_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fabrik_keys_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_tables_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_fabrik_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_both_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_one_file_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_error_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_rereads_password_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
