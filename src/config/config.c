/* Server configuration. One table of options (option_rows) drives the command-line flags, the
 * environment variables, the [faktory], [web] and [fabrik] TOML keys, --help and the logged
 * configuration. A value given in several places is taken from the first of: flag,
 * environment variable, TOML file, built-in default.
 *
 * TOML goes through tomlplusplus and the C++ bridge in toml.cpp. Debian packages no C TOML
 * library, and a hand-written reader would need its own conformance tests and fuzzing. */
#include "config/config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config/toml.h"
#include "util/buf.h"

enum option_type {
    TYPE_BINDING,     /* "host:port" with the port within min..max */
    TYPE_ENVIRONMENT, /* development, staging or production */
    TYPE_LOG_LEVEL,
    TYPE_PATH,        /* a non-empty directory path */
    TYPE_PASSWORD,    /* the password, or a path starting with / to a file that contains it */
    TYPE_BOOL,        /* 1, true, yes or 0, false, no */
    TYPE_DURABILITY,
    TYPE_SIZE,        /* size_t within min..max */
    TYPE_INT,         /* int within min..max */
    TYPE_LONG,        /* long within min..max */
    TYPE_ACTION,      /* -v and -h: no value and no field */
};

struct option_row {
    const char *name;         /* field of struct config, as logged */
    int letter;               /* short flag, 0 when there is no flag */
    const char *long_name;    /* long flag without the dashes */
    const char *arg_name;     /* the flag's value in --help; NULL for a flag without a value */
    const char *env;          /* environment variable, NULL when none */
    const char *table;        /* TOML table of the key, NULL when there is no TOML key */
    const char *key;
    enum option_type type;
    size_t offset;            /* of the field in struct config */
    const char *default_text; /* parsed like a flag value; NULL leaves the field zero */
    long long min, max;       /* bounds of a number, or the port range of a binding */
    bool reloadable;          /* SIGHUP applies a new value; otherwise it needs a restart */
    const char *help;
};

#define FIELD(name) offsetof(struct config, name)

/* Byte limits: a PUSH line carries the whole job, so max_line_bytes must be at least
 * max_job_bytes (checked in check_limits). A job is stored as one SQLite value, and SQLite
 * rejects values over 1,000,000,000 bytes by default (SQLITE_MAX_LENGTH). The INT_MAX cap of
 * max_line_bytes is a sanity bound, not a measured one. */
static const struct option_row option_rows[] = {
    {"fwp_bind", 'b', "bind", "HOST:PORT", NULL, "faktory", "binding", TYPE_BINDING,
     FIELD(fwp_bind), "127.0.0.1:7419", 1, 65535, false,
     "Address of the FWP listener; an empty host such as :7419 means every interface"},
    {"web_bind", 'w', "web-bind", "HOST:PORT", NULL, "web", "binding", TYPE_BINDING,
     FIELD(web_bind), "127.0.0.1:7420", 0, 65535, false,
     "Address of the web UI; port 0 disables the web UI"},
    {"environment", 'e', "environment", "ENV", "FAKTORY_ENV", NULL, NULL, TYPE_ENVIRONMENT,
     FIELD(environment), "development", 0, 0, false,
     "Development, staging or production; outside development a password is required"},
    {"log_level", 'l', "log-level", "LEVEL", NULL, "fabrik", "log_level", TYPE_LOG_LEVEL,
     FIELD(log_level), "info", 0, 0, true,
     "Minimum severity of the log lines written: error, warn, info or debug"},
    {"data_dir", 'd', "data-dir", "DIR", NULL, NULL, NULL, TYPE_PATH, FIELD(data_dir),
     "./data", 0, 0, false, "Directory of the database file fabrik.db"},
    {"config_dir", 'c', "config-dir", "DIR", NULL, NULL, NULL, TYPE_PATH, FIELD(config_dir),
     "/etc/fabrik", 0, 0, false,
     "Directory of conf.d/*.toml, the password file and the TLS key and certificate"},
    {"version", 'v', "version", NULL, NULL, NULL, NULL, TYPE_ACTION, 0, NULL, 0, 0, false,
     "Print \"fabrik <version>\" and exit"},
    {"help", 'h', "help", NULL, NULL, NULL, NULL, TYPE_ACTION, 0, NULL, 0, 0, false,
     "Print this help and exit"},
    {"password", 0, NULL, NULL, "FAKTORY_PASSWORD", "faktory", "password", TYPE_PASSWORD,
     FIELD(password), NULL, 0, 0, true,
     "FWP password, or a path starting with / to a file that contains it; the variable wins "
     "over TOML even when it is empty"},
    {"web_password", 0, NULL, NULL, NULL, "web", "password", TYPE_PASSWORD, FIELD(web_password),
     NULL, 0, 0, true,
     "Web UI password, or a path starting with / to a file that contains it; unset means the "
     "FWP password"},
    {"skip_password", 0, NULL, NULL, "FAKTORY_SKIP_PASSWORD", NULL, NULL, TYPE_BOOL,
     FIELD(skip_password), "false", 0, 0, true,
     "1, true or yes runs staging or production without a password"},
    {"durability", 0, NULL, NULL, NULL, "fabrik", "durability", TYPE_DURABILITY,
     FIELD(durability), "fsync", 0, 0, false,
     "\"fsync\": an acknowledged change is on disk; \"os\": it survives a crash of fabrik "
     "but a power loss can undo the last moments"},
    {"max_line_bytes", 0, NULL, NULL, NULL, "fabrik", "max_line_bytes", TYPE_SIZE,
     FIELD(max_line_bytes), "33554432", 1024, INT_MAX, true,
     "Maximum length of an FWP command line in bytes; at least max_job_bytes"},
    {"max_job_bytes", 0, NULL, NULL, NULL, "fabrik", "max_job_bytes", TYPE_SIZE,
     FIELD(max_job_bytes), "16777216", 1024, 1000000000, true,
     "Maximum size of a job JSON in bytes"},
    {"max_connections", 0, NULL, NULL, NULL, "fabrik", "max_connections", TYPE_INT,
     FIELD(max_connections), "2000", 1, 100000, true,
     "Open FWP connections past the handshake; more are rejected"},
    {"dead_ttl_days", 0, NULL, NULL, NULL, "fabrik", "dead_ttl_days", TYPE_LONG,
     FIELD(dead_ttl_days), "180", 1, 3650, true, "Days a dead job is kept"},
    {"dead_max", 0, NULL, NULL, NULL, "fabrik", "dead_max", TYPE_LONG, FIELD(dead_max),
     "100000", 0, 100000000, true,
     "Maximum number of jobs kept in the dead set; the oldest are removed first"},
    {"batch_ttl_days", 0, NULL, NULL, NULL, "fabrik", "batch_ttl_days", TYPE_LONG,
     FIELD(batch_ttl_days), "7", 1, 3650, true,
     "Days a finished batch and its status are kept"},
    {"tracking_ttl_seconds", 0, NULL, NULL, NULL, "fabrik", "tracking_ttl_seconds", TYPE_LONG,
     FIELD(tracking_ttl_seconds), "1800", 60, 2592000, true,
     "Seconds the tracking data of a finished job are kept after their last update"},
};

#define ROW_COUNT (sizeof option_rows / sizeof option_rows[0])
_Static_assert(ROW_COUNT <= sizeof(unsigned int) * CHAR_BIT, "flag_rows has one bit per row");

/* Size limits of all conf.d files together and of one password file. Both are far above any
 * real configuration, so they only stop a wrong path from loading a huge file. */
#define CONF_MAX_BYTES (16u << 20)
#define PASSWORD_FILE_MAX_BYTES 65536

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const durability_names[] = {"fsync", "os"};

enum value_source { SOURCE_DEFAULT, SOURCE_TOML, SOURCE_ENV, SOURCE_FLAG };

/* One conf.d file inside the concatenated TOML text. */
struct conf_file {
    char *path;
    int first_line; /* its first line in the concatenated text */
};

/* State of one config_load or config_reload call. */
struct load {
    struct config *cfg;
    const struct config *old; /* config_reload: the config in force; NULL for config_load */
    enum value_source source[ROW_COUNT];
    struct conf_file *files;
    size_t file_count;
    struct toml_doc *doc;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct load *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, l->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- field access ---- */

static bool type_is_string(enum option_type type) {
    return type == TYPE_BINDING || type == TYPE_ENVIRONMENT || type == TYPE_PATH ||
           type == TYPE_PASSWORD;
}

static char **string_field(struct config *cfg, const struct option_row *row) {
    return (char **)((char *)cfg + row->offset);
}

static const char *string_value(const struct config *cfg, const struct option_row *row) {
    return *(char *const *)((const char *)cfg + row->offset);
}

/* Reads a non-string field as a number; enums and bools included. */
static long long scalar_value(const struct config *cfg, const struct option_row *row) {
    const void *p = (const char *)cfg + row->offset;
    switch (row->type) {
    case TYPE_LOG_LEVEL:
        return *(const enum log_level *)p;
    case TYPE_DURABILITY:
        return *(const enum durability *)p;
    case TYPE_BOOL:
        return *(const bool *)p;
    case TYPE_SIZE:
        return (long long)*(const size_t *)p;
    case TYPE_INT:
        return *(const int *)p;
    case TYPE_LONG:
        return *(const long *)p;
    default:
        return 0;
    }
}

/* Stores a number that the caller has checked against the field's type and bounds. */
static void scalar_store(struct config *cfg, const struct option_row *row, long long value) {
    void *p = (char *)cfg + row->offset;
    switch (row->type) {
    case TYPE_LOG_LEVEL:
        *(enum log_level *)p = (enum log_level)value;
        break;
    case TYPE_DURABILITY:
        *(enum durability *)p = (enum durability)value;
        break;
    case TYPE_BOOL:
        *(bool *)p = value != 0;
        break;
    case TYPE_SIZE:
        *(size_t *)p = (size_t)value;
        break;
    case TYPE_INT:
        *(int *)p = (int)value;
        break;
    case TYPE_LONG:
        *(long *)p = (long)value;
        break;
    default:
        break;
    }
}

static void string_store(struct config *cfg, const struct option_row *row, const char *value) {
    char **field = string_field(cfg, row);
    free(*field);
    *field = value ? xstrdup(value) : NULL;
}

static void field_copy(struct config *dst, const struct config *src,
                       const struct option_row *row) {
    if (type_is_string(row->type))
        string_store(dst, row, string_value(src, row));
    else if (row->type != TYPE_ACTION)
        scalar_store(dst, row, scalar_value(src, row));
}

static bool field_equal(const struct config *a, const struct config *b,
                        const struct option_row *row) {
    if (!type_is_string(row->type))
        return scalar_value(a, row) == scalar_value(b, row);
    const char *x = string_value(a, row);
    const char *y = string_value(b, row);
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* ---- value parsing ---- */

int config_parse_binding(const char *binding, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(binding, ':');
    if (!colon)
        return -1;

    /* An IPv6 address needs brackets, because its colons would hide the port. */
    const char *start = binding;
    size_t len = (size_t)(colon - binding);
    if (len > 0 && start[0] == '[') {
        if (len < 3 || start[len - 1] != ']')
            return -1;
        start++;
        len -= 2;
    } else if (memchr(start, ':', len)) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)start[i];
        if (c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '/')
            return -1;
    }
    if (len >= hostlen)
        return -1;

    const char *digits = colon + 1;
    size_t count = strlen(digits);
    if (count == 0 || count > 5 || strspn(digits, "0123456789") != count)
        return -1;
    long value = strtol(digits, NULL, 10);
    if (value > 65535)
        return -1;

    memcpy(host, start, len);
    host[len] = '\0';
    *port = (int)value;
    return 0;
}

static int parse_binding(struct config *cfg, const struct option_row *row, const char *text,
                         char *why, size_t whylen) {
    char host[256];
    int port;
    if (config_parse_binding(text, host, sizeof host, &port) != 0 || port < row->min ||
        port > row->max) {
        snprintf(why, whylen, "expected HOST:PORT with a port from %lld to %lld, e.g. %s",
                 row->min, row->max, row->default_text);
        return -1;
    }
    string_store(cfg, row, text);
    return 0;
}

/* Finds text in names; returns its index or -1. */
static int name_index(const char *const *names, size_t count, const char *text) {
    for (size_t i = 0; i < count; i++) {
        if (strcmp(names[i], text) == 0)
            return (int)i;
    }
    return -1;
}

static int parse_environment(struct config *cfg, const struct option_row *row,
                             const char *text, char *why, size_t whylen) {
    static const char *const names[] = {"development", "staging", "production"};
    if (name_index(names, 3, text) < 0) {
        snprintf(why, whylen, "legal values are development, staging or production");
        return -1;
    }
    string_store(cfg, row, text);
    return 0;
}

static int parse_bool(struct config *cfg, const struct option_row *row, const char *text,
                      char *why, size_t whylen) {
    static const char *const names[] = {"0", "false", "no", "1", "true", "yes"};
    for (size_t i = 0; i < 6; i++) {
        if (strcasecmp(names[i], text) == 0) {
            scalar_store(cfg, row, i >= 3);
            return 0;
        }
    }
    snprintf(why, whylen, "expected 1, true or yes to turn it on, or 0, false or no");
    return -1;
}

static int check_number(const struct option_row *row, long long value, char *why,
                        size_t whylen) {
    if (value >= row->min && value <= row->max)
        return 0;
    snprintf(why, whylen, "allowed range is %lld to %lld", row->min, row->max);
    return -1;
}

static int parse_number(struct config *cfg, const struct option_row *row, const char *text,
                        char *why, size_t whylen) {
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        snprintf(why, whylen, "expected an integer");
        return -1;
    }
    if (check_number(row, value, why, whylen) != 0)
        return -1;
    scalar_store(cfg, row, value);
    return 0;
}

/* Parses text as the value of row and stores it in cfg. Returns 0, or -1 with the reason and
 * the legal values in why; why never contains the text itself, which may be a password. */
static int parse_text(struct config *cfg, const struct option_row *row, const char *text,
                      char *why, size_t whylen) {
    int index;
    switch (row->type) {
    case TYPE_BINDING:
        return parse_binding(cfg, row, text, why, whylen);
    case TYPE_ENVIRONMENT:
        return parse_environment(cfg, row, text, why, whylen);
    case TYPE_PATH:
        if (text[0] == '\0') {
            snprintf(why, whylen, "expected a directory path, not an empty string");
            return -1;
        }
        string_store(cfg, row, text);
        return 0;
    case TYPE_PASSWORD:
        string_store(cfg, row, text);
        return 0;
    case TYPE_LOG_LEVEL:
        index = name_index(level_names, 4, text);
        if (index < 0) {
            snprintf(why, whylen, "legal values are error, warn, info or debug");
            return -1;
        }
        scalar_store(cfg, row, index);
        return 0;
    case TYPE_DURABILITY:
        index = name_index(durability_names, 2, text);
        if (index < 0) {
            snprintf(why, whylen, "legal values are \"fsync\" and \"os\"");
            return -1;
        }
        scalar_store(cfg, row, index);
        return 0;
    case TYPE_BOOL:
        return parse_bool(cfg, row, text, why, whylen);
    case TYPE_SIZE:
    case TYPE_INT:
    case TYPE_LONG:
        return parse_number(cfg, row, text, why, whylen);
    case TYPE_ACTION:
        break;
    }
    return 0;
}

/* Parses a TOML value (as JSON) for row into cfg; same contract as parse_text. */
static int parse_json(struct config *cfg, const struct option_row *row, const json_t *value,
                      char *why, size_t whylen) {
    if (row->type == TYPE_SIZE || row->type == TYPE_INT || row->type == TYPE_LONG) {
        if (!json_is_integer(value)) {
            snprintf(why, whylen, "expected an integer from %lld to %lld", row->min, row->max);
            return -1;
        }
        long long number = json_integer_value(value);
        if (check_number(row, number, why, whylen) != 0)
            return -1;
        scalar_store(cfg, row, number);
        return 0;
    }
    if (!json_is_string(value)) {
        snprintf(why, whylen, "expected a string");
        return -1;
    }
    if (strlen(json_string_value(value)) != json_string_length(value)) {
        snprintf(why, whylen, "the string contains a NUL character");
        return -1;
    }
    return parse_text(cfg, row, json_string_value(value), why, whylen);
}

/* ---- defaults and flags ---- */

static void set_defaults(struct load *l) {
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const struct option_row *row = &option_rows[i];
        char why[256];
        /* The defaults are constants of this file, so a failure is a bug in the table. */
        if (row->default_text && parse_text(l->cfg, row, row->default_text, why, sizeof why))
            abort();
        l->source[i] = SOURCE_DEFAULT;
    }
}

static const struct option_row *row_by_letter(int letter, size_t *index) {
    for (size_t i = 0; i < ROW_COUNT; i++) {
        if (letter != 0 && option_rows[i].letter == letter) {
            *index = i;
            return &option_rows[i];
        }
    }
    return NULL;
}

static void build_getopt(char *shortopts, size_t size, struct option *longopts) {
    size_t n = 0;
    size_t count = 0;
    /* "+" stops at the first operand instead of reordering argv; ":" reports a missing value
     * as ':' so it gets its own message. */
    shortopts[n++] = '+';
    shortopts[n++] = ':';
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const struct option_row *row = &option_rows[i];
        if (!row->letter)
            continue;
        shortopts[n++] = (char)row->letter;
        if (row->arg_name)
            shortopts[n++] = ':';
        longopts[count++] = (struct option){row->long_name,
                                            row->arg_name ? required_argument : no_argument,
                                            NULL, row->letter};
    }
    if (n >= size)
        abort();
    shortopts[n] = '\0';
    longopts[count] = (struct option){0};
}

static int bad_option(struct load *l, int c, char **argv) {
    size_t index;
    const struct option_row *row = row_by_letter(optopt, &index);
    if (c == ':' && row)
        return fail(l, "option -%c/--%s needs a value: %s", row->letter, row->long_name,
                    row->arg_name);
    if (row && !row->arg_name)
        return fail(l, "option -%c/--%s takes no value", row->letter, row->long_name);
    if (optopt)
        return fail(l, "unknown option -%c; run \"fabrik -h\" for the list of options", optopt);
    return fail(l, "unknown option \"%s\"; run \"fabrik -h\" for the list of options",
                argv[optind - 1]);
}

static void print_help(FILE *out);

static int parse_flags(struct load *l, int argc, char **argv, enum config_action *action) {
    char shortopts[2 * ROW_COUNT + 3];
    struct option longopts[ROW_COUNT + 1];
    build_getopt(shortopts, sizeof shortopts, longopts);

    /* optind = 0 makes glibc start a fresh scan, because config_load may run more than once in
     * a process (tests do). */
    optind = 0;
    opterr = 0;
    bool version = false, help = false;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        size_t index;
        const struct option_row *row = row_by_letter(c, &index);
        if (c == '?' || c == ':' || !row)
            return bad_option(l, c, argv);
        version |= strcmp(row->name, "version") == 0;
        help |= strcmp(row->name, "help") == 0;
        if (row->type == TYPE_ACTION)
            continue;
        char why[256];
        if (parse_text(l->cfg, row, optarg, why, sizeof why) != 0)
            return fail(l, "invalid value \"%s\" for -%c/--%s: %s", optarg, row->letter,
                        row->long_name, why);
        l->source[index] = SOURCE_FLAG;
        l->cfg->flag_rows |= 1u << index;
    }
    if (optind < argc)
        return fail(l, "unexpected argument \"%s\": fabrik takes options only; run \"fabrik -h\" "
                    "for the list", argv[optind]);

    if (help) {
        print_help(stdout);
        *action = CONFIG_EXIT_OK;
    } else if (version) {
        printf("fabrik %s\n", FABRIK_VERSION);
        *action = CONFIG_EXIT_OK;
    }
    fflush(stdout);
    return 0;
}

/* Copies the values that the old config took from flags, for config_reload. */
static void keep_flags(struct load *l) {
    for (size_t i = 0; i < ROW_COUNT; i++) {
        if (!(l->old->flag_rows & (1u << i)))
            continue;
        field_copy(l->cfg, l->old, &option_rows[i]);
        l->source[i] = SOURCE_FLAG;
    }
    l->cfg->flag_rows = l->old->flag_rows;
}

/* ---- help ---- */

/* Prints text word by word in lines of at most 96 columns, each indented by six spaces. */
static void print_wrapped(FILE *out, const char *text) {
    size_t column = 0;
    while (*text) {
        size_t word = strcspn(text, " ");
        if (column > 0 && column + 1 + word > 90) {
            fputc('\n', out);
            column = 0;
        }
        fprintf(out, "%s%.*s", column ? " " : "      ", (int)word, text);
        column += word + 1;
        text += word;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

/* Prints one entry: what the option sets, then its default, range and reload rule. */
static void print_entry(FILE *out, const struct option_row *row, const char *what) {
    struct buf text = {0};
    buf_append_str(&text, what);
    if (row->env && row->letter)
        buf_printf(&text, " Default: $%s, else %s.", row->env, row->default_text);
    else if (row->default_text)
        buf_printf(&text, " Default: %s.", row->default_text);
    if (row->type == TYPE_SIZE || row->type == TYPE_INT || row->type == TYPE_LONG)
        buf_printf(&text, " Range: %lld to %lld.", row->min, row->max);
    if (row->table && !row->reloadable)
        buf_append_str(&text, " A change needs a restart; SIGHUP does not apply it.");
    print_wrapped(out, text.data);
    buf_free(&text);
}

static void print_help(FILE *out) {
    char what[512];
    fprintf(out, "Usage: fabrik [options]\n\n"
                 "fabrik is a background-job server that speaks the Faktory Work Protocol.\n\n"
                 "Options:\n");
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const struct option_row *row = &option_rows[i];
        if (!row->letter)
            continue;
        fprintf(out, "  -%c, --%s%s%s\n", row->letter, row->long_name,
                row->arg_name ? " " : "", row->arg_name ? row->arg_name : "");
        snprintf(what, sizeof what, "%s.", row->help);
        print_entry(out, row, what);
    }

    fprintf(out, "\nEnvironment variables:\n");
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const struct option_row *row = &option_rows[i];
        if (!row->env)
            continue;
        fprintf(out, "  %s\n", row->env);
        if (row->letter)
            snprintf(what, sizeof what, "Default for -%c.", row->letter);
        else
            snprintf(what, sizeof what, "%s.", row->help);
        print_wrapped(out, what);
    }

    fprintf(out, "\nKeys of <config dir>/conf.d/*.toml (a flag or variable wins over a key):"
                 "\n");
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const struct option_row *row = &option_rows[i];
        if (!row->table)
            continue;
        fprintf(out, "  [%s] %s\n", row->table, row->key);
        if (row->letter)
            snprintf(what, sizeof what, "Same as -%c.", row->letter);
        else
            snprintf(what, sizeof what, "%s.", row->help);
        print_entry(out, row, what);
    }
}

/* ---- environment ---- */

static int apply_env(struct load *l) {
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const struct option_row *row = &option_rows[i];
        const char *text = row->env ? getenv(row->env) : NULL;
        /* An empty variable counts as unset, except FAKTORY_PASSWORD: set to empty it still
         * overrides the TOML password. */
        if (!text || (text[0] == '\0' && row->type != TYPE_PASSWORD))
            continue;
        if (l->source[i] > SOURCE_ENV)
            continue;
        char why[256];
        if (parse_text(l->cfg, row, text, why, sizeof why) != 0)
            return fail(l, "invalid value \"%s\" in %s: %s", text, row->env, why);
        l->source[i] = SOURCE_ENV;
    }
    return 0;
}

/* ---- conf.d files ---- */

/* Reads a whole file of at most max bytes into a new NUL-terminated buffer (caller frees).
 * Returns 0, or a negative errno value (-EFBIG when the file is larger than max). */
static int read_file(const char *path, size_t max, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    struct buf b = {0};
    char chunk[8192];
    errno = 0;
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > max) {
            fclose(f);
            buf_free(&b);
            return -EFBIG;
        }
        buf_append(&b, chunk, n);
    }
    int rc = ferror(f) ? -(errno ? errno : EIO) : 0;
    fclose(f);
    if (rc != 0) {
        buf_free(&b);
        return rc;
    }
    buf_append(&b, "", 0);
    *out = b.data;
    *len = b.len;
    return 0;
}

static int toml_name_filter(const struct dirent *entry) {
    size_t len = strlen(entry->d_name);
    return entry->d_name[0] != '.' && len > 5 && strcmp(entry->d_name + len - 5, ".toml") == 0;
}

/* Sorts by bytes, not by locale, so the merge order is the same on every machine. */
static int byte_order(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void free_files(struct load *l) {
    for (size_t i = 0; i < l->file_count; i++)
        free(l->files[i].path);
    free(l->files);
    l->files = NULL;
    l->file_count = 0;
}

/* Appends one file to the concatenated text and records where it starts. */
static int append_conf_file(struct load *l, const char *path, struct buf *text, int *line) {
    char *data;
    size_t len;
    int rc = read_file(path, CONF_MAX_BYTES - text->len, &data, &len);
    if (rc == -EFBIG)
        return fail(l, "cannot read %s: the conf.d files are larger than %u bytes in total",
                    path, CONF_MAX_BYTES);
    if (rc != 0)
        return fail(l, "cannot read %s: %s", path, strerror(-rc));

    /* A byte order mark is legal only at the start of a document, which later files are not. */
    size_t skip = len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    if (text->len > 0)
        buf_append(text, "\n", 1);
    buf_append(text, data + skip, len - skip);

    struct conf_file *file = &l->files[l->file_count++];
    file->path = xstrdup(path);
    file->first_line = *line;
    for (size_t i = skip; i < len; i++)
        *line += data[i] == '\n';
    *line += 1; /* the newline that joins it to the next file */
    free(data);
    return 0;
}

/* Concatenates the conf.d files ending in .toml in byte order, with a newline between files.
 * A missing conf.d directory means no files. */
static int read_conf_dir(struct load *l, struct buf *text) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/conf.d", l->cfg->config_dir);
    struct dirent **names;
    int count = scandir(dir, &names, toml_name_filter, byte_order);
    if (count < 0) {
        if (errno == ENOENT)
            return 0;
        return fail(l, "cannot read the directory %s: %s", dir, strerror(errno));
    }

    l->files = xcalloc((size_t)count, sizeof *l->files);
    int rc = 0, line = 1;
    for (int i = 0; i < count; i++) {
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (rc == 0)
            rc = append_conf_file(l, path, text, &line);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Maps a line of the concatenated text to its file and line there. */
static const struct conf_file *locate_line(const struct load *l, int line, int *file_line) {
    const struct conf_file *found = NULL;
    for (size_t i = 0; i < l->file_count; i++) {
        if (l->files[i].first_line <= line)
            found = &l->files[i];
    }
    if (found)
        *file_line = line - found->first_line + 1;
    return found;
}

/* Writes "path:line" for a line of the concatenated text, or the conf.d directory when the
 * line is unknown. */
static void describe_line(const struct load *l, int line, char *out, size_t outlen) {
    int file_line;
    const struct conf_file *file = line > 0 ? locate_line(l, line, &file_line) : NULL;
    if (file)
        snprintf(out, outlen, "%s:%d", file->path, file_line);
    else
        snprintf(out, outlen, "%s/conf.d", l->cfg->config_dir);
}

static int toml_failure(struct load *l, const struct toml_error *error) {
    char where[PATH_MAX + 300];
    describe_line(l, error->line, where, sizeof where);
    if (error->previous_line <= 0)
        return fail(l, "%s: invalid TOML: %s", where, error->message);
    char previous[PATH_MAX + 300];
    describe_line(l, error->previous_line, previous, sizeof previous);
    return fail(l, "%s: invalid TOML: %s, first defined at %s; every table may appear only "
                "once across all conf.d files", where, error->message, previous);
}

/* Parses the conf.d files as one document into cfg->document; l->doc stays for line lookups. */
static int read_toml(struct load *l) {
    struct buf text = {0};
    int rc = read_conf_dir(l, &text);
    if (rc == 0 && l->file_count == 0) {
        l->cfg->document = json_object();
    } else if (rc == 0) {
        struct toml_error error;
        rc = toml_doc_parse(text.data, text.len, &l->doc, &error);
        if (rc == 0 && !(l->cfg->document = toml_doc_to_json(l->doc, &error)))
            rc = -1;
        if (rc != 0)
            toml_failure(l, &error);
    }
    buf_free(&text);
    return rc;
}

/* ---- TOML keys ---- */

static void describe_key(const struct load *l, const char *table, const char *key, char *out,
                         size_t outlen) {
    int line = l->doc ? toml_doc_line(l->doc, table, key) : 0;
    describe_line(l, line, out, outlen);
}

/* Writes a short, printable rendering of a TOML value for an error message. */
static void describe_value(const struct option_row *row, const json_t *value, char *out,
                           size_t outlen) {
    char sample[4 * 64 + 1];
    if (row->type == TYPE_PASSWORD) {
        snprintf(out, outlen, "(hidden)");
    } else if (json_is_string(value)) {
        log_sample(sample, json_string_value(value), json_string_length(value), 64);
        snprintf(out, outlen, "\"%s\"", sample);
    } else {
        /* json_dumps escapes control characters, so the text is printable as it is. */
        char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(out, outlen, "%.64s%s", text ? text : "?", text && strlen(text) > 64 ? "..." : "");
        free(text);
    }
}

static int check_tables(struct load *l) {
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const char *table = option_rows[i].table;
        const json_t *value = table ? json_object_get(l->cfg->document, table) : NULL;
        if (value && !json_is_object(value)) {
            char where[PATH_MAX + 300];
            describe_key(l, table, NULL, where, sizeof where);
            return fail(l, "%s: %s must be a table ([%s]), not a single value", where, table,
                        table);
        }
    }
    return 0;
}

/* Rejects keys of [fabrik] that no option row knows, so a misspelt key does not pass. */
static int check_fabrik_keys(struct load *l) {
    const json_t *fabrik = json_object_get(l->cfg->document, "fabrik");
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)fabrik, key, value) {
        bool known = false;
        for (size_t i = 0; i < ROW_COUNT && !known; i++) {
            const struct option_row *row = &option_rows[i];
            known = row->table && strcmp(row->table, "fabrik") == 0 && strcmp(row->key, key) == 0;
        }
        if (known)
            continue;
        struct buf names = {0};
        for (size_t i = 0; i < ROW_COUNT; i++) {
            const struct option_row *row = &option_rows[i];
            if (row->table && strcmp(row->table, "fabrik") == 0)
                buf_printf(&names, "%s%s", names.len ? ", " : "", row->key);
        }
        char where[PATH_MAX + 300], sample[4 * 64 + 1];
        describe_key(l, "fabrik", key, where, sizeof where);
        log_sample(sample, key, strlen(key), 64);
        fail(l, "%s: unknown key \"%s\" in [fabrik]; known keys: %s", where, sample, names.data);
        buf_free(&names);
        return -1;
    }
    return 0;
}

/* Validates one TOML key and applies it unless a flag or variable already set the option. */
static int apply_key(struct load *l, size_t index, const json_t *value) {
    const struct option_row *row = &option_rows[index];
    struct config probe = {0};
    char why[256];
    if (parse_json(&probe, row, value, why, sizeof why) != 0) {
        char where[PATH_MAX + 300], shown[4 * 64 + 8];
        describe_key(l, row->table, row->key, where, sizeof where);
        describe_value(row, value, shown, sizeof shown);
        return fail(l, "%s: invalid value %s for [%s] %s: %s", where, shown, row->table,
                    row->key, why);
    }
    if (l->source[index] < SOURCE_TOML) {
        field_copy(l->cfg, &probe, row);
        l->source[index] = SOURCE_TOML;
    }
    if (type_is_string(row->type))
        free(*string_field(&probe, row));
    return 0;
}

static int apply_toml(struct load *l) {
    if (check_tables(l) != 0 || check_fabrik_keys(l) != 0)
        return -1;
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const struct option_row *row = &option_rows[i];
        const json_t *table = row->table ? json_object_get(l->cfg->document, row->table) : NULL;
        const json_t *value = table ? json_object_get(table, row->key) : NULL;
        if (value && apply_key(l, i, value) != 0)
            return -1;
    }
    return 0;
}

static int check_limits(struct load *l) {
    const struct config *cfg = l->cfg;
    if (cfg->max_line_bytes >= cfg->max_job_bytes)
        return 0;
    char where[PATH_MAX + 300];
    describe_key(l, "fabrik", "max_line_bytes", where, sizeof where);
    return fail(l, "%s: [fabrik] max_line_bytes (%zu) is less than max_job_bytes (%zu); raise "
                "max_line_bytes, because a PUSH line carries the whole job",
                where, cfg->max_line_bytes, cfg->max_job_bytes);
}

/* config_reload: options that need a restart keep their value in force; a change in the files
 * is logged so the operator knows a restart is due. */
static void keep_restart_options(struct load *l) {
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const struct option_row *row = &option_rows[i];
        if (row->reloadable || row->type == TYPE_ACTION || field_equal(l->cfg, l->old, row))
            continue;
        log_warn("config_restart_needed", "option=%s", row->name);
        field_copy(l->cfg, l->old, row);
    }
}

/* ---- passwords ---- */

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Reads a password file and trims white space at both ends. origin names where the path came
 * from, for the error message. Returns 0 with a new string in *out, or -1. */
static int read_password_file(struct load *l, const char *path, const char *origin,
                              char **out) {
    char *data;
    size_t len;
    int rc = read_file(path, PASSWORD_FILE_MAX_BYTES, &data, &len);
    if (rc == -EFBIG)
        return fail(l, "the password file %s (from %s) is larger than %d bytes", path, origin,
                    PASSWORD_FILE_MAX_BYTES);
    if (rc != 0)
        return fail(l, "cannot read the password file %s (from %s): %s; make it readable by "
                    "fabrik or change %s", path, origin, strerror(-rc), origin);
    if (strlen(data) != len) {
        free(data);
        return fail(l, "the password file %s (from %s) contains a NUL byte", path, origin);
    }
    size_t start = 0;
    while (start < len && is_space(data[start]))
        start++;
    while (len > start && is_space(data[len - 1]))
        len--;
    *out = xstrndup(data + start, len - start);
    free(data);
    return 0;
}

static const char *password_origin(const struct load *l, size_t index) {
    const struct option_row *row = &option_rows[index];
    return l->source[index] == SOURCE_ENV ? row->env
           : strcmp(row->table, "faktory") == 0 ? "[faktory] password"
                                               : "[web] password";
}

/* Replaces a "/path" value by the file's content and an empty password by NULL. */
static int resolve_password(struct load *l, size_t index) {
    char **field = string_field(l->cfg, &option_rows[index]);
    if (*field && (*field)[0] == '/') {
        char *content;
        if (read_password_file(l, *field, password_origin(l, index), &content) != 0)
            return -1;
        free(*field);
        *field = content;
    }
    if (*field && (*field)[0] == '\0') {
        free(*field);
        *field = NULL;
    }
    return 0;
}

static size_t row_index(const char *name) {
    for (size_t i = 0; i < ROW_COUNT; i++) {
        if (strcmp(option_rows[i].name, name) == 0)
            return i;
    }
    abort(); /* every caller passes a name from option_rows */
}

/* Outside development without FAKTORY_SKIP_PASSWORD, a missing password comes from
 * <config dir>/password, and without that file fabrik must not start. */
static int require_password(struct load *l) {
    struct config *cfg = l->cfg;
    if (cfg->password || cfg->skip_password || strcmp(cfg->environment, "development") == 0)
        return 0;

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/password", cfg->config_dir);
    struct stat st;
    if (stat(path, &st) == 0) {
        char *content;
        if (read_password_file(l, path, "the password fallback", &content) != 0)
            return -1;
        if (content[0])
            cfg->password = content;
        else
            free(content);
    }
    if (cfg->password)
        return 0;
    return fail(l, "a password is required in staging or production (environment %s): set "
                "FAKTORY_PASSWORD, set password in the [faktory] table of a conf.d file, or "
                "write it to %s; FAKTORY_SKIP_PASSWORD=1 runs without one", cfg->environment,
                path);
}

static int resolve_passwords(struct load *l) {
    if (resolve_password(l, row_index("password")) != 0 ||
        resolve_password(l, row_index("web_password")) != 0)
        return -1;
    return require_password(l);
}

/* ---- TLS ---- */

/* Sets *exists; returns -1 when the file's presence cannot be told. */
static int file_exists(struct load *l, const char *path, bool *exists) {
    struct stat st;
    *exists = stat(path, &st) == 0;
    if (*exists || errno == ENOENT || errno == ENOTDIR)
        return 0;
    return fail(l, "cannot check for the TLS file %s: %s", path, strerror(errno));
}

static int find_tls(struct load *l) {
    struct config *cfg = l->cfg;
    char key[PATH_MAX], cert[PATH_MAX];
    snprintf(key, sizeof key, "%s/private.key.pem", cfg->config_dir);
    snprintf(cert, sizeof cert, "%s/public.cert.pem", cfg->config_dir);
    bool has_key, has_cert;
    if (file_exists(l, key, &has_key) != 0 || file_exists(l, cert, &has_cert) != 0)
        return -1;
    if (has_key != has_cert)
        return fail(l, "TLS needs both %s and %s, but %s is missing: add it, or remove %s to "
                    "run without TLS", key, cert, has_key ? cert : key, has_key ? key : cert);
    if (has_key) {
        cfg->tls_key_path = xstrdup(key);
        cfg->tls_cert_path = xstrdup(cert);
    }
    return 0;
}

/* config_reload: turning TLS on or off needs a restart, like the bindings. */
static void keep_tls(struct load *l) {
    struct config *cfg = l->cfg;
    bool was_on = l->old->tls_key_path != NULL;
    if ((cfg->tls_key_path != NULL) == was_on)
        return;
    log_warn("config_restart_needed", "option=tls");
    free(cfg->tls_key_path);
    free(cfg->tls_cert_path);
    cfg->tls_key_path = was_on ? xstrdup(l->old->tls_key_path) : NULL;
    cfg->tls_cert_path = was_on ? xstrdup(l->old->tls_cert_path) : NULL;
}

/* ---- load and reload ---- */

static int check_config_dir(struct load *l) {
    /* The default directory may be absent, but a -c that names no directory is a mistake that
     * would silently drop the password file and TLS. */
    size_t index = row_index("config_dir");
    struct stat st;
    if (l->source[index] != SOURCE_FLAG || (stat(l->cfg->config_dir, &st) == 0 &&
                                            S_ISDIR(st.st_mode)))
        return 0;
    return fail(l, "the config directory %s given with -c/--config-dir is not a directory; "
                "create it or pass another one", l->cfg->config_dir);
}

/* Everything after the flags: environment, TOML files, bounds, passwords and TLS. */
static int load_sources(struct load *l) {
    int rc = apply_env(l);
    if (rc == 0)
        rc = check_config_dir(l);
    if (rc == 0)
        rc = read_toml(l);
    if (rc == 0)
        rc = apply_toml(l);
    if (rc == 0)
        rc = check_limits(l);
    if (rc == 0 && l->old)
        keep_restart_options(l);
    if (rc == 0)
        rc = resolve_passwords(l);
    if (rc == 0)
        rc = find_tls(l);
    if (rc == 0 && l->old)
        keep_tls(l);

    toml_doc_free(l->doc);
    l->doc = NULL;
    free_files(l);
    return rc;
}

int config_load(struct config *cfg, int argc, char **argv, enum config_action *action,
                char *err, size_t errlen) {
    struct load l = {.cfg = cfg, .err = err, .errlen = errlen};
    *action = CONFIG_RUN;
    set_defaults(&l);
    if (parse_flags(&l, argc, argv, action) != 0)
        return -1;
    if (*action == CONFIG_EXIT_OK)
        return 0;
    return load_sources(&l);
}

int config_reload(const struct config *old, struct config *fresh, char *err, size_t errlen) {
    memset(fresh, 0, sizeof *fresh);
    struct load l = {.cfg = fresh, .old = old, .err = err, .errlen = errlen};
    set_defaults(&l);
    keep_flags(&l);
    return load_sources(&l);
}

void config_free(struct config *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < ROW_COUNT; i++) {
        if (type_is_string(option_rows[i].type))
            free(*string_field(cfg, &option_rows[i]));
    }
    free(cfg->tls_key_path);
    free(cfg->tls_cert_path);
    json_decref(cfg->document);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- logging ---- */

static void log_value(struct buf *line, const struct config *cfg,
                      const struct option_row *row) {
    if (row->type == TYPE_PASSWORD) {
        buf_printf(line, " %s=%s", row->name, string_value(cfg, row) ? "set" : "unset");
    } else if (type_is_string(row->type)) {
        const char *value = string_value(cfg, row);
        value = value ? value : "";
        char sample[4 * 200 + 1];
        log_sample(sample, value, strlen(value), 200);
        bool quote = sample[0] == '\0' || strchr(sample, ' ') || strchr(sample, '=');
        buf_printf(line, quote ? " %s=\"%s\"" : " %s=%s", row->name, sample);
    } else if (row->type == TYPE_LOG_LEVEL) {
        buf_printf(line, " %s=%s", row->name, level_names[cfg->log_level]);
    } else if (row->type == TYPE_DURABILITY) {
        buf_printf(line, " %s=%s", row->name, durability_names[cfg->durability]);
    } else if (row->type == TYPE_BOOL) {
        buf_printf(line, " %s=%s", row->name, scalar_value(cfg, row) ? "true" : "false");
    } else {
        buf_printf(line, " %s=%lld", row->name, scalar_value(cfg, row));
    }
}

void config_log(const struct config *cfg) {
    struct buf line = {0};
    for (size_t i = 0; i < ROW_COUNT; i++) {
        if (option_rows[i].type != TYPE_ACTION)
            log_value(&line, cfg, &option_rows[i]);
    }
    buf_printf(&line, " tls=%s", cfg->tls_key_path ? "on" : "off");
    /* Skip the leading space: log_write puts one between the event and the pairs. */
    log_info("config", "%s", line.data + 1);
    buf_free(&line);
}
