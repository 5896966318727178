/* Declarations shared by the libfabrik source files; not installed. */
#ifndef FABRIK_CLIENT_INTERNAL_H
#define FABRIK_CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>

#include "fabrik/fabrik.h"

#define FC_ERRMSG_SIZE 512

/* One reply read from the server. */
enum fc_reply_kind { FC_SIMPLE, FC_ERROR, FC_BULK, FC_NULL, FC_INTEGER };

struct fc_reply {
    enum fc_reply_kind kind;
    char *text;     /* simple string or error text without the type byte; bulk payload */
    size_t len;
};

/* Connection settings copied out of struct fabrik_options. */
struct fc_settings {
    struct fabrik_url url;
    char *password;
    char *ca_file;
    bool tls_skip_verify;
    char *wid;
    char *hostname;
    char **labels;      /* NULL-terminated */
    int connect_timeout_ms;
    int io_timeout_ms;
    int reconnect_attempts;
    int backoff_initial_ms;
    int backoff_max_ms;
};

struct fabrik_client {
    struct fc_settings cfg;
    int fd;                 /* -1 while disconnected */
    void *ssl_ctx;          /* SSL_CTX *, created once for tcp+tls URLs */
    void *ssl;              /* SSL * of the current connection */
    char *buf;              /* bytes received and not yet consumed */
    size_t len, cap;
    bool ever_connected;
    unsigned reconnects;
    char error[FC_ERRMSG_SIZE];
};

/* conn.c */
int fc_settings_copy(struct fc_settings *dst, const struct fabrik_options *opts, char *err,
                     size_t errlen);
void fc_settings_clear(struct fc_settings *cfg);
int fc_client_new(struct fabrik_client **out, const struct fabrik_options *opts, char *err,
                  size_t errlen);
/* Connects (again) when the client has no open connection, with backoff between attempts. */
int fc_ensure_connected(struct fabrik_client *c);
void fc_disconnect(struct fabrik_client *c);
/* Sends line plus CRLF and reads one reply; an error reply becomes a code and the client's
 * error text. The reply text is owned by the caller (free()). */
int fc_call(struct fabrik_client *c, const char *line, struct fc_reply *reply);
/* fc_call that expects +OK. */
int fc_call_ok(struct fabrik_client *c, const char *line);
/* fc_call that expects a bulk or simple string and hands it to *out (may be NULL). */
int fc_call_string(struct fabrik_client *c, const char *line, char **out);
int fc_set_error(struct fabrik_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sleeps for the jittered backoff delay of attempt n (0-based). */
void fc_backoff_sleep(const struct fc_settings *cfg, int attempt);
uint64_t fc_random64(void);
double fc_now(void);
void fc_sleep_ms(int ms);

/* util */
char *fc_strdup(const char *s);
char *fc_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
