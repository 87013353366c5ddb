/* test_release.c - release manifests (common/src/release.c): the worked example of
 * docs/PROTOCOL.md section 14 byte for byte, every refusal of the parser, the signature count
 * (distinct trusted keys, revoked and unknown ones not counted), expiry and scope. */
#include "pgr_test.h"

#include "pgr/crypto.h"
#include "pgr/file.h"
#include "pgr/job.h"
#include "pgr/migration.h"
#include "pgr/release.h"

#include <sodium.h>

#define FIX PGR_SOURCE_DIR "/tests/fixtures/protocol/"

/* Release keys of the example: seeds 0x00..0x1f and 0x20..0x3f. */
static void example_key(pgr_keypair *kp, int first)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(first + i);
    crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
    pgr_keys_kid(kp->pk, kp->kid);
}

static pgr_keyring *ring_of(const pgr_keypair *a, const pgr_keypair *b, const char *b_extra)
{
    char text[1024], la[256], lb[256];
    pgr_keyring *kr = NULL;
    pgr_keys_format_public(a->pk, la, sizeof(la));
    pgr_keys_format_public(b->pk, lb, sizeof(lb));
    snprintf(text, sizeof(text), "%s\n%s%s\n", la, lb, b_extra);
    assert_int_equal(pgr_keyring_parse(text, strlen(text), "ring", &kr, NULL), PGR_OK);
    return kr;
}

/* The example: the four White Cross migrations, all tenants, 2025-11-06 for a week. */
static pgr_release *example(void)
{
    pgr_migration_set *set = NULL;
    pgr_release_entry e[4];
    assert_int_equal(pgr_migration_dir_load(PGR_SOURCE_DIR "/migrations", &set, NULL), PGR_OK);
    assert_int_equal(set->count, 4);
    for (size_t i = 0; i < 4; i++) {
        snprintf(e[i].version, sizeof(e[i].version), "%s", set->items[i]->version);
        pgr_release_file_sha256(set->items[i]->text, set->items[i]->text_len, e[i].sha256);
        e[i].name = set->items[i]->name;
    }
    pgr_release_spec spec = {"7c9e6679-7425-40de-944b-e07fc1f90ae7",
                             1762430400,
                             1762430400 + 7 * 86400,
                             "0",
                             "20251106000003",
                             true,
                             NULL,
                             NULL,
                             e,
                             4};
    pgr_release *r = NULL;
    assert_int_equal(pgr_release_new(&spec, &r, NULL), PGR_OK);
    pgr_migration_set_free(set);
    return r;
}

static void test_release_worked_example_is_byte_exact(void **state)
{
    pgr_keypair k1, k2;
    (void)state;
    example_key(&k1, 0);
    example_key(&k2, 32);
    pgr_release *r = example();
    assert_int_equal(pgr_release_sign(r, &k1, NULL), PGR_OK);
    assert_int_equal(pgr_release_sign(r, &k2, NULL), PGR_OK);
    char *text = pgr_release_text(r);
    char *want = NULL, *doc = NULL;
    size_t len = 0, dlen = 0;
    assert_int_equal(pgr_file_read(FIX "release_manifest.json", 1 << 20, &want, &len, NULL),
                     PGR_OK);
    assert_string_equal(text, want);
    /* and PROTOCOL.md shows exactly these bytes */
    assert_int_equal(pgr_file_read(PGR_SOURCE_DIR "/docs/PROTOCOL.md", 1 << 22, &doc, &dlen, NULL),
                     PGR_OK);
    assert_non_null(strstr(doc, want));
    pgr_keyring *kr = ring_of(&k1, &k2, "");
    char kids[64];
    assert_int_equal(pgr_release_check(r, kr, 2, 1762430400, kids, sizeof(kids), NULL), PGR_OK);
    free(text);
    free(want);
    free(doc);
    pgr_keyring_free(kr);
    pgr_release_free(r);
}

static void test_release_signatures_count_distinct_trusted_keys(void **state)
{
    pgr_keypair k1, k2, other;
    pgr_error e;
    (void)state;
    example_key(&k1, 0);
    example_key(&k2, 32);
    example_key(&other, 64);
    pgr_release *r = example();
    assert_int_equal(pgr_release_sign(r, &k1, NULL), PGR_OK);
    assert_int_equal(pgr_release_sign(r, &k1, &e), PGR_ERR_INVALID); /* the same key again */
    pgr_keyring *kr = ring_of(&k1, &k2, "");
    assert_int_equal(pgr_release_check(r, kr, 2, 1762430400, NULL, 0, &e), PGR_ERR_INVALID);
    assert_non_null(strstr(e.msg, "1 valid signature(s)"));
    /* a second copy of the same signature in the file counts once */
    char *text = pgr_release_text(r);
    char *dup = malloc(strlen(text) * 2);
    char *sigs = strstr(text, "\"signatures\":[") + 14;
    size_t one = strlen(sigs) - 3; /* without "]}\n" */
    sprintf(dup, "%.*s%.*s,%.*s]}\n", (int)(sigs - text), text, (int)one, sigs, (int)one, sigs);
    pgr_release *twice = NULL;
    assert_int_equal(pgr_release_parse(dup, strlen(dup), &twice, NULL), PGR_OK);
    assert_int_equal(twice->sig_count, 2);
    assert_int_equal(pgr_release_check(twice, kr, 2, 1762430400, NULL, 0, &e), PGR_ERR_INVALID);
    /* a bogus entry of a trusted kid before its real signature hides nothing */
    pgr_release *bogus = NULL;
    char *fake = malloc(strlen(text) + 200);
    char zeros[89];
    memset(zeros, 'A', 86);
    memcpy(zeros + 86, "==", 3);
    sprintf(fake, "%.*s{\"kid\":\"%s\",\"sig\":\"%s\"},%s", (int)(sigs - text), text, k1.kid, zeros,
            sigs);
    assert_int_equal(pgr_release_parse(fake, strlen(fake), &bogus, NULL), PGR_OK);
    assert_int_equal(bogus->sig_count, 2);
    char kids[64];
    assert_int_equal(pgr_release_check(bogus, kr, 1, 1762430400, kids, sizeof(kids), &e), PGR_OK);
    assert_string_equal(kids, k1.kid);
    pgr_release_free(bogus);
    free(fake);
    /* an untrusted key's signature does not count; a trusted one does */
    assert_int_equal(pgr_release_sign(r, &other, NULL), PGR_OK);
    assert_int_equal(pgr_release_check(r, kr, 2, 1762430400, NULL, 0, &e), PGR_ERR_INVALID);
    assert_int_equal(pgr_release_sign(r, &k2, NULL), PGR_OK);
    assert_int_equal(pgr_release_check(r, kr, 2, 1762430400, NULL, 0, &e), PGR_OK);
    /* revoked: no longer counted; expired: refused whatever the signatures */
    pgr_keyring *revoked = ring_of(&k1, &k2, " revoked");
    assert_int_equal(pgr_release_check(r, revoked, 2, 1762430400, NULL, 0, &e), PGR_ERR_INVALID);
    assert_int_equal(pgr_release_check(r, kr, 2, 1762430400 + 7 * 86400, NULL, 0, &e),
                     PGR_ERR_INVALID);
    assert_non_null(strstr(e.msg, "expired at 2025-11-13T12:00:00Z"));
    /* a payload changed after signing: no signature verifies */
    r->payload[10] ^= 1;
    assert_int_equal(pgr_release_check(r, kr, 1, 1762430400, NULL, 0, &e), PGR_ERR_INVALID);
    free(text);
    free(dup);
    pgr_release_free(twice);
    pgr_release_free(r);
    pgr_keyring_free(kr);
    pgr_keyring_free(revoked);
}

static pgr_release *with_payload(const char *payload)
{
    char *b64 = pgr_crypto_base64_encode((const uint8_t *)payload, strlen(payload));
    char text[4096];
    snprintf(text, sizeof(text), "{\"v\":1,\"payload\":\"%s\",\"signatures\":[]}", b64);
    free(b64);
    pgr_release *r = NULL;
    pgr_error e;
    if (pgr_release_parse(text, strlen(text), &r, &e) != PGR_OK)
        return NULL;
    return r;
}

#define H64 "0000000000000000000000000000000000000000000000000000000000000000"
#define P(scope, migs, from, to)                                                                   \
    "{\"created_at\":\"2025-11-06T12:00:00Z\",\"expires_at\":\"2025-11-07T12:00:00Z\",\"from\":"   \
    "\"" from "\",\"migrations\":" migs                                                            \
    ",\"release_id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\","                                    \
    "\"scope\":" scope ",\"to\":\"" to "\",\"type\":\"pgrollout-release/v1\"}"
#define M1 "[{\"name\":\"a\",\"sha256\":\"" H64 "\",\"version\":\"20251106000001\"}]"

static void test_release_parser_refuses(void **state)
{
    pgr_error e;
    pgr_release *r = NULL;
    (void)state;
    r = with_payload(P("{\"all\":true}", M1, "0", "20251106000001"));
    assert_non_null(r);
    assert_true(pgr_release_covers_tenant(r, "anyone", NULL));
    pgr_release_free(r);
    r = with_payload(P("{\"tenants\":[\"district-001\",\"eu-*\"]}", M1, "0", "20251106000001"));
    assert_true(pgr_release_covers_tenant(r, "district-001", NULL));
    assert_true(pgr_release_covers_tenant(r, "eu-17", NULL));
    assert_false(pgr_release_covers_tenant(r, "district-002", NULL));
    pgr_release_free(r);
    r = with_payload(
        P("{\"tags\":{\"region\":\"eu\",\"tier\":\"gold\"}}", M1, "0", "20251106000001"));
    assert_true(pgr_release_covers_tenant(r, "x", "tier:gold,region:eu,size:l"));
    assert_false(pgr_release_covers_tenant(r, "x", "region:eu"));
    assert_false(pgr_release_covers_tenant(r, "x", NULL));
    pgr_release_free(r);
    /* each of these is refused */
    const char *bad[] = {
        P("{\"all\":false}", M1, "0", "20251106000001"),
        P("{\"all\":true,\"tenants\":[\"a\"]}", M1, "0", "20251106000001"),
        P("{\"tenants\":[]}", M1, "0", "20251106000001"),
        P("{\"tenants\":[\"a/b\"]}", M1, "0", "20251106000001"),
        P("{\"tags\":{\"a\":\"b,c\"}}", M1, "0", "20251106000001"),
        P("{\"all\":true}", "[]", "0", "20251106000001"),
        P("{\"all\":true}", M1, "0", "20251106000002"),              /* to is not the last */
        P("{\"all\":true}", M1, "20251106000001", "20251106000001"), /* from not below to */
        P("{\"all\":true}", "[{\"name\":\"a\",\"sha256\":\"" H64 "\",\"version\":\"1\"}]", "0",
          "20251106000001"),
        P("{\"all\":true}", "[{\"name\":\"a\",\"sha256\":\"ABC\",\"version\":\"20251106000001\"}]",
          "0", "20251106000001"),
        P("{\"all\":true}",
          "[{\"name\":\"a\",\"sha256\":\"" H64 "\",\"version\":\"20251106000001\"},{\"name\":\"b\","
          "\"sha256\":\"" H64 "\",\"version\":\"20251106000001\"}]",
          "0", "20251106000001"), /* a version twice */
        "{\"type\":\"pgrollout-release/v1\"}",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = with_payload(bad[i]);
        if (r != NULL)
            fail_msg("payload %zu accepted: %s", i, bad[i]);
    }
    /* the file around it */
    const char *files[] = {
        "{\"v\":2,\"payload\":\"e30=\",\"signatures\":[]}",
        "{\"v\":1,\"payload\":\"e30=\"}",
        "{\"v\":1,\"payload\":\"!!\",\"signatures\":[]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        assert_int_equal(pgr_release_parse(files[i], strlen(files[i]), &r, &e), PGR_ERR_INVALID);
        assert_non_null(strstr(e.msg, "release manifest: "));
    }
}

#define SIG64                                                                                      \
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="

/* Jobs carry manifests (PROTOCOL 14.3): parsed with the job, a broken one makes it malformed. */
static void test_release_in_job_payload(void **state)
{
    (void)state;
    char *file = NULL;
    size_t len = 0;
    assert_int_equal(pgr_file_read(FIX "release_manifest.json", 1 << 20, &file, &len, NULL),
                     PGR_OK);
    file[len - 1] = '\0'; /* the LF */
    const char *head =
        "{\"type\":\"verify\",\"job_id\":\"6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f\","
        "\"tenant_id\":\"district-001\",\"seq\":1,\"issued_at\":\"2025-11-06T12:00:00Z\","
        "\"expires_at\":\"2025-11-06T13:00:00Z\",\"operator\":\"op\",\"migrations\":[],"
        "\"releases\":[";
    char *payload = malloc(strlen(head) + len + 16);
    sprintf(payload, "%s%s]}", head, file);
    pgr_job *job = NULL;
    pgr_job_reject why;
    assert_int_equal(pgr_job_parse(payload, strlen(payload), &job, &why, NULL), PGR_OK);
    assert_int_equal(job->release_count, 1);
    assert_string_equal(job->releases[0]->release_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    char *built = pgr_job_build(job, job->migrations);
    assert_non_null(strstr(built, file)); /* carried as written */
    free(built);
    pgr_job_free(job);
    sprintf(payload, "%s{\"v\":1}]}", head);
    assert_int_equal(pgr_job_parse(payload, strlen(payload), &job, &why, NULL), PGR_ERR_INVALID);
    assert_int_equal(why, PGR_JOB_MALFORMED);
    free(payload);
    free(file);
}

static void test_release_bad_signature_entries(void **state)
{
    (void)state;
    pgr_release *ok = with_payload(P("{\"all\":true}", M1, "0", "20251106000001"));
    assert_non_null(ok);
    char *text = pgr_release_text(ok);
    char buf[8192];
    const char *entries[] = {"{\"kid\":\"0123456789ABCDEF\",\"sig\":\"" SIG64 "\"}",
                             "{\"kid\":\"xyz\",\"sig\":\"AAAA\"}",
                             "{\"kid\":\"0123456789abcdef\",\"sig\":\"AAAA\"}",
                             "{\"kid\":\"0123456789abcdef\"}", "7"};
    char *cut = strstr(text, "\"signatures\":[");
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        pgr_release *r = NULL;
        snprintf(buf, sizeof(buf), "%.*s\"signatures\":[%s]}", (int)(cut - text), text, entries[i]);
        assert_int_equal(pgr_release_parse(buf, strlen(buf), &r, NULL), PGR_ERR_INVALID);
    }
    free(text);
    pgr_release_free(ok);
}

int main(void)
{
    assert_int_equal(sodium_init() >= 0, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_worked_example_is_byte_exact),
        cmocka_unit_test(test_release_signatures_count_distinct_trusted_keys),
        cmocka_unit_test(test_release_parser_refuses),
        cmocka_unit_test(test_release_bad_signature_entries),
        cmocka_unit_test(test_release_in_job_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
