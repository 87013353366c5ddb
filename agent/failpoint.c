/*
 * failpoint.c - crash points (failpoint.h).
 */
#include "failpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

void agent_failpoint(const char *name)
{
    const char *fp = getenv("PGR_FAILPOINT");
    if (fp != NULL && strcmp(fp, name) == 0)
        raise(SIGKILL);
}
