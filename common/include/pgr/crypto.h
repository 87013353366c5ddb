/*
 * crypto.h - hashing and encodings shared by signing, the audit chain and migration checksums
 * (libsodium underneath): SHA-256, lowercase hex, standard base64 with padding.
 */
#ifndef PGR_CRYPTO_H
#define PGR_CRYPTO_H

#include "pgr/error.h"

#include <stddef.h>
#include <stdint.h>

#define PGR_SHA256_LEN     32
#define PGR_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */

/* Initialises libsodium; safe to call many times. */
pgr_code pgr_crypto_init(pgr_error *err) PGR_MUSTCHECK;

void pgr_crypto_sha256(const void *data, size_t len, uint8_t out[PGR_SHA256_LEN]);
void pgr_crypto_sha256_hex(const void *data, size_t len, char out[PGR_SHA256_HEX_LEN]);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void pgr_crypto_hex_encode(const uint8_t *bin, size_t len, char *out);

/* Decodes exactly 2*len hex digits; PGR_ERR_INVALID otherwise. */
pgr_code pgr_crypto_hex_decode(const char *hex, uint8_t *bin, size_t len) PGR_MUSTCHECK;

/* Standard base64 (RFC 4648 alphabet, '=' padding). Encoded result malloc'd, owned by caller. */
char *pgr_crypto_base64_encode(const uint8_t *bin, size_t len);

/* Decodes standard padded base64 (no whitespace) into bin (capacity cap); sets *out_len.
 * Returns PGR_ERR_INVALID on bad characters, bad padding or overflow of cap. */
pgr_code pgr_crypto_base64_decode(const char *b64, size_t b64_len, uint8_t *bin, size_t cap,
                                  size_t *out_len) PGR_MUSTCHECK;

#endif
