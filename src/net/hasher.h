/* A background thread that computes password hashes, so the 4,000-8,095 SHA-256 rounds of
 * each connection's challenge never run on the event loop. Results come back on the loop
 * through a pipe that a libevent event watches, so libevent needs no locking. */
#ifndef FABRIK_HASHER_H
#define FABRIK_HASHER_H

#include <stdint.h>

struct event_base;
struct hasher;

typedef void (*hasher_done_cb)(void *ctx, uint64_t conn_id, const char *hash_hex);

/* Starts the thread. Returns NULL when the thread or its pipe cannot be created. */
struct hasher *hasher_new(struct event_base *base, hasher_done_cb done, void *ctx);

/* Queues a hash of password and salt over iterations; done runs on the loop later with
 * conn_id. The strings are copied. */
void hasher_submit(struct hasher *h, uint64_t conn_id, const char *password, const char *salt,
                   int iterations);

/* Stops the thread and drops pending work. Accepts NULL. */
void hasher_free(struct hasher *h);

#endif
