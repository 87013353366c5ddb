/*
 * cmd_release.c - `pgrollout release sign | cosign | verify | show`: release manifests
 * (pgr/release.h, docs/ROLLOUTS.md "Releases: two people"), offline: no Kafka, no database.
 */
#include "cmd_release.h"

#include "pgr/clock.h"
#include "pgr/crypto.h"
#include "pgr/exitcode.h"
#include "pgr/keyring.h"
#include "pgr/keys.h"
#include "pgr/migration.h"
#include "pgr/parse.h"
#include "pgr/release.h"
#include "pgr/term.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: pgrollout release sign --key FILE --migrations DIR [--from V] --to V\n"
    "                              [--tenants ID,PREFIX*,... | --tag KEY:VALUE ...]\n"
    "                              --expires DURATION --out FILE\n"
    "       pgrollout release cosign --key FILE MANIFEST\n"
    "       pgrollout release verify MANIFEST --keyring FILE [--threshold K]\n"
    "                              [--migrations DIR]\n"
    "       pgrollout release show MANIFEST\n\n"
    "A release manifest names the migration files (by the SHA-256 of their exact bytes) that\n"
    "may be applied, to which tenants (all, listed, or by tags) and until when. Release keys\n"
    "sign it apart from the coordinator: agents with [release] threshold = K apply only what\n"
    "K distinct release keys signed. All of it works offline.\n\n"
    "  sign       write a new manifest of the migrations in (--from, --to] of DIR, signed by\n"
    "             --key; --expires like 7d, 12h, 90m (at most 366d); --from defaults to 0\n"
    "  cosign     add a second (third...) signature to MANIFEST, in place\n"
    "  verify     check MANIFEST: parse, expiry, at least K (default 2) valid signatures of\n"
    "             distinct keys of the keyring; with --migrations, that DIR holds exactly\n"
    "             those bytes. Exit 0 valid, 1 not\n"
    "  show       print MANIFEST for review\n\n";

typedef struct opts {
    const char *key, *migrations, *from, *to, *tenants, *expires, *out, *keyring;
    char tags[512];
    int threshold;
} opts;

static int fail(const char *cmd, int code, const char *msg)
{
    fprintf(stderr, "pgrollout release %s: %s\n", cmd, msg);
    return code;
}

/* Whether the key of KEY:VALUE is among the tags given already ("k:v,k:v"). */
static bool tag_key_repeated(const char *tags, const char *kv)
{
    const char *colon = strchr(kv, ':');
    size_t n = colon != NULL ? (size_t)(colon - kv) : strlen(kv);
    for (const char *p = tags; *p != '\0';) {
        if (strncmp(p, kv, n) == 0 && p[n] == ':')
            return true;
        const char *comma = strchr(p, ',');
        p = comma != NULL ? comma + 1 : p + strlen(p);
    }
    return false;
}

static int parse_opts(int argc, char **argv, const char *cmd, opts *o, int *positional)
{
    static const struct option lo[] = {
        {"key", required_argument, NULL, 'k'},     {"migrations", required_argument, NULL, 'm'},
        {"from", required_argument, NULL, 'f'},    {"to", required_argument, NULL, 't'},
        {"tenants", required_argument, NULL, 'T'}, {"tag", required_argument, NULL, 'g'},
        {"expires", required_argument, NULL, 'e'}, {"out", required_argument, NULL, 'o'},
        {"keyring", required_argument, NULL, 'r'}, {"threshold", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int c;
    memset(o, 0, sizeof(*o));
    o->threshold = 2;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int64_t n = 0;
        size_t used = strlen(o->tags);
        switch (c) {
        case 'k':
            o->key = optarg;
            break;
        case 'm':
            o->migrations = optarg;
            break;
        case 'f':
            o->from = optarg;
            break;
        case 't':
            o->to = optarg;
            break;
        case 'T':
            o->tenants = optarg;
            break;
        case 'e':
            o->expires = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'r':
            o->keyring = optarg;
            break;
        case 'g':
            if (tag_key_repeated(o->tags, optarg))
                return fail(cmd, PGR_EXIT_USAGE, "--tag: a key given twice (one value per key)");
            if (strchr(optarg, ':') == NULL || strchr(optarg, ',') != NULL ||
                (size_t)snprintf(o->tags + used, sizeof(o->tags) - used, "%s%s",
                                 used > 0 ? "," : "", optarg) >= sizeof(o->tags) - used)
                return fail(cmd, PGR_EXIT_USAGE, "--tag: expected KEY:VALUE");
            break;
        case 'n':
            if (pgr_parse_int64(optarg, 1, PGR_RELEASE_MAX_SIGS, &n, NULL) != PGR_OK)
                return fail(cmd, PGR_EXIT_USAGE, "--threshold: expected 1 to 16");
            o->threshold = (int)n;
            break;
        case 'h':
            fputs(USAGE, stdout);
            pgr_exitcode_print_table(stdout);
            return -1;
        default:
            fprintf(stderr, "pgrollout release %s: unknown or incomplete option \"%s\"\n%s", cmd,
                    argv[optind - 1], USAGE);
            return PGR_EXIT_USAGE;
        }
    }
    *positional = optind;
    return 0;
}

/* "7d", "12h", "90m", "3600s" -> seconds (1 s to 366 days). */
static bool duration_s(const char *s, long long *out)
{
    char *end = NULL;
    long long n = strtoll(s, &end, 10);
    long long unit = end == NULL             ? 0
                     : strcmp(end, "d") == 0 ? 86400
                     : strcmp(end, "h") == 0 ? 3600
                     : strcmp(end, "m") == 0 ? 60
                     : strcmp(end, "s") == 0 ? 1
                                             : 0;
    *out = n * unit;
    return end != s && unit > 0 && n > 0 && n <= 366LL * 86400 && *out <= 366LL * 86400;
}

/* Writes text to path through a new file beside it and rename (a reader never sees half a
 * manifest); excl: refuse an existing path. */
static pgr_code write_file(const char *path, const char *text, bool excl, pgr_error *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    if (excl && access(path, F_OK) == 0)
        return pgr_error_set(err, PGR_ERR_EXISTS, "%s exists: not overwritten", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return pgr_error_set(err, PGR_ERR_IO, "%s: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (ok && excl && link(tmp, path) != 0)
        ok = false;
    else if (ok && !excl && rename(tmp, path) != 0)
        ok = false;
    int saved = errno;
    unlink(tmp); /* after link (excl) it was the second name; after rename it is gone */
    return ok ? PGR_OK : pgr_error_set(err, PGR_ERR_IO, "%s: %s", path, strerror(saved));
}

static pgr_code load_key(const char *path, pgr_keypair *kp, pgr_error *err)
{
    pgr_code rc = pgr_crypto_init(err);
    return rc == PGR_OK ? pgr_keys_load_secret(path, kp, err) : rc;
}

/* The entries of the migrations in (from, to] of dir. */
static pgr_code entries_of(const opts *o, pgr_release_entry **out, size_t *n, pgr_error *err)
{
    pgr_migration_set *set = NULL;
    const char *from = o->from != NULL ? o->from : "0";
    pgr_code rc = pgr_migration_dir_load(o->migrations, &set, err);
    if (rc != PGR_OK)
        return rc;
    *out = calloc(set->count > 0 ? set->count : 1, sizeof(**out));
    *n = 0;
    bool to_found = false;
    for (size_t i = 0; *out != NULL && i < set->count; i++) {
        const pgr_migration *m = set->items[i];
        if ((strcmp(from, "0") != 0 && strcmp(m->version, from) <= 0) ||
            strcmp(m->version, o->to) > 0)
            continue;
        pgr_release_entry *e = &(*out)[(*n)++];
        snprintf(e->version, sizeof(e->version), "%s", m->version);
        pgr_release_file_sha256(m->text, m->text_len, e->sha256);
        e->name = strdup(m->name);
        to_found = to_found || strcmp(m->version, o->to) == 0;
    }
    pgr_migration_set_free(set);
    if (*out == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    if (!to_found)
        return pgr_error_set(err, PGR_ERR_INVALID, "--to %s: no migration of %s has that version",
                             o->to, o->migrations);
    return PGR_OK;
}

static void entries_free(pgr_release_entry *e, size_t n)
{
    for (size_t i = 0; e != NULL && i < n; i++)
        free(e[i].name);
    free(e);
}

static int cmd_sign(int argc, char **argv)
{
    opts o;
    int pos = 0, rc = parse_opts(argc, argv, "sign", &o, &pos);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    long long secs = 0;
    if (o.key == NULL || o.migrations == NULL || o.to == NULL || o.expires == NULL ||
        o.out == NULL || pos != argc)
        return fail("sign", PGR_EXIT_USAGE,
                    "--key, --migrations, --to, --expires and --out are required");
    if (!duration_s(o.expires, &secs))
        return fail("sign", PGR_EXIT_USAGE, "--expires: expected 7d, 12h, 90m or 3600s (<= 366d)");
    if (o.tenants != NULL && o.tags[0] != '\0')
        return fail("sign", PGR_EXIT_USAGE, "--tenants and --tag exclude each other");
    pgr_error err;
    pgr_keypair kp;
    pgr_release_entry *entries = NULL;
    size_t n = 0;
    pgr_release *r = NULL;
    pgr_code c = load_key(o.key, &kp, &err);
    if (c == PGR_OK)
        c = entries_of(&o, &entries, &n, &err);
    time_t now = time(NULL);
    pgr_release_spec spec = {NULL,
                             now,
                             now + (time_t)secs,
                             o.from != NULL ? o.from : "0",
                             o.to,
                             o.tenants == NULL && o.tags[0] == '\0',
                             o.tenants,
                             o.tags[0] != '\0' ? o.tags : NULL,
                             entries,
                             n};
    if (c == PGR_OK)
        c = pgr_release_new(&spec, &r, &err);
    if (c == PGR_OK)
        c = pgr_release_sign(r, &kp, &err);
    char *text = c == PGR_OK ? pgr_release_text(r) : NULL;
    if (c == PGR_OK)
        c = text != NULL ? write_file(o.out, text, true, &err)
                         : pgr_error_set(&err, PGR_ERR_NOMEM, "out of memory");
    if (c == PGR_OK)
        printf("wrote %s: release %s, %zu migration(s) up to %s, signed by %s (1 signature)\n",
               o.out, r->release_id, r->entry_count, r->to, kp.kid);
    sodium_memzero(kp.sk, sizeof(kp.sk));
    free(text);
    entries_free(entries, n);
    pgr_release_free(r);
    if (c != PGR_OK)
        return fail("sign",
                    c == PGR_ERR_INVALID || c == PGR_ERR_EXISTS ? PGR_EXIT_USAGE : PGR_EXIT_FAIL,
                    err.msg);
    return PGR_EXIT_OK;
}

static int cmd_cosign(int argc, char **argv)
{
    opts o;
    int pos = 0, rc = parse_opts(argc, argv, "cosign", &o, &pos);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    if (o.key == NULL || pos != argc - 1)
        return fail("cosign", PGR_EXIT_USAGE, "--key FILE and one MANIFEST are required");
    pgr_error err;
    pgr_keypair kp;
    pgr_release *r = NULL;
    char *text = NULL;
    pgr_code c = load_key(o.key, &kp, &err);
    if (c == PGR_OK)
        c = pgr_release_load(argv[pos], &r, &err);
    if (c == PGR_OK)
        c = pgr_release_sign(r, &kp, &err);
    if (c == PGR_OK && (text = pgr_release_text(r)) == NULL)
        c = pgr_error_set(&err, PGR_ERR_NOMEM, "out of memory");
    if (c == PGR_OK)
        c = write_file(argv[pos], text, false, &err);
    if (c == PGR_OK)
        printf("%s: release %s signed by %s (%zu signatures)\n", argv[pos], r->release_id, kp.kid,
               r->sig_count);
    sodium_memzero(kp.sk, sizeof(kp.sk));
    free(text);
    pgr_release_free(r);
    return c == PGR_OK
               ? PGR_EXIT_OK
               : fail("cosign", c == PGR_ERR_INVALID ? PGR_EXIT_USAGE : PGR_EXIT_FAIL, err.msg);
}

/* With --migrations: every entry's file is in DIR with exactly those bytes. */
static pgr_code files_match(const pgr_release *r, const char *dir, pgr_error *err)
{
    pgr_migration_set *set = NULL;
    pgr_code rc = pgr_migration_dir_load(dir, &set, err);
    for (size_t i = 0; rc == PGR_OK && i < r->entry_count; i++) {
        const pgr_migration *m = pgr_migration_set_find(set, r->entries[i].version);
        char h[65] = "";
        if (m != NULL)
            pgr_release_file_sha256(m->text, m->text_len, h);
        if (m == NULL || strcmp(h, r->entries[i].sha256) != 0)
            rc = pgr_error_set(err, PGR_ERR_INVALID, "migration %s: %s", r->entries[i].version,
                               m == NULL ? "not in the directory" : "its bytes differ");
    }
    pgr_migration_set_free(set);
    return rc;
}

static int cmd_verify(int argc, char **argv)
{
    opts o;
    int pos = 0, rc = parse_opts(argc, argv, "verify", &o, &pos);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    if (o.keyring == NULL || pos != argc - 1)
        return fail("verify", PGR_EXIT_USAGE, "--keyring FILE and one MANIFEST are required");
    pgr_error err;
    pgr_keyring *kr = NULL;
    pgr_release *r = NULL;
    char kids[512] = "";
    pgr_code c = pgr_crypto_init(&err);
    if (c == PGR_OK)
        c = pgr_keyring_load(o.keyring, &kr, &err);
    if (c != PGR_OK) {
        fail("verify", PGR_EXIT_USAGE, err.msg);
        return PGR_EXIT_USAGE;
    }
    c = pgr_release_load(argv[pos], &r, &err);
    if (c == PGR_OK)
        c = pgr_release_check(r, kr, o.threshold, time(NULL), kids, sizeof(kids), &err);
    if (c == PGR_OK && o.migrations != NULL)
        c = files_match(r, o.migrations, &err);
    if (c == PGR_OK)
        printf("%s: valid: release %s, signed by %s (%d required)\n", argv[pos], r->release_id,
               kids, o.threshold);
    pgr_release_free(r);
    pgr_keyring_free(kr);
    return c == PGR_OK ? PGR_EXIT_OK : fail("verify", PGR_EXIT_FAIL, err.msg);
}

static int cmd_show(int argc, char **argv)
{
    opts o;
    int pos = 0, rc = parse_opts(argc, argv, "show", &o, &pos);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    if (pos != argc - 1)
        return fail("show", PGR_EXIT_USAGE, "one MANIFEST is required");
    pgr_error err;
    pgr_release *r = NULL;
    if (pgr_release_load(argv[pos], &r, &err) != PGR_OK)
        return fail("show", PGR_EXIT_FAIL, err.msg);
    char created[32], expires[32];
    pgr_clock_format_utc(r->created_at, created);
    pgr_clock_format_utc(r->expires_at, expires);
    /* every value through the terminal escaping: a manifest is input from someone else, and a
     * reviewer must see what it says, not what control bytes in it draw */
    const char *kind = r->scope_all               ? "all tenants"
                       : r->scope_tenants != NULL ? "tenants "
                                                  : "tags ";
    const char *what = r->scope_all               ? ""
                       : r->scope_tenants != NULL ? r->scope_tenants
                                                  : r->scope_tags;
    pgr_term_printf(stdout, "release     %s", r->release_id);
    pgr_term_printf(stdout, "digest      %s", r->digest);
    pgr_term_printf(stdout, "created     %s", created);
    pgr_term_printf(stdout, "expires     %s", expires);
    pgr_term_printf(stdout, "versions    after %s up to %s", r->from, r->to);
    pgr_term_printf(stdout, "scope       %s%s", kind, what);
    pgr_term_printf(stdout, "migrations  %zu", r->entry_count);
    for (size_t i = 0; i < r->entry_count; i++)
        pgr_term_printf(stdout, "  %s  %s  %s", r->entries[i].version, r->entries[i].sha256,
                        r->entries[i].name);
    pgr_term_printf(stdout, "signatures  %zu (not checked here: pgrollout release verify)",
                    r->sig_count);
    for (size_t i = 0; i < r->sig_count; i++)
        pgr_term_printf(stdout, "  %s", r->sigs[i].kid);
    pgr_release_free(r);
    return PGR_EXIT_OK;
}

int coord_cmd_release_main(int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : "";
    if (strcmp(sub, "sign") == 0)
        return cmd_sign(argc - 1, argv + 1);
    if (strcmp(sub, "cosign") == 0)
        return cmd_cosign(argc - 1, argv + 1);
    if (strcmp(sub, "verify") == 0)
        return cmd_verify(argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0)
        return cmd_show(argc - 1, argv + 1);
    bool help = strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0;
    fputs(USAGE, help ? stdout : stderr);
    if (help)
        pgr_exitcode_print_table(stdout);
    return help ? PGR_EXIT_OK : PGR_EXIT_USAGE;
}
