/* envelope.c - Ed25519-signed envelopes with domain separation (docs/PROTOCOL.md). */
#include "pgr/envelope.h"
#include "pgr/crypto.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const prefixes[] = {"pgrollout/job/v1", "pgrollout/event/v1",
                                       "pgrollout/audit/v1", "pgrollout/release/v1"};

const char *pgr_envelope_domain_prefix(pgr_domain d)
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

bool pgr_envelope_sign_detached(pgr_domain d, const pgr_keypair *kp, const char *payload,
                                size_t len, uint8_t sig[64])
{
    size_t mlen = 0;
    unsigned char *m = signed_bytes(d, payload, len, &mlen);
    if (m != NULL)
        crypto_sign_detached(sig, NULL, m, mlen, kp->sk);
    free(m);
    return m != NULL;
}

bool pgr_envelope_verify_detached(pgr_domain d, const uint8_t pk[PGR_PK_LEN], const char *payload,
                                  size_t len, const uint8_t sig[64])
{
    size_t mlen = 0;
    unsigned char *m = signed_bytes(d, payload, len, &mlen);
    bool ok = m != NULL && crypto_sign_verify_detached(sig, m, mlen, pk) == 0;
    free(m);
    return ok;
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
    char *p64 = pgr_crypto_base64_encode((const uint8_t *)payload, len);
    char *s64 = pgr_crypto_base64_encode(sig, sizeof(sig));
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

/* The envelope as section 4.1 of docs/PROTOCOL.md fixes it, found by a scanner instead of a
 * JSON parser: a generic parse of the long payload string cost five times the signature check.
 * Exactly {"v":1,"kid":"<16 lowercase hex>","payload":"<...>","sig":"<...>"}, nothing before or
 * after, no whitespace, members in this order, no escapes. The payload and sig strings end at
 * the next quote; their characters are checked by the strict base64 decoder. */
typedef struct envelope_fields {
    const char *kid, *p64, *s64;
    size_t p64_len, s64_len;
} envelope_fields;

/* Consumes the literal lit at *p; false when the bytes differ or the buffer ends. */
static bool scan_literal(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

/* A string body up to (not including) the next quote; *p ends after the quote. */
static bool scan_string(const char **p, const char *end, const char **s, size_t *n)
{
    const char *q = memchr(*p, '"', (size_t)(end - *p));
    if (q == NULL)
        return false;
    *s = *p;
    *n = (size_t)(q - *p);
    *p = q + 1;
    return true;
}

static bool kid_valid(const char *kid, size_t n)
{
    if (n != PGR_KID_LEN - 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((kid[i] >= '0' && kid[i] <= '9') || (kid[i] >= 'a' && kid[i] <= 'f')))
            return false;
    }
    return true;
}

static bool envelope_scan(const char *buf, size_t len, envelope_fields *f)
{
    const char *p = buf, *end = buf + len;
    size_t kid_len = 0;
    return scan_literal(&p, end, "{\"v\":1,\"kid\":\"") &&
           scan_string(&p, end, &f->kid, &kid_len) && kid_valid(f->kid, kid_len) &&
           scan_literal(&p, end, ",\"payload\":\"") && scan_string(&p, end, &f->p64, &f->p64_len) &&
           scan_literal(&p, end, ",\"sig\":\"") && scan_string(&p, end, &f->s64, &f->s64_len) &&
           scan_literal(&p, end, "}") && p == end;
}

/* Decodes the payload into a buffer that already holds domain || 0x00 in front of it, so the
 * signed message needs no second copy; the payload is moved to the front once verified. */
static pgr_code verify_payload(pgr_domain d, const pgr_pubkey *key, const envelope_fields *f,
                               uint8_t **out, size_t *out_len, pgr_envelope_reject *reason,
                               pgr_error *err)
{
    uint8_t sig[crypto_sign_BYTES + 3];
    size_t slen = 0, plen = 0, pl = strlen(prefixes[d]);
    size_t cap = f->p64_len / 4 * 3 + 1;
    uint8_t *m = malloc(pl + 1 + cap + 1);
    if (m == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    memcpy(m, prefixes[d], pl);
    m[pl] = 0;
    pgr_code rc = PGR_OK;
    if (pgr_crypto_base64_decode(f->p64, f->p64_len, m + pl + 1, cap, &plen) != PGR_OK)
        rc = reject(reason, PGR_REJECT_MALFORMED, err, "payload is not base64");
    else if (pgr_crypto_base64_decode(f->s64, f->s64_len, sig, sizeof(sig), &slen) != PGR_OK ||
             slen != crypto_sign_BYTES)
        rc = reject(reason, PGR_REJECT_MALFORMED, err, "signature is not 64 bytes of base64");
    else if (crypto_sign_verify_detached(sig, m, pl + 1 + plen, key->pk) != 0)
        rc = reject(reason, PGR_REJECT_BAD_SIGNATURE, err, "signature does not verify");
    if (rc != PGR_OK) {
        free(m);
        return rc;
    }
    memmove(m, m + pl + 1, plen);
    m[plen] = '\0';
    *out = m;
    *out_len = plen;
    return PGR_OK;
}

pgr_code pgr_envelope_open(const char *buf, size_t len, size_t max_len, pgr_domain d,
                           const pgr_keyring *kr, char **payload, size_t *payload_len,
                           const pgr_keyring_entry **entry, char kid_out[PGR_KID_LEN],
                           pgr_envelope_reject *reason, pgr_error *err)
{
    envelope_fields f;
    char kid[PGR_KID_LEN];
    uint8_t *bytes = NULL;
    size_t plen = 0;

    *reason = PGR_REJECT_NONE;
    kid_out[0] = '\0';
    if (len > max_len)
        return reject(reason, PGR_REJECT_OVERSIZED, err, "message is larger than the limit");
    if (!envelope_scan(buf, len, &f))
        return reject(reason, PGR_REJECT_MALFORMED, err, "not a pgrollout envelope");
    memcpy(kid, f.kid, PGR_KID_LEN - 1);
    kid[PGR_KID_LEN - 1] = '\0';
    memcpy(kid_out, kid, PGR_KID_LEN);
    const pgr_keyring_entry *e = pgr_keyring_find(kr, kid);
    if (e == NULL)
        return reject(reason, PGR_REJECT_UNKNOWN_KEY, err, "key is not in the keyring");
    if (e->revoked)
        return reject(reason, PGR_REJECT_REVOKED_KEY, err, "key is revoked");
    pgr_code rc = verify_payload(d, &e->key, &f, &bytes, &plen, reason, err);
    if (rc != PGR_OK)
        return rc;
    *payload = (char *)bytes;
    *payload_len = plen;
    if (entry != NULL)
        *entry = e;
    return PGR_OK;
}
