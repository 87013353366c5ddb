/* test_envelope.c - signed envelopes, keyrings and job payloads: round trips, every rejection,
 * the worked example of docs/PROTOCOL.md byte for byte, and an independent verification of
 * that example by OpenSSL's Ed25519. */
#include "pgr_test.h"

#include "pgr/crypto.h"
#include "pgr/envelope.h"
#include "pgr/job.h"
#include "pgr/file.h"

#include <sodium.h>

#define FIX PGR_SOURCE_DIR "/tests/fixtures/protocol/"

/* The fixed test key of PROTOCOL.md: seed = bytes 0x00, 0x01, ..., 0x1f. */
static void example_key(pgr_keypair *kp)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
    pgr_keys_kid(kp->pk, kp->kid);
}

static pgr_keyring *ring_of(const pgr_keypair *kp, const char *extra)
{
    char line[512];
    pgr_keyring *kr = NULL;
    pgr_keys_format_public(kp->pk, line, 200);
    strncat(line, extra, sizeof(line) - strlen(line) - 1);
    assert_int_equal(pgr_keyring_parse(line, strlen(line), "ring", &kr, NULL), PGR_OK);
    return kr;
}

static char *read_fix(const char *name, size_t *len)
{
    char *buf = NULL;
    assert_int_equal(pgr_file_read(name, 1 << 20, &buf, len, NULL), PGR_OK);
    return buf;
}

static void test_envelope_worked_example_is_byte_exact(void **state)
{
    pgr_keypair kp;
    size_t plen = 0, elen = 0;
    (void)state;
    example_key(&kp);
    char *payload = read_fix(FIX "job_payload.json", &plen);
    char *expected = read_fix(FIX "job_envelope.json", &elen);
    char *env = pgr_envelope_seal(PGR_DOMAIN_JOB, &kp, payload, plen);
    assert_non_null(env);
    /* the fixture file ends with a newline; the envelope itself does not */
    assert_int_equal(strlen(env) + 1, elen);
    assert_memory_equal(env, expected, strlen(env));
    free(env);
    free(payload);
    free(expected);
}

static void test_envelope_example_verifies_with_openssl(void **state)
{
    char cmd[1024], out[4096];
    (void)state;
    /* docs/PROTOCOL.md: anyone with a standard Ed25519 implementation can verify */
    snprintf(cmd, sizeof(cmd), "sh %s/tests/unit/verify_example_openssl.sh %s 2>&1", PGR_SOURCE_DIR,
             FIX);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    if (st != 0)
        fail_msg("openssl verification failed: %s", out);
    assert_non_null(strstr(out, "Signature Verified Successfully"));
}

static const char heartbeat_msg[] = "{\"type\":\"heartbeat\"}";

/* A fresh key, a keyring trusting it, and a heartbeat sealed with it (caller frees both). */
static char *sealed_heartbeat(pgr_keypair *kp, pgr_keyring **kr)
{
    crypto_sign_keypair(kp->pk, kp->sk);
    pgr_keys_kid(kp->pk, kp->kid);
    *kr = ring_of(kp, "");
    return pgr_envelope_seal(PGR_DOMAIN_EVENT, kp, heartbeat_msg, strlen(heartbeat_msg));
}

static void test_envelope_round_trip_and_rejections(void **state)
{
    pgr_keypair kp, other;
    char kid[PGR_KID_LEN], *payload = NULL;
    size_t plen = 0;
    pgr_envelope_reject why;
    const pgr_keyring_entry *e = NULL;
    pgr_error err;
    (void)state;
    crypto_sign_keypair(other.pk, other.sk);
    pgr_keys_kid(other.pk, other.kid);
    pgr_keyring *kr = NULL;
    char *env = sealed_heartbeat(&kp, &kr);
    assert_int_equal(pgr_envelope_open(env, strlen(env), 1 << 20, PGR_DOMAIN_EVENT, kr, &payload,
                                       &plen, &e, kid, &why, &err),
                     PGR_OK);
    assert_string_equal(payload, heartbeat_msg);
    assert_string_equal(kid, kp.kid);
    free(payload);
    /* the same bytes under another domain do not verify (no cross-protocol replay) */
    assert_int_equal(pgr_envelope_open(env, strlen(env), 1 << 20, PGR_DOMAIN_JOB, kr, &payload,
                                       &plen, &e, kid, &why, &err),
                     PGR_ERR_CRYPTO);
    assert_int_equal(why, PGR_REJECT_BAD_SIGNATURE);
    /* oversized */
    assert_int_equal(pgr_envelope_open(env, strlen(env), 10, PGR_DOMAIN_EVENT, kr, &payload, &plen,
                                       &e, kid, &why, &err),
                     PGR_ERR_CRYPTO);
    assert_int_equal(why, PGR_REJECT_OVERSIZED);
    /* tampered payload byte */
    char *t = strdup(env);
    char *p64 = strstr(t, "\"payload\":\"") + 11;
    p64[3] = p64[3] == 'A' ? 'B' : 'A';
    assert_int_equal(pgr_envelope_open(t, strlen(t), 1 << 20, PGR_DOMAIN_EVENT, kr, &payload, &plen,
                                       &e, kid, &why, &err),
                     PGR_ERR_CRYPTO);
    assert_int_equal(why, PGR_REJECT_BAD_SIGNATURE);
    free(t);
    /* untrusted key */
    char *env2 = pgr_envelope_seal(PGR_DOMAIN_EVENT, &other, heartbeat_msg, strlen(heartbeat_msg));
    assert_int_equal(pgr_envelope_open(env2, strlen(env2), 1 << 20, PGR_DOMAIN_EVENT, kr, &payload,
                                       &plen, &e, kid, &why, &err),
                     PGR_ERR_CRYPTO);
    assert_int_equal(why, PGR_REJECT_UNKNOWN_KEY);
    assert_string_equal(kid, other.kid);
    /* revoked key */
    pgr_keyring *rev = ring_of(&kp, " revoked");
    assert_int_equal(pgr_envelope_open(env, strlen(env), 1 << 20, PGR_DOMAIN_EVENT, rev, &payload,
                                       &plen, &e, kid, &why, &err),
                     PGR_ERR_CRYPTO);
    assert_int_equal(why, PGR_REJECT_REVOKED_KEY);
    /* garbage and near-envelopes */
    const char *bad[] = {"",
                         "garbage\x01\xff",
                         "[]",
                         "{\"v\":2,\"kid\":\"0011223344556677\","
                         "\"payload\":\"\",\"sig\":\"\"}",
                         "{\"v\":1,\"kid\":\"0011223344556677\",\"payload\":\"\",\"sig\":\"\","
                         "\"x\":1}",
                         "{\"v\":1,\"v\":1,\"kid\":\"0011223344556677\",\"payload\":\"\"}",
                         NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        assert_int_equal(pgr_envelope_open(bad[i], strlen(bad[i]), 1 << 20, PGR_DOMAIN_EVENT, kr,
                                           &payload, &plen, &e, kid, &why, &err),
                         PGR_ERR_CRYPTO);
        assert_int_equal(why, PGR_REJECT_MALFORMED);
    }
    free(env);
    free(env2);
    pgr_keyring_free(kr);
    pgr_keyring_free(rev);
}

/* Envelope text with the part between the first occurrence of from and its end replaced. */
static char *env_edit(const char *env, const char *from, const char *to)
{
    const char *at = strstr(env, from);
    assert_non_null(at);
    size_t n = strlen(env) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - env), env, to, at + strlen(from));
    return out;
}

/* Receivers accept the exact form of PROTOCOL.md 4.1 only: the scanner refuses every other
 * JSON spelling of the same envelope as malformed, before looking at the key. */
static void test_envelope_scanner_rejects_other_shapes(void **state)
{
    pgr_keypair kp;
    char kid[PGR_KID_LEN], *payload = NULL, pfx[64], swapped[64];
    size_t plen = 0;
    pgr_envelope_reject why;
    pgr_error err;
    (void)state;
    pgr_keyring *kr = NULL;
    char *env = sealed_heartbeat(&kp, &kr);
    assert_int_equal(pgr_envelope_open(env, strlen(env), 1 << 20, PGR_DOMAIN_EVENT, kr, &payload,
                                       &plen, NULL, kid, &why, &err),
                     PGR_OK);
    free(payload);
    snprintf(pfx, sizeof(pfx), "{\"v\":1,\"kid\":\"%s\"", kp.kid);
    snprintf(swapped, sizeof(swapped), "{\"kid\":\"%s\",\"v\":1", kp.kid);
    char upper[64];
    snprintf(upper, sizeof(upper), "\"kid\":\"%c%s\"", kp.kid[0] >= 'a' ? kp.kid[0] - 32 : 'A',
             kp.kid + 1);
    char kidq[64];
    snprintf(kidq, sizeof(kidq), "\"kid\":\"%s\"", kp.kid);
    const char *edits[][2] = {
        {"{\"v\":1,", "{ \"v\":1,"},                 /* whitespace */
        {"\"sig\":", "\"sig\" :"},                   /* whitespace before a colon */
        {pfx, swapped},                              /* members in another order */
        {"{\"v\":1,", "{\"v\":1,\"v\":1,"},          /* duplicate member */
        {"\"sig\":", "\"payload\":\"\",\"sig\":"},   /* duplicate payload */
        {"{\"v\":1,", "{\"v\":1.0,"},                /* v as a real */
        {"{\"v\":1,", "{\"v\":01,"},                 /* v with a leading zero */
        {kidq, upper},                               /* upper-case kid */
        {kidq, "\"kid\":\"0011\""},                  /* short kid */
        {"\"payload\":\"", "\"payload\":\"\\u0065"}, /* an escape in the payload */
        {"\"}", "\",\"x\":1}"},                      /* a fifth member */
        {"\"}", "\""},                               /* no closing brace */
        {"\"}", "\"}\n"},                            /* trailing newline */
        {"\"}", "\"} "},                             /* trailing space */
        {"\"}", "\"}{}"},                            /* trailing object */
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        char *bad = env_edit(env, edits[i][0], edits[i][1]);
        assert_int_equal(pgr_envelope_open(bad, strlen(bad), 1 << 20, PGR_DOMAIN_EVENT, kr,
                                           &payload, &plen, NULL, kid, &why, &err),
                         PGR_ERR_CRYPTO);
        if (why != PGR_REJECT_MALFORMED)
            fail_msg("edit %zu (%s) gave %s", i, edits[i][1], pgr_envelope_reject_name(why));
        free(bad);
    }
    /* a NUL byte inside the payload string, and a truncated envelope */
    char *nul = strdup(env);
    size_t len = strlen(nul);
    strstr(nul, "\"payload\":\"")[12] = '\0';
    assert_int_equal(pgr_envelope_open(nul, len, 1 << 20, PGR_DOMAIN_EVENT, kr, &payload, &plen,
                                       NULL, kid, &why, &err),
                     PGR_ERR_CRYPTO);
    assert_int_equal(why, PGR_REJECT_MALFORMED);
    assert_int_equal(pgr_envelope_open(env, len - 1, 1 << 20, PGR_DOMAIN_EVENT, kr, &payload, &plen,
                                       NULL, kid, &why, &err),
                     PGR_ERR_CRYPTO);
    assert_int_equal(why, PGR_REJECT_MALFORMED);
    free(nul);
    free(env);
    pgr_keyring_free(kr);
}

static void test_envelope_keyring_options_and_errors(void **state)
{
    pgr_keypair a, b;
    char la[200], lb[200], text[1024];
    pgr_keyring *kr = NULL;
    pgr_error err;
    (void)state;
    crypto_sign_keypair(a.pk, a.sk);
    crypto_sign_keypair(b.pk, b.sk);
    pgr_keys_format_public(a.pk, la, sizeof(la));
    pgr_keys_format_public(b.pk, lb, sizeof(lb));
    snprintf(text, sizeof(text), "# coordinator keys\n%s name=current\n\n%s revoked # old\n", la,
             lb);
    assert_int_equal(pgr_keyring_parse(text, strlen(text), "kr", &kr, &err), PGR_OK);
    assert_int_equal(kr->count, 2);
    assert_false(kr->items[0].revoked);
    assert_string_equal(kr->items[0].name, "current");
    assert_true(kr->items[1].revoked);
    pgr_keyring_free(kr);
    snprintf(text, sizeof(text), "%s tenants=district-001,district-002\n", la);
    assert_int_equal(pgr_keyring_parse(text, strlen(text), "kr", &kr, &err), PGR_OK);
    assert_true(pgr_keyring_allows_tenant(&kr->items[0], "district-002"));
    assert_false(pgr_keyring_allows_tenant(&kr->items[0], "district-00"));
    assert_false(pgr_keyring_allows_tenant(&kr->items[0], "district-003"));
    pgr_keyring_free(kr);
    /* a prefix: every id that starts with it and goes on, nothing else */
    snprintf(text, sizeof(text), "%s tenants=district-*,school-7\n", la);
    assert_int_equal(pgr_keyring_parse(text, strlen(text), "p.ring", &kr, &err), PGR_OK);
    assert_true(pgr_keyring_allows_tenant(&kr->items[0], "district-003"));
    assert_true(pgr_keyring_allows_tenant(&kr->items[0], "school-7"));
    assert_false(pgr_keyring_allows_tenant(&kr->items[0], "district-"));
    assert_false(pgr_keyring_allows_tenant(&kr->items[0], "district"));
    assert_false(pgr_keyring_allows_tenant(&kr->items[0], "school-77"));
    assert_false(pgr_keyring_allows_tenant(&kr->items[0], "x-district-1"));
    pgr_keyring_free(kr);
    snprintf(text, sizeof(text), "%s\n%s\n", la, la);
    assert_int_equal(pgr_keyring_parse(text, strlen(text), "kr", &kr, &err), PGR_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "kr:2: key"));
    snprintf(text, sizeof(text), "%s\n%s sometimes\n", la, lb);
    assert_int_equal(pgr_keyring_parse(text, strlen(text), "kr", &kr, &err), PGR_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "kr:2: unexpected \"sometimes\""));
    assert_int_equal(pgr_keyring_parse("ed25519 AAAA 00\n", 16, "kr", &kr, &err), PGR_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "kr:1"));
}

static pgr_job *parse_job_text(const char *text, pgr_job_reject *why, pgr_error *err)
{
    pgr_job *job = NULL;
    if (pgr_job_parse(text, strlen(text), &job, why, err) != PGR_OK)
        return NULL;
    return job;
}

static void test_envelope_job_payload_parse_and_build(void **state)
{
    size_t len = 0;
    pgr_job_reject why;
    pgr_error err;
    (void)state;
    char *text = read_fix(FIX "job_payload.json", &len);
    pgr_job *job = parse_job_text(text, &why, &err);
    assert_non_null(job);
    assert_string_equal(job->type, "apply");
    assert_string_equal(job->tenant_id, "district-001");
    assert_int_equal(job->seq, 1);
    assert_int_equal(job->expires_at - job->issued_at, 3600);
    assert_int_equal(job->issued_at, 1762430400); /* 2025-11-06T12:00:00Z */
    assert_int_equal(job->options.lock_timeout_ms, 5000);
    assert_string_equal(job->options.orphans, "abort");
    assert_int_equal(job->migrations->count, 1);
    /* building the same job gives the same bytes */
    char *again = pgr_job_build(job, job->migrations);
    assert_string_equal(again, text);
    free(again);
    /* verify_in_job: absent means false and is not written; set, it follows `backup` and
     * parses back */
    assert_false(job->options.verify_in_job);
    job->options.verify_in_job = true;
    again = pgr_job_build(job, job->migrations);
    assert_non_null(strstr(again, "\"backup\":false,\"verify_in_job\":true}"));
    pgr_job *back = parse_job_text(again, &why, &err);
    assert_non_null(back);
    assert_true(back->options.verify_in_job);
    pgr_job_free(back);
    free(again);
    pgr_job_free(job);
    /* a migration text that does not hash to its checksum */
    char *t = strdup(text);
    char *sel = strstr(t, "SELECT 1;");
    sel[7] = '7';
    assert_null(parse_job_text(t, &why, &err));
    assert_int_equal(why, PGR_JOB_CHECKSUM_MISMATCH);
    free(t);
    /* malformed fields */
    const char *from[] = {"\"seq\":1", "\"job_id\":\"6f1c",     "2025-11-06T13:00:00Z",
                          "\"apply\"", "\"orphans\":\"abort\"", "\"backup\":false"};
    const char *to[] = {
        "\"seq\":0", "\"job_id\":\"XX1c",      "2025-11-06 13:00:00",
        "\"drop\"",  "\"orphans\":\"delete\"", "\"backup\":false,\"verify_in_job\":1"};
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        t = strdup(text);
        char *p = strstr(t, from[i]);
        assert_non_null(p);
        char buf[4096];
        snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - t), t, to[i], p + strlen(from[i]));
        assert_null(parse_job_text(buf, &why, &err));
        assert_int_equal(why, PGR_JOB_MALFORMED);
        free(t);
    }
    assert_null(parse_job_text("{\"type\":", &why, &err));
    assert_null(parse_job_text("[1,2]", &why, &err));
    free(text);
}

static void test_envelope_time_and_uuid(void **state)
{
    time_t t = 0;
    char buf[32];
    (void)state;
    assert_int_equal(pgr_clock_parse_utc("1970-01-01T00:00:00Z", &t), PGR_OK);
    assert_int_equal(t, 0);
    assert_int_equal(pgr_clock_parse_utc("2024-02-29T23:59:59Z", &t), PGR_OK);
    pgr_clock_format_utc(t, buf);
    assert_string_equal(buf, "2024-02-29T23:59:59Z");
    assert_int_equal(pgr_clock_parse_utc("2024-02-29T23:59:59+01:00", &t), PGR_ERR_INVALID);
    assert_int_equal(pgr_clock_parse_utc("2024-13-01T00:00:00Z", &t), PGR_ERR_INVALID);
    assert_int_equal(pgr_clock_parse_utc("2025-02-29T00:00:00Z", &t), PGR_ERR_INVALID);
    assert_int_equal(pgr_clock_parse_utc("2025- 1-06T00:00:00Z", &t), PGR_ERR_INVALID);
    assert_int_equal(pgr_clock_parse_utc("2025-01-06T-1:00:00Z", &t), PGR_ERR_INVALID);
    assert_int_equal(pgr_clock_parse_utc("2025-01-06T00:00:60Z", &t), PGR_ERR_INVALID);
    assert_true(pgr_uuid_valid("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"));
    assert_false(pgr_uuid_valid("6F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F"));
    assert_false(pgr_uuid_valid("6f1c2d3e4b5a4c6d8e7f0a1b2c3d4e5f"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_worked_example_is_byte_exact),
        cmocka_unit_test(test_envelope_example_verifies_with_openssl),
        cmocka_unit_test(test_envelope_round_trip_and_rejections),
        cmocka_unit_test(test_envelope_scanner_rejects_other_shapes),
        cmocka_unit_test(test_envelope_keyring_options_and_errors),
        cmocka_unit_test(test_envelope_job_payload_parse_and_build),
        cmocka_unit_test(test_envelope_time_and_uuid),
    };
    if (pgr_crypto_init(NULL) != PGR_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
