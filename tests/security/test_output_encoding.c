/*
 * test_output_encoding.c - every output is encoded for where it goes. Tenant ids, wave and
 * rollout names, errors and states that hold markup, quotes, newlines and terminal escape
 * sequences reach the control database through a real rollout (a plan run against a real agent
 * over Kafka), through rows as a hostile agent's events would leave them, and through a signed
 * audit message whose Kafka key is hostile. Then:
 *   - `pgrollout report` HTML holds only their escaped forms (text and attributes);
 *   - `pgrollout run --json` prints one JSON object per line and `status --json` and
 *     `tenants list --json` are JSON: jansson parses them and the strings come back exactly;
 *   - terminal output (run, status, tenants list, audit anchor, audit collect alerts) holds no
 *     raw control byte: ESC, BEL and newlines inside values are shown as \x1b, \x07, \n.
 */
#include "rollout_env.h"

#include <jansson.h>
#include <sys/stat.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

/* Hostile values. */
#define EVIL_WAVE   "w\"><script>alert(1)</script>'\x1b[31m\n"
#define EVIL_TENANT "\"><script>alert(1)</script>"
#define EVIL_STATE  "failed\" onmouseover=\"alert(1)"
#define EVIL_ERROR  "boom\x1b]0;pwn\x07\nFAKE LINE 'q' <img src=x onerror=alert(1)>"
#define EVIL_AGENT  "agent\x1b[2J\x1b]0;pwn\x07"
#define EVIL_KEY    "t\x1b]0;pwn\x07\nAUDIT ALERT forged"

static fleet F;
static char rollout[128];

static void run_hostile_rollout(void);
static void insert_hostile_rows(void);

static int setup(void **state)
{
    (void)state;
    fleet_setup_n(&F, 2, 4 * 1024 * 1024);
    snprintf(rollout, sizeof(rollout), "enc-%d\x1b]0;pwn\x07<b>", (int)getpid());
    fleet_start_agent(&F, 0);
    run_hostile_rollout();
    insert_hostile_rows();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (F.agent_pid[0] > 0)
        assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    itest_drop_db(F.db[0]);
    itest_drop_db(F.db[1]);
    itest_drop_db(F.ctl_db);
    return 0;
}

/* A whole file into a new NUL-terminated buffer (caller frees). */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* Runs argv (no shell: the hostile bytes reach it as they are), stdout into F.dir/NAME.out and
 * stderr into F.dir/NAME.err; returns the exit status. */
static int run_argv(const char *name, char *const argv[])
{
    char outp[256], errp[256];
    snprintf(outp, sizeof(outp), "%s/%s.out", F.dir, name);
    snprintf(errp, sizeof(errp), "%s/%s.err", F.dir, name);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *output_of(const char *name, const char *ext)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.%s", F.dir, name, ext);
    return slurp(path, NULL);
}

/* Terminal text: no byte below 0x20 but the newline ending each line, no DEL. */
static void expect_no_control_bytes(const char *what, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
            fail_msg("%s: raw control byte 0x%02x at offset %ld:\n%s", what, *p,
                     (long)(p - (const unsigned char *)text), text);
    }
}

static void expect_in(const char *what, const char *text, const char *fragment)
{
    if (strstr(text, fragment) == NULL)
        fail_msg("%s lacks \"%s\":\n%s", what, fragment, text);
}

static void expect_not_in(const char *what, const char *text, const char *fragment)
{
    if (strstr(text, fragment) != NULL)
        fail_msg("%s holds \"%s\":\n%s", what, fragment, text);
}

static void ctl_exec_params(const char *sql, int n, const char *const *params)
{
    PGconn *c = itest_connect(F.ctl_db);
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* A real rollout whose name and wave name are hostile, run with --json against agent 1 (over
 * Kafka, signed jobs and events); it stops at the wave's manual approval. */
static void run_hostile_rollout(void)
{
    char path[256], cfg[256];
    json_t *plan =
        json_pack("{s:s, s:s, s:s, s:[s], s:[{s:s, s:[s], s:s}]}", "name", rollout, "migrations",
                  MIGS, "target", "20251106000003", "tenants", "district-001", "waves", "name",
                  EVIL_WAVE, "tenants", "district-001", "approval", "manual");
    assert_non_null(plan);
    snprintf(path, sizeof(path), "%s/plan.json", F.dir);
    assert_int_equal(json_dump_file(plan, path, 0), 0);
    json_decref(plan);
    snprintf(cfg, sizeof(cfg), "%s/coord.ini", F.dir);
    char *const argv[] = {COORD_BIN, "run",    "--config",  cfg,   "--plan",
                          path,      "--json", "--timeout", "240", NULL};
    int rc = run_argv("run", argv);
    char *err = output_of("run", "err");
    if (rc != 4)
        fail_msg("pgrollout run exited %d, want 4 (waiting for approval):\n%s", rc, err);
    free(err);
}

/* The run's terminal lines: the names are there, escaped. */
static void test_output_encoding_run_terminal(void **state)
{
    (void)state;
    char *err = output_of("run", "err");
    expect_no_control_bytes("run stderr", err);
    expect_in("run stderr", err, "w\"><script>alert(1)</script>'\\x1b[31m\\n");
    expect_in("run stderr", err, "\\x1b]0;pwn\\x07<b>");
    free(err);
}

/* run --json: every stdout line is one JSON object; the wave name comes back exactly. */
static void test_output_encoding_run_json_lines(void **state)
{
    (void)state;
    char *out = output_of("run", "out");
    int lines = 0, wave_lines = 0, tenant_lines = 0;
    char *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *o = json_loads(l, 0, &je);
        if (o == NULL || !json_is_object(o))
            fail_msg("run --json line %d is not a JSON object (%s): %s", lines + 1, je.text, l);
        lines++;
        const char *wave = json_string_value(json_object_get(o, "wave"));
        assert_non_null(wave);
        assert_string_equal(wave, EVIL_WAVE);
        if (json_object_get(o, "tenant_id") != NULL) {
            assert_string_equal(json_string_value(json_object_get(o, "tenant_id")), "district-001");
            assert_true(json_is_integer(json_object_get(o, "step")));
            tenant_lines++;
        } else {
            assert_true(json_is_integer(json_object_get(o, "total")));
            wave_lines++;
        }
        json_decref(o);
    }
    assert_true(wave_lines >= 1);
    assert_true(tenant_lines >= 1);
    free(out);
}

/* Rows as a hostile agent's events leave them: a tenant id, a state and an error of its own,
 * an agent id in the tenants list, and a tenant id in the central audit record. */
static void insert_hostile_rows(void)
{
    const char *run1[] = {rollout, EVIL_TENANT, EVIL_STATE, "enc-job-1"};
    ctl_exec_params("INSERT INTO pgrollout_control.tenant_runs (rollout_id, tenant_id, wave, "
                    "state, job_id, version) VALUES ($1, $2, 0, $3, $4, '20251106000003')",
                    4, run1);
    const char *run2[] = {rollout, "tenant\x1b[2Jtwo", EVIL_ERROR, "enc-job-2"};
    ctl_exec_params("INSERT INTO pgrollout_control.tenant_runs (rollout_id, tenant_id, wave, "
                    "state, error, job_id) VALUES ($1, $2, 0, 'failed', $3, $4)",
                    4, run2);
    const char *tenant[] = {EVIL_TENANT "\x1b]0;pwn\x07", EVIL_AGENT};
    ctl_exec_params("INSERT INTO pgrollout_control.tenants (tenant_id, agent_id) VALUES ($1, $2)",
                    2, tenant);
    const char *audit[] = {"audit\x1b]0;pwn\x07\nforged 1 00"};
    ctl_exec_params("INSERT INTO pgrollout_control.audit_log (tenant_id, seq, prev_hash, hash, "
                    "record, kid, envelope) VALUES ($1, 1, '00', 'ab', '{}', 'k', 'e')",
                    1, audit);
}

static void test_output_encoding_report_html(void **state)
{
    (void)state;
    char cfg[256], html[256];
    snprintf(cfg, sizeof(cfg), "%s/coord.ini", F.dir);
    snprintf(html, sizeof(html), "%s/report.html", F.dir);
    char *const argv[] = {COORD_BIN, "report", rollout, "--config", cfg, "--html", html, NULL};
    assert_int_equal(run_argv("report", argv), 0);
    char *h = slurp(html, NULL);
    /* raw markup and attribute break-outs are absent */
    expect_not_in("report", h, "<script");
    expect_not_in("report", h, "<img");
    expect_not_in("report", h, "\" onmouseover=\"");
    expect_not_in("report", h, "\x1b");
    expect_not_in("report", h, "\x07");
    expect_not_in("report", h, "'q'");
    /* their escaped forms are present: text (tenant id, error, wave name) and attribute */
    expect_in("report", h, "<td class=\"\">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</td>");
    expect_in("report", h,
              "class=\"failed&quot; onmouseover=&quot;alert(1)\">failed&quot; "
              "onmouseover=&quot;alert(1)</td>");
    expect_in("report", h,
              "boom&#x1b;]0;pwn&#x07;\nFAKE LINE &#39;q&#39; &lt;img src=x onerror=alert(1)&gt;");
    expect_in("report", h, "w&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;&#x1b;[31m");
    expect_in("report", h, "<title>pgrollout enc-");
    expect_in("report", h, "&#x1b;]0;pwn&#x07;&lt;b&gt;</title>");
    free(h);
    char *out = output_of("report", "out");
    expect_no_control_bytes("report stdout", out);
    free(out);
}

/* The JSON array of a --json command; returns the object whose key equals value. */
static json_t *find_row(json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *v = json_string_value(json_object_get(o, key));
        if (v != NULL && strcmp(v, value) == 0)
            return o;
    }
    return NULL;
}

static json_t *json_output(const char *name)
{
    char *out = output_of(name, "out");
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je);
    if (doc == NULL || !json_is_array(doc))
        fail_msg("%s --json is not a JSON array (%s):\n%s", name, je.text, out);
    free(out);
    return doc;
}

static void test_output_encoding_status(void **state)
{
    char cfg[256];
    (void)state;
    snprintf(cfg, sizeof(cfg), "%s/coord.ini", F.dir);
    char *const sj[] = {COORD_BIN, "status", rollout, "--config", cfg, "--json", NULL};
    assert_int_equal(run_argv("status_json", sj), 0);
    json_t *doc = json_output("status_json");
    json_t *row = find_row(doc, "tenant_id", "tenant\x1b[2Jtwo");
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "error")), EVIL_ERROR);
    row = find_row(doc, "tenant_id", EVIL_TENANT);
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "state")), EVIL_STATE);
    json_decref(doc);
    char *const st[] = {COORD_BIN, "status", rollout, "--config", cfg, NULL};
    assert_int_equal(run_argv("status", st), 0);
    char *out = output_of("status", "out");
    expect_no_control_bytes("status", out);
    expect_in("status", out, "tenant\\x1b[2Jtwo  failed");
    expect_in("status", out, "boom\\x1b]0;pwn\\x07\\nFAKE LINE 'q'");
    free(out);
}

static void test_output_encoding_tenants_list(void **state)
{
    char cfg[256];
    json_t *doc, *row;
    char *out;
    (void)state;
    snprintf(cfg, sizeof(cfg), "%s/coord.ini", F.dir);
    char *const tj[] = {COORD_BIN, "tenants", "list", "--config", cfg, "--json", NULL};
    assert_int_equal(run_argv("tenants_json", tj), 0);
    doc = json_output("tenants_json");
    row = find_row(doc, "tenant_id", EVIL_TENANT "\x1b]0;pwn\x07");
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "agent_id")), EVIL_AGENT);
    json_decref(doc);
    char *const tl[] = {COORD_BIN, "tenants", "list", "--config", cfg, NULL};
    assert_int_equal(run_argv("tenants", tl), 0);
    out = output_of("tenants", "out");
    expect_no_control_bytes("tenants list", out);
    expect_in("tenants list", out, "\"><script>alert(1)</script>\\x1b]0;pwn\\x07  agent\\x1b[2J");
    free(out);
}

static void test_output_encoding_audit_anchor(void **state)
{
    (void)state;
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "%s/coord.ini", F.dir);
    char *const an[] = {COORD_BIN, "audit", "anchor", "--config", cfg, NULL};
    assert_int_equal(run_argv("anchor", an), 0);
    char *out = output_of("anchor", "out");
    expect_no_control_bytes("audit anchor", out);
    /* one line per tenant: the newline in the id cannot forge a second entry */
    expect_in("audit anchor", out, "\naudit\\x1b]0;pwn\\x07\\nforged 1 00 1 ab\n");
    expect_not_in("audit anchor", out, "\nforged 1 00");
    free(out);
}

/* A message signed by a valid agent key, for a tenant the key may not speak for, whose Kafka
 * key and tenant id are hostile: the collector's alert line shows them escaped. */
static void test_output_encoding_collector_alert(void **state)
{
    (void)state;
    char path[256], cfg[256];
    pgr_keypair a1;
    snprintf(path, sizeof(path), "%s/agent1.key", F.dir);
    assert_int_equal(pgr_keys_load_secret(path, &a1, NULL), PGR_OK);
    json_t *rec = json_pack("{s:s, s:s, s:i, s:s}", "action", "job_start", "prev_hash",
                            "0000000000000000000000000000000000000000000000000000000000000000",
                            "seq", 1, "tenant_id", EVIL_KEY);
    char *rec_text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    fleet_send_audit(&F, &a1, EVIL_KEY, 1, rec_text);
    free(rec_text);
    json_decref(rec);
    snprintf(cfg, sizeof(cfg), "%s/coord.ini", F.dir);
    char *const argv[] = {COORD_BIN, "audit", "collect", "--config", cfg, "--idle-exit", "3", NULL};
    assert_int_equal(run_argv("collect", argv), 0);
    char *err = output_of("collect", "err");
    expect_in("audit collect", err,
              "AUDIT ALERT untrusted_key: tenant t\\x1b]0;pwn\\x07\\nAUDIT "
              "ALERT forged seq 1");
    expect_no_control_bytes("audit collect", err);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_encoding_run_terminal),
        cmocka_unit_test(test_output_encoding_run_json_lines),
        cmocka_unit_test(test_output_encoding_report_html),
        cmocka_unit_test(test_output_encoding_status),
        cmocka_unit_test(test_output_encoding_tenants_list),
        cmocka_unit_test(test_output_encoding_audit_anchor),
        cmocka_unit_test(test_output_encoding_collector_alert),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
