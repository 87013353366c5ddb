/*
 * daemon_release.c - release manifests checked by the agent (daemon_release.h).
 */
#include "daemon_release.h"

#include "pgr/release.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The migrations a job would run: an apply job's (the job carries them up to its target), a
 * rollback job's above its target (their down parts). */
static bool runs(const pgr_job *job, const pgr_migration *m)
{
    if (strcmp(job->type, "rollback") == 0)
        return job->target == NULL || strcmp(m->version, job->target) > 0;
    return job->target == NULL || strcmp(m->version, job->target) <= 0;
}

static void add_unique(char *list, size_t len, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t m = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (m == n && strncmp(p, item, n) == 0)
            return;
        p = comma != NULL ? comma + 1 : p + m;
    }
    size_t used = strlen(list);
    snprintf(list + used, len - used, "%s%s", used > 0 ? "," : "", item);
}

/* Each manifest checked once: signatures, expiry (why[k] when it fails), signers. */
typedef struct checked {
    bool ok;
    char why[512];
    char signers[DAEMON_RELEASE_KIDS_LEN];
} checked;

/* Why manifest r (checked as c) does not release migration m (bytes of hash sha) for tenant t,
 * or NULL when it does. */
static const char *refusal(const daemon_tenant *t, const pgr_release *r, const checked *c,
                           const pgr_migration *m, const char *sha, char *buf, size_t len)
{
    const pgr_release_entry *e = pgr_release_find(r, m->version);
    if (!c->ok)
        return c->why;
    if (!pgr_release_covers_tenant(r, t->conf->id, t->conf->tags))
        snprintf(buf, len, "release %s does not cover tenant %s", r->release_id, t->conf->id);
    else if (strcmp(e->sha256, sha) != 0)
        snprintf(buf, len, "its bytes (sha256 %.12s...) are not those release %s names (%.12s...)",
                 sha, r->release_id, e->sha256);
    else
        return NULL;
    return buf;
}

static void add_kids(char *kids, const char *signers)
{
    for (const char *p = signers; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char kid[PGR_KID_LEN];
        snprintf(kid, sizeof(kid), "%.*s", (int)(n < 16 ? n : 16), p);
        add_unique(kids, DAEMON_RELEASE_KIDS_LEN, kid);
        p = comma != NULL ? comma + 1 : p + n;
    }
}

bool daemon_release_allows(const agent_daemon *d, const daemon_tenant *t, const pgr_job *job,
                           char *why, size_t whylen, char digests[DAEMON_RELEASE_DIGESTS_LEN],
                           char kids[DAEMON_RELEASE_KIDS_LEN])
{
    checked c[16];
    if (digests != NULL)
        digests[0] = '\0';
    if (kids != NULL)
        kids[0] = '\0';
    if (d->releases == NULL ||
        (strcmp(job->type, "apply") != 0 && strcmp(job->type, "rollback") != 0))
        return true;
    /* the one job option that changes rows: quarantine moves orphan rows, which no release names
     * (a released file's own orphan policy still applies) */
    if (strcmp(job->type, "apply") == 0 && strcmp(job->options.orphans, "quarantine") == 0) {
        snprintf(why, whylen,
                 "option orphans=quarantine moves rows no release names: quarantine "
                 "with pgrollout-agent apply --orphans quarantine on the tenant");
        return false;
    }
    for (size_t k = 0; k < job->release_count && k < 16; k++) {
        pgr_error err;
        c[k].ok = pgr_release_check(job->releases[k], d->releases, d->cfg->release_threshold,
                                    time(NULL), c[k].signers, sizeof(c[k].signers), &err) == PGR_OK;
        snprintf(c[k].why, sizeof(c[k].why), "%s", c[k].ok ? "" : err.msg);
    }
    for (size_t i = 0; i < job->migrations->count; i++) {
        const pgr_migration *m = job->migrations->items[i];
        char sha[65], buf[512];
        const char *last = NULL;
        bool released = false;
        if (!runs(job, m))
            continue;
        pgr_release_file_sha256(m->text, m->text_len, sha);
        for (size_t k = 0; k < job->release_count && k < 16 && !released; k++) {
            const pgr_release *r = job->releases[k];
            if (pgr_release_find(r, m->version) == NULL)
                continue;
            last = refusal(t, r, &c[k], m, sha, buf, sizeof(buf));
            released = last == NULL;
            if (released && digests != NULL)
                add_unique(digests, DAEMON_RELEASE_DIGESTS_LEN, r->digest);
            if (released && kids != NULL)
                add_kids(kids, c[k].signers);
        }
        if (released)
            continue;
        if (job->release_count == 0)
            snprintf(why, whylen, "the job carries no release manifest (release.threshold %d)",
                     d->cfg->release_threshold);
        else if (last == NULL)
            snprintf(why, whylen, "migration %s is in none of the job's %zu release manifest(s)",
                     m->version, job->release_count);
        else
            snprintf(why, whylen, "migration %s: %s", m->version, last);
        return false;
    }
    return true;
}

const char *daemon_release_shared_key(const pgr_keyring *coordinators, const pgr_keyring *releases)
{
    for (size_t i = 0; releases != NULL && i < releases->count; i++) {
        for (size_t k = 0; coordinators != NULL && k < coordinators->count; k++) {
            if (memcmp(releases->items[i].key.pk, coordinators->items[k].key.pk, PGR_PK_LEN) == 0)
                return releases->items[i].key.kid;
        }
    }
    return NULL;
}
