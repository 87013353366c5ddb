/*
 * rejections.h - unauthenticated job messages (not an envelope, oversized, unknown or revoked
 * key, bad signature) cost the agent no database work on its intake thread. Anyone who can write
 * to the jobs topic can send them, thousands a second, keyed to one tenant: recording each one
 * synchronously would stall every other tenant's intake behind that tenant's database. They are
 * counted per tenant and reason and recorded by a background thread: one `job_rejected` audit
 * record and one `security` event per tenant and reason per DAEMON_REJECTIONS_INTERVAL_MS, with
 * the count and the first and last message digests (docs/PROTOCOL.md 8.1).
 */
#ifndef AGENT_REJECTIONS_H
#define AGENT_REJECTIONS_H

#include "pgr/crypto.h"
#include "pgr/envelope.h"

#include <pthread.h>
#include <stdbool.h>

#define DAEMON_REJECTIONS_INTERVAL_MS 5000

/* The envelope-level reasons (8.1 step 2), each counted apart. */
#define DAEMON_REJECTION_REASONS 5

/* Rejections of one tenant and reason not yet recorded. */
typedef struct daemon_rejection_window {
    long long count;
    char reason[24];
    char kid[PGR_KID_LEN]; /* claimed by the first message of the window */
    char detail[256];      /* the first message's */
    char first[PGR_SHA256_HEX_LEN], last[PGR_SHA256_HEX_LEN];
    long long last_record_ms; /* monotonic: when this reason was last recorded */
} daemon_rejection_window;

struct agent_daemon;
struct daemon_tenant;

/* Counts one unauthenticated message of tenant t (intake thread; no I/O). */
void daemon_rejections_note(struct agent_daemon *d, struct daemon_tenant *t, const char *reason,
                            const char *kid, const char *detail, const char *digest);

/* Starts and stops the thread that records the counted rejections; stopping records what is
 * still counted first. */
bool daemon_rejections_start(struct agent_daemon *d);
void daemon_rejections_stop(struct agent_daemon *d);

#endif
