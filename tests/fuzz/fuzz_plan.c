/*
 * fuzz_plan.c - the rollout plan parser and wave resolution (coordinator/planfile.c): the input is
 * read as coord_planfile_load reads a plan file (JSON, duplicate members refused) and resolved
 * without a control database, so the plan's own "tenants" list is the fleet. The working
 * directory holds an empty "migrations" directory (tests/fuzz/run.sh), so plans that name it
 * get past the directory check. A resolved plan must put every tenant in exactly one wave.
 */
#include "fuzz_common.h"

#include "planfile.h"

#include <stdlib.h>
#include <string.h>

static void check_plan(const coord_planfile *p)
{
    size_t total = 0;
    if (p->wave_count == 0 || p->name == NULL || p->type == NULL || p->on_failure == NULL)
        fuzz_fail("a resolved plan lacks waves, name, type or on_failure");
    for (size_t i = 0; i < p->wave_count; i++) {
        const coord_planfile_wave *w = &p->waves[i];
        if (w->count == 0 || w->name == NULL || w->max_parallel < 1 ||
            coord_planfile_wave_budget(w) < 0)
            fuzz_fail("a resolved wave is empty or has no name, parallelism or budget");
        for (size_t k = 0; k < w->count; k++) {
            for (size_t j = 0; j <= i; j++) {
                for (size_t l = 0; l < p->waves[j].count; l++) {
                    if ((j != i || l != k) && strcmp(p->waves[j].tenants[l], w->tenants[k]) == 0)
                        fuzz_fail("a tenant is in two waves, or twice in one");
                }
            }
        }
        total += w->count;
    }
    if (total != json_array_size(json_object_get(p->doc, "tenants")))
        fuzz_fail("the waves do not hold the plan's tenants");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    coord_planfile p;
    pgr_error err;

    /* as coord_planfile_load, from a buffer */
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL)
        return 0;
    pgr_error_clear(&err);
    if (coord_planfile_resolve(doc, NULL, &p, &err) == PGR_OK)
        check_plan(&p);
    else if (err.msg[0] == '\0')
        fuzz_fail("a refused plan has no message");
    coord_planfile_free(&p);
    return 0;
}
