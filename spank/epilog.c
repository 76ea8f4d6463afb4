/*
 * The job epilog (job_script context, root, once per node per job): end the job's launcher service on the
 * node (service.c); with container_scope=job, remove
 * this job's containers on the node by running `launcher slurm-epilog --job-id=J` as the job user. The
 * epilog has no job environment (pyxis#123), so the launcher resolves its paths from its own defaults.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "shim.h"
#include "step.h"

int shim_epilog(spank_t sp, int ac, char **av)
{
	static char *empty_env[] = { NULL };
	struct shim_step st = { .pid = -1, .pidfd = -1 };
	struct shim_argv argv = { 0 };
	struct shim_run run = { 0 };
	int status, rv = -1;

	if (shim_config_parse(&st.config, ac, av) < 0) {
		shim_error("epilog: failed to parse configuration");
		return (-1);
	}
	if (spank_get_item(sp, S_JOB_UID, &st.uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &st.gid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_ID, &st.jobid) != ESPANK_SUCCESS) {
		shim_error("epilog: couldn't get job uid|gid|ID");
		return (-1);
	}
	/* The job's launcher service on this node, if its steps started one, ends with the job. */
	shim_service_quit(&st.config, st.uid, st.gid, st.jobid);
	if (st.config.container_scope != SHIM_SCOPE_JOB)
		return (0);
	st.env = empty_env;
	shim_argv_push(&argv, "enroot");
	shim_argv_push(&argv, "slurm-epilog");
	shim_argv_push(&argv, "--job-id=%u", st.jobid);
	shim_argv_push(&argv, "--scope=job");
	status = shim_launcher_run(&st, &argv, &run);
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		rv = 0;
	else {
		shim_error("epilog: couldn't cleanup containers for job %u", st.jobid);
		shim_launcher_log_print(run.log_fd);
	}
	if (run.log_fd >= 0)
		close(run.log_fd);
	shim_argv_free(&argv);
	return (rv);
}
