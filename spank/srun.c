/*
 * srun (local) and sbatch/salloc (allocator) contexts: register the options and validate them early,
 * so a typo fails on the submit host. Nothing runs here; the work happens on the nodes.
 */
#include <stdlib.h>

#include "args.h"
#include "config.h"
#include "shim.h"

static const char *srun_getenv(void *ctx, const char *name)
{
	(void)ctx;
	return (getenv(name));
}

int shim_srun_init(spank_t sp, int ac, char **av)
{
	struct shim_config config;

	/*
	 * pyxis does not parse the configuration in srun; we do, so that a bad plugstack line is reported
	 * where the user sees it. In the allocator context it also decides whether options exist at all.
	 */
	if (shim_config_parse(&config, ac, av) < 0)
		return (-1);
	if (spank_context() == S_CTX_ALLOCATOR && !config.sbatch_support)
		return (0);
	return (shim_args_register(sp));
}

int shim_srun_post_opt(spank_t sp, int ac, char **av)
{
	(void)sp, (void)ac, (void)av;
	shim_args_apply_env(srun_getenv, NULL);
	/* Only warnings here (pyxis): the activation rule's "ignoring ..." lines. */
	(void)shim_args_enabled(false);
	return (0);
}

int shim_srun_exit(spank_t sp, int ac, char **av)
{
	(void)sp, (void)ac, (void)av;
	shim_args_free();
	return (0);
}
