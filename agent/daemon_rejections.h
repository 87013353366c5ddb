/*
 * daemon_rejections.h - unauthenticated job messages (not an envelope, oversized, unknown or
 * revoked key, bad signature) cost the agent no database work on its intake thread. Anyone who can
 * write to the jobs topic can send them, thousands a second, keyed to one tenant: recording each
 * one synchronously would stall every other tenant's intake behind that tenant's database. They are
 * counted per tenant and reason and recorded by a background thread: one `job_rejected` audit
 * record and one `security` event per tenant and reason per DAEMON_REJECTIONS_INTERVAL_MS, with
 * the count and the first and last message digests (docs/PROTOCOL.md 8.1).
 */
#ifndef AGENT_DAEMON_REJECTIONS_H
#define AGENT_DAEMON_REJECTIONS_H

#include "daemon_int.h"

/* Counts one unauthenticated message of tenant t (intake thread; no I/O). */
void daemon_rejections_note(agent_daemon *d, daemon_tenant *t, const char *reason, const char *kid,
                            const char *detail, const char *digest);

/* Starts and stops the thread that records the counted rejections; stopping records what is
 * still counted first. */
bool daemon_rejections_start(agent_daemon *d);
void daemon_rejections_stop(agent_daemon *d);

/* Records count unauthenticated rejections of tenant t with one reason: one job_rejected audit
 * record and then one security event carrying the count and the first and last digests (any
 * thread; daemon_rejections.c calls it). Returns false, sending nothing, when the record could not
 * be written. */
bool daemon_rejections_record(agent_daemon *d, daemon_tenant *t, const char *reason,
                              const char *kid, const char *detail, long long count,
                              const char *first, const char *last);

#endif
