/* planfile.c - plan parsing and wave resolution (see planfile.h). */
/* realpath() is an X/Open function */
#define _XOPEN_SOURCE 700
#include "planfile.h"

#include "pgr/str.h"
#include "pgr/release.h"
#include "pgr/migration.h"
#include "pgr/crypto.h"
#include "pgr/pg.h"

#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fleet {
    char **ids;
    char **tags; /* "k:v,k:v" or NULL */
    size_t count;
    int *wave; /* index of the wave that took it, -1 */
} fleet;

static void fleet_free(fleet *f)
{
    for (size_t i = 0; i < f->count; i++) {
        free(f->ids[i]);
        free(f->tags[i]);
    }
    free(f->ids);
    free(f->tags);
    free(f->wave);
}

static pgr_code fleet_add(fleet *f, const char *id, const char *tags)
{
    char **ids = realloc(f->ids, (f->count + 1) * sizeof(char *));
    char **tg = ids != NULL ? realloc(f->tags, (f->count + 1) * sizeof(char *)) : NULL;
    int *w = tg != NULL ? realloc(f->wave, (f->count + 1) * sizeof(int)) : NULL;
    if (ids != NULL)
        f->ids = ids;
    if (tg != NULL)
        f->tags = tg;
    if (w == NULL)
        return PGR_ERR_NOMEM;
    f->wave = w;
    f->ids[f->count] = strdup(id);
    f->tags[f->count] = tags != NULL ? strdup(tags) : NULL;
    f->wave[f->count] = -1;
    f->count++;
    return PGR_OK;
}

static const char *db_tags(PGconn *db, const char *id)
{
    static char buf[1024];
    PGresult *r = NULL;
    const char *params[] = {id};
    buf[0] = '\0';
    if (db != NULL && pgr_pg_execp(db,
                                   "SELECT coalesce(tags, '') FROM pgrollout_control.tenants "
                                   "WHERE tenant_id = $1",
                                   1, params, &r, NULL) == PGR_OK) {
        if (PQntuples(r) == 1)
            snprintf(buf, sizeof(buf), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    return buf[0] != '\0' ? buf : NULL;
}

static pgr_code load_fleet(json_t *doc, PGconn *db, fleet *f, pgr_error *err)
{
    json_t *list = json_object_get(doc, "tenants");
    size_t i;
    json_t *t;
    if (list != NULL) {
        if (!json_is_array(list) || json_array_size(list) == 0)
            return pgr_error_set(err, PGR_ERR_INVALID,
                                 "tenants: expected a non-empty array of tenant ids");
        json_array_foreach(list, i, t)
        {
            const char *id = json_string_value(t);
            if (id == NULL || !pgr_str_is_tenant_id(id))
                return pgr_error_set(
                    err, PGR_ERR_INVALID,
                    "tenants[%zu]: expected a tenant id (1 to 128 letters, digits, '_', "
                    "'-' or '.')",
                    i);
            for (size_t k = 0; k < f->count; k++) {
                if (strcmp(f->ids[k], id) == 0)
                    return pgr_error_set(err, PGR_ERR_INVALID,
                                         "tenants[%zu]: \"%s\" is listed twice", i, id);
            }
            if (fleet_add(f, id, db_tags(db, id)) != PGR_OK)
                return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        }
        return PGR_OK;
    }
    PGresult *r = NULL;
    if (db == NULL || pgr_pg_exec(db,
                                  "SELECT tenant_id, tags FROM pgrollout_control.tenants WHERE "
                                  "last_seen IS NOT NULL AND gone_at IS NULL ORDER BY "
                                  "tenant_id",
                                  &r, NULL) != PGR_OK)
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "tenants: no list in the plan and no known tenants");
    for (int k = 0; k < PQntuples(r); k++)
        fleet_add(f, PQgetvalue(r, k, 0), PQgetisnull(r, k, 1) ? NULL : PQgetvalue(r, k, 1));
    PQclear(r);
    return f->count > 0 ? PGR_OK
                        : pgr_error_set(err, PGR_ERR_INVALID,
                                        "tenants: no list in the plan and no known tenants");
}

/* True when "k:v,k:v" holds every key:value of want. */
static bool tags_match(const char *have, json_t *want)
{
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v)
    {
        char kv[300];
        snprintf(kv, sizeof(kv), "%s:%s", k,
                 json_string_value(v) != NULL ? json_string_value(v) : "");
        bool found = false;
        for (const char *p = have; p != NULL && *p != '\0' && !found;) {
            const char *comma = strchr(p, ',');
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
            found = n == strlen(kv) && strncmp(p, kv, n) == 0;
            p = comma != NULL ? comma + 1 : NULL;
        }
        if (!found)
            return false;
    }
    return true;
}

typedef struct hashed {
    char hash[PGR_SHA256_HEX_LEN];
    size_t idx;
} hashed;

static int hashed_cmp(const void *a, const void *b)
{
    return strcmp(((const hashed *)a)->hash, ((const hashed *)b)->hash);
}

static pgr_code take(fleet *f, size_t i, int wave, coord_planfile_wave *w)
{
    char **n = realloc(w->tenants, (w->count + 1) * sizeof(char *));
    if (n == NULL)
        return PGR_ERR_NOMEM;
    w->tenants = n;
    n[w->count++] = strdup(f->ids[i]);
    f->wave[i] = wave;
    return PGR_OK;
}

/* Percent waves: from the tenants not taken yet, in SHA-256 order of their ids (stable: the
 * same plan always picks the same tenants), until ceil(percent% of the fleet) are taken in all
 * waves so far. */
static pgr_code select_percent(fleet *f, int wave, coord_planfile_wave *w, double pct)
{
    size_t taken = 0, n = 0;
    hashed *h = calloc(f->count + 1, sizeof(*h));
    if (h == NULL)
        return PGR_ERR_NOMEM;
    for (size_t i = 0; i < f->count; i++) {
        if (f->wave[i] >= 0) {
            taken++;
            continue;
        }
        pgr_crypto_sha256_hex(f->ids[i], strlen(f->ids[i]), h[n].hash);
        h[n++].idx = i;
    }
    qsort(h, n, sizeof(*h), hashed_cmp);
    size_t goal = (size_t)ceil(pct / 100.0 * (double)f->count);
    for (size_t k = 0; k < n && taken < goal; k++, taken++)
        take(f, h[k].idx, wave, w);
    free(h);
    return PGR_OK;
}

static pgr_code select_wave(json_t *wj, size_t wi, fleet *f, coord_planfile_wave *w, pgr_error *err)
{
    json_t *list = json_object_get(wj, "tenants"), *tags = json_object_get(wj, "tags");
    json_t *pct = json_object_get(wj, "percent");
    int kinds = (list != NULL) + (tags != NULL) + (pct != NULL);
    if (kinds != 1)
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "waves[%zu]: give exactly one of tenants, tags or percent", wi);
    size_t i;
    json_t *t;
    if (list != NULL) {
        if (!json_is_array(list))
            return pgr_error_set(err, PGR_ERR_INVALID, "waves[%zu].tenants: expected an array", wi);
        json_array_foreach(list, i, t)
        {
            const char *id = json_string_value(t);
            size_t k = 0;
            while (id != NULL && k < f->count && strcmp(f->ids[k], id) != 0)
                k++;
            if (id == NULL || k == f->count)
                return pgr_error_set(err, PGR_ERR_INVALID,
                                     "waves[%zu].tenants[%zu]: unknown tenant \"%s\"", wi, i,
                                     id != NULL ? id : "?");
            if (f->wave[k] >= 0)
                return pgr_error_set(err, PGR_ERR_INVALID,
                                     "waves[%zu].tenants[%zu]: \"%s\" is already in wave %d", wi, i,
                                     id, f->wave[k]);
            take(f, k, (int)wi, w);
        }
    } else if (tags != NULL) {
        if (!json_is_object(tags) || json_object_size(tags) == 0)
            return pgr_error_set(err, PGR_ERR_INVALID,
                                 "waves[%zu].tags: expected an object of key: value", wi);
        for (size_t k = 0; k < f->count; k++) {
            if (f->wave[k] < 0 && tags_match(f->tags[k], tags))
                take(f, k, (int)wi, w);
        }
    } else {
        double v = json_number_value(pct);
        if (!json_is_number(pct) || v <= 0 || v > 100)
            return pgr_error_set(err, PGR_ERR_INVALID,
                                 "waves[%zu].percent: expected a number above 0 and at most 100",
                                 wi);
        select_percent(f, (int)wi, w, v);
    }
    return w->count > 0 ? PGR_OK
                        : pgr_error_set(err, PGR_ERR_INVALID, "waves[%zu]: selects no tenant", wi);
}

static pgr_code int_field(json_t *o, const char *k, int def, int min, int max, int *out, size_t wi,
                          pgr_error *err)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL) {
        *out = def;
        return PGR_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "waves[%zu].%s: expected an integer from %d to %d", wi, k, min, max);
    *out = (int)json_integer_value(v);
    return PGR_OK;
}

static pgr_code parse_wave(json_t *wj, size_t wi, fleet *f, coord_planfile_wave *w, pgr_error *err)
{
    static const char *const known[] = {
        "name",         "tenants",           "tags",         "percent", "max_parallel",
        "max_failures", "max_failure_ratio", "soak_seconds", "approval"};
    const char *k;
    json_t *v;
    if (!json_is_object(wj))
        return pgr_error_set(err, PGR_ERR_INVALID, "waves[%zu]: expected an object", wi);
    json_object_foreach(wj, k, v)
    {
        size_t i = 0;
        while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], k) != 0)
            i++;
        if (i == sizeof(known) / sizeof(known[0]))
            return pgr_error_set(err, PGR_ERR_INVALID, "waves[%zu].%s: unknown field", wi, k);
    }
    w->name = json_string_value(json_object_get(wj, "name"));
    if (w->name == NULL || *w->name == '\0' || strlen(w->name) > 64)
        return pgr_error_set(err, PGR_ERR_INVALID, "waves[%zu].name: expected a name", wi);
    const char *appr = json_string_value(json_object_get(wj, "approval"));
    if (json_object_get(wj, "approval") != NULL &&
        (appr == NULL || (strcmp(appr, "manual") != 0 && strcmp(appr, "auto") != 0)))
        return pgr_error_set(err, PGR_ERR_INVALID, "waves[%zu].approval: expected manual or auto",
                             wi);
    w->manual_approval = appr != NULL && strcmp(appr, "manual") == 0;
    json_t *ratio = json_object_get(wj, "max_failure_ratio");
    if (ratio != NULL &&
        (!json_is_number(ratio) || json_number_value(ratio) < 0 || json_number_value(ratio) > 1))
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "waves[%zu].max_failure_ratio: expected a number from 0 to 1", wi);
    w->max_failure_ratio = ratio != NULL ? json_number_value(ratio) : 0;
    pgr_code rc = int_field(wj, "max_parallel", 4, 1, 10000, &w->max_parallel, wi, err);
    if (rc == PGR_OK)
        rc = int_field(wj, "max_failures", 0, 0, 100000, &w->max_failures, wi, err);
    if (rc == PGR_OK)
        rc = int_field(wj, "soak_seconds", 0, 0, 86400, &w->soak_seconds, wi, err);
    return rc != PGR_OK ? rc : select_wave(wj, wi, f, w, err);
}

int coord_planfile_wave_budget(const coord_planfile_wave *w)
{
    int by_ratio = (int)floor(w->max_failure_ratio * (double)w->count);
    return w->max_failures > by_ratio ? w->max_failures : by_ratio;
}

static pgr_code parse_options(json_t *o, pgr_job_options *opt, pgr_error *err)
{
    opt->lock_timeout_ms = 5000;
    opt->retries = 5;
    opt->verify_in_job = true;
    if (o == NULL)
        return PGR_OK;
    if (!json_is_object(o))
        return pgr_error_set(err, PGR_ERR_INVALID, "options: expected an object");
    static const char *const known[] = {
        "lock_timeout_ms", "statement_timeout_ms", "retries", "orphans", "backup", "verify_in_job"};
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        size_t i = 0;
        while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], key) != 0)
            i++;
        if (i == sizeof(known) / sizeof(known[0]))
            return pgr_error_set(err, PGR_ERR_INVALID, "options.%s: unknown field", key);
    }
    json_t *lt = json_object_get(o, "lock_timeout_ms"), *re = json_object_get(o, "retries");
    json_t *st = json_object_get(o, "statement_timeout_ms"), *bk = json_object_get(o, "backup");
    json_t *orj = json_object_get(o, "orphans"), *vj = json_object_get(o, "verify_in_job");
    const char *orph = json_string_value(orj);
    if (lt != NULL &&
        (!json_is_integer(lt) || json_integer_value(lt) < 1 || json_integer_value(lt) > 600000))
        return pgr_error_set(err, PGR_ERR_INVALID, "options.lock_timeout_ms: expected 1 to 600000");
    if (st != NULL &&
        (!json_is_integer(st) || json_integer_value(st) < 0 || json_integer_value(st) > 86400000))
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "options.statement_timeout_ms: expected 0 to 86400000");
    if (re != NULL &&
        (!json_is_integer(re) || json_integer_value(re) < 0 || json_integer_value(re) > 100))
        return pgr_error_set(err, PGR_ERR_INVALID, "options.retries: expected 0 to 100");
    if (bk != NULL && !json_is_boolean(bk))
        return pgr_error_set(err, PGR_ERR_INVALID, "options.backup: expected true or false");
    if (vj != NULL && !json_is_boolean(vj))
        return pgr_error_set(err, PGR_ERR_INVALID, "options.verify_in_job: expected true or false");
    if (orj != NULL &&
        (orph == NULL || (strcmp(orph, "abort") != 0 && strcmp(orph, "quarantine") != 0)))
        return pgr_error_set(err, PGR_ERR_INVALID, "options.orphans: expected abort or quarantine");
    opt->lock_timeout_ms = lt != NULL ? (int)json_integer_value(lt) : 5000;
    opt->statement_timeout_ms = st != NULL ? (int)json_integer_value(st) : 0;
    opt->retries = re != NULL ? (int)json_integer_value(re) : 5;
    opt->backup = json_is_true(bk);
    opt->verify_in_job = vj == NULL || json_is_true(vj);
    snprintf(opt->orphans, sizeof(opt->orphans), "%s", orph != NULL ? orph : "");
    return PGR_OK;
}

static pgr_code parse_top(json_t *doc, coord_planfile *p, pgr_error *err)
{
    static const char *const known[] = {
        "name",  "migrations", "target",          "type",    "options", "tenants",
        "waves", "on_failure", "job_ttl_seconds", "releases"};
    const char *k;
    json_t *v;
    if (!json_is_object(doc))
        return pgr_error_set(err, PGR_ERR_INVALID, "the plan must be a JSON object");
    json_object_foreach(doc, k, v)
    {
        size_t i = 0;
        while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], k) != 0)
            i++;
        if (i == sizeof(known) / sizeof(known[0]))
            return pgr_error_set(err, PGR_ERR_INVALID, "%s: unknown field", k);
    }
    p->name = json_string_value(json_object_get(doc, "name"));
    const char *dir = json_string_value(json_object_get(doc, "migrations"));
    p->target = json_string_value(json_object_get(doc, "target"));
    json_t *tj = json_object_get(doc, "target");
    if (tj != NULL && (p->target == NULL || strlen(p->target) != 14))
        return pgr_error_set(err, PGR_ERR_INVALID, "target: expected a 14-digit migration version");
    p->type = json_string_value(json_object_get(doc, "type"));
    p->on_failure = json_string_value(json_object_get(doc, "on_failure"));
    json_t *ttl = json_object_get(doc, "job_ttl_seconds");
    if (p->name == NULL || *p->name == '\0' || strlen(p->name) > 100)
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "name: expected a non-empty string of at most 100 characters");
    if (dir == NULL)
        return pgr_error_set(err, PGR_ERR_INVALID, "migrations: expected the migrations directory");
    if (realpath(dir, p->dir) == NULL)
        return pgr_error_set(err, PGR_ERR_INVALID, "migrations: directory \"%s\" does not exist",
                             dir);
    p->type = p->type != NULL ? p->type : "apply";
    if (strcmp(p->type, "apply") != 0 && strcmp(p->type, "rollback") != 0)
        return pgr_error_set(err, PGR_ERR_INVALID, "type: expected apply or rollback");
    p->on_failure = p->on_failure != NULL ? p->on_failure : "pause";
    if (strcmp(p->on_failure, "pause") != 0 && strcmp(p->on_failure, "abort") != 0 &&
        strcmp(p->on_failure, "rollback") != 0)
        return pgr_error_set(err, PGR_ERR_INVALID, "on_failure: expected pause, abort or rollback");
    if (ttl != NULL &&
        (!json_is_integer(ttl) || json_integer_value(ttl) < 60 || json_integer_value(ttl) > 604800))
        return pgr_error_set(err, PGR_ERR_INVALID, "job_ttl_seconds: expected 60 to 604800");
    p->ttl_seconds = ttl != NULL ? (int)json_integer_value(ttl) : 3600;
    return parse_options(json_object_get(doc, "options"), &p->options, err);
}

/* "releases": manifests (objects; a plan file's paths were read in by the loader). */
static pgr_code parse_releases(json_t *rels, coord_planfile *p, pgr_error *err)
{
    size_t n = json_array_size(rels);
    if (rels == NULL)
        return PGR_OK;
    if (!json_is_array(rels) || n > 16)
        return pgr_error_set(err, PGR_ERR_INVALID, "releases: expected up to 16 manifest files");
    p->releases = calloc(n > 0 ? n : 1, sizeof(*p->releases));
    if (p->releases == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rels, i);
        char *text = json_is_object(r) ? json_dumps(r, JSON_COMPACT) : NULL;
        pgr_error e;
        pgr_code rc = text != NULL ? pgr_release_parse(text, strlen(text), &p->releases[i], &e)
                                   : pgr_error_set(&e, PGR_ERR_INVALID, "expected a manifest");
        free(text);
        if (rc != PGR_OK)
            return pgr_error_set(err, PGR_ERR_INVALID, "releases[%zu]: %s", i, e.msg);
        p->release_count++;
    }
    return PGR_OK;
}

pgr_code coord_planfile_resolve(json_t *doc, PGconn *db, coord_planfile *p, pgr_error *err)
{
    fleet f;
    memset(&f, 0, sizeof(f));
    memset(p, 0, sizeof(*p));
    p->doc = doc;
    pgr_code rc = parse_top(doc, p, err);
    if (rc == PGR_OK)
        rc = parse_releases(json_object_get(doc, "releases"), p, err);
    if (rc == PGR_OK)
        rc = load_fleet(doc, db, &f, err);
    json_t *waves = json_object_get(doc, "waves");
    if (rc == PGR_OK && waves != NULL && (!json_is_array(waves) || json_array_size(waves) == 0))
        rc = pgr_error_set(err, PGR_ERR_INVALID, "waves: expected a non-empty array");
    size_t n = waves != NULL ? json_array_size(waves) : 1;
    p->waves = rc == PGR_OK ? calloc(n, sizeof(coord_planfile_wave)) : NULL;
    if (rc == PGR_OK && p->waves == NULL)
        rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == PGR_OK && waves != NULL && i < n; i++, p->wave_count++) {
        rc = parse_wave(json_array_get(waves, i), i, &f, &p->waves[i], err);
        for (size_t k = 0; rc == PGR_OK && k < i; k++) {
            if (strcmp(p->waves[k].name, p->waves[i].name) == 0)
                rc = pgr_error_set(err, PGR_ERR_INVALID,
                                   "waves[%zu].name: \"%s\" is also the name of waves[%zu]", i,
                                   p->waves[i].name, k);
        }
    }
    for (size_t i = 0; rc == PGR_OK && waves != NULL && i < f.count; i++) {
        if (f.wave[i] < 0)
            rc = pgr_error_set(
                err, PGR_ERR_INVALID,
                "waves: tenant \"%s\" is in no wave (end with a wave of percent 100)", f.ids[i]);
    }
    if (rc == PGR_OK && waves == NULL) {
        /* no waves: one wave of every tenant, all at once, every failure tolerated */
        coord_planfile_wave *w = &p->waves[0];
        p->wave_count = 1;
        w->name = "all";
        for (size_t i = 0; i < f.count; i++)
            take(&f, i, 0, w);
        w->max_parallel = (int)(f.count < 10000 ? f.count : 10000);
        w->max_failures = (int)f.count;
    }
    fleet_free(&f);
    return rc;
}

pgr_code coord_planfile_load(const char *path, PGconn *db, coord_planfile *p, pgr_error *err)
{
    return coord_planfile_load_releases(path, NULL, 0, db, p, err);
}

void coord_planfile_free(coord_planfile *p)
{
    for (size_t i = 0; p->waves != NULL && i < p->wave_count; i++) {
        for (size_t k = 0; k < p->waves[i].count; k++)
            free(p->waves[i].tenants[k]);
        free(p->waves[i].tenants);
    }
    free(p->waves);
    for (size_t i = 0; i < p->release_count; i++)
        pgr_release_free(p->releases[i]);
    free(p->releases);
    json_decref(p->doc);
    memset(p, 0, sizeof(*p));
}

pgr_code coord_planfile_check_gone(const coord_planfile *p, PGconn *db, pgr_error *err)
{
    json_t *list = json_object_get(p->doc, "tenants");
    char *ids = list != NULL ? json_dumps(list, JSON_COMPACT) : NULL;
    const char *params[] = {ids};
    PGresult *r = NULL;
    pgr_code rc = ids == NULL || db == NULL
                      ? PGR_OK
                      : pgr_pg_execp(db,
                                     "SELECT tenant_id FROM pgrollout_control.tenants WHERE "
                                     "gone_at IS NOT NULL AND tenant_id IN (SELECT "
                                     "jsonb_array_elements_text($1::jsonb)) ORDER BY tenant_id "
                                     "LIMIT 1",
                                     1, params, &r, err);
    if (rc == PGR_OK && r != NULL && PQntuples(r) == 1)
        rc = pgr_error_set(err, PGR_ERR_INVALID,
                           "tenants: \"%s\" is gone (its agent no longer finds its database: "
                           "pgrollout tenants list); take it out of the plan",
                           PQgetvalue(r, 0, 0));
    PQclear(r);
    free(ids);
    return rc;
}

/* A manifest file read into the plan: path as given, or relative to the plan file's directory. */
static pgr_code inline_release(json_t *list, size_t i, const char *path, const char *plan_path,
                               pgr_error *err)
{
    char full[4096];
    const char *slash = strrchr(plan_path, '/');
    if (path[0] != '/' && slash != NULL)
        snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - plan_path), plan_path, path);
    else
        snprintf(full, sizeof(full), "%s", path);
    pgr_release *r = NULL;
    pgr_error e;
    if (pgr_release_load(full, &r, &e) != PGR_OK)
        return pgr_error_set(err, PGR_ERR_INVALID, "releases[%zu]: %s", i, e.msg);
    char *text = pgr_release_text(r);
    json_t *obj = text != NULL ? json_loads(text, 0, NULL) : NULL;
    free(text);
    pgr_release_free(r);
    if (obj == NULL || json_array_set_new(list, i, obj) != 0)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    return PGR_OK;
}

pgr_code coord_planfile_load_releases(const char *path, const char *const *extra, size_t n,
                                      PGconn *db, coord_planfile *p, pgr_error *err)
{
    json_error_t je;
    memset(p, 0, sizeof(*p));
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL)
        return pgr_error_set(err, PGR_ERR_INVALID, "line %d: %s", je.line, je.text);
    json_t *list = json_object_get(doc, "releases");
    if (list == NULL && n > 0)
        json_object_set_new(doc, "releases", list = json_array());
    pgr_code rc = list != NULL && !json_is_array(list)
                      ? pgr_error_set(err, PGR_ERR_INVALID, "releases: expected an array of files")
                      : PGR_OK;
    for (size_t i = 0; rc == PGR_OK && i < n; i++) {
        /* --release FILE is the operator's path (from the working directory), not the plan's */
        char *abs = realpath(extra[i], NULL);
        rc = abs == NULL ? pgr_error_set(err, PGR_ERR_INVALID, "--release %s: not found", extra[i])
             : json_array_append_new(list, json_string(abs)) == 0
                 ? PGR_OK
                 : pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        free(abs);
    }
    for (size_t i = 0; rc == PGR_OK && i < json_array_size(list); i++) {
        const char *file = json_string_value(json_array_get(list, i));
        if (file != NULL)
            rc = inline_release(list, i, file, path, err);
    }
    if (rc != PGR_OK) {
        json_decref(doc);
        return rc;
    }
    return coord_planfile_resolve(doc, db, p, err);
}

/* Why no valid manifest of p releases migration m (bytes sha) for tenant (tags), or NULL. */
static const char *unreleased(const coord_planfile *p, const bool *valid, const pgr_migration *m,
                              const char *sha, const char *tenant, const char *tags)
{
    const char *why = "is in no valid release manifest (a target beyond the releases?)";
    for (size_t k = 0; k < p->release_count; k++) {
        const pgr_release_entry *e = pgr_release_find(p->releases[k], m->version);
        if (e == NULL || !valid[k])
            continue;
        if (strcmp(e->sha256, sha) != 0)
            why = "differs from the bytes its release manifest names";
        else if (tenant != NULL && !pgr_release_covers_tenant(p->releases[k], tenant, tags))
            why = "is released, but not for this tenant (scope)";
        else
            return NULL;
    }
    return why;
}

pgr_code coord_planfile_check_releases(const coord_planfile *p, const pgr_keyring *kr,
                                       int threshold, const uint8_t coord_pk[32], PGconn *db,
                                       pgr_error *err)
{
    for (size_t i = 0; i < kr->count; i++) {
        if (memcmp(kr->items[i].key.pk, coord_pk, 32) == 0)
            return pgr_error_set(err, PGR_ERR_CONFIG,
                                 "release.keyring holds the coordinator's own key %s: release "
                                 "keys must be others",
                                 kr->items[i].key.kid);
    }
    bool valid[16] = {false};
    pgr_error last;
    pgr_error_set(&last, PGR_ERR_INVALID,
                  "the plan carries no release manifest (\"releases\" "
                  "or --release)");
    for (size_t k = 0; k < p->release_count; k++)
        valid[k] =
            pgr_release_check(p->releases[k], kr, threshold, time(NULL), NULL, 0, &last) == PGR_OK;
    pgr_migration_set *set = NULL;
    pgr_code rc = pgr_migration_dir_load(p->dir, &set, err);
    bool rollback = strcmp(p->type, "rollback") == 0;
    for (size_t i = 0; rc == PGR_OK && i < set->count; i++) {
        const pgr_migration *m = set->items[i];
        /* a rollback plan without target rolls back to "0": every migration */
        bool above = p->target != NULL ? strcmp(m->version, p->target) > 0 : rollback;
        if (rollback != above)
            continue; /* not run by this rollout's jobs */
        char sha[65];
        pgr_release_file_sha256(m->text, m->text_len, sha);
        const char *why = unreleased(p, valid, m, sha, NULL, NULL);
        if (why != NULL) {
            bool any = false;
            for (size_t k = 0; k < p->release_count; k++)
                any = any || valid[k];
            rc = any ? pgr_error_set(err, PGR_ERR_INVALID, "releases: migration %s %s", m->version,
                                     why)
                     : pgr_error_set(err, PGR_ERR_INVALID, "releases: %s", last.msg);
        }
        for (size_t w = 0; rc == PGR_OK && w < p->wave_count; w++) {
            for (size_t t = 0; rc == PGR_OK && t < p->waves[w].count; t++) {
                const char *id = p->waves[w].tenants[t];
                why = unreleased(p, valid, m, sha, id, db_tags(db, id));
                if (why != NULL)
                    rc = pgr_error_set(err, PGR_ERR_INVALID,
                                       "releases: tenant %s (wave %s): migration %s %s", id,
                                       p->waves[w].name, m->version, why);
            }
        }
    }
    pgr_migration_set_free(set);
    return rc;
}
