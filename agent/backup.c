/*
 * backup.c - optional pre-migration backup: pg_dump -Fc of the tenant database into a new
 * file of mode 0600, verified with pg_restore --list, its size and SHA-256 in the audit trail.
 */
#include "audit.h"
#include "backup.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/buf.h"
#include "pgr/dsn.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* In the child only: the connection parameters of a connection-string dsn as PG* environment
 * variables, so that no password appears on a command line (readable by every local user in
 * /proc). A bare database name has none: dbname_option names it. */
static void export_dsn(const char *dsn)
{
    PQconninfoOption *opts =
        dsn != NULL && pgr_dsn_is_conninfo(dsn) ? PQconninfoParse(dsn, NULL) : NULL;
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (o->val != NULL && o->envvar != NULL)
            setenv(o->envvar, o->val, 1);
    }
    PQconninfoFree(opts);
}

/* The database the agent itself connects to for dsn: the dbname of a connection string, or
 * the bare name; NULL when the dsn names none (libpq's defaults then apply to both). */
static char *dsn_dbname(const char *dsn)
{
    if (dsn == NULL || *dsn == '\0')
        return NULL;
    if (!pgr_dsn_is_conninfo(dsn))
        return strdup(dsn);
    char *name = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL && *o->val != '\0')
            name = strdup(o->val);
    }
    PQconninfoFree(opts);
    return name;
}

/* "--dbname=dbname='NAME'" for pg_dump: a connection string holding only the quoted database
 * name, so that pg_dump dumps the tenant's database whatever the DSN's form (a bare name is
 * otherwise ignored and PGDATABASE or the user's database dumped) and the name cannot be read
 * as options. Holds no secret. *out is NULL when the dsn names no database. */
static pgr_code dbname_option(const char *dsn, char **out, pgr_error *err)
{
    pgr_buf b;
    char *name = dsn_dbname(dsn);
    *out = NULL;
    if (name == NULL)
        return PGR_OK;
    pgr_buf_init(&b);
    bool ok = pgr_buf_append(&b, "--dbname=dbname='", 17) == PGR_OK;
    for (const char *p = name; ok && *p != '\0'; p++) {
        if (*p == '\'' || *p == '\\')
            ok = pgr_buf_append(&b, "\\", 1) == PGR_OK;
        ok = ok && pgr_buf_append(&b, p, 1) == PGR_OK;
    }
    ok = ok && pgr_buf_append(&b, "'", 1) == PGR_OK;
    free(name);
    if (!ok) {
        pgr_buf_free(&b);
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    }
    *out = b.data;
    return PGR_OK;
}

/* Output of a child kept to classify its failure (never shown: it may name rows or hosts). */
typedef struct child_out {
    char text[4096];
    int signal; /* the signal that ended the child, or 0 */
} child_out;

/* Reads the child's stderr (the first sizeof(text) - 1 bytes; the rest is drained). */
static void read_stderr(int fd, child_out *co)
{
    size_t have = 0;
    char buf[1024];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take =
            (size_t)n < sizeof(co->text) - 1 - have ? (size_t)n : sizeof(co->text) - 1 - have;
        memcpy(co->text + have, buf, take);
        have += take;
    }
    co->text[have] = '\0';
    close(fd);
}

/* Runs argv (no shell), stdout to /dev/null, stderr into co (or /dev/null when co is NULL);
 * returns the exit status, or -1 when it could not run or was ended by a signal. */
static int run_quiet(char *const argv[], const char *dsn, child_out *co)
{
    int fds[2] = {-1, -1};
    if (co != NULL && pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        if (co != NULL) {
            close(fds[0]);
            close(fds[1]);
        }
        return -1;
    }
    if (pid == 0) {
        export_dsn(dsn);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, STDOUT_FILENO);
            dup2(co != NULL ? fds[1] : devnull, STDERR_FILENO);
        }
        umask(077); /* the dump holds PHI: never readable by others, even for a moment */
        execvp(argv[0], argv);
        _exit(127);
    }
    if (co != NULL) {
        close(fds[1]);
        read_stderr(fds[0], co);
        co->signal = 0;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (co != NULL && WIFSIGNALED(st))
        co->signal = WTERMSIG(st);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Why pg_dump failed, in our words: its own text is never copied into an error or the audit
 * trail (it can quote a host, a role or, in a failed COPY, row data). */
static const char *dump_failure_reason(const child_out *co)
{
    static const struct {
        const char *needle, *reason;
    } known[] = {
        {"No space left on device", "no space left on the backup device"},
        {"Disk quota exceeded", "disk quota of the backup directory exceeded"},
        {"File too large", "the file size limit was reached"},
        {"Permission denied", "permission denied"},
        {"terminating connection", "its database session was terminated"},
        {"server closed the connection", "its database connection was lost"},
        {"could not connect", "it could not connect to the database"},
        {"connection to server", "its database connection failed"},
        {"could not obtain lock", "it could not lock a table"},
    };
    if (co->signal == SIGXFSZ)
        return "the file size limit was reached";
    if (co->signal != 0)
        return "it was killed by a signal";
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strstr(co->text, known[i].needle) != NULL)
            return known[i].reason;
    }
    return "see the agent host's pg_dump for details";
}

static pgr_code file_sha256(const char *path, char hex[PGR_SHA256_HEX_LEN], long long *size,
                            pgr_error *err)
{
    crypto_hash_sha256_state st;
    uint8_t d[PGR_SHA256_LEN], buf[65536];
    size_t n;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return pgr_error_set(err, PGR_ERR_IO, "could not read backup \"%s\": %s", path,
                             strerror(errno));
    crypto_hash_sha256_init(&st);
    *size = 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        crypto_hash_sha256_update(&st, buf, n);
        *size += (long long)n;
    }
    fclose(f);
    crypto_hash_sha256_final(&st, d);
    pgr_crypto_hex_encode(d, sizeof(d), hex);
    return PGR_OK;
}

static pgr_code dump_and_check(agent_exec *x, const char *path, pgr_error *err)
{
    char fileopt[4200];
    /* Create the file ourselves, exclusively and private, before pg_dump writes into it: no
     * symlink is followed and no earlier file is overwritten. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (fd < 0)
        return pgr_error_set(err, PGR_ERR_IO, "could not create backup \"%s\": %s", path,
                             strerror(errno));
    close(fd);
    snprintf(fileopt, sizeof(fileopt), "--file=%s", path);
    char *dbopt = NULL;
    pgr_code rc = dbname_option(x->o->dsn, &dbopt, err);
    if (rc != PGR_OK) {
        unlink(path);
        return rc;
    }
    char *dump[] = {"pg_dump", "-Fc", "--no-password", fileopt, dbopt, NULL};
    child_out co;
    int st = run_quiet(dump, x->o->dsn, &co);
    free(dbopt);
    if (st != 0) {
        /* a failed dump leaves no file behind that could pass for a backup */
        unlink(path);
        char how[48];
        if (co.signal != 0)
            snprintf(how, sizeof(how), "pg_dump killed by signal %d", co.signal);
        else
            snprintf(how, sizeof(how), "pg_dump exited with status %d", st);
        return pgr_error_set(err, PGR_ERR_IO,
                             "backup failed, nothing was migrated: %s (%s); partial file \"%s\" "
                             "removed",
                             dump_failure_reason(&co), how, path);
    }
    char *list[] = {"pg_restore", "--list", (char *)(uintptr_t)path, NULL};
    if (run_quiet(list, NULL, NULL) != 0) {
        unlink(path);
        return pgr_error_set(err, PGR_ERR_IO,
                             "backup \"%s\" is unreadable (pg_restore --list failed); nothing "
                             "was migrated",
                             path);
    }
    if (chmod(path, 0600) != 0)
        return pgr_error_set(err, PGR_ERR_IO, "could not chmod backup \"%s\"", path);
    return PGR_OK;
}

pgr_code agent_backup_run(agent_exec *x, pgr_error *err)
{
    char path[4096], stamp[32], sha[PGR_SHA256_HEX_LEN];
    long long size = 0, t0 = pgr_clock_mono_ms();
    struct stat st;
    time_t now = time(NULL);
    struct tm tm;

    if (stat(x->o->backup_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pgr_error_set(err, PGR_ERR_IO, "backup directory \"%s\" does not exist",
                             x->o->backup_dir);
    char safe[129];
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    /* the tenant id becomes part of a path: keep only harmless characters */
    snprintf(safe, sizeof(safe), "%s", x->tenant);
    for (char *p = safe; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            *p = '_';
    }
    snprintf(path, sizeof(path), "%s/%s-%s-%.8s.dump", x->o->backup_dir, safe, stamp, x->job_id);
    pgr_code rc = dump_and_check(x, path, err);
    if (rc == PGR_OK)
        rc = file_sha256(path, sha, &size, err);
    if (rc != PGR_OK)
        return rc;
    json_t *rec = agent_audit_new(x, "backup");
    json_object_set_new(rec, "file", json_string(path));
    json_object_set_new(rec, "bytes", json_integer(size));
    json_object_set_new(rec, "sha256", json_string(sha));
    json_object_set_new(rec, "duration_ms", json_integer(pgr_clock_mono_ms() - t0));
    return agent_audit_append(x, rec, err);
}
