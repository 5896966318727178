/* Password challenge with OpenSSL's SHA-256 and random generator. */
#include "proto/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int auth_challenge(char salt[AUTH_SALT_HEX], int *iterations) {
    uint64_t value;
    uint16_t spread;
    if (RAND_bytes((unsigned char *)&value, sizeof value) != 1 ||
        RAND_bytes((unsigned char *)&spread, sizeof spread) != 1)
        return -1;
    snprintf(salt, AUTH_SALT_HEX, "%llx", (unsigned long long)(value >> 1));
    *iterations = 4000 + (spread % 4096);
    return 0;
}

void auth_hash(const char *password, const char *salt, int iterations, char out[AUTH_HASH_HEX]) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, password, strlen(password));
    EVP_DigestUpdate(ctx, salt, strlen(salt));
    EVP_DigestFinal_ex(ctx, digest, NULL);
    EVP_MD_CTX_free(ctx);
    for (int i = 1; i < iterations; i++)
        SHA256(digest, sizeof digest, digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

bool auth_matches(const char expected[AUTH_HASH_HEX], const char *given) {
    if (!given || strlen(given) != AUTH_HASH_HEX - 1)
        return false;
    return CRYPTO_memcmp(expected, given, AUTH_HASH_HEX - 1) == 0;
}
