/*
 * Shared declarations of the enroot SPANK shim: message prefix, logging macros, the per-step state.
 *
 * Messages keep pyxis's exact wording after the prefix, so "grep 'specified multiple times'" keeps
 * working; the prefix is the plugin name ("enroot:") unless built with `make MSG_PREFIX=pyxis` for sites
 * whose scripts match the whole pyxis line (doc/slurm.md).
 */
#ifndef SHIM_H
#define SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <slurm/spank.h>

#ifndef SHIM_PREFIX
#define SHIM_PREFIX "enroot"
#endif

#define shim_error(fmt, ...) slurm_error(SHIM_PREFIX ": " fmt, ##__VA_ARGS__)
#define shim_info(fmt, ...) slurm_info(SHIM_PREFIX ": " fmt, ##__VA_ARGS__)
#define shim_verbose(fmt, ...) slurm_verbose(SHIM_PREFIX ": " fmt, ##__VA_ARGS__)
#define shim_debug(fmt, ...) slurm_debug(SHIM_PREFIX ": " fmt, ##__VA_ARGS__)

#define SHIM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Per-context entry points, called by dispatch.c. */
int shim_srun_init(spank_t sp, int ac, char **av);
int shim_srun_post_opt(spank_t sp, int ac, char **av);
int shim_srun_exit(spank_t sp, int ac, char **av);

int shim_stepd_init(spank_t sp, int ac, char **av);
int shim_stepd_post_opt(spank_t sp, int ac, char **av);
int shim_stepd_user_init(spank_t sp, int ac, char **av);
int shim_stepd_task_init(spank_t sp, int ac, char **av);
int shim_stepd_task_exit(spank_t sp, int ac, char **av);
int shim_stepd_exit(spank_t sp, int ac, char **av);

int shim_epilog(spank_t sp, int ac, char **av);

#endif
