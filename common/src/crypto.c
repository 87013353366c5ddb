/* crypto.c - SHA-256, hex and base64 on top of libsodium. */
#include "pgr/crypto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

pgr_code pgr_crypto_init(pgr_error *err)
{
    if (sodium_init() < 0)
        return pgr_error_set(err, PGR_ERR_CRYPTO, "could not initialise libsodium");
    return PGR_OK;
}

void pgr_crypto_sha256(const void *data, size_t len, uint8_t out[PGR_SHA256_LEN])
{
    crypto_hash_sha256(out, (const unsigned char *)data, len);
}

void pgr_crypto_sha256_hex(const void *data, size_t len, char out[PGR_SHA256_HEX_LEN])
{
    uint8_t d[PGR_SHA256_LEN];
    pgr_crypto_sha256(data, len, d);
    pgr_crypto_hex_encode(d, sizeof(d), out);
}

void pgr_crypto_hex_encode(const uint8_t *bin, size_t len, char *out)
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

pgr_code pgr_crypto_hex_decode(const char *hex, uint8_t *bin, size_t len)
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

/* Base64 by table, four characters per step: libsodium's constant-time codec went bit by bit
 * and cost more than the signature on a 20 KB job. Base64 here carries public data (payloads,
 * signatures, public keys); secret key files still decode here, which leaks their length at
 * most, as sodium's did. */
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *pgr_crypto_base64_encode(const uint8_t *bin, size_t len)
{
    size_t n = (len + 2) / 3 * 4;
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)bin[i] << 16 | (uint32_t)bin[i + 1] << 8 | bin[i + 2];
        o[0] = b64_alphabet[v >> 18];
        o[1] = b64_alphabet[(v >> 12) & 63];
        o[2] = b64_alphabet[(v >> 6) & 63];
        o[3] = b64_alphabet[v & 63];
        o += 4;
    }
    if (i < len) {
        uint32_t v = (uint32_t)bin[i] << 16 | (i + 1 < len ? (uint32_t)bin[i + 1] << 8 : 0);
        o[0] = b64_alphabet[v >> 18];
        o[1] = b64_alphabet[(v >> 12) & 63];
        o[2] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    *o = '\0';
    return out;
}

/* 0-63 for alphabet characters, 0x80 for everything else ('=' included). */
static const uint8_t b64_table[256] = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x3e, 0x80, 0x80, 0x80, 0x3f,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};

static uint8_t b64_value(unsigned char c)
{
    return b64_table[c];
}

/* The last group of four: "xxxx", "xxx=" or "xx==" with the unused bits zero. */
static pgr_code b64_last(const unsigned char *q, uint8_t *bin, size_t cap, size_t *n)
{
    int pad = q[3] != '=' ? 0 : q[2] != '=' ? 1 : 2;
    uint8_t d[4] = {b64_value(q[0]), b64_value(q[1]), pad == 2 ? 0 : b64_value(q[2]),
                    pad >= 1 ? 0 : b64_value(q[3])};
    if ((d[0] | d[1] | d[2] | d[3]) & 0x80)
        return PGR_ERR_INVALID;
    if ((pad == 1 && (d[2] & 3) != 0) || (pad == 2 && (d[1] & 15) != 0))
        return PGR_ERR_INVALID;
    uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 | d[3];
    size_t k = (size_t)(3 - pad);
    if (cap - *n < k)
        return PGR_ERR_INVALID;
    uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    memcpy(bin + *n, b, k);
    *n += k;
    return PGR_OK;
}

pgr_code pgr_crypto_base64_decode(const char *b64, size_t b64_len, uint8_t *bin, size_t cap,
                                  size_t *out_len)
{
    const unsigned char *q = (const unsigned char *)b64;
    size_t n = 0;

    /* Canonical form only: length a multiple of 4, no whitespace, nothing after padding. */
    if (b64_len % 4 != 0)
        return PGR_ERR_INVALID;
    if (b64_len == 0) {
        *out_len = 0;
        return PGR_OK;
    }
    size_t groups = b64_len / 4 - 1;
    if (groups > cap / 3)
        return PGR_ERR_INVALID;
    for (size_t g = 0; g < groups; g++, q += 4) {
        uint8_t a = b64_value(q[0]), b = b64_value(q[1]), c = b64_value(q[2]), d = b64_value(q[3]);
        if ((a | b | c | d) & 0x80)
            return PGR_ERR_INVALID;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        bin[n] = (uint8_t)(v >> 16);
        bin[n + 1] = (uint8_t)(v >> 8);
        bin[n + 2] = (uint8_t)v;
        n += 3;
    }
    if (b64_last(q, bin, cap, &n) != PGR_OK)
        return PGR_ERR_INVALID;
    *out_len = n;
    return PGR_OK;
}
