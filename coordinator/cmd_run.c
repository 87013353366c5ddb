/*
 * cmd_run.c - `pgrollout run --plan FILE`, `pgrollout resume ROLLOUT` and `pgrollout rollback
 * ROLLOUT --wave NAME`: the session, the plan (from its file, or as stored with the rollout),
 * the rollout's lock, then the engine (engine.c) until the rollout ends or the command is
 * stopped; each refusal printed and turned into an exit code.
 */
#include "cmd_run.h"
#include "cmd_common.h"
#include "ctldb.h"
#include "engine.h"
#include "planfile.h"

#include "pgr/exitcode.h"
#include "pgr/term.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t run_stop = 0;

static void on_signal(int sig)
{
    PGR_UNUSED(sig);
    run_stop = 1;
}

static const char *const run_usage =
    "usage: pgrollout run --config FILE --plan FILE [--operator NAME] [--timeout SEC] [--json]\n"
    "                     [--collect-audit] [--release MANIFEST ...]\n"
    "       pgrollout resume ROLLOUT --config FILE [--operator NAME] [--timeout SEC] [--json]\n\n"
    "run: start the rollout of a plan (docs/ROLLOUTS.md), or carry on with it if it exists;\n"
    "resume: carry on with a paused or interrupted rollout (failed tenants of the current wave\n"
    "get a new job). Both follow the agents' events and move the waves forward.\n"
    "--release: a release manifest (pgrollout release) the jobs carry, besides the plan's\n"
    "\"releases\"; with [release] keyring, run refuses a plan the agents would refuse.\n";

/* With release.keyring: what the agents would refuse, refused before the rollout starts. */
static pgr_code check_releases(coord *c, const coord_planfile *plan, pgr_error *err)
{
    pgr_keyring *kr = NULL;
    if (c->cfg->release_keyring == NULL)
        return PGR_OK;
    pgr_code rc = pgr_keyring_load(c->cfg->release_keyring, &kr, err);
    if (rc == PGR_OK)
        rc = coord_planfile_check_releases(plan, kr, c->cfg->release_threshold, c->key.pk, c->db,
                                           err);
    pgr_keyring_free(kr);
    return rc;
}

/* The plan of the rollout: from the plan file for run (or, when a rollout of that name exists,
 * as stored with it: *resume becomes true), as stored for resume. Returns an exit code. */
static int load_plan(coord *c, const coord_cmd_common_args *a, bool *resume, coord_planfile *plan)
{
    pgr_error err;
    json_t *doc = NULL;
    const char *rollout = a->rollout;
    if (!*resume) {
        if (coord_planfile_load_releases(a->plan, a->releases, a->release_count, c->db, plan,
                                         &err) != PGR_OK) {
            pgr_term_printf(stderr, "pgrollout run: plan \"%s\": %s", a->plan, err.msg);
            return PGR_EXIT_USAGE;
        }
        if ((doc = coord_engine_stored_plan(c, plan->name)) == NULL) {
            if (coord_planfile_check_gone(plan, c->db, &err) == PGR_OK &&
                check_releases(c, plan, &err) == PGR_OK)
                return PGR_EXIT_OK;
            pgr_term_printf(stderr, "pgrollout run: plan \"%s\": %s", a->plan, err.msg);
            return PGR_EXIT_USAGE;
        }
        if (a->release_count > 0) {
            pgr_term_printf(stderr,
                            "pgrollout run: rollout %s exists: it keeps the manifests stored with "
                            "it; --release is for a new rollout",
                            plan->name);
            json_decref(doc);
            return PGR_EXIT_USAGE;
        }
        pgr_term_printf(stderr, "rollout %s exists: carrying on with its stored plan", plan->name);
        coord_planfile_free(plan);
        *resume = true;
        rollout = NULL;
    }
    if (doc == NULL)
        doc = coord_engine_stored_plan(c, rollout);
    if (doc == NULL) {
        pgr_term_printf(stderr, "pgrollout resume: no rollout \"%s\"", rollout);
        return PGR_EXIT_USAGE;
    }
    if (coord_planfile_resolve(doc, c->db, plan, &err) != PGR_OK) {
        pgr_term_printf(stderr, "pgrollout resume: stored plan: %s", err.msg);
        return PGR_EXIT_FAIL;
    }
    return PGR_EXIT_OK;
}

/* Up to the start of the loop: lock, migrations, the rollout created or reopened, Kafka, the
 * rollback's jobs, the audit collector. Returns an exit code. */
static int prepare(coord *c, coord_engine *e, const coord_cmd_common_args *a, bool resume,
                   const char *rollback_wave, const char *name)
{
    pgr_error err;
    if (coord_ctldb_lock_rollout(c, name, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout: %s\n", err.msg);
        return PGR_EXIT_BLOCKED;
    }
    if (coord_metrics_start(c, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout: %s\n", err.msg);
        return PGR_EXIT_USAGE;
    }
    if (coord_engine_load_migrations(e, &err) != PGR_OK) {
        pgr_term_printf(stderr, "pgrollout: %s", err.msg);
        return PGR_EXIT_USAGE;
    }
    if (!resume && coord_engine_create_rollout(e, &err) != PGR_OK) {
        pgr_term_printf(stderr, "pgrollout run: %s", err.msg);
        return PGR_EXIT_FAIL;
    }
    if (resume && rollback_wave == NULL) {
        char st[32];
        coord_engine_rollout_state(e, st);
        if (strcmp(st, "aborted") == 0 || strcmp(st, "rolled_back") == 0) {
            pgr_term_printf(stderr,
                            "pgrollout resume: rollout %s is %s: it does not start again (run a "
                            "new plan)",
                            name, st);
            return PGR_EXIT_FAIL;
        }
        coord_engine_reopen(e);
    }
    int rc = coord_cmd_common_kafka(c, "run");
    if (rc != PGR_EXIT_OK)
        return rc;
    if (rollback_wave != NULL && coord_engine_start_rollback(e, rollback_wave, &err) != PGR_OK) {
        pgr_term_printf(stderr, "pgrollout rollback: %s", err.msg);
        return PGR_EXIT_USAGE;
    }
    coord_engine_failpoint(e);
    if (a->collect_audit && coord_engine_collect_audit(e, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout: audit collector: %s\n", err.msg);
        return PGR_EXIT_FAIL;
    }
    return PGR_EXIT_OK;
}

/* The exit code of a loop that ended with end. */
static int loop_exit(coord_engine_end end, const char *name)
{
    switch (end) {
    case COORD_ENGINE_SUCCEEDED:
        return PGR_EXIT_OK;
    case COORD_ENGINE_PAUSED:
        return PGR_EXIT_PAUSED;
    case COORD_ENGINE_LOCK_LOST:
        return PGR_EXIT_BLOCKED;
    case COORD_ENGINE_INTERRUPTED:
    case COORD_ENGINE_TIMED_OUT:
        pgr_term_printf(stderr, "pgrollout: %s; \"pgrollout resume %s\" carries on",
                        end == COORD_ENGINE_INTERRUPTED ? "interrupted" : "timed out", name);
        return PGR_EXIT_FAIL;
    case COORD_ENGINE_FAILED:
        break;
    }
    return PGR_EXIT_FAIL;
}

/* The loop, until the rollout ends or a signal stops it; *rolled_back: it ended rolled_back. */
static int run_loop(coord_engine *e, int timeout_s, const char *name, bool *rolled_back)
{
    char st[32];
    coord_reload_on_sighup();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = loop_exit(coord_engine_run(e, timeout_s, &run_stop), name);
    coord_engine_drain_audit(e);
    coord_engine_rollout_state(e, st);
    *rolled_back = strcmp(st, "rolled_back") == 0;
    return rc;
}

/* run, resume and rollback (rollback_wave != NULL); *rolled_back: the rollout ended
 * rolled_back. */
static int run_engine(const coord_cmd_common_args *a, bool resume, const char *rollback_wave,
                      bool *rolled_back)
{
    coord c;
    coord_planfile plan;
    coord_engine *e = NULL;
    memset(&plan, 0, sizeof(plan));
    int rc = coord_cmd_common_open(&c, a->config, resume ? "resume" : "run", true);
    if (rc == PGR_EXIT_OK)
        rc = load_plan(&c, a, &resume, &plan);
    if (rc == PGR_EXIT_OK && (e = coord_engine_new(&c, &plan, a->op, a->json)) == NULL) {
        fprintf(stderr, "pgrollout: out of memory\n");
        rc = PGR_EXIT_FAIL;
    }
    if (rc == PGR_EXIT_OK)
        rc = prepare(&c, e, a, resume, rollback_wave, plan.name);
    if (rc == PGR_EXIT_OK)
        rc = run_loop(e, a->timeout_s, plan.name, rolled_back);
    coord_engine_free(e);
    coord_planfile_free(&plan);
    coord_close(&c);
    return rc;
}

int coord_cmd_run_main(int argc, char **argv)
{
    coord_cmd_common_args a;
    bool rolled_back = false;
    int rc = coord_cmd_common_parse(argc, argv, "run", run_usage, true, false, &a);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    if (a.plan == NULL) {
        fprintf(stderr, "pgrollout run: --plan FILE is required\n");
        coord_cmd_common_usage(stderr, run_usage, true);
        return PGR_EXIT_USAGE;
    }
    return run_engine(&a, false, NULL, &rolled_back);
}

int coord_cmd_run_resume_main(int argc, char **argv)
{
    coord_cmd_common_args a;
    bool rolled_back = false;
    int rc = coord_cmd_common_parse(argc, argv, "resume", run_usage, true, true, &a);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    return run_engine(&a, true, NULL, &rolled_back);
}

int coord_cmd_run_rollback_main(int argc, char **argv)
{
    coord_cmd_common_args a;
    bool rolled_back = false;
    const char *usage = "usage: pgrollout rollback ROLLOUT --wave NAME --config FILE "
                        "[--operator NAME] [--timeout SEC] [--json]\n"
                        "Rolls the wave's succeeded tenants back to the version each had before "
                        "the rollout,\nthen ends the rollout as rolled_back.\n";
    int rc = coord_cmd_common_parse(argc, argv, "rollback", usage, false, true, &a);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    if (a.wave == NULL) {
        fprintf(stderr, "pgrollout rollback: --wave NAME is required\n%s", usage);
        return PGR_EXIT_USAGE;
    }
    rc = run_engine(&a, true, a.wave, &rolled_back);
    return rc == PGR_EXIT_FAIL && rolled_back ? PGR_EXIT_OK : rc; /* rolled back as asked */
}
