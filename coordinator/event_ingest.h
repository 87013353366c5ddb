/*
 * event_ingest.h - the agents' events into the control database: each signed event is verified
 * with the agent keyring, stored once and folded into the tenant run it concerns, in one
 * statement (docs/PROTOCOL.md 9.7).
 */
#ifndef COORD_EVENT_INGEST_H
#define COORD_EVENT_INGEST_H

#include "coord.h"

#include <jansson.h>

/* Verifies one event message with the agent keyring, records it once in the control database and
 * updates the tenant run it concerns. Returns the parsed payload (caller decrefs) or NULL when
 * refused or already stored (a redelivery). A signed event refused for breaking the protocol
 * is a row of security_alerts naming its key. */
json_t *coord_event_ingest(coord *c, const rd_kafka_message_t *m);

#endif
