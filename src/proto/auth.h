/* The FWP password challenge: a fresh salt and iteration count per connection, and the
 * iterated SHA-256 hash that the client must send back as pwdhash. */
#ifndef FABRIK_AUTH_H
#define FABRIK_AUTH_H

#include <stdbool.h>

#define AUTH_HASH_HEX 65   /* 64 hex digits and a NUL */
#define AUTH_SALT_HEX 17   /* up to 16 hex digits and a NUL */

/* Picks a random salt (lowercase hex of a 63-bit value) and iteration count in [4000, 8095].
 * Returns 0, or -1 when the random generator fails. */
int auth_challenge(char salt[AUTH_SALT_HEX], int *iterations);

/* Computes hex(SHA-256^iterations(password || salt)): SHA-256 of password and salt, then
 * iterations-1 more rounds over the raw 32-byte digest (once for iterations <= 1). */
void auth_hash(const char *password, const char *salt, int iterations, char out[AUTH_HASH_HEX]);

/* Compares a client's pwdhash with the expected hex digest in constant time. */
bool auth_matches(const char expected[AUTH_HASH_HEX], const char *given);

#endif
