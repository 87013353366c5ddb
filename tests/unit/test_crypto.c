/* test_crypto.c - SHA-256, hex and base64 against known vectors. */
#include "pgr_test.h"

#include "pgr/crypto.h"

#include <sodium.h>

static void test_crypto_sha256_known_vectors(void **state)
{
    char hex[PGR_SHA256_HEX_LEN];
    (void)state;
    pgr_crypto_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    pgr_crypto_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_crypto_base64_roundtrip_rfc4648(void **state)
{
    static const char *const vec[][2] = {{"", ""},
                                         {"f", "Zg=="},
                                         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},
                                         {"foob", "Zm9vYg=="},
                                         {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    uint8_t out[16];
    size_t n = 0;
    (void)state;
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char *enc = pgr_crypto_base64_encode((const uint8_t *)vec[i][0], strlen(vec[i][0]));
        assert_string_equal(enc, vec[i][1]);
        free(enc);
        assert_int_equal(
            pgr_crypto_base64_decode(vec[i][1], strlen(vec[i][1]), out, sizeof(out), &n), PGR_OK);
        assert_int_equal(n, strlen(vec[i][0]));
        assert_memory_equal(out, vec[i][0], n);
    }
}

static void test_crypto_base64_rejects_noncanonical(void **state)
{
    uint8_t out[16];
    size_t n = 0;
    (void)state;
    const char *bad[] = {"Zg", "Zg=", "Z g==", "Zg==\n", "Zm9v!A==", "Zm9-", "Zm9_", NULL};
    for (int i = 0; bad[i] != NULL; i++)
        assert_int_equal(pgr_crypto_base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n),
                         PGR_ERR_INVALID);
    /* does not overflow a small destination */
    assert_int_equal(pgr_crypto_base64_decode("Zm9vYmFy", 8, out, 3, &n), PGR_ERR_INVALID);
}

/* The table codec against libsodium's (the reference it replaced) on every length up to 200
 * and every byte value; and the canonical-form rules at the last group. */
static void test_crypto_base64_matches_libsodium(void **state)
{
    uint8_t bin[256], back[256];
    char ref[400];
    size_t n = 0;
    (void)state;
    for (int i = 0; i < 256; i++)
        bin[i] = (uint8_t)(i * 167 + 13);
    for (size_t len = 0; len <= 200; len++) {
        char *enc = pgr_crypto_base64_encode(bin, len);
        sodium_bin2base64(ref, sizeof(ref), bin, len, sodium_base64_VARIANT_ORIGINAL);
        assert_string_equal(enc, ref);
        assert_int_equal(pgr_crypto_base64_decode(enc, strlen(enc), back, sizeof(back), &n),
                         PGR_OK);
        assert_int_equal(n, len);
        assert_memory_equal(back, bin, len);
        free(enc);
    }
    const char *ok[] = {"AA==", "AAA=", "Zm8=", "Zm9v", "+/+/", NULL};
    for (int i = 0; ok[i] != NULL; i++)
        assert_int_equal(pgr_crypto_base64_decode(ok[i], 4, back, sizeof(back), &n), PGR_OK);
    /* unused bits set, padding in the wrong place, padding only */
    const char *bad[] = {"AB==", "AAB=", "Zm9=",     "====",     "A===", "Zg=a",
                         "Zm=v", "=Zm9", "Zm9vZ===", "Zg==Zm9v", NULL};
    for (int i = 0; bad[i] != NULL; i++)
        assert_int_equal(
            pgr_crypto_base64_decode(bad[i], strlen(bad[i]) < 8 ? 4 : 8, back, sizeof(back), &n),
            PGR_ERR_INVALID);
    assert_int_equal(pgr_crypto_base64_decode("Zm9v\0AAA", 8, back, sizeof(back), &n),
                     PGR_ERR_INVALID);
    /* exactly enough room, and one byte short of it */
    assert_int_equal(pgr_crypto_base64_decode("Zm9vYg==", 8, back, 4, &n), PGR_OK);
    assert_int_equal(pgr_crypto_base64_decode("Zm9vYg==", 8, back, 3, &n), PGR_ERR_INVALID);
}

static void test_crypto_hex_roundtrip(void **state)
{
    uint8_t bin[4] = {0x00, 0xab, 0x10, 0xff}, back[4];
    char hex[9];
    (void)state;
    pgr_crypto_hex_encode(bin, 4, hex);
    assert_string_equal(hex, "00ab10ff");
    assert_int_equal(pgr_crypto_hex_decode(hex, back, 4), PGR_OK);
    assert_memory_equal(bin, back, 4);
    assert_int_equal(pgr_crypto_hex_decode("00ab10f", back, 4), PGR_ERR_INVALID);
    assert_int_equal(pgr_crypto_hex_decode("00ab10fg", back, 4), PGR_ERR_INVALID);
    assert_int_equal(pgr_crypto_hex_decode("00ab10ff00", back, 4), PGR_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crypto_sha256_known_vectors),
        cmocka_unit_test(test_crypto_base64_roundtrip_rfc4648),
        cmocka_unit_test(test_crypto_base64_rejects_noncanonical),
        cmocka_unit_test(test_crypto_base64_matches_libsodium),
        cmocka_unit_test(test_crypto_hex_roundtrip),
    };
    if (pgr_crypto_init(NULL) != PGR_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
