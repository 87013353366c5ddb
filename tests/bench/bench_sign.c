/* bench_sign.c - signing and verifying envelopes against libsodium's raw crypto_sign_detached /
 * crypto_sign_verify_detached on the same bytes (a 20 KB job payload). Alternates the two in
 * short blocks (which goes first alternates too), many rounds, and prints the median times and
 * the median of the per-round ratios (pgrollout / raw; a paired figure that a machine shared
 * with other work disturbs least) as one tab-separated line each:
 *   case  pgrollout_us  baseline_us  ratio */
#include "pgr/crypto.h"
#include "pgr/envelope.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 31

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), dcmp);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    pgr_keypair kp;
    char line[200];
    pgr_keyring *kr = NULL;
    if (pgr_crypto_init(NULL) != PGR_OK)
        return 1;
    crypto_sign_keypair(kp.pk, kp.sk);
    pgr_keys_kid(kp.pk, kp.kid);
    pgr_keys_format_public(kp.pk, line, sizeof(line));
    if (pgr_keyring_parse(line, strlen(line), "bench", &kr, NULL) != PGR_OK)
        return 1;
    size_t plen = 20000;
    char *payload = malloc(plen + 1);
    for (size_t i = 0; i < plen; i++)
        payload[i] = (char)('a' + i % 26);
    payload[plen] = '\0';
    unsigned char *msg = malloc(plen + 32);
    memcpy(msg, "pgrollout/job/v1", 16);
    msg[16] = 0;
    memcpy(msg + 17, payload, plen);
    unsigned char sig[64];
    double s_ours[ROUNDS], s_raw[ROUNDS], v_ours[ROUNDS], v_raw[ROUNDS];
    char *env = pgr_envelope_seal(PGR_DOMAIN_JOB, &kp, payload, plen);
    crypto_sign_detached(sig, NULL, msg, plen + 17, kp.sk);
    double s_ratio[ROUNDS], v_ratio[ROUNDS];
    iters = iters / 10 > 0 ? iters / 10 : 1; /* short blocks, many rounds */
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 2; k++) {
            bool raw = (k + r) % 2 == 0;
            double t0 = now_us();
            for (int i = 0; i < iters; i++) {
                if (raw)
                    crypto_sign_detached(sig, NULL, msg, plen + 17, kp.sk);
                else
                    free(pgr_envelope_seal(PGR_DOMAIN_JOB, &kp, payload, plen));
            }
            *(raw ? &s_raw[r] : &s_ours[r]) = (now_us() - t0) / iters;
        }
        for (int k = 0; k < 2; k++) {
            bool raw = (k + r) % 2 == 0;
            double t0 = now_us();
            for (int i = 0; i < iters; i++) {
                if (raw) {
                    if (crypto_sign_verify_detached(sig, msg, plen + 17, kp.pk) != 0)
                        return 1;
                    continue;
                }
                char *out = NULL, kid[PGR_KID_LEN];
                size_t olen = 0;
                pgr_envelope_reject why;
                if (pgr_envelope_open(env, strlen(env), 1 << 20, PGR_DOMAIN_JOB, kr, &out, &olen,
                                      NULL, kid, &why, NULL) != PGR_OK)
                    return 1;
                free(out);
            }
            *(raw ? &v_raw[r] : &v_ours[r]) = (now_us() - t0) / iters;
        }
        s_ratio[r] = s_ours[r] / s_raw[r];
        v_ratio[r] = v_ours[r] / v_raw[r];
    }
    double so = median(s_ours, ROUNDS), sr = median(s_raw, ROUNDS);
    double vo = median(v_ours, ROUNDS), vr = median(v_raw, ROUNDS);
    printf("sign 20KB envelope\t%.1f\t%.1f\t%.2f\n", so, sr, median(s_ratio, ROUNDS));
    printf("verify 20KB envelope\t%.1f\t%.1f\t%.2f\n", vo, vr, median(v_ratio, ROUNDS));
    free(env);
    free(msg);
    free(payload);
    pgr_keyring_free(kr);
    return 0;
}
