/*
 * Drives args.c and config.c without Slurm, so option parsing is tested in milliseconds (pyxis has no
 * such tests: every case needs a cluster). Stubs stand in for the SPANK and logging calls they make.
 *
 *   args-driver [--config=KEY=VALUE]... [--env=NAME=VALUE]... [--twice] [--OPTION[=VALUE]]...
 *
 * Options go through the registered callbacks (twice each with --twice, as Slurm may), then
 * PYXIS_CONTAINER_* from the --env list, then the activation rule. Messages go to stderr as
 * "error: ..."; the resulting state goes to stdout, one "key=value" per line. Exit status: 0, or 1
 * when a callback or the configuration rejected a value.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../args.h"
#include "../config.h"
#include "../shim.h"

static struct spank_option *registered[64];
static size_t nregistered;

spank_err_t spank_option_register(spank_t sp, struct spank_option *opt)
{
	(void)sp;
	if (nregistered == sizeof(registered) / sizeof(registered[0]))
		return (ESPANK_ERROR);
	registered[nregistered++] = opt;
	return (ESPANK_SUCCESS);
}

const char *spank_strerror(spank_err_t err)
{
	(void)err;
	return ("stub error");
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

#define STUB_LOG(fn, level)                      \
	void fn(const char *fmt, ...)            \
	{                                        \
		va_list ap;                      \
		va_start(ap, fmt);               \
		vlog(level, fmt, ap);            \
		va_end(ap);                      \
	}
STUB_LOG(slurm_error, "error")
STUB_LOG(slurm_info, "info")
STUB_LOG(slurm_verbose, "verbose")
STUB_LOG(slurm_debug, "debug")

static char **envs;
static size_t nenvs;

static const char *driver_getenv(void *ctx, const char *name)
{
	size_t len = strlen(name);

	(void)ctx;
	for (size_t i = 0; i < nenvs; ++i)
		if (strncmp(envs[i], name, len) == 0 && envs[i][len] == '=')
			return (envs[i] + len + 1);
	return (NULL);
}

static int call_option(const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t len = eq == NULL ? strlen(arg) : (size_t)(eq - arg);

	for (size_t i = 0; i < nregistered; ++i) {
		struct spank_option *o = registered[i];

		if (strlen(o->name) == len && strncmp(o->name, arg, len) == 0)
			return (o->cb(o->val, eq == NULL ? NULL : eq + 1, 0));
	}
	fprintf(stderr, "driver: unknown option --%.*s\n", (int)len, arg);
	return (-1);
}

static void print_state(bool enabled)
{
	const struct shim_args *a = &shim_args;

	printf("enabled=%d\n", enabled);
	printf("image=%s\n", a->image ? a->image : "");
	for (size_t i = 0; i < a->mounts_len; ++i)
		printf("mount=%s %s %s\n", a->mounts[i].src, a->mounts[i].dst, a->mounts[i].flags);
	printf("workdir=%s\n", a->workdir ? a->workdir : "");
	printf("name=%s\n", a->name ? a->name : "");
	printf("name_flag=%s\n", a->name_flag ? a->name_flag : "");
	printf("save=%s\n", a->save ? a->save : "");
	printf("mount_home=%d\nremap_root=%d\nentrypoint=%d\nentrypoint_log=%d\nwritable=%d\n", a->mount_home, a->remap_root,
	       a->entrypoint, a->entrypoint_log, a->writable);
	for (size_t i = 0; i < a->env_len; ++i)
		printf("env=%s\n", a->env[i]);
	printf("unshare=%s%s%s\n", a->unshare_net ? "net," : "", a->unshare_ipc ? "ipc," : "", a->unshare_uts ? "uts," : "");
}

int main(int argc, char **argv)
{
	struct shim_config config;
	char **conf = calloc((size_t)argc, sizeof(char *));
	int nconf = 0, rv = 0;
	bool twice = false;

	envs = calloc((size_t)argc, sizeof(char *));
	if (conf == NULL || envs == NULL)
		return (2);
	for (int i = 1; i < argc; ++i) {
		if (strncmp(argv[i], "--config=", 9) == 0)
			conf[nconf++] = argv[i] + 9;
		else if (strncmp(argv[i], "--env=", 6) == 0)
			envs[nenvs++] = argv[i] + 6;
		else if (strcmp(argv[i], "--twice") == 0)
			twice = true;
	}
	if (shim_config_parse(&config, nconf, conf) < 0) {
		rv = 1;
		goto out;
	}
	printf("config=%s|%d|%s|%d|%d|%s|%d|%s|%s|%s|%d|%u\n", config.runtime_path, config.execute_entrypoint,
	       config.container_scope == SHIM_SCOPE_JOB ? "job" : "global", config.sbatch_support, config.use_enroot_load,
	       config.importer, config.use_squashfuse, config.launcher, config.cache, config.cache_user, config.allow_http,
	       config.launcher_service);
	if (shim_args_register(NULL) < 0) {
		rv = 1;
		goto out;
	}
	for (int i = 1; i < argc; ++i) {
		if (strncmp(argv[i], "--config=", 9) == 0 || strncmp(argv[i], "--env=", 6) == 0 || strcmp(argv[i], "--twice") == 0)
			continue;
		if (strncmp(argv[i], "--", 2) != 0 || call_option(argv[i] + 2) < 0 || (twice && call_option(argv[i] + 2) < 0)) {
			rv = 1;
			goto out;
		}
	}
	shim_args_apply_env(driver_getenv, NULL);
	print_state(shim_args_enabled(false));
out:
	shim_args_free();
	free(conf);
	free(envs);
	return (rv);
}
