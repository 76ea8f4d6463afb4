/*
 * The container options. One table; each callback validates and stores, and accepts the same value
 * twice because Slurm may call a callback twice (once from the command line, once from the
 * environment it forwards to slurmstepd). A bad value returns -1 and Slurm aborts the command; the
 * same bad value from a PYXIS_* variable is printed and ignored (shim_args_apply_env), as pyxis does.
 * Parsers are transactional: a value is stored only once it parsed completely.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "config.h"
#include "shim.h"

struct shim_args shim_args = {
	.mount_home = -1, .remap_root = -1, .entrypoint = -1, .entrypoint_log = -1, .writable = -1,
};

static int args_single(char **dst, const char *opt, const char *optarg)
{
	if (optarg == NULL || *optarg == '\0') {
		shim_error("--%s: argument required", opt);
		return (-1);
	}
	if (*dst != NULL) {
		if (strcmp(*dst, optarg) == 0)
			return (0);
		shim_error("--%s specified multiple times", opt);
		return (-1);
	}
	if ((*dst = strdup(optarg)) == NULL) {
		shim_error("could not allocate memory");
		return (-1);
	}
	return (0);
}

static int opt_image(int val, const char *optarg, int remote)
{
	(void)val, (void)remote;
	return (args_single(&shim_args.image, "container-image", optarg));
}

static int opt_workdir(int val, const char *optarg, int remote)
{
	(void)val, (void)remote;
	return (args_single(&shim_args.workdir, "container-workdir", optarg));
}

static int opt_save(int val, const char *optarg, int remote)
{
	(void)val, (void)remote;
	if (optarg != NULL && *optarg != '\0' && optarg[strlen(optarg) - 1] == '/') {
		shim_error("--container-save: target is a directory");
		return (-1);
	}
	return (args_single(&shim_args.save, "container-save", optarg));
}

static int opt_name(int val, const char *optarg, int remote)
{
	static const char *const flags[] = { "auto", "create", "exec", "no_exec" };
	const char *colon, *flag = "auto";
	size_t len;
	bool ok = false;

	(void)val, (void)remote;
	if (optarg == NULL || *optarg == '\0') {
		shim_error("--container-name: argument required");
		return (-1);
	}
	colon = strchr(optarg, ':');
	len = colon == NULL ? strlen(optarg) : (size_t)(colon - optarg);
	if (len == 0) {
		shim_error("--container-name: empty name");
		return (-1);
	}
	if (colon != NULL)
		flag = colon + 1;
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(flags); ++i)
		ok = ok || strcmp(flag, flags[i]) == 0;
	if (!ok) {
		shim_error("--container-name: flag must be \"auto\", \"create\", \"exec\" or \"no_exec\"");
		return (-1);
	}
	if (shim_args.name != NULL) {
		if (strlen(shim_args.name) == len && strncmp(shim_args.name, optarg, len) == 0 &&
		    strcmp(shim_args.name_flag, flag) == 0)
			return (0);
		shim_error("--container-name specified multiple times");
		return (-1);
	}
	shim_args.name = strndup(optarg, len);
	shim_args.name_flag = strdup(flag);
	if (shim_args.name == NULL || shim_args.name_flag == NULL) {
		shim_error("could not allocate memory");
		return (-1);
	}
	return (0);
}

/* --x / --no-x pairs: val is 1 for the positive form, 0 for the negative one. */
static int args_pair(int *dst, int val, const char *yes, const char *no)
{
	if (*dst != -1 && *dst != val) {
		shim_error("both --%s and --%s were specified", yes, no);
		return (-1);
	}
	*dst = val;
	return (0);
}

static int opt_mount_home(int val, const char *optarg, int remote)
{
	(void)optarg, (void)remote;
	return (args_pair(&shim_args.mount_home, val, "container-mount-home", "no-container-mount-home"));
}

static int opt_remap_root(int val, const char *optarg, int remote)
{
	(void)optarg, (void)remote;
	return (args_pair(&shim_args.remap_root, val, "container-remap-root", "no-container-remap-root"));
}

static int opt_entrypoint(int val, const char *optarg, int remote)
{
	(void)optarg, (void)remote;
	return (args_pair(&shim_args.entrypoint, val, "container-entrypoint", "no-container-entrypoint"));
}

static int opt_entrypoint_log(int val, const char *optarg, int remote)
{
	(void)val, (void)optarg, (void)remote;
	shim_args.entrypoint_log = 1;
	return (0);
}

static int opt_writable(int val, const char *optarg, int remote)
{
	(void)optarg, (void)remote;
	return (args_pair(&shim_args.writable, val, "container-writable", "container-readonly"));
}

/* Appends s to a string list unless it is already there. */
static int list_add(char ***list, size_t *len, const char *s)
{
	char **n;

	for (size_t i = 0; i < *len; ++i)
		if (strcmp((*list)[i], s) == 0)
			return (0);
	if ((n = realloc(*list, (*len + 1) * sizeof(*n))) == NULL)
		return (-1);
	*list = n;
	if ((n[*len] = strdup(s)) == NULL)
		return (-1);
	(*len)++;
	return (0);
}

static void list_free(char ***list, size_t *len)
{
	for (size_t i = 0; i < *len; ++i)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*len = 0;
}

static int opt_env(int val, const char *optarg, int remote)
{
	char *dup = NULL, *rest, *name;
	char **names = NULL;
	size_t len = 0;
	int rv = -1;

	(void)val, (void)remote;
	if (optarg == NULL || *optarg == '\0') {
		shim_error("--container-env: argument required");
		return (-1);
	}
	if ((rest = dup = strdup(optarg)) == NULL)
		goto fail;
	while ((name = strsep(&rest, ",")) != NULL) {
		if (*name == '\0') {
			shim_error("--container-env: invalid format: %s", optarg);
			goto fail;
		}
		if (list_add(&names, &len, name) < 0)
			goto fail;
	}
	for (size_t i = 0; i < len; ++i)
		if (list_add(&shim_args.env, &shim_args.env_len, names[i]) < 0)
			goto fail;
	rv = 0;
fail:
	list_free(&names, &len);
	free(dup);
	return (rv);
}

static int opt_unshare(int val, const char *optarg, int remote)
{
	char *dup = NULL, *rest, *ns;
	bool net = false, ipc = false, uts = false;
	int rv = -1;

	(void)val, (void)remote;
	if (optarg == NULL || *optarg == '\0') {
		shim_error("--container-unshare: argument required");
		return (-1);
	}
	if ((rest = dup = strdup(optarg)) == NULL)
		goto fail;
	while ((ns = strsep(&rest, ",")) != NULL) {
		if (*ns == '\0') {
			shim_error("--container-unshare: empty namespace argument");
			goto fail;
		} else if (strcmp(ns, "net") == 0)
			net = true;
		else if (strcmp(ns, "ipc") == 0)
			ipc = true;
		else if (strcmp(ns, "uts") == 0)
			uts = true;
		else {
			shim_error("--container-unshare: unknown namespace '%s'", ns);
			goto fail;
		}
	}
	shim_args.unshare_net |= net;
	shim_args.unshare_ipc |= ipc;
	shim_args.unshare_uts |= uts;
	rv = 0;
fail:
	free(dup);
	return (rv);
}

/* Checks one SRC[:DST[:FLAGS]] entry and builds its enroot fstab options; does not store it. */
static int mount_parse(const char *entry, struct shim_mount *m)
{
	char *dup, *rest, *src, *dst, *flags = NULL;
	const char *defaults;
	int rv = -1;

	memset(m, 0, sizeof(*m));
	if ((rest = dup = strdup(entry)) == NULL)
		return (-1);
	src = strsep(&rest, ":");
	if (*src == '\0') {
		shim_error("--container-mounts: invalid format: %s", entry);
		goto fail;
	}
	dst = src;
	if (rest != NULL) {
		dst = strsep(&rest, ":");
		if (*dst == '\0') {
			shim_error("--container-mounts: invalid format: %s", entry);
			goto fail;
		}
		if (rest != NULL && *rest != '\0') {
			flags = rest;
			/* "," already separates entries, so flags use "+" and become enroot's "," here. */
			for (char *p = flags; *p != '\0'; ++p)
				if (*p == '+')
					*p = ',';
		}
	}
	if (src[0] == '.' || src[0] == '/')
		defaults = "x-create=auto,rbind";
	else if (strcmp(src, "tmpfs") == 0)
		defaults = "x-create=dir";
	else if (strcmp(src, "umount") == 0)
		defaults = "x-detach";
	else {
		shim_error("mount source must be a relative path, an absolute path, \"tmpfs\" or \"umount\"");
		goto add_fail;
	}
	if (dst[0] != '.' && dst[0] != '/') {
		shim_error("mount target must be a relative path or an absolute path");
		goto add_fail;
	}
	m->src = strdup(src);
	m->dst = strdup(dst);
	if (asprintf(&m->flags, "%s%s%s", defaults, flags ? "," : "", flags ? flags : "") < 0)
		m->flags = NULL;
	if (m->src == NULL || m->dst == NULL || m->flags == NULL)
		goto add_fail;
	rv = 0;
	goto fail;
add_fail:
	shim_error("could not add mount entry: %s:%s", src, dst);
fail:
	if (rv < 0) {
		free(m->src);
		free(m->dst);
		free(m->flags);
		memset(m, 0, sizeof(*m));
	}
	free(dup);
	return (rv);
}

static void mounts_free(struct shim_mount *ms, size_t len)
{
	for (size_t i = 0; i < len; ++i) {
		free(ms[i].src);
		free(ms[i].dst);
		free(ms[i].flags);
	}
	free(ms);
}

static bool mount_equal(const struct shim_mount *a, const struct shim_mount *b)
{
	return (strcmp(a->src, b->src) == 0 && strcmp(a->dst, b->dst) == 0 && strcmp(a->flags, b->flags) == 0);
}

static int opt_mounts(int val, const char *optarg, int remote)
{
	char *dup = NULL, *rest, *entry;
	struct shim_mount *parsed = NULL, *n;
	size_t len = 0;
	int rv = -1;

	(void)val, (void)remote;
	if (optarg == NULL || *optarg == '\0') {
		shim_error("--container-mounts: argument required");
		return (-1);
	}
	if ((rest = dup = strdup(optarg)) == NULL)
		goto fail;
	while ((entry = strsep(&rest, ",")) != NULL) {
		if ((n = realloc(parsed, (len + 1) * sizeof(*n))) == NULL)
			goto fail;
		parsed = n;
		if (mount_parse(entry, &parsed[len]) < 0)
			goto fail;
		len++;
	}
	if ((n = realloc(shim_args.mounts, (shim_args.mounts_len + len) * sizeof(*n))) == NULL)
		goto fail;
	shim_args.mounts = n;
	for (size_t i = 0; i < len; ++i) {
		bool dup_entry = false;

		for (size_t j = 0; j < shim_args.mounts_len && !dup_entry; ++j)
			dup_entry = mount_equal(&shim_args.mounts[j], &parsed[i]);
		if (dup_entry) {
			free(parsed[i].src);
			free(parsed[i].dst);
			free(parsed[i].flags);
		} else
			shim_args.mounts[shim_args.mounts_len++] = parsed[i];
	}
	len = 0;
	rv = 0;
fail:
	mounts_free(parsed, len);
	free(dup);
	return (rv);
}

#define USAGE(s) "[" SHIM_PREFIX "] " s
static struct spank_option shim_opts[] = {
	{ "container-image", "[USER@][REGISTRY#]IMAGE[:TAG]|PATH",
	  USAGE("the image to use for the container filesystem. Can be either a docker image given as an enroot URI, "
		"or a path to a squashfs file on the remote host filesystem."), 1, 0, opt_image },
	{ "container-mounts", "SRC:DST[:FLAGS][,SRC:DST...]",
	  USAGE("bind mount[s] inside the container. Mount flags are separated with \"+\", e.g. \"ro+rprivate\""),
	  1, 0, opt_mounts },
	{ "container-workdir", "PATH", USAGE("working directory inside the container"), 1, 0, opt_workdir },
	{ "container-name", "NAME[:FLAG]",
	  USAGE("name to use for saving and loading the container on the host. Unnamed containers are removed after "
		"the slurm task is complete; named containers are not. If a container with this name already exists, "
		"the existing container is used and the import is skipped. FLAG: auto, create, exec or no_exec."),
	  1, 0, opt_name },
	{ "container-save", "PATH",
	  USAGE("Save the container state to a squashfs file on the remote host filesystem."), 1, 0, opt_save },
	{ "container-mount-home", NULL,
	  USAGE("bind mount the user's home directory. System-level enroot settings might cause this directory to be "
		"already-mounted."), 0, 1, opt_mount_home },
	{ "no-container-mount-home", NULL, USAGE("do not bind mount the user's home directory"), 0, 0, opt_mount_home },
	{ "container-remap-root", NULL,
	  USAGE("ask to be remapped to root inside the container. Does not grant elevated system permissions, "
		"despite appearances."), 0, 1, opt_remap_root },
	{ "no-container-remap-root", NULL, USAGE("do not remap to root inside the container"), 0, 0, opt_remap_root },
	{ "container-entrypoint", NULL, USAGE("execute the entrypoint from the container image"), 0, 1, opt_entrypoint },
	{ "no-container-entrypoint", NULL, USAGE("do not execute the entrypoint from the container image"),
	  0, 0, opt_entrypoint },
	{ "container-entrypoint-log", NULL, USAGE("print the output of the entrypoint script"),
	  0, 1, opt_entrypoint_log },
	{ "container-writable", NULL, USAGE("make the container filesystem writable"), 0, 1, opt_writable },
	{ "container-readonly", NULL, USAGE("make the container filesystem read-only"), 0, 0, opt_writable },
	{ "container-env", "NAME[,NAME...]",
	  USAGE("names of environment variables to override with the host environment and set at the entrypoint. "
		"By default, all exported host environment variables are set in the container after startup, but "
		"might be overridden by the image's environment or ENROOT_* config files."), 1, 0, opt_env },
	{ "container-unshare", "NAMESPACE[,NAMESPACE...]",
	  USAGE("unshare namespaces (net, ipc, uts) for the container"), 1, 0, opt_unshare },
	SPANK_OPTIONS_TABLE_END
};

int shim_args_register(spank_t sp)
{
	for (size_t i = 0; shim_opts[i].name != NULL; ++i) {
		spank_err_t rc = spank_option_register(sp, &shim_opts[i]);

		if (rc != ESPANK_SUCCESS) {
			shim_error("couldn't register option %s: %s", shim_opts[i].name, spank_strerror(rc));
			return (-1);
		}
	}
	return (0);
}

static void env_bool(int *dst, shim_getenv_f get, void *ctx, const char *name, bool invert)
{
	const char *v;
	int b;

	if (*dst != -1 || (v = get(ctx, name)) == NULL)
		return;
	/* pyxis's parse_bool: any other spelling is silently ignored. */
	if ((b = shim_parse_bool(v)) >= 0)
		*dst = invert ? !b : b;
}

void shim_args_apply_env(shim_getenv_f get, void *ctx)
{
	struct shim_args *a = &shim_args;
	const char *v;

	if (a->image == NULL && (v = get(ctx, "PYXIS_CONTAINER_IMAGE")) != NULL)
		(void)opt_image(0, v, 0);
	if (a->mounts_len == 0 && (v = get(ctx, "PYXIS_CONTAINER_MOUNTS")) != NULL)
		(void)opt_mounts(0, v, 0);
	if (a->workdir == NULL && (v = get(ctx, "PYXIS_CONTAINER_WORKDIR")) != NULL)
		(void)opt_workdir(0, v, 0);
	if (a->name == NULL && (v = get(ctx, "PYXIS_CONTAINER_NAME")) != NULL)
		(void)opt_name(0, v, 0);
	if (a->save == NULL && (v = get(ctx, "PYXIS_CONTAINER_SAVE")) != NULL)
		(void)opt_save(0, v, 0);
	env_bool(&a->mount_home, get, ctx, "PYXIS_CONTAINER_MOUNT_HOME", false);
	env_bool(&a->remap_root, get, ctx, "PYXIS_CONTAINER_REMAP_ROOT", false);
	env_bool(&a->entrypoint, get, ctx, "PYXIS_CONTAINER_ENTRYPOINT", false);
	env_bool(&a->entrypoint_log, get, ctx, "PYXIS_CONTAINER_ENTRYPOINT_LOG", false);
	env_bool(&a->writable, get, ctx, "PYXIS_CONTAINER_WRITABLE", false);
	env_bool(&a->writable, get, ctx, "PYXIS_CONTAINER_READONLY", true);
	if (a->env_len == 0 && (v = get(ctx, "PYXIS_CONTAINER_ENV")) != NULL)
		(void)opt_env(0, v, 0);
	if (!a->unshare_net && !a->unshare_ipc && !a->unshare_uts && (v = get(ctx, "PYXIS_CONTAINER_UNSHARE")) != NULL)
		(void)opt_unshare(0, v, 0);
}

bool shim_args_enabled(bool quiet)
{
	const struct shim_args *a = &shim_args;

	if (a->image != NULL || a->name != NULL)
		return (true);
	if (quiet)
		return (false);
#define IGNORING(opt) shim_error("ignoring " opt " because neither --container-image nor --container-name is set")
	if (a->mounts_len > 0)
		IGNORING("--container-mounts");
	if (a->workdir != NULL)
		IGNORING("--container-workdir");
	if (a->save != NULL)
		IGNORING("--container-save");
	if (a->mount_home != -1)
		IGNORING("--[no-]container-mount-home");
	if (a->remap_root != -1)
		IGNORING("--[no-]container-remap-root");
	if (a->entrypoint != -1)
		IGNORING("--[no-]container-entrypoint");
	if (a->entrypoint_log == 1)
		IGNORING("--container-entrypoint-log");
	if (a->writable == 0)
		IGNORING("--container-readonly");
	if (a->writable == 1)
		IGNORING("--container-writable");
#undef IGNORING
	return (false);
}

void shim_args_free(void)
{
	struct shim_args *a = &shim_args;

	free(a->image);
	mounts_free(a->mounts, a->mounts_len);
	free(a->workdir);
	free(a->name);
	free(a->name_flag);
	free(a->save);
	list_free(&a->env, &a->env_len);
	memset(a, 0, sizeof(*a));
	a->mount_home = a->remap_root = a->entrypoint = a->entrypoint_log = a->writable = -1;
}
