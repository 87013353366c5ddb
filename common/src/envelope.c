/* envelope.c - Ed25519-signed envelopes with domain separation (docs/PROTOCOL.md). */
#include "pgr/envelope.h"
#include "pgr/crypto.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const prefixes[] = {"pgrollout/job/v1", "pgrollout/event/v1",
                                       "pgrollout/audit/v1"};

const char *pgr_domain_prefix(pgr_domain d)
{
    return prefixes[d];
}

const char *pgr_envelope_reject_name(pgr_envelope_reject r)
{
    static const char *const names[] = {"none",        "malformed",   "oversized",
                                        "unknown_key", "revoked_key", "bad_signature"};
    return names[r];
}

/* The signed message: prefix, one zero byte, payload. */
static unsigned char *signed_bytes(pgr_domain d, const char *payload, size_t len, size_t *out_len)
{
    size_t pl = strlen(prefixes[d]);
    unsigned char *m = malloc(pl + 1 + len);
    if (m == NULL)
        return NULL;
    memcpy(m, prefixes[d], pl);
    m[pl] = 0;
    memcpy(m + pl + 1, payload, len);
    *out_len = pl + 1 + len;
    return m;
}

char *pgr_envelope_seal(pgr_domain d, const pgr_keypair *kp, const char *payload, size_t len)
{
    uint8_t sig[crypto_sign_BYTES];
    size_t mlen = 0;
    unsigned char *m = signed_bytes(d, payload, len, &mlen);
    if (m == NULL)
        return NULL;
    crypto_sign_detached(sig, NULL, m, mlen, kp->sk);
    free(m);
    char *p64 = pgr_base64_encode((const uint8_t *)payload, len);
    char *s64 = pgr_base64_encode(sig, sizeof(sig));
    char *out = NULL;
    if (p64 != NULL && s64 != NULL) {
        size_t n = strlen(p64) + strlen(s64) + 64;
        out = malloc(n);
        if (out != NULL)
            snprintf(out, n, "{\"v\":1,\"kid\":\"%s\",\"payload\":\"%s\",\"sig\":\"%s\"}", kp->kid,
                     p64, s64);
    }
    free(p64);
    free(s64);
    return out;
}

static pgr_code reject(pgr_envelope_reject *reason, pgr_envelope_reject r, pgr_error *err,
                       const char *msg)
{
    *reason = r;
    return pgr_error_set(err, PGR_ERR_CRYPTO, "envelope rejected (%s): %s",
                         pgr_envelope_reject_name(r), msg);
}

/* Strict shape: an object with exactly v=1, kid (16 lowercase hex), payload, sig strings. */
static bool envelope_fields(json_t *doc, const char **kid, const char **p64, const char **s64)
{
    json_t *v = json_object_get(doc, "v");
    *kid = json_string_value(json_object_get(doc, "kid"));
    *p64 = json_string_value(json_object_get(doc, "payload"));
    *s64 = json_string_value(json_object_get(doc, "sig"));
    if (!json_is_object(doc) || json_object_size(doc) != 4 || !json_is_integer(v) ||
        json_integer_value(v) != 1 || *kid == NULL || *p64 == NULL || *s64 == NULL ||
        strlen(*kid) != 16)
        return false;
    for (const char *p = *kid; *p != '\0'; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

static pgr_code verify_sig(pgr_domain d, const pgr_pubkey *key, const char *s64,
                           const uint8_t *payload, size_t plen, pgr_envelope_reject *reason,
                           pgr_error *err)
{
    uint8_t sig[crypto_sign_BYTES + 3];
    size_t slen = 0, mlen = 0;
    if (pgr_base64_decode(s64, strlen(s64), sig, sizeof(sig), &slen) != PGR_OK ||
        slen != crypto_sign_BYTES)
        return reject(reason, PGR_REJECT_MALFORMED, err, "signature is not 64 bytes of base64");
    unsigned char *m = signed_bytes(d, (const char *)payload, plen, &mlen);
    if (m == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    int bad = crypto_sign_verify_detached(sig, m, mlen, key->pk);
    free(m);
    if (bad != 0)
        return reject(reason, PGR_REJECT_BAD_SIGNATURE, err, "signature does not verify");
    return PGR_OK;
}

pgr_code pgr_envelope_open(const char *buf, size_t len, size_t max_len, pgr_domain d,
                           const pgr_keyring *kr, char **payload, size_t *payload_len,
                           const pgr_keyring_entry **entry, char kid_out[PGR_KID_LEN],
                           pgr_envelope_reject *reason, pgr_error *err)
{
    const char *kid, *p64, *s64;
    json_error_t je;

    *reason = PGR_REJECT_NONE;
    kid_out[0] = '\0';
    if (len > max_len)
        return reject(reason, PGR_REJECT_OVERSIZED, err, "message is larger than the limit");
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL || !envelope_fields(doc, &kid, &p64, &s64)) {
        json_decref(doc);
        return reject(reason, PGR_REJECT_MALFORMED, err, "not a pgrollout envelope");
    }
    snprintf(kid_out, PGR_KID_LEN, "%s", kid);
    const pgr_keyring_entry *e = pgr_keyring_find(kr, kid);
    pgr_code rc = PGR_OK;
    if (e == NULL)
        rc = reject(reason, PGR_REJECT_UNKNOWN_KEY, err, "key is not in the keyring");
    else if (e->revoked)
        rc = reject(reason, PGR_REJECT_REVOKED_KEY, err, "key is revoked");
    size_t cap = strlen(p64) / 4 * 3 + 1, plen = 0;
    uint8_t *bytes = rc == PGR_OK ? malloc(cap + 1) : NULL;
    if (rc == PGR_OK && bytes == NULL)
        rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    if (rc == PGR_OK && pgr_base64_decode(p64, strlen(p64), bytes, cap, &plen) != PGR_OK)
        rc = reject(reason, PGR_REJECT_MALFORMED, err, "payload is not base64");
    if (rc == PGR_OK)
        rc = verify_sig(d, &e->key, s64, bytes, plen, reason, err);
    json_decref(doc);
    if (rc != PGR_OK) {
        free(bytes);
        return rc;
    }
    bytes[plen] = '\0';
    *payload = (char *)bytes;
    *payload_len = plen;
    if (entry != NULL)
        *entry = e;
    return PGR_OK;
}
