/*
 * fuzz_event.c - what the coordinator does with messages from agents: envelopes of the events
 * topic (coord_event_parse, then coord_event_run_update for events of a job) and of the audit
 * topic (coord_audit_ingest_check: members, key allowed for the tenant, hash chain link), opened
 * with a fixed keyring. The input also goes straight to both parsers as if key 1 (restricted to
 * district-001 and district-002) had signed it.
 */
#include "fuzz_common.h"

#include "audit_ingest.h"
#include "event.h"

#include "pgr/envelope.h"

#include <stdlib.h>
#include <string.h>

static void check_event(const char *buf, size_t len, const pgr_keyring_entry *e)
{
    json_t *ev = coord_event_parse(buf, len, e, NULL);
    if (ev == NULL)
        return;
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *tenant = json_string_value(json_object_get(ev, "tenant_id"));
    if (type == NULL || (tenant != NULL && !pgr_keyring_allows_tenant(e, tenant)))
        fuzz_fail("an accepted event lacks a type or speaks for a tenant its key may not");
    if (coord_event_rule_broken(ev) != NULL)
        fuzz_fail("an accepted event breaks a rule of its members");
    if (json_object_get(ev, "job_id") != NULL) {
        coord_event_update u;
        coord_event_run_update(ev, &u);
        if (u.agent_id == NULL || strlen(u.step) >= sizeof(u.step) ||
            strlen(u.steps) >= sizeof(u.steps) || strlen(u.percent) >= sizeof(u.percent))
            fuzz_fail("a run update lost its agent or overran a buffer");
    }
    json_decref(ev);
}

static void check_audit(const char *buf, size_t len, const pgr_keyring_entry *e)
{
    coord_audit_ingest_msg a;
    const char *detail = NULL;
    const char *kind = coord_audit_ingest_check(buf, len, FUZZ_TENANT, e, &a, &detail);
    if ((kind == NULL) != (detail == NULL))
        fuzz_fail("an audit alert without detail, or detail without an alert");
    if (kind == NULL && (a.seq < 1 || a.record == NULL || strcmp(a.tenant_id, FUZZ_TENANT) != 0))
        fuzz_fail("an audit record to be stored lacks its chain position");
    json_decref(a.doc);
}

/* Opens buf as an envelope of domain d; returns the payload (caller frees) or NULL. */
static char *open_envelope(const char *buf, size_t len, pgr_domain d, size_t *plen,
                           const pgr_keyring_entry **e)
{
    char *payload = NULL, kid[PGR_KID_LEN];
    pgr_envelope_reject why = PGR_REJECT_NONE;
    pgr_error err;
    if (pgr_envelope_open(buf, len, 1 << 20, d, fuzz_keyring(), &payload, plen, e, kid, &why,
                          &err) != PGR_OK) {
        if (why == PGR_REJECT_NONE)
            fuzz_fail("a refused envelope has no reason");
        return NULL;
    }
    return payload;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const pgr_keyring_entry *e = NULL;
    size_t plen = 0;

    char *payload = open_envelope(buf, size, PGR_DOMAIN_EVENT, &plen, &e);
    if (payload != NULL) {
        check_event(payload, plen, e);
        free(payload);
    }
    payload = open_envelope(buf, size, PGR_DOMAIN_AUDIT, &plen, &e);
    if (payload != NULL) {
        check_audit(payload, plen, e);
        free(payload);
    }
    const pgr_keyring *kr = fuzz_keyring();
    check_event(buf, size, &kr->items[1]);
    check_audit(buf, size, &kr->items[1]);
    return 0;
}
