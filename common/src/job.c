/* job.c - job payloads: strict parsing with checksum checks, and building. */
#include "pgr/job.h"
#include "pgr/release.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(json_t *o, const char *key, bool required, bool *ok)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        *ok = *ok && !required;
        return NULL;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 256 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        *ok = false;
        return NULL;
    }
    return strdup(json_string_value(v));
}

static bool parse_options(json_t *o, pgr_job_options *opt)
{
    opt->lock_timeout_ms = 5000;
    opt->retries = 5;
    if (o == NULL)
        return true;
    if (!json_is_object(o))
        return false;
    json_t *lt = json_object_get(o, "lock_timeout_ms"),
           *st = json_object_get(o, "statement_timeout_ms");
    json_t *re = json_object_get(o, "retries"), * or = json_object_get(o, "orphans");
    json_t *bk = json_object_get(o, "backup"), *vj = json_object_get(o, "verify_in_job");
    if ((lt != NULL &&
         (!json_is_integer(lt) || json_integer_value(lt) < 1 || json_integer_value(lt) > 600000)) ||
        (st != NULL && (!json_is_integer(st) || json_integer_value(st) < 0 ||
                        json_integer_value(st) > 86400000)) ||
        (re != NULL &&
         (!json_is_integer(re) || json_integer_value(re) < 0 || json_integer_value(re) > 100)) ||
        (bk != NULL && !json_is_boolean(bk)) || (vj != NULL && !json_is_boolean(vj)) ||
        (or != NULL && !json_is_string(or)))
        return false;
    opt->lock_timeout_ms = lt != NULL ? (int)json_integer_value(lt) : opt->lock_timeout_ms;
    opt->statement_timeout_ms = st != NULL ? (int)json_integer_value(st) : 0;
    opt->retries = re != NULL ? (int)json_integer_value(re) : opt->retries;
    opt->backup = bk != NULL && json_is_true(bk);
    opt->verify_in_job = vj != NULL && json_is_true(vj);
    const char *orv = or != NULL ? json_string_value(or) : "";
    if (*orv != '\0' && strcmp(orv, "abort") != 0 && strcmp(orv, "quarantine") != 0)
        return false;
    snprintf(opt->orphans, sizeof(opt->orphans), "%s", orv);
    return true;
}

/* Each migration: version, name, checksum and text; the text must hash to the checksum and
 * parse. */
static pgr_code parse_migration(json_t *m, pgr_migration_set *set, pgr_job_reject *reason,
                                pgr_error *err)
{
    const char *version = json_string_value(json_object_get(m, "version"));
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *sum = json_string_value(json_object_get(m, "checksum"));
    json_t *text = json_object_get(m, "text");
    char fname[256], actual[PGR_SHA256_HEX_LEN];
    pgr_migration *mig = NULL;

    bool name_ok = name != NULL && *name != '\0' && strlen(name) <= 200;
    for (const char *p = name; name_ok && *p != '\0'; p++)
        name_ok =
            islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' || *p == '-';
    if (!json_is_object(m) || version == NULL || !name_ok || sum == NULL || !json_is_string(text) ||
        strlen(version) != PGR_VERSION_LEN)
        return pgr_error_set(err, PGR_ERR_INVALID, "job: malformed migration entry");
    const char *t = json_string_value(text);
    size_t tlen = json_string_length(text);
    pgr_migration_checksum(t, tlen, actual);
    if (strcmp(actual, sum) != 0) {
        *reason = PGR_JOB_CHECKSUM_MISMATCH;
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "job: migration %s text does not match its checksum", version);
    }
    snprintf(fname, sizeof(fname), "%s-%s.sql", version, name);
    pgr_code rc = pgr_migration_parse(t, tlen, fname, &mig, err);
    if (rc == PGR_OK) {
        rc = pgr_migration_set_add(set, mig, err);
        if (rc != PGR_OK)
            pgr_migration_free(mig);
    }
    return rc;
}

/* "releases": optional, an array of up to 16 manifest files' objects (each parsed on its own). */
static pgr_code parse_releases(json_t *rels, pgr_job *job, pgr_error *err)
{
    size_t n = json_array_size(rels);
    if (rels == NULL)
        return PGR_OK;
    if (!json_is_array(rels) || n == 0 || n > 16)
        return pgr_error_set(err, PGR_ERR_INVALID, "job: releases must be an array of 1 to 16");
    job->releases = calloc(n, sizeof(*job->releases));
    if (job->releases == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char *text = json_dumps(json_array_get(rels, i), JSON_COMPACT);
        pgr_code rc = text != NULL ? pgr_release_parse(text, strlen(text), &job->releases[i], err)
                                   : pgr_error_set(err, PGR_ERR_INVALID, "job: releases[%zu]", i);
        free(text);
        if (rc != PGR_OK)
            return rc;
        job->release_count++;
    }
    return PGR_OK;
}

static pgr_code parse_fields(json_t *doc, pgr_job *job, pgr_error *err)
{
    bool ok = json_is_object(doc);
    const char *type = ok ? json_string_value(json_object_get(doc, "type")) : NULL;
    const char *id = ok ? json_string_value(json_object_get(doc, "job_id")) : NULL;
    json_t *seq = ok ? json_object_get(doc, "seq") : NULL;
    if (!ok || type == NULL || id == NULL || !pgr_uuid_valid(id) || !json_is_integer(seq) ||
        json_integer_value(seq) < 1)
        return pgr_error_set(err, PGR_ERR_INVALID, "job: missing or malformed type, job_id or seq");
    if (strcmp(type, "apply") != 0 && strcmp(type, "rollback") != 0 &&
        strcmp(type, "verify") != 0 && strcmp(type, "cancel") != 0)
        return pgr_error_set(err, PGR_ERR_INVALID, "job: unknown type");
    snprintf(job->type, sizeof(job->type), "%s", type);
    snprintf(job->job_id, sizeof(job->job_id), "%s", id);
    job->seq = json_integer_value(seq);
    job->tenant_id = dup_str(doc, "tenant_id", true, &ok);
    job->rollout_id = dup_str(doc, "rollout_id", false, &ok);
    job->wave = dup_str(doc, "wave", false, &ok);
    job->operator_name = dup_str(doc, "operator", true, &ok);
    job->target = dup_str(doc, "target", false, &ok);
    ok = ok && pgr_clock_parse_utc(json_string_value(json_object_get(doc, "issued_at")),
                                   &job->issued_at) == PGR_OK;
    ok = ok && pgr_clock_parse_utc(json_string_value(json_object_get(doc, "expires_at")),
                                   &job->expires_at) == PGR_OK;
    ok = ok && parse_options(json_object_get(doc, "options"), &job->options);
    if (!ok)
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "job: missing or malformed tenant_id, operator, times or options");
    return PGR_OK;
}

pgr_code pgr_job_parse(const char *buf, size_t len, pgr_job **out, pgr_job_reject *reason,
                       pgr_error *err)
{
    json_error_t je;
    pgr_job *job = calloc(1, sizeof(*job));
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    pgr_code rc = PGR_OK;

    *reason = PGR_JOB_MALFORMED;
    if (job == NULL || doc == NULL)
        rc = pgr_error_set(err, PGR_ERR_INVALID, "job: payload is not JSON");
    if (rc == PGR_OK)
        rc = parse_fields(doc, job, err);
    json_t *migs = rc == PGR_OK ? json_object_get(doc, "migrations") : NULL;
    if (rc == PGR_OK && (!json_is_array(migs) || json_array_size(migs) > 1000))
        rc = pgr_error_set(err, PGR_ERR_INVALID, "job: migrations must be an array");
    if (rc == PGR_OK && (job->migrations = pgr_migration_set_new()) == NULL)
        rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == PGR_OK && i < json_array_size(migs); i++)
        rc = parse_migration(json_array_get(migs, i), job->migrations, reason, err);
    if (rc == PGR_OK)
        rc = parse_releases(json_object_get(doc, "releases"), job, err);
    json_decref(doc);
    if (rc != PGR_OK) {
        pgr_job_free(job);
        return rc;
    }
    *reason = PGR_JOB_OK;
    *out = job;
    return PGR_OK;
}

void pgr_job_free(pgr_job *job)
{
    if (job == NULL)
        return;
    free(job->rollout_id);
    free(job->wave);
    free(job->tenant_id);
    free(job->operator_name);
    free(job->target);
    pgr_migration_set_free(job->migrations);
    for (size_t i = 0; i < job->release_count; i++)
        pgr_release_free(job->releases[i]);
    free(job->releases);
    free(job);
}

/* Whether the job carries migration m: an apply job stops at its target. */
static bool job_carries(const pgr_job *job, const pgr_migration *m)
{
    if (job->carry_max != NULL && strcmp(m->version, job->carry_max) > 0)
        return false;
    return !(strcmp(job->type, "apply") == 0 && job->target != NULL &&
             strcmp(m->version, job->target) > 0);
}

char *pgr_job_versions_json(const pgr_job *job, const pgr_migration_set *set)
{
    json_t *vs = json_array();
    for (size_t i = 0; vs != NULL && i < set->count; i++) {
        if (job_carries(job, set->items[i]))
            json_array_append_new(vs, json_string(set->items[i]->version));
    }
    char *s = vs != NULL ? json_dumps(vs, JSON_COMPACT) : NULL;
    json_decref(vs);
    return s;
}

char *pgr_job_build(const pgr_job *job, const pgr_migration_set *set)
{
    char issued[32], expires[32];
    pgr_clock_format_utc(job->issued_at, issued);
    pgr_clock_format_utc(job->expires_at, expires);
    json_t *migs = json_array();
    for (size_t i = 0; i < set->count; i++) {
        const pgr_migration *m = set->items[i];
        if (!job_carries(job, m))
            continue;
        json_array_append_new(migs, json_pack("{s:s, s:s, s:s, s:s%}", "version", m->version,
                                              "name", m->name, "checksum", m->checksum, "text",
                                              m->text, m->text_len));
    }
    json_t *opts = json_pack("{s:i, s:i, s:i, s:s, s:b}", "lock_timeout_ms",
                             job->options.lock_timeout_ms, "statement_timeout_ms",
                             job->options.statement_timeout_ms, "retries", job->options.retries,
                             "orphans", job->options.orphans, "backup", job->options.backup);
    /* written only when set: a job without it is byte for byte what agents before it were sent
     * (docs/PROTOCOL.md 11.3) */
    if (opts != NULL && job->options.verify_in_job)
        json_object_set_new(opts, "verify_in_job", json_true());
    json_t *doc = json_pack(
        "{s:s, s:s, s:s?, s:s?, s:s, s:I, s:s, s:s, s:s, s:s?, s:o, s:o}", "type", job->type,
        "job_id", job->job_id, "rollout_id", job->rollout_id, "wave", job->wave, "tenant_id",
        job->tenant_id, "seq", (json_int_t)job->seq, "issued_at", issued, "expires_at", expires,
        "operator", job->operator_name, "target", job->target, "options", opts, "migrations", migs);
    /* written only when there are some (PROTOCOL 14.3): a job without is as before */
    json_t *rels = job->release_count > 0 ? json_array() : NULL;
    for (size_t i = 0; rels != NULL && i < job->release_count; i++) {
        char *text = pgr_release_text(job->releases[i]);
        json_t *one = text != NULL ? json_loads(text, 0, NULL) : NULL;
        free(text);
        if (one == NULL || json_array_append_new(rels, one) != 0) {
            json_decref(rels);
            json_decref(doc);
            return NULL;
        }
    }
    if (doc != NULL && rels != NULL && json_object_set_new(doc, "releases", rels) != 0) {
        json_decref(doc);
        return NULL;
    }
    char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    return s;
}
