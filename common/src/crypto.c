/* crypto.c - SHA-256, hex and base64 on top of libsodium. */
#include "pgr/crypto.h"

#include <sodium.h>
#include <stdlib.h>

pgr_code pgr_crypto_init(pgr_error *err)
{
    if (sodium_init() < 0)
        return pgr_error_set(err, PGR_ERR_CRYPTO, "could not initialise libsodium");
    return PGR_OK;
}

void pgr_sha256(const void *data, size_t len, uint8_t out[PGR_SHA256_LEN])
{
    crypto_hash_sha256(out, (const unsigned char *)data, len);
}

void pgr_sha256_hex(const void *data, size_t len, char out[PGR_SHA256_HEX_LEN])
{
    uint8_t d[PGR_SHA256_LEN];
    pgr_sha256(data, len, d);
    pgr_hex_encode(d, sizeof(d), out);
}

void pgr_hex_encode(const uint8_t *bin, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 0xf];
    }
    out[2 * len] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

pgr_code pgr_hex_decode(const char *hex, uint8_t *bin, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi = hex_value(hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return PGR_ERR_INVALID;
        bin[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[2 * len] == '\0' ? PGR_OK : PGR_ERR_INVALID;
}

char *pgr_base64_encode(const uint8_t *bin, size_t len)
{
    size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(n);
    if (out == NULL)
        return NULL;
    sodium_bin2base64(out, n, bin, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

pgr_code pgr_base64_decode(const char *b64, size_t b64_len, uint8_t *bin, size_t cap,
                           size_t *out_len)
{
    const char *end = NULL;
    size_t n = 0;

    /* Canonical form only: length a multiple of 4, no whitespace, nothing after padding. */
    if (b64_len % 4 != 0)
        return PGR_ERR_INVALID;
    if (sodium_base642bin(bin, cap, b64, b64_len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) !=
        0)
        return PGR_ERR_INVALID;
    if (end != b64 + b64_len)
        return PGR_ERR_INVALID;
    *out_len = n;
    return PGR_OK;
}
