/*
 * daemon_release.h - the two-person rule on the agent: with [release] keyring, an apply or
 * rollback job runs only migrations whose exact bytes are in a release manifest the job carries,
 * signed by release.threshold distinct release keys, unexpired, whose scope covers the tenant
 * (docs/PROTOCOL.md section 14.4).
 */
#ifndef AGENT_DAEMON_RELEASE_H
#define AGENT_DAEMON_RELEASE_H
#include "daemon_int.h"

#define DAEMON_RELEASE_DIGESTS_LEN (16 * 65 + 1)
#define DAEMON_RELEASE_KIDS_LEN    (16 * 17 + 1)

/* Whether job may run on tenant t. True without a release keyring, and for verify and cancel
 * jobs; else every migration the job would run must be released. On true, digests and kids
 * (when not NULL) name the manifests used and their signers (comma-separated, "" when none);
 * on false, why says what is missing. */
bool daemon_release_allows(const agent_daemon *d, const daemon_tenant *t, const pgr_job *job,
                           char *why, size_t whylen, char digests[DAEMON_RELEASE_DIGESTS_LEN],
                           char kids[DAEMON_RELEASE_KIDS_LEN]);

/* A release keyring may not hold a key of the coordinators' keyring (one stolen key would then
 * both release and dispatch). Returns the shared kid, or NULL. */
const char *daemon_release_shared_key(const pgr_keyring *coordinators, const pgr_keyring *releases);

#endif
