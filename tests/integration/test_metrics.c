/*
 * test_metrics.c - Prometheus metrics of the agent and the coordinator against the real
 * PostgreSQL and Kafka of tests/run.sh, scraped by a real Prometheus server (Debian
 * `prometheus`). Agent 1 and the coordinator serve /metrics ([metrics] listen); Prometheus
 * scrapes both every second during a rollout of three tenants. Afterwards:
 *   - `promtool check metrics` accepts both endpoints' output;
 *   - the agent's pgrollout_agent_jobs_total{type="apply",outcome="succeeded"} equals the apply
 *     jobs the control database has succeeded for its tenants, and its step histogram counted
 *     index builds;
 *   - Prometheus, queried through its HTTP API, returns the same job count and the coordinator's
 *     published jobs, as the control database counts them.
 */
#include "rollout_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

static fleet F;
static char out[1 << 20];
static int agent_port, coord_port, prom_port;
static pid_t prom_pid;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* GET path from 127.0.0.1:port; the body into buf. Returns the HTTP status, or -1. */
static int http_get(int port, const char *path, char *buf, size_t len)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[1024];
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    size_t n = 0;
    ssize_t r;
    while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    char *body = strstr(buf, "\r\n\r\n");
    if (body != NULL)
        memmove(buf, body + 4, strlen(body + 4) + 1);
    return status;
}

/* The value of the sample line that starts with series (name{labels}), or -1. */
static double sample(const char *text, const char *series)
{
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, series, strlen(series)) == 0 && p[strlen(series)] == ' ')
            return strtod(p + strlen(series) + 1, NULL);
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

static void promtool_check(const char *text, const char *what)
{
    char path[256], cmd[512];
    snprintf(path, sizeof(path), "%s/%s.prom", F.dir, what);
    itest_write_file(path, text);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int rc = run_cmd(cmd, out, sizeof(out));
    if (rc != 0)
        fail_msg("promtool check metrics (%s) exited %d:\n%s", what, rc, out);
}

/* Appends "[metrics] listen = 127.0.0.1:port" to a configuration file of the fleet. */
static void append(const char *file, int port)
{
    char path[256], line[256];
    snprintf(path, sizeof(path), "%s/%s", F.dir, file);
    snprintf(line, sizeof(line), "[metrics]\nlisten = 127.0.0.1:%d\n", port);
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs(line, fp);
    fclose(fp);
}

static void start_prometheus(void)
{
    char cfg[256], text[1024], data[256], listen[64], cfgarg[300], dataarg[300], listenarg[100];
    snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", F.dir);
    snprintf(text, sizeof(text),
             "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
             "  - job_name: pgrollout\n    static_configs:\n"
             "      - targets: ['127.0.0.1:%d', '127.0.0.1:%d']\n",
             agent_port, coord_port);
    itest_write_file(cfg, text);
    snprintf(data, sizeof(data), "%s/prometheus-data", F.dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", prom_port);
    snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", cfg);
    snprintf(dataarg, sizeof(dataarg), "--storage.tsdb.path=%s", data);
    snprintf(listenarg, sizeof(listenarg), "--web.listen-address=%s", listen);
    char log[256];
    snprintf(log, sizeof(log), "%s/prometheus.log", F.dir);
    char *const argv[] = {"/usr/bin/prometheus", cfgarg, dataarg, listenarg, NULL};
    prom_pid = fleet_spawn(log, false, argv);
    for (int i = 0; i < 300 && http_get(prom_port, "/-/ready", out, sizeof(out)) != 200; i++)
        sleep_ms(200);
    assert_int_equal(http_get(prom_port, "/-/ready", out, sizeof(out)), 200);
}

/* The value Prometheus has now for an instant query (URL-encoded), or -1. */
static double prom_query(const char *query)
{
    char path[1024];
    snprintf(path, sizeof(path), "/api/v1/query?query=%s", query);
    if (http_get(prom_port, path, out, sizeof(out)) != 200)
        return -1;
    json_t *doc = json_loads(out, 0, NULL);
    json_t *v = json_array_get(
        json_object_get(json_array_get(json_object_get(json_object_get(doc, "data"), "result"), 0),
                        "value"),
        1);
    double d = json_is_string(v) ? strtod(json_string_value(v), NULL) : -1;
    json_decref(doc);
    return d;
}

static int setup(void **state)
{
    (void)state;
    fleet_setup_n(&F, 3, 4194304); /* agent 1: district-001 and -002; agent 2: -003 */
    agent_port = free_port();
    coord_port = free_port();
    prom_port = free_port();
    append("agent1.ini", agent_port);
    append("coord.ini", coord_port);
    fleet_start_all(&F);
    start_prometheus();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fleet_stop_all(&F);
    if (prom_pid > 0) {
        kill(prom_pid, SIGTERM);
        waitpid(prom_pid, NULL, 0);
    }
    return 0;
}

static void test_metrics_match_the_control_database(void **state)
{
    (void)state;
    char plan[1024], coord_text[1 << 16];
    snprintf(plan, sizeof(plan),
             "{\"name\": \"metrics\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", "
             "\"target\": \"20251106000003\", \"tenants\": [\"district-001\", \"district-002\", "
             "\"district-003\"], \"waves\": [{\"name\": \"all\", \"percent\": 100, "
             "\"max_parallel\": 4, \"soak_seconds\": 6}]}");
    FILE *run = fleet_run_start(&F, plan, 240);
    /* the coordinator serves while it runs: keep the last full scrape */
    coord_text[0] = '\0';
    for (int i = 0; i < 600; i++) {
        char body[1 << 16];
        if (http_get(coord_port, "/metrics", body, sizeof(body)) == 200 &&
            strstr(body, "pgrollout_coordinator_jobs_published_total") != NULL)
            snprintf(coord_text, sizeof(coord_text), "%s", body);
        else if (coord_text[0] != '\0')
            break; /* the run ended */
        sleep_ms(100);
    }
    int rc = fleet_run_finish(run, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout exited %d:\n%s", rc, out);
    assert_true(coord_text[0] != '\0');
    promtool_check(coord_text, "coordinator");
    assert_int_equal((long)sample(coord_text, "pgrollout_coordinator_jobs_published_total"),
                     fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.job_outbox "
                                          "WHERE sent_at IS NOT NULL"));
    assert_true(
        sample(coord_text, "pgrollout_coordinator_events_verified_total{type=\"result\"}") >= 1);

    char agent_text[1 << 16];
    assert_int_equal(http_get(agent_port, "/metrics", agent_text, sizeof(agent_text)), 200);
    promtool_check(agent_text, "agent");
    long applied = fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                        "rollout_id = 'metrics' AND state = 'succeeded' AND "
                                        "tenant_id IN ('district-001', 'district-002')");
    assert_int_equal(applied, 2);
    assert_int_equal(
        (long)sample(agent_text,
                     "pgrollout_agent_jobs_total{type=\"apply\",outcome=\"succeeded\"}"),
        applied);
    /* 34 indexes per tenant, each an observation of an index step */
    assert_true(sample(agent_text, "pgrollout_agent_step_duration_seconds_count{kind=\"index\"}") >=
                68);
    assert_int_equal((long)sample(agent_text, "pgrollout_agent_tenants{state=\"served\"}"), 2);
    /* 404 for anything but GET /metrics */
    assert_int_equal(http_get(agent_port, "/other", out, sizeof(out)), 404);

    /* Prometheus scraped both; its view matches (waits for a scrape after the rollout) */
    double seen = -1;
    for (int i = 0; i < 50 && seen != (double)applied; i++) {
        seen = prom_query("pgrollout_agent_jobs_total%7Btype%3D%22apply%22%2Coutcome%3D%22"
                          "succeeded%22%7D");
        if (seen != (double)applied)
            sleep_ms(200);
    }
    assert_true(seen == (double)applied);
    /* the coordinator lived through the wave's 6 s soak: Prometheus scraped it meanwhile */
    double published =
        prom_query("max_over_time(pgrollout_coordinator_jobs_published_total%5B5m%5D)");
    assert_true(published ==
                (double)fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.job_outbox "
                                             "WHERE sent_at IS NOT NULL"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_match_the_control_database),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
