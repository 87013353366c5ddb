/*
 * seqstore.c - the last accepted job seq of each tenant in the agent's state directory, so that
 * replay protection does not rest only on rows of pgrollout.jobs, which a migration's SQL can
 * delete. One small file per tenant, replaced atomically (write, fsync, rename, fsync of the
 * directory). The intake is the only writer (the daemon's main thread).
 */
#include "seqstore.h"

#include "pgr/log.h"
#include "pgr/parse.h"
#include "pgr/pg.h"
#include "pgr/str.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEQ_DIR "jobseq"

/* The two numbers kept per tenant: the last accepted job's seq, and the last finished one's. */
#define EXT_ACCEPTED ".seq"
#define EXT_ENDED    ".ended"

/* state_dir/jobseq/TENANT.EXT (or the directory, when tenant is NULL). */
static pgr_code seq_path(const char *state_dir, const char *tenant, const char *ext, char *out,
                         size_t len, pgr_error *err)
{
    if (tenant != NULL && !pgr_str_is_tenant_id(tenant))
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid tenant id for the job seq file");
    int n = tenant != NULL ? snprintf(out, len, "%s/" SEQ_DIR "/%s%s", state_dir, tenant, ext)
                           : snprintf(out, len, "%s/" SEQ_DIR, state_dir);
    if (n < 0 || (size_t)n >= len)
        return pgr_error_set(err, PGR_ERR_CONFIG, "agent.state_dir \"%s\" is too long", state_dir);
    return PGR_OK;
}

pgr_code agent_seqstore_file_read(const char *path, long long max, long long *v, pgr_error *err)
{
    char buf[32];
    *v = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return PGR_OK; /* nothing kept yet by an agent with this state directory */
    if (fd < 0)
        return pgr_error_set(err, PGR_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return pgr_error_set(err, PGR_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    int64_t got = 0;
    if (pgr_parse_int64(buf, 0, max, &got, NULL) != PGR_OK)
        return pgr_error_set(err, PGR_ERR_INVALID, "\"%s\" does not hold a number from 0 to %lld",
                             path, max);
    *v = (long long)got;
    return PGR_OK;
}

static pgr_code read_kind(const char *state_dir, const char *tenant, const char *ext,
                          long long *seq, pgr_error *err)
{
    char path[4096];
    *seq = 0;
    pgr_code rc = seq_path(state_dir, tenant, ext, path, sizeof(path), err);
    return rc == PGR_OK ? agent_seqstore_file_read(path, INT64_MAX, seq, err) : rc;
}

static pgr_code fsync_dir(const char *dir, pgr_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return pgr_error_set(err, PGR_ERR_IO, "could not fsync \"%s\": %s", dir, strerror(e));
    }
    close(fd);
    return PGR_OK;
}

/* Writes text into a new file at path (mode 0600) and fsyncs it. */
static pgr_code write_synced(const char *path, const char *text, pgr_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return pgr_error_set(err, PGR_ERR_IO, "could not create \"%s\": %s", path, strerror(errno));
    size_t len = strlen(text);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(path);
        return pgr_error_set(err, PGR_ERR_IO, "could not write \"%s\": %s", path, strerror(e));
    }
    return PGR_OK;
}

pgr_code agent_seqstore_file_write(const char *dir, const char *path, long long v, pgr_error *err)
{
    char tmp[4096 + 32], text[32];
    /* one temporary file per process: agents may share a state directory */
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    snprintf(text, sizeof(text), "%lld\n", v);
    pgr_code rc = write_synced(tmp, text, err);
    if (rc != PGR_OK)
        return rc;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return pgr_error_set(err, PGR_ERR_IO, "could not rename \"%s\": %s", tmp, strerror(e));
    }
    return fsync_dir(dir, err);
}

static pgr_code keep_kind(const char *state_dir, const char *tenant, const char *ext, long long seq,
                          pgr_error *err)
{
    char dir[4096], path[4096];
    pgr_code rc = seq_path(state_dir, NULL, NULL, dir, sizeof(dir), err);
    if (rc == PGR_OK)
        rc = seq_path(state_dir, tenant, ext, path, sizeof(path), err);
    if (rc != PGR_OK)
        return rc;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return pgr_error_set(err, PGR_ERR_IO, "could not create \"%s\": %s", dir, strerror(errno));
    return agent_seqstore_file_write(dir, path, seq, err);
}

pgr_code agent_seqstore_read(const char *state_dir, const char *tenant, long long *seq,
                             pgr_error *err)
{
    return read_kind(state_dir, tenant, EXT_ACCEPTED, seq, err);
}

pgr_code agent_seqstore_keep(const char *state_dir, const char *tenant, long long seq,
                             pgr_error *err)
{
    return keep_kind(state_dir, tenant, EXT_ACCEPTED, seq, err);
}

pgr_code agent_seqstore_read_ended(const char *state_dir, const char *tenant, long long *seq,
                                   pgr_error *err)
{
    return read_kind(state_dir, tenant, EXT_ENDED, seq, err);
}

pgr_code agent_seqstore_keep_ended(const char *state_dir, const char *tenant, long long seq,
                                   pgr_error *err)
{
    long long kept = 0;
    pgr_code rc = read_kind(state_dir, tenant, EXT_ENDED, &kept, err);
    if (rc != PGR_OK || seq <= kept)
        return rc;
    return keep_kind(state_dir, tenant, EXT_ENDED, seq, err);
}

/* The highest seq of pgrollout.jobs, in the intake's transaction (after its advisory lock). */

/* A job above both numbers while they disagree: accepted, and the disagreement goes into the
 * audit chain (published before the job's first step runs). */
void agent_seqstore_check(const char *state_dir, const char *tenant, long long seq, long long in_db,
                          const char **why, char refusal[AGENT_REFUSAL_LEN], long long *keep)
{
    long long kept = 0;
    pgr_error ferr;
    refusal[0] = '\0';
    *keep = 0;
    if (state_dir == NULL || *why != NULL)
        return;
    if (agent_seqstore_read(state_dir, tenant, &kept, &ferr) != PGR_OK) {
        /* fail closed: without the kept seq a replay cannot be told from a new job */
        *why = "stale_seq";
        pgr_str_cut(refusal, AGENT_REFUSAL_LEN, "the last accepted job seq is unknown: %s",
                    ferr.msg);
        return;
    }
    /* Lower in the database than in the file: rows were deleted (migration SQL) or the database
     * was restored from a backup; either way an older job could pass. Every job is refused until
     * an operator has looked and reconciled (docs/OPERATIONS.md). Higher in the database: the
     * file lags (a new state directory): the job is judged by both and the file catches up. */
    if (seq <= kept || seq <= in_db || in_db < kept) {
        *why = "stale_seq";
        snprintf(refusal, AGENT_REFUSAL_LEN,
                 "seq %lld %s of tenant \"%s\" (pgrollout.jobs: %lld, agent state directory: "
                 "%lld%s)",
                 seq,
                 in_db < kept ? "refused: the two last accepted job seqs disagree"
                              : "is not above the last accepted job's",
                 tenant, in_db, kept,
                 in_db < kept ? "; rows of pgrollout.jobs were deleted or the database was "
                                "restored: reconcile before any job runs"
                              : "");
        return;
    }
    *keep = seq;
}
