/*
 * cli.c - the standalone commands of pgrollout-agent (apply, rollback, status, verify): option
 * parsing, event printing (a line per step, index build percentage, or JSON lines), exit codes.
 */
#include "agent_cli.h"
#include "executor.h"

#include "pgr/config.h"
#include "pgr/str.h"
#include "pgr/log.h"
#include "pgr/term.h"
#include "pgr/parse.h"

#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct cli_opts {
    agent_exec_opts exec;
    const char *migrations;
    const char *to;
    bool json;
    bool tty;
    int last_pct_shown;
    int verified; /* apply --verify: -1 not checked, 1 nothing found, 0 problems */
} cli_opts;

/* The options of apply, rollback, status and verify, then the exit-code table. */
static void print_usage(const char *cmd)
{
    printf(
        "usage: pgrollout-agent %s --dsn DSN --migrations DIR [options]\n\n"
        "  --dsn DSN               libpq connection string of the tenant database (default: the\n"
        "                          PG* environment variables)\n"
        "  --migrations DIR        migration files (default: migrations)\n"
        "  --target VERSION        apply: stop at this version (default: all)\n"
        "  --to VERSION            rollback: roll back every migration above VERSION (0 = all)\n"
        "  --orphans abort|quarantine  orphan policy for foreign keys (default: the file's)\n"
        "  --lock-timeout MS       lock_timeout of the session (default %d)\n"
        "  --statement-timeout MS  statement_timeout of the session (default %d = none)\n"
        "  --retries N             retries after lock timeout, deadlock, lost connection "
        "(default %d)\n"
        "  --backup DIR            pg_dump -Fc the database into DIR first (mode 0600, verified)\n"
        "  --verify                apply: run the checks of verify after the last step, before "
        "the\n"
        "                          job's end is recorded (problems: exit 3)\n"
        "  --operator NAME         who runs this, for the audit trail (default: $USER)\n"
        "  --tenant ID             tenant id for records (default: the database name)\n"
        "  --json                  one JSON object per event on stdout\n"
        "  -h, --help              show this help\n\n",
        cmd, PGR_DEFAULT_LOCK_TIMEOUT_MS, PGR_DEFAULT_STATEMENT_TIMEOUT_MS, PGR_DEFAULT_RETRIES);
    pgr_exitcode_print_table(stdout);
}

static int usage_error(const char *cmd, const char *fmt, ...) PGR_PRINTF(2, 3);

static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "pgrollout-agent %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry \"pgrollout-agent %s --help\".\n", cmd);
    return PGR_EXIT_USAGE;
}

static int parse_int_opt(const char *cmd, const char *name, const char *v, int min, int max,
                         int *out)
{
    int64_t n = 0;
    pgr_error e;
    if (pgr_parse_int64(v, min, max, &n, &e) != PGR_OK) {
        fprintf(stderr, "pgrollout-agent %s: --%s: %s\n", cmd, name, e.msg);
        return PGR_EXIT_USAGE;
    }
    *out = (int)n;
    return 0;
}

static int apply_option(const char *cmd, int c, cli_opts *o)
{
    switch (c) {
    case 'd':
        o->exec.dsn = optarg;
        return 0;
    case 'm':
        o->migrations = optarg;
        return 0;
    case 'T':
    case 't':
        if (!pgr_migration_version_valid(optarg))
            return usage_error(cmd, "invalid version \"%s\": expected 14 digits (or 0)", optarg);
        if (c == 'T')
            o->exec.target = optarg;
        else
            o->to = optarg;
        return 0;
    case 'o':
        if (strcmp(optarg, "abort") != 0 && strcmp(optarg, "quarantine") != 0)
            return usage_error(cmd, "invalid --orphans \"%s\": expected abort or quarantine",
                               optarg);
        o->exec.orphans = optarg[0] == 'a' ? AGENT_ORPHANS_ABORT : AGENT_ORPHANS_QUARANTINE;
        return 0;
    case 'l':
        return parse_int_opt(cmd, "lock-timeout", optarg, 1, 600000, &o->exec.lock_timeout_ms);
    case 's':
        return parse_int_opt(cmd, "statement-timeout", optarg, 0, 86400000,
                             &o->exec.statement_timeout_ms);
    case 'r':
        return parse_int_opt(cmd, "retries", optarg, 0, 100, &o->exec.retries);
    case 'b':
        o->exec.backup_dir = optarg;
        return 0;
    case 'p':
        o->exec.operator_name = optarg;
        return 0;
    case 'n':
        if (!pgr_str_is_tenant_id(optarg)) {
            fprintf(stderr,
                    "pgrollout-agent %s: --tenant: invalid tenant id: use 1 to 128 letters, "
                    "digits, '_', '-' or '.'\n",
                    cmd);
            return PGR_EXIT_USAGE;
        }
        o->exec.tenant_id = optarg;
        return 0;
    case 'j':
        o->json = true;
        return 0;
    case 'V':
        if (strcmp(cmd, "apply") != 0)
            return usage_error(cmd, "--verify is an option of apply");
        o->exec.verified = &o->verified;
        return 0;
    default:
        return usage_error(cmd, "unknown option");
    }
}

/* Parses options; returns -1 after printing help, 0 to go on, or an exit code. */
static int parse_opts(const char *cmd, int argc, char **argv, cli_opts *o)
{
    static const struct option opts[] = {{"dsn", required_argument, NULL, 'd'},
                                         {"migrations", required_argument, NULL, 'm'},
                                         {"target", required_argument, NULL, 'T'},
                                         {"to", required_argument, NULL, 't'},
                                         {"orphans", required_argument, NULL, 'o'},
                                         {"lock-timeout", required_argument, NULL, 'l'},
                                         {"statement-timeout", required_argument, NULL, 's'},
                                         {"retries", required_argument, NULL, 'r'},
                                         {"backup", required_argument, NULL, 'b'},
                                         {"operator", required_argument, NULL, 'p'},
                                         {"tenant", required_argument, NULL, 'n'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"verify", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;

    memset(o, 0, sizeof(*o));
    agent_exec_opts_init(&o->exec);
    o->migrations = "migrations";
    o->verified = -1;
    o->last_pct_shown = -1;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            print_usage(cmd);
            return -1;
        }
        if (c == '?') {
            fprintf(stderr, "pgrollout-agent %s: unknown or incomplete option \"%s\"\n", cmd,
                    argv[optind - 1]);
            return PGR_EXIT_USAGE;
        }
        int rc = apply_option(cmd, c, o);
        if (rc != 0)
            return rc;
    }
    if (optind != argc)
        return usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    o->tty = isatty(STDOUT_FILENO) != 0;
    return 0;
}

static const char *const kind_names[] = {
    "job_start",    "migration_start", "step_start",     "progress", "retry", "step_done",
    "step_skipped", "step_failed",     "migration_done", "job_done", "audit"};

static void print_json_event(const agent_event *ev)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "event", kind_names[ev->kind], "tenant_id",
                          ev->tenant_id, "job_id", ev->job_id);
    if (ev->version != NULL)
        json_object_set_new(o, "version", json_string(ev->version));
    if (ev->step > 0) {
        json_object_set_new(o, "step", json_integer(ev->step));
        json_object_set_new(o, "steps", json_integer(ev->step_count));
        json_object_set_new(o, "kind", json_string(ev->step_kind));
        json_object_set_new(o, "object", json_string(ev->object));
        json_object_set_new(o, "phi", json_boolean(ev->phi));
    }
    if (ev->kind == AGENT_EV_STEP_PROGRESS) {
        json_object_set_new(o, "phase", json_string(ev->phase));
        json_object_set_new(o, "percent", json_real(ev->percent));
        json_object_set_new(o, "blocks_done", json_integer(ev->blocks_done));
        json_object_set_new(o, "blocks_total", json_integer(ev->blocks_total));
        json_object_set_new(o, "tuples_done", json_integer(ev->tuples_done));
        json_object_set_new(o, "tuples_total", json_integer(ev->tuples_total));
    }
    if (ev->kind == AGENT_EV_STEP_RETRY)
        json_object_set_new(o, "attempt", json_integer(ev->attempt));
    if (ev->duration_ms > 0)
        json_object_set_new(o, "duration_ms", json_integer(ev->duration_ms));
    if (ev->message != NULL)
        json_object_set_new(o, "message", json_string(ev->message));
    if (ev->audit_json != NULL)
        json_object_set_new(o, "record", json_loads(ev->audit_json, 0, NULL));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", line != NULL ? line : "{}");
    /* a stream: whoever reads it (a pipe, a log shipper) sees each event when it happens */
    fflush(stdout);
    free(line);
    json_decref(o);
}

/* An error of a command: the message may quote the database or a file, so it is escaped. */
static void cli_error(const char *cmd, const char *msg)
{
    pgr_term_printf(stderr, "pgrollout-agent %s: %s", cmd, msg);
}

static void print_text_event(const agent_event *ev, cli_opts *o)
{
    /* names, objects and PostgreSQL's messages come from files and the database: every line is
     * escaped for the terminal; only our own cursor controls are written raw */
    char line[2048];
    const char *clear = o->tty ? "\r\033[K" : "";
    switch (ev->kind) {
    case AGENT_EV_MIGRATION_START:
        pgr_term_printf(stdout, "migration %s %s (%d steps)", ev->version, ev->name,
                        ev->step_count);
        o->last_pct_shown = -1;
        break;
    case AGENT_EV_STEP_PROGRESS:
        /* On a terminal redraw the line; otherwise print every 10% so logs stay readable. */
        if (o->tty) {
            pgr_term_format(line, sizeof(line), "  [%d/%d] %s %5.1f%% %-45s", ev->step,
                            ev->step_count, ev->object, ev->percent, ev->phase);
            printf("\r%s", line);
        } else if ((int)(ev->percent / 10) > o->last_pct_shown) {
            o->last_pct_shown = (int)(ev->percent / 10);
            pgr_term_printf(stdout, "  [%d/%d] %s %.0f%% (%s)", ev->step, ev->step_count,
                            ev->object, ev->percent, ev->phase);
        }
        break;
    case AGENT_EV_STEP_DONE:
    case AGENT_EV_STEP_SKIPPED:
        pgr_term_format(line, sizeof(line), "  [%d/%d] %-12s %s%s: %s (%lld ms)", ev->step,
                        ev->step_count, ev->step_kind, ev->object, ev->phi ? " [phi]" : "",
                        ev->kind == AGENT_EV_STEP_DONE ? "done" : "already done", ev->duration_ms);
        printf("%s%s\n", clear, line);
        o->last_pct_shown = -1;
        break;
    case AGENT_EV_STEP_RETRY:
        pgr_term_printf(stdout, "  [%d/%d] %s: retry %d after: %s", ev->step, ev->step_count,
                        ev->object, ev->attempt, ev->message);
        break;
    case AGENT_EV_STEP_FAILED:
        pgr_term_format(line, sizeof(line), "  [%d/%d] %s: FAILED: %s", ev->step, ev->step_count,
                        ev->object, ev->message);
        printf("%s%s\n", clear, line);
        break;
    case AGENT_EV_MIGRATION_DONE:
        pgr_term_printf(stdout, "migration %s %s in %lld ms", ev->version, ev->message,
                        ev->duration_ms);
        break;
    default:
        break;
    }
    fflush(stdout);
}

static void on_event(const agent_event *ev, void *user)
{
    cli_opts *o = user;
    if (ev->kind == AGENT_EV_STEP_TICK)
        return; /* progress events say more, when there are any */
    if (o->json)
        print_json_event(ev);
    else
        print_text_event(ev, o);
}

static int load_set(const char *cmd, const char *dir, pgr_migration_set **set)
{
    pgr_error e;
    pgr_error_clear(&e);
    if (pgr_migration_dir_load(dir, set, &e) != PGR_OK) {
        cli_error(cmd, e.msg);
        return PGR_EXIT_USAGE;
    }
    return 0;
}

static int run_apply_or_rollback(const char *cmd, int argc, char **argv, bool rollback)
{
    cli_opts o;
    pgr_migration_set *set = NULL;
    pgr_error e;
    int rc = parse_opts(cmd, argc, argv, &o);

    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    if (rollback && o.to == NULL)
        return usage_error(cmd, "--to VERSION is required");
    rc = load_set(cmd, o.migrations, &set);
    if (rc != 0)
        return rc;
    if ((o.exec.target != NULL && strcmp(o.exec.target, "0") != 0 &&
         pgr_migration_set_find(set, o.exec.target) == NULL) ||
        (o.to != NULL && strcmp(o.to, "0") != 0 && pgr_migration_set_find(set, o.to) == NULL)) {
        pgr_migration_set_free(set);
        return usage_error(cmd, "version %s is not one of the migration files",
                           o.exec.target != NULL ? o.exec.target : o.to);
    }
    o.exec.cb = on_event;
    o.exec.cb_user = &o;
    pgr_error_clear(&e);
    pgr_code r =
        rollback ? agent_exec_rollback(set, o.to, &o.exec, &e) : agent_exec_apply(set, &o.exec, &e);
    if (r != PGR_OK)
        cli_error(cmd, e.msg);
    else if (!o.json)
        printf("%s: done%s\n", cmd, o.verified == 1 ? " (checked: 0 problems)" : "");
    pgr_migration_set_free(set);
    return (int)pgr_exitcode_from(r);
}

int agent_cli_apply(int argc, char **argv)
{
    return run_apply_or_rollback("apply", argc, argv, false);
}

int agent_cli_rollback(int argc, char **argv)
{
    return run_apply_or_rollback("rollback", argc, argv, true);
}

static void print_status(const agent_status *st, bool json)
{
    if (!json) {
        printf("%-14s %-40s %-12s %-20s %s\n", "VERSION", "NAME", "STATE", "APPLIED AT", "BY");
        for (size_t i = 0; i < st->count; i++) {
            const agent_status_row *r = &st->rows[i];
            pgr_term_printf(stdout, "%-14s %-40s %-12s %-20s %s", r->version, r->name, r->state,
                            r->applied_at != NULL ? r->applied_at : "",
                            r->operator_name != NULL ? r->operator_name : "");
        }
        if (st->drift)
            printf("DRIFT: an applied migration differs from its file (or the file is gone)\n");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < st->count; i++) {
        const agent_status_row *r = &st->rows[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:I}", "version",
                                             r->version, "name", r->name, "state", r->state,
                                             "applied_at", r->applied_at, "operator",
                                             r->operator_name, "job_id", r->job_id, "duration_ms",
                                             (json_int_t)r->duration_ms));
    }
    json_t *doc = json_pack("{s:o, s:b}", "migrations", arr, "drift", st->drift);
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s != NULL ? s : "{}");
    free(s);
    json_decref(doc);
}

int agent_cli_status(int argc, char **argv)
{
    cli_opts o;
    pgr_migration_set *set = NULL;
    agent_status *st = NULL;
    pgr_error e;
    int rc = parse_opts("status", argc, argv, &o);

    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    rc = load_set("status", o.migrations, &set);
    if (rc != 0)
        return rc;
    pgr_error_clear(&e);
    pgr_code r = agent_status_read(set, &o.exec, &st, &e);
    if (r != PGR_OK) {
        cli_error("status", e.msg);
    } else {
        print_status(st, o.json);
        if (st->drift)
            r = PGR_ERR_DRIFT;
    }
    agent_status_free(st);
    pgr_migration_set_free(set);
    return (int)pgr_exitcode_from(r);
}

static void report_problem(const char *version, const char *object, const char *problem, void *user)
{
    cli_opts *o = user;
    if (o->json) {
        json_t *j =
            json_pack("{s:s, s:s, s:s}", "version", version, "object", object, "problem", problem);
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", s != NULL ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        pgr_term_printf(stdout, "%s %s: %s", version, object, problem);
    }
}

int agent_cli_verify(int argc, char **argv)
{
    cli_opts o;
    pgr_migration_set *set = NULL;
    pgr_error e;
    int problems = 0;
    int rc = parse_opts("verify", argc, argv, &o);

    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    rc = load_set("verify", o.migrations, &set);
    if (rc != 0)
        return rc;
    pgr_error_clear(&e);
    pgr_code r = agent_verify_run(set, &o.exec, report_problem, &o, &problems, &e);
    pgr_migration_set_free(set);
    if (r != PGR_OK) {
        cli_error("verify", e.msg);
        return (int)pgr_exitcode_from(r);
    }
    if (!o.json)
        printf("verify: %d problem(s)\n", problems);
    return problems == 0 ? PGR_EXIT_OK : PGR_EXIT_FAIL;
}
