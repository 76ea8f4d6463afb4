/*
 * The plugin declaration and nothing else: every slurm_spank_* callback is routed by spank_context() to
 * the file of that context (srun.c for srun/sbatch/salloc, slurmstepd.c for the remote step, epilog in
 * epilog.c). Only these symbols are exported (spank_enroot.lds).
 */
#include "shim.h"

SPANK_PLUGIN(enroot, 1)

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
	case S_CTX_ALLOCATOR:
		return (shim_srun_init(sp, ac, av));
	case S_CTX_REMOTE:
		return (shim_stepd_init(sp, ac, av));
	default:
		return (0);
	}
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
	case S_CTX_ALLOCATOR:
		return (shim_srun_post_opt(sp, ac, av));
	case S_CTX_REMOTE:
		return (shim_stepd_post_opt(sp, ac, av));
	default:
		return (0);
	}
}

int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	return (spank_context() == S_CTX_REMOTE ? shim_stepd_user_init(sp, ac, av) : 0);
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	return (spank_context() == S_CTX_REMOTE ? shim_stepd_task_init(sp, ac, av) : 0);
}

int slurm_spank_task_exit(spank_t sp, int ac, char **av)
{
	return (spank_context() == S_CTX_REMOTE ? shim_stepd_task_exit(sp, ac, av) : 0);
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
	case S_CTX_ALLOCATOR:
		return (shim_srun_exit(sp, ac, av));
	case S_CTX_REMOTE:
		return (shim_stepd_exit(sp, ac, av));
	default:
		return (0);
	}
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	return (spank_context() == S_CTX_JOB_SCRIPT ? shim_epilog(sp, ac, av) : 0);
}

int slurm_spank_slurmd_exit(spank_t sp, int ac, char **av)
{
	(void)sp, (void)ac, (void)av;
	return (0);
}
