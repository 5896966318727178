/* Server configuration: command-line flags, environment variables and every
 * TOML file in <config dir>/conf.d merged into one document, validated before any socket or
 * storage is opened. The rest of the server reads a const struct config and never a global. */
#ifndef FABRIK_CONFIG_H
#define FABRIK_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/log.h"

enum durability {
    DURABILITY_FSYNC = 0, /* synchronous=FULL: an acknowledged change is on disk */
    DURABILITY_OS = 1,    /* synchronous=NORMAL: survives a process crash, not a power loss */
};

struct config {
    char *fwp_bind;        /* "host:port" of the FWP listener */
    char *web_bind;        /* "host:port" of the web UI; port 0 disables it */
    char *environment;     /* "development", "staging" or "production" */
    enum log_level log_level;
    char *data_dir;        /* holds fabrik.db */
    char *config_dir;      /* holds conf.d/ and the TLS files */
    char *password;        /* FWP password; NULL when none */
    char *web_password;    /* web UI password; NULL falls back to password */
    enum durability durability;
    size_t max_line_bytes;   /* longest command line accepted on FWP */
    size_t max_job_bytes;    /* largest single job JSON accepted */
    int max_connections;     /* open FWP connections past the handshake */
    long dead_ttl_days;      /* dead jobs older than this are removed */
    long dead_max;           /* the dead set keeps at most this many jobs, oldest removed first */
    long batch_ttl_days;     /* finished batches older than this are removed */
    long tracking_ttl_seconds; /* tracking data of a finished job live this long after an update */
    char *tls_key_path;      /* <config dir>/private.key.pem when both TLS files exist, else NULL */
    char *tls_cert_path;     /* <config dir>/public.cert.pem when both TLS files exist, else NULL */
    json_t *document;        /* the merged TOML document as JSON (owned), for feature modules */
    bool skip_password;      /* FAKTORY_SKIP_PASSWORD lifts the password rule outside development */
    unsigned int flag_rows;  /* private to config.c: options given on the command line */
};

/* Result of config_load: what main() should do next. */
enum config_action {
    CONFIG_RUN = 0,      /* start the server */
    CONFIG_EXIT_OK = 1,  /* -v or -h printed what was asked; exit 0 */
};

/* Fills cfg from flags, environment and TOML files. Returns 0 with *action set, or -1 with a
 * message in err (errlen bytes) that names the flag, variable, file or key and the fix.
 * cfg must be zeroed before the call; on any return config_free releases it. */
int config_load(struct config *cfg, int argc, char **argv, enum config_action *action,
                char *err, size_t errlen);

/* Re-reads the TOML files and environment for SIGHUP into a fresh struct, keeping the flag
 * values of old. Returns 0, or -1 with a message in err (old stays in force then). */
int config_reload(const struct config *old, struct config *fresh, char *err, size_t errlen);

/* Releases everything cfg owns; accepts a zeroed struct. */
void config_free(struct config *cfg);

/* Logs the effective configuration in one info line (event "config"); passwords appear only
 * as "set" or "unset". */
void config_log(const struct config *cfg);

/* Splits a "host:port" binding such as fwp_bind into host (hostlen bytes, brackets of an IPv6
 * address removed; empty means every interface) and port (0..65535). Returns 0, or -1 when the
 * text is not host:port or host does not fit. */
int config_parse_binding(const char *binding, char *host, size_t hostlen, int *port);

#endif
