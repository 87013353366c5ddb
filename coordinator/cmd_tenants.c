/* cmd_tenants.c - `pgrollout tenants [list]`: the tenants known from agent heartbeats. */
#include "cmd_tenants.h"
#include "cmd_common.h"

#include <string.h>

int coord_cmd_tenants_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        argc--;
        argv++;
    }
    return coord_cmd_common_query_main(
        argc, argv,
        "usage: pgrollout tenants [list] --config FILE [--json]\n"
        "Tenants known from signed agent heartbeats, with last-seen time.\n",
        "SELECT tenant_id, agent_id, agent_kid, to_char(last_seen AT TIME ZONE "
        "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_seen, next_seq AS "
        "last_seq FROM pgrollout_control.tenants ORDER BY tenant_id",
        false);
}
