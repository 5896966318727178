/* Unit tests of the FWP password challenge: the iterated SHA-256 hash against known vectors
 * (computed independently with Python's hashlib), the constant-time comparison, and the ranges
 * of the random salt and iteration count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proto/auth.h"

#define VECTOR_SALT "55104dc76695721d"

static void hash_vector_1545_iterations(void **state) {
    (void)state;
    char out[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1545, out);
    assert_string_equal(out, "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec30");
}

static void hash_vector_one_iteration(void **state) {
    (void)state;
    char out[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1, out);
    assert_string_equal(out, "bda5ef54df4404655456165c27f46764614a296cdafcaffc747b7ab7cc1ea313");
}

static void hash_vector_4000_iterations(void **state) {
    (void)state;
    char out[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 4000, out);
    assert_string_equal(out, "0e8bc234bcd7a155f410527c8ee1aa4abded4f9bdcc2598d41aee00ad1090529");
}

/* i <= 1 applies SHA-256 once, the legacy path for clients that send no protocol version. */
static void hash_zero_iterations_hashes_once(void **state) {
    (void)state;
    char out[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 0, out);
    assert_string_equal(out, "bda5ef54df4404655456165c27f46764614a296cdafcaffc747b7ab7cc1ea313");
}

static void hash_negative_iterations_hashes_once(void **state) {
    (void)state;
    char out[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, -5, out);
    assert_string_equal(out, "bda5ef54df4404655456165c27f46764614a296cdafcaffc747b7ab7cc1ea313");
}

static void hash_is_lowercase_hex(void **state) {
    (void)state;
    char out[AUTH_HASH_HEX];
    auth_hash("another password", "1", 4096, out);
    assert_int_equal(strlen(out), 64);
    assert_int_equal(strspn(out, "0123456789abcdef"), 64);
}

static void hash_depends_on_salt(void **state) {
    (void)state;
    char a[AUTH_HASH_HEX], b[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 10, a);
    auth_hash("foobar", "55104dc76695721e", 10, b);
    assert_string_not_equal(a, b);
}

static void hash_empty_password(void **state) {
    (void)state;
    /* SHA-256 of the empty string, one round. */
    char out[AUTH_HASH_HEX];
    auth_hash("", "", 1, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void matches_equal_hash(void **state) {
    (void)state;
    char expected[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1545, expected);
    assert_true(auth_matches(expected,
                             "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec30"));
}

static void matches_rejects_other_hash(void **state) {
    (void)state;
    char expected[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1545, expected);
    assert_false(auth_matches(expected,
                              "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec31"));
}

static void matches_rejects_uppercase_hex(void **state) {
    (void)state;
    char expected[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1545, expected);
    assert_false(auth_matches(expected,
                              "6D877F8E5544B1F2598768F817413AB8A357AFFFA924DEDAE99EB91472D4EC30"));
}

static void matches_rejects_null(void **state) {
    (void)state;
    char expected[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1545, expected);
    assert_false(auth_matches(expected, NULL));
}

static void matches_rejects_empty(void **state) {
    (void)state;
    char expected[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1545, expected);
    assert_false(auth_matches(expected, ""));
}

static void matches_rejects_prefix(void **state) {
    (void)state;
    char expected[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1545, expected);
    assert_false(auth_matches(expected, "6d877f8e5544b1f2598768f817413ab8"));
}

static void matches_rejects_longer_text(void **state) {
    (void)state;
    char expected[AUTH_HASH_HEX];
    auth_hash("foobar", VECTOR_SALT, 1545, expected);
    assert_false(auth_matches(
        expected, "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec3000"));
}

static void challenge_iterations_in_range(void **state) {
    (void)state;
    int lowest = 1 << 30, highest = 0;
    for (int i = 0; i < 2000; i++) {
        char salt[AUTH_SALT_HEX];
        int iterations = -1;
        assert_int_equal(auth_challenge(salt, &iterations), 0);
        assert_in_range(iterations, 4000, 8095);
        if (iterations < lowest)
            lowest = iterations;
        if (iterations > highest)
            highest = iterations;
    }
    /* 2000 draws from 4096 values: both ends of the range show up in practice. */
    assert_true(lowest < 4500);
    assert_true(highest > 7600);
}

static void challenge_salt_is_lowercase_hex(void **state) {
    (void)state;
    size_t longest = 0;
    for (int i = 0; i < 2000; i++) {
        char salt[AUTH_SALT_HEX];
        int iterations;
        assert_int_equal(auth_challenge(salt, &iterations), 0);
        size_t len = strlen(salt);
        assert_in_range(len, 1, 16);
        assert_int_equal(strspn(salt, "0123456789abcdef"), len);
        if (len > longest)
            longest = len;
    }
    /* Half of all 63-bit values have 16 hex digits. */
    assert_int_equal(longest, 16);
}

static void challenge_salt_below_2_pow_63(void **state) {
    (void)state;
    for (int i = 0; i < 2000; i++) {
        char salt[AUTH_SALT_HEX];
        int iterations;
        assert_int_equal(auth_challenge(salt, &iterations), 0);
        if (strlen(salt) == 16)
            assert_in_range(salt[0], '0', '7');
    }
}

static void challenge_salt_differs_per_call(void **state) {
    (void)state;
    char a[AUTH_SALT_HEX], b[AUTH_SALT_HEX];
    int ia, ib;
    assert_int_equal(auth_challenge(a, &ia), 0);
    assert_int_equal(auth_challenge(b, &ib), 0);
    assert_string_not_equal(a, b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_vector_1545_iterations),
        cmocka_unit_test(hash_vector_one_iteration),
        cmocka_unit_test(hash_vector_4000_iterations),
        cmocka_unit_test(hash_zero_iterations_hashes_once),
        cmocka_unit_test(hash_negative_iterations_hashes_once),
        cmocka_unit_test(hash_is_lowercase_hex),
        cmocka_unit_test(hash_depends_on_salt),
        cmocka_unit_test(hash_empty_password),
        cmocka_unit_test(matches_equal_hash),
        cmocka_unit_test(matches_rejects_other_hash),
        cmocka_unit_test(matches_rejects_uppercase_hex),
        cmocka_unit_test(matches_rejects_null),
        cmocka_unit_test(matches_rejects_empty),
        cmocka_unit_test(matches_rejects_prefix),
        cmocka_unit_test(matches_rejects_longer_text),
        cmocka_unit_test(challenge_iterations_in_range),
        cmocka_unit_test(challenge_salt_is_lowercase_hex),
        cmocka_unit_test(challenge_salt_below_2_pow_63),
        cmocka_unit_test(challenge_salt_differs_per_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
