/*
 * daemon_main.h - `pgrollout-agent run --config FILE`: consumes signed jobs for the tenants this
 * agent serves from Kafka, verifies them before parsing, records them durably in the tenant
 * database, commits the offset, runs the executor (several tenants in parallel) and streams
 * signed events (heartbeat, step, progress, result, security) back.
 */
#ifndef AGENT_DAEMON_H
#define AGENT_DAEMON_H

int daemon_main_run(int argc, char **argv);

#endif
