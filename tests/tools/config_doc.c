/*
 * config_doc.c - prints the configuration reference of docs/OPERATIONS.md from the config table
 * (pgr_config_keys), as a Markdown table; tests/check_config_doc.sh compares or splices it.
 */
#include "pgr/config.h"

#include <stdio.h>
#include <string.h>

static const char *type_name(pgr_cf_type t)
{
    return t == PGR_CF_INT ? "integer" : t == PGR_CF_ENUM ? "one of" : "string";
}

/* "a|b|c" -> "`a`, `b`, `c`" */
static void print_values(const char *values)
{
    const char *p = values;
    while (*p != '\0') {
        size_t n = strcspn(p, "|");
        printf("%s`%.*s`", p == values ? "" : ", ", (int)n, p);
        p += n + (p[n] == '|');
    }
}

static void print_row(const pgr_config_key *k)
{
    const char *dot = strchr(k->name, '.'); /* "section.key"; a key without a section as it is */
    if (dot != NULL)
        printf("| `[%.*s]` `%s` | %s", (int)(dot - k->name), k->name, dot + 1, type_name(k->type));
    else
        printf("| `%s` | %s", k->name, type_name(k->type));
    if (k->type == PGR_CF_ENUM) {
        printf(" ");
        print_values(k->enum_values);
    }
    printf(" | %s%s%s | ", k->default_value != NULL ? "`" : "",
           k->default_value != NULL ? k->default_value : "none",
           k->default_value != NULL ? "`" : "");
    if (k->type == PGR_CF_INT)
        printf("%ld to %ld", k->min, k->max);
    printf(" | %s |\n", k->help);
}

int main(void)
{
    printf("| key | type | default | range | meaning |\n|---|---|---|---|---|\n");
    for (const pgr_config_key *k = pgr_config_keys(); k->name != NULL; k++)
        print_row(k);
    return 0;
}
