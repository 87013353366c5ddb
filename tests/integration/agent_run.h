/*
 * agent_run.h - running build/bin/pgrollout-agent from integration tests: synchronously (exit
 * code and output), or in the background with its JSON event stream read line by line so a
 * test can act (SIGKILL, release a lock) when a given event arrives.
 */
#ifndef PGR_AGENT_RUN_H
#define PGR_AGENT_RUN_H

#include "itest.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define AGENT_BIN PGR_BIN_DIR "/pgrollout-agent"

/* Runs a shell command; returns its exit status and captures stdout+stderr into out. */
static inline int run_cmd(const char *cmd, char *out, size_t outlen)
{
    char full[4096];
    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    while (fread(full, 1, sizeof(full), p) > 0) {
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs `pgrollout-agent <cmd> --dsn dbname=<db> --migrations <dir> <extra>`. */
static inline int agent(const char *cmd, const char *db, const char *dir, const char *extra,
                        char *out, size_t outlen)
{
    char line[2048];
    snprintf(line, sizeof(line), AGENT_BIN " %s --dsn dbname=%s --migrations %s %s", cmd, db, dir,
             extra != NULL ? extra : "");
    return run_cmd(line, out, outlen);
}

/* Linux's F_SETPIPE_SZ (fcntl.h defines it only with _GNU_SOURCE). */
#define AGENT_RUN_F_SETPIPE_SZ 1031

typedef struct bg_agent {
    pid_t pid;
    FILE *out; /* the agent's stdout (JSON lines) */
} bg_agent;

/* Starts the agent in the background with --json; its stderr goes to the test's stderr. */
static inline void bg_start(bg_agent *b, const char *cmd, const char *db, const char *dir,
                            const char *extra)
{
    int fds[2];
    char dsn[256];
    assert_int_equal(pipe(fds), 0);
    /* a test reads the events only at the points it waits for: a whole job's JSON lines (its
     * audit records included, about 70 KB for the White Cross migrations) must fit meanwhile */
    (void)fcntl(fds[1], AGENT_RUN_F_SETPIPE_SZ, 1 << 20);
    snprintf(dsn, sizeof(dsn), "dbname=%s", db);
    b->pid = fork();
    assert_true(b->pid >= 0);
    if (b->pid == 0) {
        char *argv[32];
        int n = 0;
        char extra_copy[1024];
        static char bin[] = AGENT_BIN, o_dsn[] = "--dsn", o_mig[] = "--migrations",
                    o_json[] = "--json";
        char cmd_copy[64], dir_copy[1024];
        snprintf(cmd_copy, sizeof(cmd_copy), "%s", cmd);
        snprintf(dir_copy, sizeof(dir_copy), "%s", dir);
        argv[n++] = bin;
        argv[n++] = cmd_copy;
        argv[n++] = o_dsn;
        argv[n++] = dsn;
        argv[n++] = o_mig;
        argv[n++] = dir_copy;
        argv[n++] = o_json;
        snprintf(extra_copy, sizeof(extra_copy), "%s", extra != NULL ? extra : "");
        char *save = NULL;
        for (char *t = strtok_r(extra_copy, " ", &save); t != NULL && n < 30;
             t = strtok_r(NULL, " ", &save))
            argv[n++] = t;
        argv[n] = NULL;
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(AGENT_BIN, argv);
        _exit(127);
    }
    close(fds[1]);
    b->out = fdopen(fds[0], "r");
}

/* Reads events until one contains every given fragment; returns the line (static) or NULL at
 * end of stream. */
static inline const char *bg_wait_for(bg_agent *b, const char *frag1, const char *frag2)
{
    static char line[65536];
    while (fgets(line, sizeof(line), b->out) != NULL) {
        if (strstr(line, frag1) != NULL && (frag2 == NULL || strstr(line, frag2) != NULL))
            return line;
    }
    return NULL;
}

/* Waits for the agent to exit (draining its output into a count of lines matching count_frag,
 * when not NULL); returns the exit status, or -signal. */
static inline int bg_finish(bg_agent *b, const char *count_frag, int *count)
{
    char line[65536];
    int st = 0;
    if (count != NULL)
        *count = 0;
    while (fgets(line, sizeof(line), b->out) != NULL) {
        if (count != NULL && count_frag != NULL && strstr(line, count_frag) != NULL)
            (*count)++;
    }
    fclose(b->out);
    waitpid(b->pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static inline void bg_kill(bg_agent *b)
{
    kill(b->pid, SIGKILL);
    int rc = bg_finish(b, NULL, NULL);
    assert_int_equal(rc, -SIGKILL);
}

/* Fills buf with a mkdtemp template. */
static inline char *strcpy_safe_tmp(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/pgrit.XXXXXX");
    return buf;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The tenant's schema as text: indexes with definitions and validity, foreign keys, extensions
 * (malloc'd; compare two with strcmp). */
static inline char *catalog_snapshot(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
                            "SELECT 'index ' || i.indexrelid::regclass || ' ' || "
                            "pg_get_indexdef(i.indexrelid) || ' valid=' || i.indisvalid AS x "
                            "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN "
                            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                            "UNION ALL SELECT 'constraint ' || conname || ' ' || "
                            "pg_get_constraintdef(oid) || ' validated=' || convalidated FROM "
                            "pg_constraint WHERE contype = 'f' AND connamespace = "
                            "'public'::regnamespace UNION ALL SELECT 'extension ' || extname "
                            "FROM pg_extension) s");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("catalog snapshot failed: %s", PQerrorMessage(c));
    char *s = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return s;
}

#endif
