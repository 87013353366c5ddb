/* test_cli.c - both binaries: --help, --version, unknown flags/commands (exit 2), keygen. */
#include "pgr_test.h"

#include <sys/stat.h>
#include <sys/wait.h>

/* Runs a shell command line, captures stdout+stderr into out, returns the exit status. */
static int run(const char *cmd, char *out, size_t outlen)
{
    char full[2048];
    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define AGENT PGR_BIN_DIR "/pgrollout-agent"
#define COORD PGR_BIN_DIR "/pgrollout"

static void test_cli_help_and_version(void **state)
{
    char out[8192];
    (void)state;
    assert_int_equal(run(COORD " --help", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "keygen"));
    assert_non_null(strstr(out, "lint"));
    assert_non_null(strstr(out, "plan"));
    assert_int_equal(run(COORD " --version", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "pgrollout 0."));
    assert_int_equal(run(AGENT " --help", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "usage: pgrollout-agent"));
    assert_int_equal(run(AGENT " --version", out, sizeof(out)), 0);
    assert_int_equal(run(COORD " keygen --help", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "--out DIR"));
    assert_int_equal(run(COORD " lint --help", out, sizeof(out)), 0);
    assert_int_equal(run(COORD " plan --help", out, sizeof(out)), 0);
}

static void test_cli_unknown_flags_and_commands_exit_2(void **state)
{
    char out[8192];
    (void)state;
    assert_int_equal(run(COORD " --frobnicate", out, sizeof(out)), 2);
    assert_non_null(strstr(out, "unknown option \"--frobnicate\""));
    assert_int_equal(run(COORD " deploy-everything", out, sizeof(out)), 2);
    assert_non_null(strstr(out, "unknown command \"deploy-everything\""));
    assert_int_equal(run(COORD, out, sizeof(out)), 2);
    assert_int_equal(run(AGENT " --bogus", out, sizeof(out)), 2);
    assert_int_equal(run(AGENT " bogus", out, sizeof(out)), 2);
    assert_int_equal(run(COORD " keygen --bogus", out, sizeof(out)), 2);
    assert_int_equal(run(COORD " keygen --out /tmp", out, sizeof(out)), 2);
    assert_int_equal(run(COORD " lint --bogus", out, sizeof(out)), 2);
    assert_int_equal(run(COORD " lint /nonexistent/dir", out, sizeof(out)), 2);
    assert_int_equal(run(COORD " plan --from 12", out, sizeof(out)), 2);
}

static void test_cli_keygen_writes_and_refuses_overwrite(void **state)
{
    char dir[64], cmd[512], out[4096], path[256];
    struct stat st;
    (void)state;
    assert_non_null(pgr_test_tmpdir(dir, sizeof(dir)));
    snprintf(cmd, sizeof(cmd), COORD " keygen --out %s --name coord", dir);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "kid "));
    snprintf(path, sizeof(path), "%s/coord.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(run(cmd, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "refusing to overwrite"));
}

static void test_cli_lint_and_plan_on_white_cross(void **state)
{
    char out[65536];
    (void)state;
    assert_int_equal(run(COORD " lint " PGR_SOURCE_DIR "/migrations", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "4 file(s) checked, 0 finding(s)"));
    assert_int_equal(
        run(COORD " plan --migrations " PGR_SOURCE_DIR "/migrations --json", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"step_count\": 37"));
    assert_int_equal(run(COORD " plan --migrations " PGR_SOURCE_DIR
                               "/migrations --from 20251106000001 --to 20251106000002",
                         out, sizeof(out)),
                     0);
    assert_non_null(strstr(out, "1 migration(s), 11 step(s)"));
}

static void test_cli_plan_validates_rollout_plans(void **state)
{
    char dir[64], path[128], cmd[512], out[16384];
    (void)state;
    assert_non_null(pgr_test_tmpdir(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/plan.json", dir);
    pgr_test_write(path, "{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", "
                         "\"tenants\": [\"a\", \"b\", \"c\", \"d\"], \"waves\": [{\"name\": "
                         "\"canary\", \"tenants\": [\"c\"]}, {\"name\": \"rest\", \"percent\": "
                         "100}]}");
    snprintf(cmd, sizeof(cmd), COORD " plan --plan %s", path);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "wave 1 canary: 1 tenant(s)"));
    assert_non_null(strstr(out, "wave 2 rest: 3 tenant(s)"));
    /* the same plan always picks the same tenants */
    char again[16384];
    assert_int_equal(run(cmd, again, sizeof(again)), 0);
    assert_string_equal(out, again);
    static const char *const bad[][2] = {
        {"{\"name\": \"x\", \"migrations\": \"/nonexistent\", \"tenants\": [\"a\"]}",
         "migrations: directory \"/nonexistent\" does not exist"},
        {"{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"tenants\": "
         "[\"a\"], \"waves\": [{\"name\": \"w\", \"tenants\": [\"zz\"]}]}",
         "waves[0].tenants[0]: unknown tenant \"zz\""},
        {"{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"tenants\": "
         "[\"a\"], \"waves\": [{\"name\": \"w\", \"tenants\": [\"a\"]}, {\"name\": \"v\", "
         "\"percent\": 100}]}",
         "waves[1]: selects no tenant"},
        {"{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"tenants\": "
         "[\"a\"], \"waves\": [{\"name\": \"w\", \"percent\": 50, \"max_parallel\": 0}]}",
         "waves[0].max_parallel: expected an integer"},
        {"{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"tenants\": "
         "[\"a\"], \"on_failure\": \"explode\"}",
         "on_failure: expected pause, abort or rollback"},
        {"{\"name\": \"x\", \"colour\": 1}", "colour: unknown field"},
        {"{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"tenants\": "
         "[\"a\", \"b\"], \"waves\": [{\"name\": \"w\", \"tenants\": [\"a\"]}]}",
         "waves: tenant \"b\" is in no wave"},
        {"{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"tenants\": "
         "[\"a\", \"b\"], \"waves\": [{\"name\": \"w\", \"tenants\": [\"a\"]}, {\"name\": "
         "\"w\", \"tenants\": [\"b\"]}]}",
         "waves[1].name: \"w\" is also the name of waves[0]"},
        {"{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"tenants\": "
         "[\"a\"], \"options\": {\"lock_timout_ms\": 5}}",
         "options.lock_timout_ms: unknown field"},
        {"{\"name\": \"x\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"tenants\": "
         "[\"a\"], \"options\": {\"verify_in_job\": \"yes\"}}",
         "options.verify_in_job: expected true or false"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pgr_test_write(path, bad[i][0]);
        assert_int_equal(run(cmd, out, sizeof(out)), 2);
        if (strstr(out, bad[i][1]) == NULL)
            fail_msg("plan error \"%s\" lacks \"%s\"", out, bad[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_help_and_version),
        cmocka_unit_test(test_cli_unknown_flags_and_commands_exit_2),
        cmocka_unit_test(test_cli_keygen_writes_and_refuses_overwrite),
        cmocka_unit_test(test_cli_lint_and_plan_on_white_cross),
        cmocka_unit_test(test_cli_plan_validates_rollout_plans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
