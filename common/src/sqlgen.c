/* sqlgen.c - generated SQL for foreign-key steps; identifiers always quoted by libpq. */
#include "pgr/sqlgen.h"
#include "pgr/buf.h"

#include <stdlib.h>
#include <string.h>

/* Appends one identifier, quoted by libpq. */
static pgr_code append_ident(PGconn *conn, pgr_buf *out, const char *ident, size_t len,
                             pgr_error *err)
{
    char *q = PQescapeIdentifier(conn, ident, len);
    if (q == NULL)
        return pgr_error_set(err, PGR_ERR_INVALID, "could not quote identifier: %s",
                             PQerrorMessage(conn));
    pgr_code rc = pgr_buf_append(out, q, strlen(q));
    PQfreemem(q);
    return rc;
}

/* Appends "schema"."table" or "table". */
static pgr_code append_qualified(PGconn *conn, pgr_buf *out, const char *name, pgr_error *err)
{
    const char *dot = strchr(name, '.');
    pgr_code rc = PGR_OK;
    if (dot != NULL) {
        rc = append_ident(conn, out, name, (size_t)(dot - name), err);
        if (rc == PGR_OK)
            rc = pgr_buf_append(out, ".", 1);
        name = dot + 1;
    }
    if (rc == PGR_OK)
        rc = append_ident(conn, out, name, strlen(name), err);
    return rc;
}

pgr_code pgr_sqlgen_qualified(PGconn *conn, pgr_buf *out, const char *name, pgr_error *err)
{
    return append_qualified(conn, out, name, err);
}

pgr_code pgr_sqlgen_ident(PGconn *conn, pgr_buf *out, const char *ident, pgr_error *err)
{
    return append_ident(conn, out, ident, strlen(ident), err);
}

pgr_code pgr_sqlgen_idents(PGconn *conn, pgr_buf *out, const char *list, const char *alias,
                           pgr_error *err)
{
    const char *p = list;
    pgr_code rc = PGR_OK;
    while (rc == PGR_OK && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (p != list)
            rc = pgr_buf_append(out, ", ", 2);
        if (rc == PGR_OK && alias != NULL)
            rc = pgr_buf_appendf(out, "%s.", alias);
        if (rc == PGR_OK)
            rc = append_ident(conn, out, p, n, err);
        p = comma != NULL ? comma + 1 : p + n;
    }
    return rc;
}

static const char *fk_action(const char *a)
{
    if (a == NULL || strcmp(a, "no_action") == 0)
        return "NO ACTION";
    if (strcmp(a, "cascade") == 0)
        return "CASCADE";
    if (strcmp(a, "restrict") == 0)
        return "RESTRICT";
    if (strcmp(a, "set_null") == 0)
        return "SET NULL";
    return "SET DEFAULT";
}

static pgr_code alter_table(PGconn *conn, const pgr_step *s, pgr_buf *out, const char *verb,
                            pgr_error *err)
{
    pgr_code rc = pgr_buf_appendf(out, "ALTER TABLE ");
    if (rc == PGR_OK)
        rc = append_qualified(conn, out, s->table, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, " %s ", verb);
    if (rc == PGR_OK)
        rc = append_ident(conn, out, s->name, strlen(s->name), err);
    return rc;
}

pgr_code pgr_sqlgen_fk_add(PGconn *conn, const pgr_step *s, bool not_valid, pgr_buf *out,
                           pgr_error *err)
{
    pgr_code rc = alter_table(conn, s, out, "ADD CONSTRAINT", err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, " FOREIGN KEY (");
    if (rc == PGR_OK)
        rc = pgr_sqlgen_idents(conn, out, s->columns, NULL, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, ") REFERENCES ");
    if (rc == PGR_OK)
        rc = append_qualified(conn, out, s->ref_table, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, " (");
    if (rc == PGR_OK)
        rc = pgr_sqlgen_idents(conn, out, s->ref_columns, NULL, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, ") ON UPDATE %s ON DELETE %s%s", fk_action(s->on_update),
                             fk_action(s->on_delete), not_valid ? " NOT VALID" : "");
    return rc;
}

pgr_code pgr_sqlgen_fk_validate(PGconn *conn, const pgr_step *s, pgr_buf *out, pgr_error *err)
{
    return alter_table(conn, s, out, "VALIDATE CONSTRAINT", err);
}

pgr_code pgr_sqlgen_fk_drop(PGconn *conn, const pgr_step *s, pgr_buf *out, pgr_error *err)
{
    return alter_table(conn, s, out, "DROP CONSTRAINT IF EXISTS", err);
}

/* Appends "c.a IS NOT NULL AND ..." for every child column. */
static pgr_code not_null_conds(PGconn *conn, const pgr_step *s, pgr_buf *out, pgr_error *err)
{
    const char *p = s->columns;
    pgr_code rc = PGR_OK;
    while (rc == PGR_OK && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        rc = pgr_buf_appendf(out, "c.");
        if (rc == PGR_OK)
            rc = append_ident(conn, out, p, n, err);
        if (rc == PGR_OK)
            rc = pgr_buf_appendf(out, " IS NOT NULL AND ");
        p = comma != NULL ? comma + 1 : p + n;
    }
    return rc;
}

/* Appends "p.x = c.a AND p.y = c.b". */
static pgr_code join_conds(PGconn *conn, const pgr_step *s, pgr_buf *out, pgr_error *err)
{
    const char *c = s->columns, *p = s->ref_columns;
    pgr_code rc = PGR_OK;
    while (rc == PGR_OK && *c != '\0' && *p != '\0') {
        const char *cc = strchr(c, ','), *pc = strchr(p, ',');
        size_t cn = cc != NULL ? (size_t)(cc - c) : strlen(c);
        size_t pn = pc != NULL ? (size_t)(pc - p) : strlen(p);
        if (c != s->columns)
            rc = pgr_buf_appendf(out, " AND ");
        if (rc == PGR_OK)
            rc = pgr_buf_appendf(out, "p.");
        if (rc == PGR_OK)
            rc = append_ident(conn, out, p, pn, err);
        if (rc == PGR_OK)
            rc = pgr_buf_appendf(out, " = c.");
        if (rc == PGR_OK)
            rc = append_ident(conn, out, c, cn, err);
        c = cc != NULL ? cc + 1 : c + cn;
        p = pc != NULL ? pc + 1 : p + pn;
    }
    return rc;
}

static size_t list_len(const char *l)
{
    size_t n = 1;
    for (; *l != '\0'; l++)
        n += *l == ',';
    return n;
}

pgr_code pgr_sqlgen_orphan_from(PGconn *conn, const pgr_step *s, pgr_buf *out, pgr_error *err)
{
    if (list_len(s->columns) != list_len(s->ref_columns))
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "foreign key \"%s\": %zu columns reference %zu columns", s->name,
                             list_len(s->columns), list_len(s->ref_columns));
    pgr_code rc = pgr_buf_appendf(out, "FROM ");
    if (rc == PGR_OK)
        rc = append_qualified(conn, out, s->table, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, " c WHERE ");
    if (rc == PGR_OK)
        rc = not_null_conds(conn, s, out, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, "NOT EXISTS (SELECT 1 FROM ");
    if (rc == PGR_OK)
        rc = append_qualified(conn, out, s->ref_table, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, " p WHERE ");
    if (rc == PGR_OK)
        rc = join_conds(conn, s, out, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(out, ")");
    return rc;
}
