/*
 * uuid.c - UUIDs (uuid.h).
 */
#include "pgr/uuid.h"

#include <ctype.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void pgr_uuid_v4(char out[PGR_UUID_LEN])
{
    uint8_t b[16];
    randombytes_buf(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, PGR_UUID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

bool pgr_uuid_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return n == 36;
}
