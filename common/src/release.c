/*
 * release.c - release manifests (release.h): building, strict parsing, signing, checking.
 */
#include "pgr/release.h"
#include "pgr/buf.h"
#include "pgr/clock.h"
#include "pgr/crypto.h"
#include "pgr/envelope.h"
#include "pgr/file.h"
#include "pgr/migration.h"
#include "pgr/str.h"
#include "pgr/uuid.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_TYPE "pgrollout-release/v1"

void pgr_release_file_sha256(const char *bytes, size_t len, char out[65])
{
    pgr_crypto_sha256_hex(bytes, len, out);
}

void pgr_release_free(pgr_release *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->entry_count; i++)
        free(r->entries[i].name);
    free(r->entries);
    free(r->payload);
    free(r->scope_tenants);
    free(r->scope_tags);
    free(r);
}

static bool is_hex64(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* A tenant of a scope: an id, or a prefix ending in '*' (as keyrings' tenants=). */
static bool scope_tenant_valid(const char *t)
{
    size_t n = strlen(t);
    if (n > 1 && t[n - 1] == '*') {
        char prefix[129];
        if (n - 1 >= sizeof(prefix))
            return false;
        memcpy(prefix, t, n - 1);
        prefix[n - 1] = '\0';
        return pgr_str_is_tenant_id(prefix);
    }
    return pgr_str_is_tenant_id(t);
}

static bool tag_part_valid(const char *s)
{
    return s != NULL && *s != '\0' && strlen(s) <= 64 && strpbrk(s, ",: \t\n\r") == NULL;
}

/* Joins the scope's tenants (array) or tags (object) into the flat forms the matchers read. */
static const char *scope_parse(json_t *scope, pgr_release *r)
{
    json_t *all = json_object_get(scope, "all"), *ten = json_object_get(scope, "tenants");
    json_t *tags = json_object_get(scope, "tags");
    if (!json_is_object(scope) || json_object_size(scope) != 1)
        return "scope: expected exactly one of all, tenants, tags";
    if (all != NULL) {
        r->scope_all = json_is_true(all);
        return r->scope_all ? NULL : "scope.all: expected true";
    }
    pgr_buf b;
    pgr_buf_init(&b);
    size_t i;
    json_t *v;
    const char *k, *bad = NULL;
    if (ten != NULL) {
        if (!json_is_array(ten) || json_array_size(ten) == 0)
            return "scope.tenants: expected a non-empty array";
        json_array_foreach(ten, i, v)
        {
            if (!json_is_string(v) || !scope_tenant_valid(json_string_value(v)))
                bad = "scope.tenants: expected tenant ids or prefixes ending in *";
            else if (pgr_buf_appendf(&b, "%s%s", i > 0 ? "," : "", json_string_value(v)) != 0)
                bad = "out of memory";
        }
    } else if (tags != NULL) {
        if (!json_is_object(tags) || json_object_size(tags) == 0)
            return "scope.tags: expected a non-empty object";
        i = 0;
        json_object_foreach(tags, k, v)
        {
            if (!tag_part_valid(k) || !json_is_string(v) || !tag_part_valid(json_string_value(v)))
                bad = "scope.tags: expected key: value strings without ',', ':' or spaces";
            else if (pgr_buf_appendf(&b, "%s%s:%s", i++ > 0 ? "," : "", k, json_string_value(v)) !=
                     0)
                bad = "out of memory";
        }
    } else {
        return "scope: expected exactly one of all, tenants, tags";
    }
    if (bad != NULL) {
        pgr_buf_free(&b);
        return bad;
    }
    *(ten != NULL ? &r->scope_tenants : &r->scope_tags) = b.data;
    return NULL;
}

static const char *entries_parse(json_t *migs, pgr_release *r)
{
    size_t n = json_array_size(migs), i;
    json_t *m;
    if (!json_is_array(migs) || n == 0 || n > PGR_RELEASE_MAX_ENTRIES)
        return "migrations: expected 1 to 10000 entries";
    r->entries = calloc(n, sizeof(*r->entries));
    if (r->entries == NULL)
        return "out of memory";
    json_array_foreach(migs, i, m)
    {
        const char *v = json_string_value(json_object_get(m, "version"));
        const char *h = json_string_value(json_object_get(m, "sha256"));
        const char *name = json_string_value(json_object_get(m, "name"));
        if (!json_is_object(m) || json_object_size(m) != 3 || v == NULL || strlen(v) != 14 ||
            !pgr_migration_version_valid(v) || !is_hex64(h) || name == NULL || *name == '\0' ||
            strlen(name) > 200 ||
            strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(name))
            return "migrations[]: expected {\"version\": 14 digits, \"name\": a-z 0-9 _ -, "
                   "\"sha256\": 64 lowercase hex}";
        if (i > 0 && strcmp(v, r->entries[i - 1].version) <= 0)
            return "migrations[]: versions must ascend, each once";
        snprintf(r->entries[i].version, sizeof(r->entries[i].version), "%s", v);
        snprintf(r->entries[i].sha256, sizeof(r->entries[i].sha256), "%s", h);
        r->entries[i].name = strdup(name);
        r->entry_count++;
        if (r->entries[i].name == NULL)
            return "out of memory";
    }
    return NULL;
}

static const char *time_member(json_t *doc, const char *key, time_t *out)
{
    const char *s = json_string_value(json_object_get(doc, key));
    return s != NULL && pgr_clock_parse_utc(s, out) == PGR_OK ? NULL : key;
}

/* The payload's members, each checked (PROTOCOL 14.1). */
static const char *payload_parse(const char *buf, size_t len, pgr_release *r)
{
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    const char *bad = NULL, *id = json_string_value(json_object_get(doc, "release_id"));
    const char *from = json_string_value(json_object_get(doc, "from"));
    const char *to = json_string_value(json_object_get(doc, "to"));
    const char *type = json_string_value(json_object_get(doc, "type"));
    if (!json_is_object(doc) || json_object_size(doc) != 8)
        bad = "payload: expected an object of type, release_id, created_at, expires_at, from, "
              "to, scope, migrations";
    else if (type == NULL || strcmp(type, PAYLOAD_TYPE) != 0)
        bad = "payload.type: expected \"" PAYLOAD_TYPE "\"";
    else if (id == NULL || !pgr_uuid_valid(id))
        bad = "payload.release_id: expected a UUID";
    else if (time_member(doc, "created_at", &r->created_at) != NULL ||
             time_member(doc, "expires_at", &r->expires_at) != NULL)
        bad = "payload.created_at, expires_at: expected UTC times YYYY-MM-DDTHH:MM:SSZ";
    else if (r->expires_at <= r->created_at)
        bad = "payload.expires_at: must be after created_at";
    else if (from == NULL || to == NULL || !pgr_migration_version_valid(from) ||
             !pgr_migration_version_valid(to) || strcmp(to, "0") == 0 ||
             (strcmp(from, "0") != 0 && strcmp(from, to) >= 0))
        bad = "payload.from, to: expected versions with from below to (from \"0\": the start)";
    if (bad == NULL)
        bad = scope_parse(json_object_get(doc, "scope"), r);
    if (bad == NULL)
        bad = entries_parse(json_object_get(doc, "migrations"), r);
    for (size_t i = 0; bad == NULL && i < r->entry_count; i++) {
        if ((strcmp(from, "0") != 0 && strcmp(r->entries[i].version, from) <= 0) ||
            strcmp(r->entries[i].version, to) > 0)
            bad = "migrations[]: a version outside (from, to]";
    }
    if (bad == NULL && strcmp(r->entries[r->entry_count - 1].version, to) != 0)
        bad = "payload.to: must be the last migration's version";
    if (bad == NULL) {
        snprintf(r->release_id, sizeof(r->release_id), "%s", id);
        snprintf(r->from, sizeof(r->from), "%s", from);
        snprintf(r->to, sizeof(r->to), "%s", to);
    }
    json_decref(doc);
    return bad;
}

static const char *sigs_parse(json_t *sigs, pgr_release *r)
{
    size_t i;
    json_t *s;
    if (!json_is_array(sigs) || json_array_size(sigs) > PGR_RELEASE_MAX_SIGS)
        return "signatures: expected an array of at most 16";
    json_array_foreach(sigs, i, s)
    {
        const char *kid = json_string_value(json_object_get(s, "kid"));
        const char *b64 = json_string_value(json_object_get(s, "sig"));
        size_t n = 0;
        uint8_t tmp[67];
        if (!json_is_object(s) || json_object_size(s) != 2 || kid == NULL || strlen(kid) != 16 ||
            strspn(kid, "0123456789abcdef") != 16 || b64 == NULL ||
            pgr_crypto_hex_decode(kid, tmp, 8) != PGR_OK ||
            pgr_crypto_base64_decode(b64, strlen(b64), tmp, sizeof(tmp), &n) != PGR_OK || n != 64)
            return "signatures[]: expected {\"kid\": 16 hex digits, \"sig\": 64 bytes of base64}";
        snprintf(r->sigs[i].kid, sizeof(r->sigs[i].kid), "%s", kid);
        memcpy(r->sigs[i].sig, tmp, 64);
        r->sig_count++;
    }
    return NULL;
}

pgr_code pgr_release_parse(const char *buf, size_t len, pgr_release **out, pgr_error *err)
{
    if (len > PGR_RELEASE_MAX_BYTES)
        return pgr_error_set(err, PGR_ERR_INVALID, "larger than %d bytes", PGR_RELEASE_MAX_BYTES);
    pgr_release *r = calloc(1, sizeof(*r));
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    const char *b64 = json_string_value(json_object_get(doc, "payload"));
    json_t *v = json_object_get(doc, "v");
    const char *bad = r == NULL ? "out of memory" : NULL;
    if (bad == NULL && (!json_is_object(doc) || json_object_size(doc) != 3 || !json_is_integer(v) ||
                        json_integer_value(v) != 1 || b64 == NULL))
        bad = "expected {\"v\": 1, \"payload\": base64, \"signatures\": [...]}";
    size_t cap = b64 != NULL ? strlen(b64) / 4 * 3 + 3 : 0;
    if (bad == NULL && (r->payload = malloc(cap + 1)) == NULL)
        bad = "out of memory";
    if (bad == NULL && (pgr_crypto_base64_decode(b64, strlen(b64), (uint8_t *)r->payload, cap,
                                                 &r->payload_len) != PGR_OK ||
                        r->payload_len == 0))
        bad = "payload: not base64";
    if (bad == NULL) {
        r->payload[r->payload_len] = '\0';
        bad = payload_parse(r->payload, r->payload_len, r);
    }
    if (bad == NULL)
        bad = sigs_parse(json_object_get(doc, "signatures"), r);
    json_decref(doc);
    if (bad != NULL) {
        pgr_release_free(r);
        return pgr_error_set(err, PGR_ERR_INVALID, "release manifest: %s", bad);
    }
    pgr_crypto_sha256_hex(r->payload, r->payload_len, r->digest);
    *out = r;
    return PGR_OK;
}

pgr_code pgr_release_load(const char *path, pgr_release **out, pgr_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (pgr_file_read(path, PGR_RELEASE_MAX_BYTES, &buf, &len, err) != PGR_OK)
        return err != NULL ? err->code : PGR_ERR_IO;
    pgr_code rc = pgr_release_parse(buf, len, out, err);
    free(buf);
    if (rc != PGR_OK && err != NULL) {
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        pgr_str_cut(err->msg, sizeof(err->msg), "%s: %s", path, msg);
    }
    return rc;
}

static json_t *scope_json(const pgr_release_spec *s)
{
    if (s->scope_all)
        return json_pack("{s:b}", "all", 1);
    const char *list = s->scope_tenants != NULL ? s->scope_tenants : s->scope_tags;
    json_t *out = s->scope_tenants != NULL ? json_array() : json_object();
    for (const char *p = list; out != NULL && p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char item[256];
        snprintf(item, sizeof(item), "%.*s", (int)n, p);
        char *colon = strchr(item, ':');
        if (s->scope_tenants != NULL)
            json_array_append_new(out, json_string(item));
        else if (colon != NULL && (*colon = '\0') == '\0')
            json_object_set_new(out, item, json_string(colon + 1));
        p = comma != NULL ? comma + 1 : NULL;
    }
    return json_pack("{s:o}", s->scope_tenants != NULL ? "tenants" : "tags", out);
}

pgr_code pgr_release_new(const pgr_release_spec *spec, pgr_release **out, pgr_error *err)
{
    char id[37], created[32], expires[32];
    if (spec->release_id != NULL)
        snprintf(id, sizeof(id), "%s", spec->release_id);
    else
        pgr_uuid_v4(id);
    pgr_clock_format_utc(spec->created_at, created);
    pgr_clock_format_utc(spec->expires_at, expires);
    json_t *migs = json_array();
    for (size_t i = 0; migs != NULL && i < spec->entry_count; i++)
        json_array_append_new(
            migs, json_pack("{s:s, s:s, s:s}", "version", spec->entries[i].version, "name",
                            spec->entries[i].name, "sha256", spec->entries[i].sha256));
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "type", PAYLOAD_TYPE, "release_id",
                  id, "created_at", created, "expires_at", expires, "from", spec->from, "to",
                  spec->to, "scope", scope_json(spec), "migrations", migs);
    char *payload = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (payload == NULL)
        return pgr_error_set(err, PGR_ERR_INVALID, "release manifest: could not build it");
    /* through the parser: a manifest this writes is one every reader accepts */
    char *b64 = pgr_crypto_base64_encode((const uint8_t *)payload, strlen(payload));
    pgr_buf b;
    pgr_buf_init(&b);
    pgr_code rc = b64 != NULL
                      ? pgr_buf_appendf(&b, "{\"v\":1,\"payload\":\"%s\",\"signatures\":[]}", b64)
                      : PGR_ERR_NOMEM;
    free(payload);
    free(b64);
    if (rc == PGR_OK)
        rc = pgr_release_parse(b.data, b.len, out, err);
    else
        pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    pgr_buf_free(&b);
    return rc;
}

pgr_code pgr_release_sign(pgr_release *r, const pgr_keypair *kp, pgr_error *err)
{
    for (size_t i = 0; i < r->sig_count; i++) {
        if (strcmp(r->sigs[i].kid, kp->kid) == 0)
            return pgr_error_set(err, PGR_ERR_INVALID,
                                 "key %s signed this manifest already: a second signature must "
                                 "come from another key",
                                 kp->kid);
    }
    if (r->sig_count >= PGR_RELEASE_MAX_SIGS)
        return pgr_error_set(err, PGR_ERR_INVALID, "the manifest has %d signatures already",
                             PGR_RELEASE_MAX_SIGS);
    pgr_release_sig *s = &r->sigs[r->sig_count];
    if (!pgr_envelope_sign_detached(PGR_DOMAIN_RELEASE, kp, r->payload, r->payload_len, s->sig))
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    snprintf(s->kid, sizeof(s->kid), "%s", kp->kid);
    r->sig_count++;
    return PGR_OK;
}

char *pgr_release_text(const pgr_release *r)
{
    char *b64 = pgr_crypto_base64_encode((const uint8_t *)r->payload, r->payload_len);
    pgr_buf b;
    pgr_buf_init(&b);
    bool ok = b64 != NULL &&
              pgr_buf_appendf(&b, "{\"v\":1,\"payload\":\"%s\",\"signatures\":[", b64) == PGR_OK;
    for (size_t i = 0; ok && i < r->sig_count; i++) {
        char *s64 = pgr_crypto_base64_encode(r->sigs[i].sig, 64);
        ok = s64 != NULL && pgr_buf_appendf(&b, "%s{\"kid\":\"%s\",\"sig\":\"%s\"}",
                                            i > 0 ? "," : "", r->sigs[i].kid, s64) == PGR_OK;
        free(s64);
    }
    ok = ok && pgr_buf_appendf(&b, "]}\n") == PGR_OK;
    free(b64);
    if (!ok)
        pgr_buf_free(&b);
    return ok ? b.data : NULL;
}

pgr_code pgr_release_check(const pgr_release *r, const pgr_keyring *kr, int threshold, time_t now,
                           char *kids, size_t kidslen, pgr_error *err)
{
    int good = 0;
    char list[PGR_RELEASE_MAX_SIGS * PGR_KID_LEN + 1] = "";
    for (size_t i = 0; i < r->sig_count; i++) {
        const pgr_keyring_entry *e = pgr_keyring_find(kr, r->sigs[i].kid);
        /* a kid counts once, and only a signature that verifies counts (a bogus entry of a kid
         * before its real signature hides nothing) */
        bool dup = strstr(list, r->sigs[i].kid) != NULL;
        if (dup || e == NULL || e->revoked ||
            !pgr_envelope_verify_detached(PGR_DOMAIN_RELEASE, e->key.pk, r->payload, r->payload_len,
                                          r->sigs[i].sig))
            continue;
        good++;
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", used > 0 ? "," : "", r->sigs[i].kid);
    }
    if (kids != NULL)
        snprintf(kids, kidslen, "%s", list);
    if (now >= r->expires_at) {
        char at[32];
        pgr_clock_format_utc(r->expires_at, at);
        return pgr_error_set(err, PGR_ERR_INVALID, "release %s expired at %s", r->release_id, at);
    }
    if (good < threshold)
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "release %s: %d valid signature(s) of distinct trusted release keys, "
                             "%d required",
                             r->release_id, good, threshold);
    return PGR_OK;
}

static bool tags_hold(const char *have, const char *want)
{
    for (const char *p = want; p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        bool found = false;
        for (const char *q = have; q != NULL && *q != '\0' && !found;) {
            const char *c2 = strchr(q, ',');
            size_t m = c2 != NULL ? (size_t)(c2 - q) : strlen(q);
            found = m == n && strncmp(p, q, n) == 0;
            q = c2 != NULL ? c2 + 1 : NULL;
        }
        if (!found)
            return false;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return true;
}

bool pgr_release_covers_tenant(const pgr_release *r, const char *tenant, const char *tags)
{
    if (r->scope_all)
        return true;
    if (r->scope_tenants != NULL) {
        pgr_keyring_entry scope = {.tenants = r->scope_tenants};
        return pgr_keyring_allows_tenant(&scope, tenant);
    }
    return tags != NULL && tags_hold(tags, r->scope_tags);
}

const pgr_release_entry *pgr_release_find(const pgr_release *r, const char *version)
{
    for (size_t i = 0; i < r->entry_count; i++) {
        if (strcmp(r->entries[i].version, version) == 0)
            return &r->entries[i];
    }
    return NULL;
}
