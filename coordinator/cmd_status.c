/* cmd_status.c - `pgrollout status ROLLOUT`: each tenant run of a rollout. */
#include "cmd_status.h"
#include "cmd_common.h"

int coord_cmd_status_main(int argc, char **argv)
{
    return coord_cmd_common_query_main(
        argc, argv,
        "usage: pgrollout status ROLLOUT --config FILE [--json]\n"
        "Each tenant of a rollout: state, current migration and step, error.\n",
        "SELECT t.tenant_id, t.state, t.version, t.step, t.steps, t.percent, "
        "t.error, t.job_id, r.state AS rollout_state FROM "
        "pgrollout_control.tenant_runs t JOIN pgrollout_control.rollouts r USING "
        "(rollout_id) WHERE t.rollout_id = $1 ORDER BY t.tenant_id",
        true);
}
