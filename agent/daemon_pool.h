/*
 * daemon_pool.h - which tenants this agent serves: all of [tenants] alone, or, with agent.pool,
 * those of the jobs partitions Kafka's group rebalancing gives it, each taken over in the tenant
 * database (owner epoch) before its jobs run.
 */
#ifndef AGENT_DAEMON_POOL_H
#define AGENT_DAEMON_POOL_H
#include "daemon_int.h"

/* The jobs partition of every tenant (partitions: of the jobs topic). Without a pool every
 * tenant is owned and taken from the start (daemon_main.c); with one, none is until the group
 * assigns its partition. False when out of memory. */
bool daemon_pool_init(agent_daemon *d, int partitions);

/* A tenant that starts being served while the daemon runs (found on a tenant source, or back
 * after it was gone): alone, it is owned and taken at once; in a pool, owned when the group
 * gives this agent its partition now, and taken over by daemon_pool_take. */
void daemon_pool_place(agent_daemon *d, daemon_tenant *t);

/* A tenant this agent no longer serves: its running job stops before the next step
 * (interrupted, not failed), its queued jobs are dropped; all stay recorded in its database. */
void daemon_pool_let_go(daemon_tenant *t);

/* The rebalance callback of the pool's consumer (opaque: the daemon). Gained partitions make
 * their tenants owned (taken over by daemon_pool_take); lost ones stop their tenants' jobs
 * before the next step and drop their queues (the jobs stay recorded for the new owner). */
void daemon_pool_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                           rd_kafka_topic_partition_list_t *parts, void *opaque);

/* Takes over the owned tenants not yet taken (a failed try waits 5 s): raises the owner epoch
 * in the tenant database, then queues the tenant's unfinished jobs as a restart does. */
void daemon_pool_take(agent_daemon *d, long long now_ms);

/* Whether tenant t's jobs may be recorded and run by this agent now. */
bool daemon_pool_serves(const daemon_tenant *t);

#endif
