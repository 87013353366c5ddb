/*
 * live.c - the live view of a rollout (live.h).
 */
#include "live.h"
#include "ctldb.h"

#include "pgr/parse.h"
#include "pgr/pg.h"
#include "pgr/term.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void coord_live_init(coord_live *v, bool json)
{
    memset(v, 0, sizeof(*v));
    v->json = json;
    v->wave_line_count = COORD_LIVE_WAVES;
}

/* A number column as JSON: an integer when it is one, else a real (percent). */
static json_t *number_json(const char *s)
{
    int64_t i = 0;
    double d = 0;
    if (pgr_parse_int64(s, INT64_MIN, INT64_MAX, &i, NULL) == PGR_OK)
        return json_integer((json_int_t)i);
    if (pgr_parse_double(s, -1e308, 1e308, &d, NULL) == PGR_OK)
        return json_real(d);
    return json_null();
}

/* One progress line for --json: o encoded by jansson (o is consumed), or NULL. */
static char *json_line(json_t *o)
{
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return line;
}

/* Prints line (owned) when it differs from *last, which then holds it. */
static void print_changed(char **last, char *line)
{
    if (line == NULL)
        return;
    if (*last != NULL && strcmp(*last, line) == 0) {
        free(line);
        return;
    }
    printf("%s\n", line);
    free(*last);
    *last = line;
}

/* A wave's progress line: JSON, or text escaped for the terminal (wave names are the plan's,
 * states come from the control database). */
static char *wave_line(const coord_live *v, const PGresult *r, int i)
{
    int total = coord_ctldb_int(r, i, 3), done = coord_ctldb_int(r, i, 4);
    if (v->json) {
        json_t *o = json_object();
        json_object_set_new(o, "wave", pgr_term_json_string(PQgetvalue(r, i, 1)));
        json_object_set_new(o, "state", pgr_term_json_string(PQgetvalue(r, i, 2)));
        json_object_set_new(o, "done", json_integer(done));
        json_object_set_new(o, "total", json_integer(total));
        json_object_set_new(o, "failed", json_integer(coord_ctldb_int(r, i, 5)));
        return json_line(o);
    }
    char bar[21], line[1024];
    int fill = total > 0 ? done * 20 / total : 0;
    for (int k = 0; k < 20; k++)
        bar[k] = k < fill ? '#' : '.';
    bar[20] = '\0';
    pgr_term_format(line, sizeof(line), "wave %-12s %-18s [%s] %d/%d done, %s failed",
                    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), bar, done, total,
                    PQgetvalue(r, i, 5));
    return strdup(line);
}

/* One line per wave when its counts change: state, done/total and a bar. */
static void show_waves(coord_live *v, coord *c, const char *rollout)
{
    PGresult *r = NULL;
    if (pgr_pg_execp(c->db,
                     "SELECT w.idx, w.name, w.state, count(t.*), count(t.*) FILTER (WHERE "
                     "t.state IN ('succeeded', 'failed', 'rejected', 'rolled_back')), count(t.*) "
                     "FILTER (WHERE t.state IN ('failed', 'rejected')) FROM "
                     "pgrollout_control.rollout_waves w LEFT JOIN pgrollout_control.tenant_runs t "
                     "ON t.rollout_id = w.rollout_id AND t.wave = w.idx WHERE w.rollout_id = $1 "
                     "GROUP BY w.idx, w.name, w.state ORDER BY w.idx",
                     1, (const char *[]){rollout}, &r, NULL) != PGR_OK)
        return;
    for (int i = 0; i < PQntuples(r) && (size_t)i < v->wave_line_count; i++)
        print_changed(&v->wave_line[i], wave_line(v, r, i));
    PQclear(r);
}

/* A tenant run's progress line: JSON, or text escaped for the terminal (the error is an
 * agent's free text). */
static char *tenant_line(const coord_live *v, const PGresult *r, int i)
{
    const char *pct = PQgetvalue(r, i, 6);
    if (v->json) {
        json_t *o = json_object();
        json_object_set_new(o, "wave", pgr_term_json_string(PQgetvalue(r, i, 8)));
        json_object_set_new(o, "tenant_id", pgr_term_json_string(PQgetvalue(r, i, 0)));
        json_object_set_new(o, "state", pgr_term_json_string(PQgetvalue(r, i, 1)));
        json_object_set_new(o, "version", pgr_term_json_string(PQgetvalue(r, i, 2)));
        json_object_set_new(o, "step", number_json(PQgetvalue(r, i, 3)));
        json_object_set_new(o, "steps", number_json(PQgetvalue(r, i, 4)));
        json_object_set_new(o, "percent", number_json(pct));
        return json_line(o);
    }
    char line[2048];
    pgr_term_format(line, sizeof(line), "[%s] %-20s %-10s %s %s/%s %s %s%s%s", PQgetvalue(r, i, 8),
                    PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                    PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
                    strcmp(pct, "0") != 0 ? pct : "", strcmp(pct, "0") != 0 ? "% " : "",
                    PQgetvalue(r, i, 7));
    return strdup(line);
}

void coord_live_show(coord_live *v, coord *c, const char *rollout)
{
    show_waves(v, c, rollout);
    PGresult *r = NULL;
    if (pgr_pg_execp(c->db,
                     "SELECT t.tenant_id, t.state, coalesce(t.version, ''), coalesce(t.step, 0), "
                     "coalesce(t.steps, 0), coalesce(t.object, ''), coalesce(t.percent, 0), "
                     "coalesce(t.error, ''), w.name FROM pgrollout_control.tenant_runs t JOIN "
                     "pgrollout_control.rollout_waves w ON w.rollout_id = t.rollout_id AND "
                     "w.idx = t.wave WHERE t.rollout_id = $1 ORDER BY t.wave, t.tenant_id",
                     1, (const char *[]){rollout}, &r, NULL) != PGR_OK)
        return;
    if (v->last == NULL) {
        v->last_count = (size_t)PQntuples(r);
        v->last = calloc(v->last_count + 1, sizeof(char *));
    }
    for (int i = 0; v->last != NULL && i < PQntuples(r) && (size_t)i < v->last_count; i++)
        print_changed(&v->last[i], tenant_line(v, r, i));
    fflush(stdout);
    PQclear(r);
}

void coord_live_free(coord_live *v)
{
    for (size_t i = 0; v->last != NULL && i < v->last_count; i++)
        free(v->last[i]);
    free(v->last);
    v->last = NULL;
    v->last_count = 0;
    for (size_t i = 0; i < v->wave_line_count; i++) {
        free(v->wave_line[i]);
        v->wave_line[i] = NULL;
    }
}
