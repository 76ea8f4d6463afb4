/*
 * plugstack.conf arguments. Parsing is strict, like pyxis: an unknown key is an error and the plugin's
 * init fails, so a typo never silently changes behaviour. slurm_spank_init is not called in the
 * job_script and slurmd contexts, so every callback that needs the configuration parses it again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "shim.h"

#ifndef SHIM_LAUNCHER
#define SHIM_LAUNCHER "/usr/local/bin/enroot"
#endif

int shim_parse_bool(const char *s)
{
	static const char *const yes[] = { "1", "true", "yes", "y" };
	static const char *const no[] = { "0", "false", "no", "n" };

	if (s == NULL)
		return (-1);
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(yes); ++i)
		if (strcasecmp(s, yes[i]) == 0)
			return (1);
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(no); ++i)
		if (strcasecmp(s, no[i]) == 0)
			return (0);
	return (-1);
}

static int config_path(char *dst, const char *key, const char *value)
{
	if (strlen(value) >= PATH_MAX) {
		shim_error("%s: path too long: %s", key, value);
		return (-1);
	}
	strcpy(dst, value);
	return (0);
}

static int config_bool(bool *dst, const char *key, const char *value)
{
	int b = shim_parse_bool(value);

	if (b < 0) {
		shim_error("%s: invalid value: %s", key, value);
		return (-1);
	}
	*dst = b;
	return (0);
}

static int config_abs_path(char *dst, const char *key, const char *value)
{
	if (value[0] != '/') {
		shim_error("%s: invalid value: %s", key, value);
		return (-1);
	}
	return (config_path(dst, key, value));
}

static int config_cache(char *dst, const char *value)
{
	if (strcmp(value, "per-user") != 0 && (strncmp(value, "shared:/", 8) != 0)) {
		shim_error("cache: invalid value: %s", value);
		return (-1);
	}
	return (config_path(dst, "cache", value));
}

/* An account name: no "root" (the point is to not be root) and nothing a passwd line could not hold. */
static int config_user(char *dst, size_t size, const char *value)
{
	if (value[0] == '\0' || strlen(value) >= size || strcmp(value, "root") == 0 || strpbrk(value, ":/ \t\n") != NULL) {
		shim_error("cache_user: invalid value: %s", value);
		return (-1);
	}
	strcpy(dst, value);
	return (0);
}

/* Seconds, 0 to 86400: how long a job's launcher service on a node waits for the job's next step. */
static int config_seconds(unsigned *dst, const char *key, const char *value)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(value, &end, 10);
	if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0 || n > 86400) {
		shim_error("%s: invalid value: %s", key, value);
		return (-1);
	}
	*dst = (unsigned)n;
	return (0);
}

static int config_one(struct shim_config *c, const char *arg)
{
	const char *eq = strchr(arg, '=');
	const char *v = eq == NULL ? NULL : eq + 1;
	size_t klen = eq == NULL ? 0 : (size_t)(eq - arg);

#define KEY(k) (klen == sizeof(k) - 1 && strncmp(arg, k, klen) == 0)
	if (v == NULL)
		;
	else if (KEY("runtime_path"))
		return (config_path(c->runtime_path, "runtime_path", v));
	else if (KEY("execute_entrypoint"))
		return (config_bool(&c->execute_entrypoint, "execute_entrypoint", v));
	else if (KEY("container_scope")) {
		if (strcmp(v, "job") == 0)
			c->container_scope = SHIM_SCOPE_JOB;
		else if (strcmp(v, "global") == 0)
			c->container_scope = SHIM_SCOPE_GLOBAL;
		else {
			shim_error("container_scope: invalid value: %s", v);
			return (-1);
		}
		return (0);
	} else if (KEY("sbatch_support"))
		return (config_bool(&c->sbatch_support, "sbatch_support", v));
	else if (KEY("use_enroot_load"))
		return (config_bool(&c->use_enroot_load, "use_enroot_load", v));
	else if (KEY("importer"))
		return (config_path(c->importer, "importer", v));
	else if (KEY("use_squashfuse"))
		return (config_bool(&c->use_squashfuse, "use_squashfuse", v));
	else if (KEY("launcher"))
		return (config_abs_path(c->launcher, "launcher", v));
	else if (KEY("cache"))
		return (config_cache(c->cache, v));
	else if (KEY("cache_user"))
		return (config_user(c->cache_user, sizeof(c->cache_user), v));
	else if (KEY("allow_http"))
		return (config_bool(&c->allow_http, "allow_http", v));
	else if (KEY("launcher_service"))
		return (config_seconds(&c->launcher_service, "launcher_service", v));
#undef KEY
	shim_error("unknown configuration option: %s", arg);
	return (-1);
}

int shim_config_parse(struct shim_config *c, int ac, char **av)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->runtime_path, "/run/pyxis");
	c->execute_entrypoint = false;
	c->container_scope = SHIM_SCOPE_GLOBAL;
	c->sbatch_support = true;
	strcpy(c->launcher, SHIM_LAUNCHER);
	strcpy(c->cache, "per-user");
	/*
	 * Unlike pyxis (0): measured, starting the cached squashfs directly beats extracting it from the
	 * first hundred megabytes on (doc/slurm.md, "Root filesystem"), and it leaves nothing in scratch.
	 */
	c->use_squashfuse = true;
	/* Ours: later container steps of a job hand their launch to a service on the node (doc/slurm.md). */
	c->launcher_service = 60;

	for (int i = 0; i < ac; ++i) {
		if (config_one(c, av[i]) < 0) {
			shim_error("failed to parse configuration");
			return (-1);
		}
	}
	return (0);
}
