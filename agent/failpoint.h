/*
 * failpoint.h - crash points for the tests of resumption.
 */
#ifndef AGENT_FAILPOINT_H
#define AGENT_FAILPOINT_H

/* When the environment variable PGR_FAILPOINT equals name, the process kills itself with SIGKILL
 * right here (tests of resumption; never set in production). */
void agent_failpoint(const char *name);

#endif
