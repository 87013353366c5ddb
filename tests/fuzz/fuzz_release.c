/*
 * fuzz_release.c - release manifest files (common/src/release.c), as `pgrollout release verify`,
 * the plan loader and the agent's job parser read them. An accepted manifest must keep its
 * invariants (versions ascending within (from, to], the last one `to`, one scope, at most 16
 * signatures), survive a write and a second parse unchanged, and be checked without a crash
 * against a keyring that trusts nothing.
 */
#include "fuzz_common.h"

#include "pgr/release.h"

#include <stdlib.h>
#include <string.h>

static void check_invariants(const pgr_release *r)
{
    if (r->entry_count == 0 || strcmp(r->entries[r->entry_count - 1].version, r->to) != 0)
        fuzz_fail("an accepted manifest does not end at its to");
    for (size_t i = 1; i < r->entry_count; i++) {
        if (strcmp(r->entries[i - 1].version, r->entries[i].version) >= 0)
            fuzz_fail("accepted versions do not ascend");
    }
    int scopes = (r->scope_all ? 1 : 0) + (r->scope_tenants != NULL) + (r->scope_tags != NULL);
    if (scopes != 1 || r->sig_count > PGR_RELEASE_MAX_SIGS || r->expires_at <= r->created_at)
        fuzz_fail("an accepted manifest breaks a rule of PROTOCOL 14.1");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgr_release *r = NULL;
    if (pgr_release_parse((const char *)data, size, &r, NULL) != PGR_OK)
        return 0;
    check_invariants(r);
    char *text = pgr_release_text(r);
    pgr_release *again = NULL;
    if (text == NULL || pgr_release_parse(text, strlen(text), &again, NULL) != PGR_OK)
        fuzz_fail("a written manifest does not parse");
    if (again->payload_len != r->payload_len ||
        memcmp(again->payload, r->payload, r->payload_len) != 0 ||
        again->sig_count != r->sig_count || strcmp(again->digest, r->digest) != 0)
        fuzz_fail("a manifest changed through a write and a parse");
    pgr_keyring empty = {NULL, 0};
    if (pgr_release_check(r, &empty, 1, 0, NULL, 0, NULL) == PGR_OK)
        fuzz_fail("a manifest passed with no trusted key");
    PGR_IGNORE(pgr_release_covers_tenant(r, "district-001", "region:eu"));
    free(text);
    pgr_release_free(again);
    pgr_release_free(r);
    return 0;
}
