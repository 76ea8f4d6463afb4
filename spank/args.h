/* The srun/sbatch/salloc options, pyxis's names, arguments, validation and messages (pyxis §1). */
#ifndef SHIM_ARGS_H
#define SHIM_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <slurm/spank.h>

struct shim_mount {
	char *src;
	char *dst;
	char *flags; /* enroot fstab options: the defaults for the source kind plus the user's, "+" → "," */
};

struct shim_args {
	char *image;
	struct shim_mount *mounts;
	size_t mounts_len;
	char *workdir;
	char *name;
	char *name_flag; /* auto | create | exec | no_exec */
	char *save;
	int mount_home; /* -1 unset, 0 no, 1 yes */
	int remap_root;
	int entrypoint;
	int entrypoint_log;
	int writable;
	char **env;
	size_t env_len;
	bool unshare_net;
	bool unshare_ipc;
	bool unshare_uts;
};

extern struct shim_args shim_args;

/* Returns the value of an environment variable or NULL; ctx is the spank handle (remote) or NULL. */
typedef const char *(*shim_getenv_f)(void *ctx, const char *name);

int shim_args_register(spank_t sp);
/* Fills the options the command line left unset from PYXIS_CONTAINER_*; bad values: a message, ignored. */
void shim_args_apply_env(shim_getenv_f get, void *ctx);
/* The activation rule: image or name given. Otherwise prints one "ignoring" line per given option. */
bool shim_args_enabled(bool quiet);
void shim_args_free(void);

#endif
