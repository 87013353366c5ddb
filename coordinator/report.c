/*
 * report.c - the HTML report of a rollout (report.h).
 */
#include "report.h"

#include "pgr/pg.h"

#include <stdio.h>
#include <string.h>

/* The one HTML encoder of the report, for element text and quoted attribute values alike: every
 * value shown may come from an agent's event (errors, outcomes) or a tenant id, so none is
 * written as it is. */
static void html_escape(FILE *f, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            /* control characters (an ESC from an event) as references, never raw bytes */
            if (((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') || *s == 0x7f)
                fprintf(f, "&#x%02x;", (unsigned char)*s);
            else
                fputc(*s, f);
        }
    }
}

/* Writes a query's rows as an HTML table (header from the column names). */
static pgr_code table(FILE *f, coord *c, const char *title, const char *sql, const char *rollout,
                      pgr_error *err)
{
    PGresult *r = NULL;
    pgr_code rc = pgr_pg_execp(c->db, sql, 1, (const char *[]){rollout}, &r, err);
    if (rc != PGR_OK)
        return rc;
    fprintf(f, "<h2>");
    html_escape(f, title);
    fprintf(f, " <small>(%d)</small></h2>\n<table><tr>", PQntuples(r));
    for (int k = 0; k < PQnfields(r); k++) {
        fputs("<th>", f);
        html_escape(f, PQfname(r, k));
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (int i = 0; i < PQntuples(r); i++) {
        fputs("<tr>", f);
        for (int k = 0; k < PQnfields(r); k++) {
            const char *v = PQgetvalue(r, i, k);
            fputs("<td class=\"", f);
            html_escape(f, strcmp(PQfname(r, k), "result") == 0 ? v : "");
            fputs("\">", f);
            html_escape(f, v);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    PQclear(r);
    return PGR_OK;
}

static const char *const css =
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-"
    "bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;font-size:.9em;text-align:left}"
    "th{background:#f0f0f0}.succeeded,.passed{background:#e6f6e6}.failed,.rejected{background:"
    "#fbe3e3}.rolled_back,.paused,.awaiting_approval{background:#fff4d6}small{color:#777}";

pgr_code coord_report_write(coord *c, const char *rollout, FILE *f, pgr_error *err)
{
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>pgrollout ");
    html_escape(f, rollout);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>Rollout ", css);
    html_escape(f, rollout);
    fputs("</h1>\n", f);
    pgr_code rc = table(f, c, "Rollout",
                        "SELECT rollout_id, state AS result, operator, created_at, updated_at FROM "
                        "pgrollout_control.rollouts WHERE rollout_id = $1",
                        rollout, err);
    rc = rc != PGR_OK
             ? rc
             : table(f, c, "Waves",
                     "SELECT idx + 1 AS wave, name, state AS result, started_at, finished_at, "
                     "finished_at - started_at AS duration, approved_by, approved_at FROM "
                     "pgrollout_control.rollout_waves WHERE rollout_id = $1 ORDER BY idx",
                     rollout, err);
    rc = rc != PGR_OK
             ? rc
             : table(f, c, "Tenants (timeline)",
                     "SELECT w.name AS wave, t.tenant_id, t.state AS result, min(e.received_at) "
                     "AS started, max(e.received_at) AS ended, max(e.received_at) - "
                     "min(e.received_at) AS duration, t.version, t.agent_id FROM "
                     "pgrollout_control.tenant_runs t JOIN pgrollout_control.rollout_waves w "
                     "ON w.rollout_id = t.rollout_id AND w.idx = t.wave LEFT JOIN "
                     "pgrollout_control.events e ON e.tenant_id = t.tenant_id AND e.job_id IN "
                     "(SELECT job_id FROM pgrollout_control.tenant_runs x WHERE x.rollout_id = "
                     "$1) WHERE t.rollout_id = $1 GROUP BY w.idx, w.name, t.tenant_id, "
                     "t.state, t.version, t.agent_id ORDER BY min(e.received_at) NULLS LAST, "
                     "w.idx, t.tenant_id",
                     rollout, err);
    /* the manifests its jobs carried: who released the SQL (the signers each agent accepted are
     * in the audit records' release_kids) */
    rc = rc != PGR_OK
             ? rc
             : table(
                   f, c, "Releases (manifests the jobs carried)",
                   "SELECT x.p->>'release_id' AS release, x.p->>'to' AS up_to, x.p->'scope' AS "
                   "scope, x.p->>'expires_at' AS expires, (SELECT string_agg(s->>'kid', ', ') FROM "
                   "jsonb_array_elements(m->'signatures') AS s) AS signed_by, "
                   "encode(sha256(decode(m->>'payload', 'base64')), 'hex') AS digest FROM "
                   "pgrollout_control.rollouts r, jsonb_array_elements(coalesce(r.plan->"
                   "'releases', '[]')) AS m CROSS JOIN LATERAL (SELECT convert_from(decode(m->>"
                   "'payload', 'base64'), 'UTF8')::jsonb AS p) AS x WHERE r.rollout_id = $1",
                   rollout, err);
    rc = rc != PGR_OK ? rc
                      : table(f, c, "Failures",
                              "SELECT tenant_id, state AS result, version, step, error FROM "
                              "pgrollout_control.tenant_runs WHERE rollout_id = $1 AND state IN "
                              "('failed', 'rejected', 'rolled_back') ORDER BY tenant_id",
                              rollout, err);
    rc = rc != PGR_OK ? rc
                      : table(f, c, "Operator actions",
                              "SELECT at, action, wave, operator, detail FROM "
                              "pgrollout_control.operator_log WHERE rollout_id = $1 ORDER BY id",
                              rollout, err);
    rc = rc != PGR_OK
             ? rc
             : table(f, c, "Audit record (central, per tenant of this rollout)",
                     "SELECT t.tenant_id, count(a.seq) AS records, max(a.seq) AS last_seq, "
                     "max(a.hash) FILTER (WHERE a.seq = (SELECT max(seq) FROM "
                     "pgrollout_control.audit_log z WHERE z.tenant_id = t.tenant_id)) AS "
                     "anchor_hash, (SELECT count(*) FROM pgrollout_control.audit_alerts al "
                     "WHERE al.tenant_id = t.tenant_id) AS alerts FROM "
                     "pgrollout_control.tenant_runs t LEFT JOIN pgrollout_control.audit_log a "
                     "ON a.tenant_id = t.tenant_id WHERE t.rollout_id = $1 GROUP BY "
                     "t.tenant_id ORDER BY t.tenant_id",
                     rollout, err);
    fputs("<p><small>Generated by pgrollout report. Object names, counts and hashes only: no "
          "patient data.</small></p>\n</body></html>\n",
          f);
    return rc;
}

bool coord_report_rollout_exists(coord *c, const char *rollout)
{
    PGresult *r = NULL;
    bool yes = pgr_pg_execp(c->db, "SELECT 1 FROM pgrollout_control.rollouts WHERE rollout_id = $1",
                            1, (const char *[]){rollout}, &r, NULL) == PGR_OK &&
               PQntuples(r) > 0;
    PQclear(r);
    return yes;
}
