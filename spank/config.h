/* plugstack.conf arguments: `required spank_enroot.so key=value ...` (pyxis §2 plus our own keys). */
#ifndef SHIM_CONFIG_H
#define SHIM_CONFIG_H

#include <limits.h>
#include <stdbool.h>

enum shim_scope { SHIM_SCOPE_GLOBAL, SHIM_SCOPE_JOB };

struct shim_config {
	char runtime_path[PATH_MAX];
	bool execute_entrypoint;
	enum shim_scope container_scope;
	bool sbatch_support;
	bool use_enroot_load;
	char importer[PATH_MAX];
	bool use_squashfuse;
	char launcher[PATH_MAX]; /* ours: the per-node launcher (the enroot CLI) */
	char cache[PATH_MAX];    /* ours: "per-user" or "shared:<dir>" */
	char cache_user[64];     /* ours: the account that writes the shared cache ("" = none) */
	bool allow_http;         /* ours: ENROOT_ALLOW_HTTP=y for the launcher (the job's value is denied) */
	unsigned launcher_service; /* ours: idle seconds of a job's launcher service per node (0 = none) */
};

/* 1 / 0 for pyxis's boolean spellings, -1 for anything else. */
int shim_parse_bool(const char *s);

/* Strict: an unknown key or a bad value prints one line each and returns -1. */
int shim_config_parse(struct shim_config *config, int ac, char **av);

#endif
