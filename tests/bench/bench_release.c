/* bench_release.c - what the two-person rule adds to each job on the agent: the release check
 * (its manifest's two signatures, expiry and scope, and the SHA-256 of every migration the job
 * runs) against the job's own verification (envelope signature and the strict parse of a job
 * that carries the four White Cross migrations and the manifest). Alternates the two in short
 * blocks, many rounds, and prints one tab-separated line:
 *   case  release_check_us  job_verification_us  ratio (median of per-round ratios) */
#include "pgr/crypto.h"
#include "pgr/envelope.h"
#include "pgr/job.h"
#include "pgr/migration.h"
#include "pgr/release.h"

#include <sodium.h>
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

static void key(pgr_keypair *kp, pgr_keyring **kr, const char *ring_text)
{
    crypto_sign_keypair(kp->pk, kp->sk);
    pgr_keys_kid(kp->pk, kp->kid);
    if (kr != NULL && ring_text != NULL)
        PGR_IGNORE(pgr_keyring_parse(ring_text, strlen(ring_text), "bench", kr, NULL));
}

/* The release check of daemon_release.c for one job, without the daemon around it: the
 * manifest once (signatures, expiry), then scope and bytes per migration. */
static int release_check(const pgr_job *job, const pgr_keyring *rel)
{
    char kids[64];
    if (pgr_release_check(job->releases[0], rel, 2, time(NULL), kids, sizeof(kids), NULL) != PGR_OK)
        return 0;
    int ok = 0;
    for (size_t i = 0; i < job->migrations->count; i++) {
        const pgr_migration *m = job->migrations->items[i];
        char sha[65];
        pgr_release_file_sha256(m->text, m->text_len, sha);
        const pgr_release_entry *e = pgr_release_find(job->releases[0], m->version);
        ok += e != NULL && strcmp(e->sha256, sha) == 0 &&
              pgr_release_covers_tenant(job->releases[0], job->tenant_id, NULL);
    }
    return ok;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 300;
    const char *dir = argc > 2 ? argv[2] : "migrations";
    pgr_keypair coord, r1, r2;
    char line[200], ring[600];
    pgr_keyring *coords = NULL, *rel = NULL;
    pgr_migration_set *set = NULL;
    if (pgr_crypto_init(NULL) != PGR_OK || pgr_migration_dir_load(dir, &set, NULL) != PGR_OK)
        return 1;
    key(&coord, NULL, NULL);
    pgr_keys_format_public(coord.pk, line, sizeof(line));
    PGR_IGNORE(pgr_keyring_parse(line, strlen(line), "coord", &coords, NULL));
    key(&r1, NULL, NULL);
    key(&r2, NULL, NULL);
    char l1[200], l2[200];
    pgr_keys_format_public(r1.pk, l1, sizeof(l1));
    pgr_keys_format_public(r2.pk, l2, sizeof(l2));
    snprintf(ring, sizeof(ring), "%s\n%s\n", l1, l2);
    PGR_IGNORE(pgr_keyring_parse(ring, strlen(ring), "rel", &rel, NULL));
    pgr_release_entry e[64];
    for (size_t i = 0; i < set->count && i < 64; i++) {
        snprintf(e[i].version, sizeof(e[i].version), "%s", set->items[i]->version);
        pgr_release_file_sha256(set->items[i]->text, set->items[i]->text_len, e[i].sha256);
        e[i].name = set->items[i]->name;
    }
    time_t now = time(NULL);
    pgr_release_spec spec = {NULL, now,  now + 86400, "0", set->items[set->count - 1]->version,
                             true, NULL, NULL,        e,   set->count};
    pgr_release *r = NULL;
    if (pgr_release_new(&spec, &r, NULL) != PGR_OK || pgr_release_sign(r, &r1, NULL) != PGR_OK ||
        pgr_release_sign(r, &r2, NULL) != PGR_OK)
        return 1;
    pgr_job job;
    memset(&job, 0, sizeof(job));
    snprintf(job.type, sizeof(job.type), "apply");
    snprintf(job.job_id, sizeof(job.job_id), "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f");
    job.tenant_id = "district-001";
    job.operator_name = "bench";
    job.seq = 1;
    job.issued_at = now;
    job.expires_at = now + 3600;
    job.options.lock_timeout_ms = 5000;
    job.releases = &r;
    job.release_count = 1;
    char *payload = pgr_job_build(&job, set);
    char *env = pgr_envelope_seal(PGR_DOMAIN_JOB, &coord, payload, strlen(payload));
    double ours[ROUNDS], base[ROUNDS], ratio[ROUNDS];
    int sink = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double tb = 0, to = 0;
        pgr_job *parsed = NULL;
        for (int i = 0; i < iters; i++) {
            char *p = NULL;
            size_t plen = 0;
            pgr_envelope_reject why;
            pgr_job_reject jwhy;
            char kid[PGR_KID_LEN];
            double t0 = now_us();
            if (pgr_envelope_open(env, strlen(env), 1 << 24, PGR_DOMAIN_JOB, coords, &p, &plen,
                                  NULL, kid, &why, NULL) != PGR_OK ||
                pgr_job_parse(p, plen, &parsed, &jwhy, NULL) != PGR_OK)
                return 2;
            double t1 = now_us();
            sink += release_check(parsed, rel);
            double t2 = now_us();
            tb += t1 - t0;
            to += t2 - t1;
            free(p);
            pgr_job_free(parsed);
        }
        base[round] = tb / iters;
        ours[round] = to / iters;
        ratio[round] = ours[round] / base[round];
    }
    qsort(ours, ROUNDS, sizeof(double), dcmp);
    qsort(base, ROUNDS, sizeof(double), dcmp);
    qsort(ratio, ROUNDS, sizeof(double), dcmp);
    printf("release check per job (%zu migrations, 2 signatures)\t%.1f\t%.1f\t%.3f\n", set->count,
           ours[ROUNDS / 2], base[ROUNDS / 2], ratio[ROUNDS / 2]);
    fprintf(stderr, "(checks passed: %d)\n", sink);
    free(payload);
    free(env);
    pgr_release_free(r);
    pgr_keyring_free(coords);
    pgr_keyring_free(rel);
    pgr_migration_set_free(set);
    return 0;
}
