/* test_keys.c - keygen, key files, kid, permission checks, malformed keys. */
#include "pgr_test.h"

#include "pgr/crypto.h"
#include "pgr/keyring.h"
#include "pgr/keys.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_keys_generate_writes_pair_with_modes(void **state)
{
    char dir[64], path[128], line[256];
    pgr_keypair kp, loaded;
    pgr_pubkey pub;
    struct stat st;
    pgr_error e;
    (void)state;
    assert_non_null(pgr_test_tmpdir(dir, sizeof(dir)));
    assert_int_equal(pgr_keys_generate(dir, "coord", &kp, &e), PGR_OK);
    snprintf(path, sizeof(path), "%s/coord.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(pgr_keys_load_secret(path, &loaded, &e), PGR_OK);
    assert_memory_equal(loaded.pk, kp.pk, PGR_PK_LEN);
    assert_memory_equal(loaded.sk, kp.sk, PGR_SK_LEN);
    snprintf(path, sizeof(path), "%s/coord.pub", dir);
    assert_int_equal(pgr_keys_load_public(path, &pub, &e), PGR_OK);
    assert_memory_equal(pub.pk, kp.pk, PGR_PK_LEN);
    assert_string_equal(pub.kid, kp.kid);
    /* .pub is exactly one line "ed25519 <b64> <kid>\n" */
    FILE *f = fopen(path, "r");
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_int_equal(strncmp(line, "ed25519 ", 8), 0);
    assert_int_equal(strlen(line), 8 + 44 + 1 + 16 + 1);
}

static void test_keys_kid_is_sha256_prefix(void **state)
{
    uint8_t pk[PGR_PK_LEN] = {0};
    char kid[PGR_KID_LEN];
    (void)state;
    /* SHA-256 of 32 zero bytes = 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925
     */
    pgr_keys_kid(pk, kid);
    assert_string_equal(kid, "66687aadf862bd77");
}

static void test_keys_refuses_overwrite_and_bad_name(void **state)
{
    char dir[64];
    pgr_keypair kp;
    pgr_error e;
    (void)state;
    assert_non_null(pgr_test_tmpdir(dir, sizeof(dir)));
    assert_int_equal(pgr_keys_generate(dir, "a", &kp, &e), PGR_OK);
    assert_int_equal(pgr_keys_generate(dir, "a", &kp, &e), PGR_ERR_EXISTS);
    assert_non_null(strstr(e.msg, "refusing to overwrite"));
    assert_int_equal(pgr_keys_generate(dir, "../evil", &kp, &e), PGR_ERR_INVALID);
    assert_int_equal(pgr_keys_generate(dir, "", &kp, &e), PGR_ERR_INVALID);
}

static void test_keys_refuses_group_or_world_readable_secret(void **state)
{
    char dir[64], path[128];
    pgr_keypair kp;
    pgr_error e;
    (void)state;
    assert_non_null(pgr_test_tmpdir(dir, sizeof(dir)));
    assert_int_equal(pgr_keys_generate(dir, "k", &kp, &e), PGR_OK);
    snprintf(path, sizeof(path), "%s/k.key", dir);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(pgr_keys_load_secret(path, &kp, &e), PGR_ERR_PERM);
    assert_non_null(strstr(e.msg, "mode 0640"));
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(pgr_keys_load_secret(path, &kp, &e), PGR_ERR_PERM);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(pgr_keys_load_secret(path, &kp, &e), PGR_OK);
}

static void expect_bad_secret(const char *content, const char *fragment)
{
    char dir[64], path[128];
    pgr_keypair kp;
    pgr_error e;
    assert_non_null(pgr_test_tmpdir(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/bad.key", dir);
    pgr_test_write(path, content);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(pgr_keys_load_secret(path, &kp, &e), PGR_ERR_CRYPTO);
    if (strstr(e.msg, fragment) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", e.msg, fragment);
}

static void test_keys_rejects_malformed_secret(void **state)
{
    (void)state;
    expect_bad_secret("", "malformed");
    expect_bad_secret("ed25519-secret !!!notbase64!!! 0011223344556677\n", "invalid base64");
    expect_bad_secret("ed25519-secret Zm9vYmFy 0011223344556677\n", "is 6 bytes, expected 64");
    expect_bad_secret("rsa AAAA 00\n", "malformed");
    /* a correct 64-byte key with a wrong kid */
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char *b64 = pgr_crypto_base64_encode(sk, 64);
    char line[256];
    snprintf(line, sizeof(line), "ed25519-secret %s 0000000000000000\n", b64);
    expect_bad_secret(line, "does not match the key");
    /* public half tampered */
    sk[40] ^= 1;
    free(b64);
    b64 = pgr_crypto_base64_encode(sk, 64);
    snprintf(line, sizeof(line), "ed25519-secret %s 0000000000000000\n", b64);
    expect_bad_secret(line, "public half does not match");
    free(b64);
}

static void test_keys_rejects_malformed_public(void **state)
{
    pgr_pubkey pub;
    pgr_error e;
    char line[200];
    uint8_t pk[32] = {1, 2, 3};
    (void)state;
    assert_int_equal(pgr_keys_parse_public("ed25519 AAAA", &pub, &e), PGR_ERR_CRYPTO);
    assert_int_equal(pgr_keys_parse_public("ed25519 AAAA 0011223344556677", &pub, &e),
                     PGR_ERR_CRYPTO);
    assert_non_null(strstr(e.msg, "is 3 bytes, expected 32"));
    pgr_keys_format_public(pk, line, sizeof(line));
    assert_int_equal(pgr_keys_parse_public(line, &pub, &e), PGR_OK);
    line[strlen(line) - 1] = line[strlen(line) - 1] == '0' ? '1' : '0';
    assert_int_equal(pgr_keys_parse_public(line, &pub, &e), PGR_ERR_CRYPTO);
    assert_non_null(strstr(e.msg, "does not match"));
}

/* A keypair in a fresh directory, with a keyring "ring" trusting its public key (mode 0644). */
static void make_key_and_ring(char *dir, size_t dirlen, char *key, char *ring, size_t len)
{
    pgr_keypair kp;
    pgr_error e;
    char line[256], text[300];
    assert_non_null(pgr_test_tmpdir(dir, dirlen));
    assert_int_equal(pgr_keys_generate(dir, "k", &kp, &e), PGR_OK);
    snprintf(key, len, "%s/k.key", dir);
    snprintf(ring, len, "%s/ring", dir);
    pgr_keys_format_public(kp.pk, line, sizeof(line));
    snprintf(text, sizeof(text), "%s name=test\n", line);
    pgr_test_write(ring, text);
    assert_int_equal(chmod(ring, 0644), 0);
}

static void expect_ring_refused(const char *ring, const char *fragment)
{
    pgr_keyring *kr = NULL;
    pgr_error e;
    assert_int_equal(pgr_keyring_load(ring, &kr, &e), PGR_ERR_PERM);
    assert_null(kr);
    if (strstr(e.msg, fragment) == NULL || strstr(e.msg, ring) == NULL)
        fail_msg("error \"%s\" lacks \"%s\" or the file name", e.msg, fragment);
}

static void expect_key_refused(const char *key, const char *fragment)
{
    pgr_keypair kp;
    pgr_error e;
    assert_int_equal(pgr_keys_load_secret(key, &kp, &e), PGR_ERR_PERM);
    if (strstr(e.msg, fragment) == NULL || strstr(e.msg, key) == NULL)
        fail_msg("error \"%s\" lacks \"%s\" or the file name", e.msg, fragment);
}

static void test_keys_refuses_symlinked_key_and_keyring(void **state)
{
    char dir[64], key[128], ring[128], link_key[160], link_ring[160];
    pgr_keyring *kr = NULL;
    pgr_keypair kp;
    pgr_error e;
    (void)state;
    make_key_and_ring(dir, sizeof(dir), key, ring, sizeof(key));
    assert_int_equal(pgr_keyring_load(ring, &kr, &e), PGR_OK);
    assert_int_equal(kr->count, 1);
    pgr_keyring_free(kr);
    assert_int_equal(pgr_keys_load_secret(key, &kp, &e), PGR_OK);
    snprintf(link_key, sizeof(link_key), "%s/link.key", dir);
    snprintf(link_ring, sizeof(link_ring), "%s/link.ring", dir);
    assert_int_equal(symlink(key, link_key), 0);
    assert_int_equal(symlink(ring, link_ring), 0);
    expect_key_refused(link_key, "is a symbolic link");
    expect_ring_refused(link_ring, "is a symbolic link");
}

static void test_keys_refuses_group_writable_keyring(void **state)
{
    char dir[64], key[128], ring[128];
    pgr_keyring *kr = NULL;
    pgr_error e;
    (void)state;
    make_key_and_ring(dir, sizeof(dir), key, ring, sizeof(key));
    assert_int_equal(chmod(ring, 0664), 0);
    expect_ring_refused(ring, "has mode 0664: it must not be writable by group or others");
    assert_int_equal(chmod(ring, 0646), 0);
    expect_ring_refused(ring, "has mode 0646");
    /* readable by everybody is fine: a keyring holds public keys only */
    assert_int_equal(chmod(ring, 0444), 0);
    assert_int_equal(pgr_keyring_load(ring, &kr, &e), PGR_OK);
    pgr_keyring_free(kr);
}

static void test_keys_refuses_world_readable_secret_key(void **state)
{
    char dir[64], key[128], ring[128];
    (void)state;
    make_key_and_ring(dir, sizeof(dir), key, ring, sizeof(key));
    assert_int_equal(chmod(key, 0644), 0);
    expect_key_refused(key, "has mode 0644: it must not be accessible by group or others");
    assert_int_equal(chmod(key, 0610), 0);
    expect_key_refused(key, "has mode 0610");
}

static void test_keys_refuses_directory(void **state)
{
    char dir[64], key[128], ring[128], sub[160];
    (void)state;
    make_key_and_ring(dir, sizeof(dir), key, ring, sizeof(key));
    snprintf(sub, sizeof(sub), "%s/dir.ring", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    expect_ring_refused(sub, "is not a regular file (a directory)");
    expect_key_refused(sub, "is not a regular file (a directory)");
}

/* Needs root (to give the files away); as another user the check is the same code path. */
static void test_keys_refuses_file_of_another_owner(void **state)
{
    char dir[64], key[128], ring[128];
    (void)state;
    if (geteuid() != 0) {
        skip();
        return;
    }
    make_key_and_ring(dir, sizeof(dir), key, ring, sizeof(key));
    assert_int_equal(chown(key, 65534, (gid_t)-1), 0);
    assert_int_equal(chown(ring, 65534, (gid_t)-1), 0);
    expect_key_refused(key, "is owned by uid 65534");
    expect_ring_refused(ring, "is owned by uid 65534");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_generate_writes_pair_with_modes),
        cmocka_unit_test(test_keys_kid_is_sha256_prefix),
        cmocka_unit_test(test_keys_refuses_overwrite_and_bad_name),
        cmocka_unit_test(test_keys_refuses_group_or_world_readable_secret),
        cmocka_unit_test(test_keys_rejects_malformed_secret),
        cmocka_unit_test(test_keys_rejects_malformed_public),
        cmocka_unit_test(test_keys_refuses_symlinked_key_and_keyring),
        cmocka_unit_test(test_keys_refuses_group_writable_keyring),
        cmocka_unit_test(test_keys_refuses_world_readable_secret_key),
        cmocka_unit_test(test_keys_refuses_directory),
        cmocka_unit_test(test_keys_refuses_file_of_another_owner),
    };
    if (pgr_crypto_init(NULL) != PGR_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
