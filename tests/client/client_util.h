/* Helpers shared by the libfabrik and fabrikctl tests, on top of the protocol test harness
 * (tests/protocol/harness.h), which starts the real server and runs each case in a child. */
#ifndef FABRIK_CLIENT_TEST_UTIL_H
#define FABRIK_CLIENT_TEST_UTIL_H

#include <fabrik/fabrik.h>

#include "harness.h"

/* "tcp://[:password@]127.0.0.1:<port>" (tcp+tls:// for a TLS server), owned by the case. */
const char *ct_url(struct th_server *srv);

/* Options for srv: its URL, and its certificate as the CA file when it uses TLS. */
void ct_options(struct th_server *srv, struct fabrik_options *opts);

/* Opens a client for srv and fails the case unless that succeeds. */
struct fabrik_client *ct_open(struct th_server *srv);

/* Fails the case with the client's error text unless rc is 0. */
void ct_ok_at(const char *file, int line, struct fabrik_client *c, int rc, const char *expr);
#define CT_OK(c, call) ct_ok_at(__FILE__, __LINE__, c, (call), #call)

/* Starts a server with a web port on 127.0.0.1 (the harness disables the web port) and
 * optionally a password. th_server_stop() stops it; ct_server_restart_web() starts it again on
 * the same ports and directories. */
struct th_server *ct_server_start_web(const char *password);
void ct_server_restart_web(struct th_server *srv);

/* The web port of a server from ct_server_start_web(). */
int ct_web_port(struct th_server *srv);

/* "http://127.0.0.1:<web port>", owned by the case. */
const char *ct_web_url(struct th_server *srv);

/* Sends an HTTP request (body NULL for GET) to srv's web port and returns the status code;
 * *response (may be NULL) receives the parsed JSON body, owned by the case. */
int ct_http(struct th_server *srv, const char *method, const char *path, const char *body,
            json_t **response);

/* Runs a program with extra "NAME=value" environment entries (NULL-terminated, may be NULL)
 * and returns its exit status; *out receives its stdout, owned by the case. stderr goes to the
 * test's stderr. */
int ct_run(const char *const *argv, const char *const *env, char **out);

/* Path of a helper binary from an environment variable set by CTest; skips the case when the
 * variable is missing. */
const char *ct_binary(const char *variable);

/* Polls cond every 20 ms for up to timeout_ms; returns whether it became true. */
#define CT_WAIT(cond, timeout_ms) \
    ({ double ct_until_ = th_now() + (timeout_ms) / 1000.0; bool ct_ok_ = false; \
       while (!(ct_ok_ = (cond)) && th_now() < ct_until_) th_sleep_ms(20); ct_ok_; })

#endif
