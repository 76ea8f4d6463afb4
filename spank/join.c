/*
 * A task joins the step's container (pyxis §3.3 steps 3-9, from a step-level launcher instead of the
 * first task): read the container's environment and cwd, import the environment into the task's own
 * (each task keeps its own per-task variables), setns() into the namespaces that differ from ours, chdir,
 * then the enroot fake-root seccomp filter when a user namespace was joined.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "args.h"
#include "shim.h"
#include "step.h"

/* Order matters: user first (it grants the capabilities for the rest), then cgroup, mnt, ipc, uts, net. */
static const struct {
	const char *name;
	int flag;
	bool always;
} namespaces[] = {
	{ "user", CLONE_NEWUSER, true }, { "cgroup", CLONE_NEWCGROUP, true }, { "mnt", CLONE_NEWNS, true },
	{ "ipc", CLONE_NEWIPC, false },  { "uts", CLONE_NEWUTS, false },       { "net", CLONE_NEWNET, false },
};

/* Per-task variables: a task keeps its own value rather than the one the container env captured. */
static bool per_task(const char *key, size_t klen)
{
	static const char *const prefixes[] = { "SLURM_", "PMI_", "PMIX_", "OMPI_COMM_WORLD_" };
	static const char *const keys[] = { "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES",
					    "ZE_AFFINITY_MASK", "RANK", "LOCAL_RANK" };

	for (size_t i = 0; i < SHIM_ARRAY_SIZE(prefixes); ++i)
		if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0)
			return (true);
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(keys); ++i)
		if (strlen(keys[i]) == klen && strncmp(key, keys[i], klen) == 0)
			return (true);
	return (false);
}

static bool in_container_env(const char *key)
{
	for (size_t i = 0; i < shim_args.env_len; ++i)
		if (strcmp(shim_args.env[i], key) == 0)
			return (true);
	return (false);
}

static char *read_file(const char *path, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap), *nb;
	ssize_t r;
	int fd;

	if (buf == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		free(buf);
		return (NULL);
	}
	for (;;) {
		if (n + 1 >= cap) {
			if ((nb = realloc(buf, cap * 2)) == NULL) {
				r = -1;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (r != 0) {
		free(buf);
		return (NULL);
	}
	buf[n] = '\0';
	*len = n;
	return (buf);
}

static int import_env(spank_t sp, pid_t pid)
{
	static const char *const locale[] = { "LANG", "LANGUAGE", "LC_ALL" };
	char path[64], key[4096], val[16];
	spank_err_t rc;
	size_t len = 0;
	char *env;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if ((env = read_file(path, &len)) == NULL) {
		shim_error("couldn't read %s", path);
		shim_error("couldn't read container environment");
		return (-1);
	}
	/* Images often lack the host's locales. */
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(locale); ++i)
		if (!in_container_env(locale[i]))
			(void)spank_unsetenv(sp, locale[i]);
	for (char *kv = env; kv < env + len; kv += strlen(kv) + 1) {
		char *eq = strchr(kv, '=');
		size_t klen;

		if (eq == NULL || eq == kv || (klen = (size_t)(eq - kv)) >= sizeof(key))
			continue;
		memcpy(key, kv, klen);
		key[klen] = '\0';
		if (per_task(key, klen) && spank_getenv(sp, key, val, sizeof(val)) != ESPANK_ENV_NOEXIST)
			continue;
		rc = spank_setenv(sp, key, eq + 1, in_container_env(key) ? 0 : 1);
		/* --container-env NAME: the host value, when there is one, is kept. */
		if (rc != ESPANK_SUCCESS && rc != ESPANK_ENV_EXISTS) {
			shim_error("couldn't set %s in the task environment", key);
			free(env);
			return (-1);
		}
	}
	free(env);
	/* PyTorch: the launcher saw no per-task rank, so set it here from Slurm's. */
	if (spank_getenv(sp, "PYTORCH_VERSION", val, sizeof(val)) != ESPANK_ENV_NOEXIST) {
		static const char *const remap[][2] = { { "RANK", "SLURM_PROCID" }, { "LOCAL_RANK", "SLURM_LOCALID" } };

		for (size_t i = 0; i < SHIM_ARRAY_SIZE(remap); ++i) {
			char v[32];

			if (spank_getenv(sp, remap[i][1], v, sizeof(v)) != ESPANK_SUCCESS ||
			    spank_setenv(sp, remap[i][0], v, 1) != ESPANK_SUCCESS) {
				shim_error("pytorch: couldn't remap environment variable %s", remap[i][0]);
				return (-1);
			}
		}
	}
	return (0);
}

/* enroot's filter (§7): chown and set*id families succeed without effect; everything else runs. */
static int seccomp_install(void)
{
#if defined(__x86_64__)
#define SHIM_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SHIM_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SHIM_AUDIT_ARCH AUDIT_ARCH_PPC64LE
#endif
#ifdef SHIM_AUDIT_ARCH
#define FAKE(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0)
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SHIM_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __x86_64__
		/* x32 syscalls: allowed, like enroot. */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
#endif
#ifdef SYS_chown
		FAKE(SYS_chown),
#endif
#ifdef SYS_lchown
		FAKE(SYS_lchown),
#endif
		FAKE(SYS_fchown), FAKE(SYS_fchownat), FAKE(SYS_setuid), FAKE(SYS_setgid), FAKE(SYS_setreuid),
		FAKE(SYS_setregid), FAKE(SYS_setresuid), FAKE(SYS_setresgid), FAKE(SYS_setgroups),
		/* setfsuid/setfsgid(-1) is a query: let it run. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setfsuid, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setfsgid, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffff, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
#undef FAKE
	struct sock_fprog prog = { .len = SHIM_ARRAY_SIZE(filter), .filter = filter };

	/* No NO_NEW_PRIVS needed: the task holds CAP_SYS_ADMIN in the container's user namespace. */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog) == 0)
		return (0);
	if (errno == EINVAL && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
		return (0);
	shim_error("seccomp filter failed: %m");
	return (-1);
#else
	return (0);
#endif
}

int shim_join(spank_t sp, const struct shim_step *st)
{
	int fds[SHIM_ARRAY_SIZE(namespaces)];
	char path[64], cwd[PATH_MAX], after[PATH_MAX];
	bool joined_user = false;
	ssize_t n;
	int rv = -1;

	for (size_t i = 0; i < SHIM_ARRAY_SIZE(fds); ++i)
		fds[i] = -1;
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(namespaces); ++i) {
		struct stat theirs, ours;
		char self[64];

		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)st->pid, namespaces[i].name);
		snprintf(self, sizeof(self), "/proc/self/ns/%s", namespaces[i].name);
		if (stat(path, &theirs) < 0) {
			if (errno == ENOENT && namespaces[i].flag == CLONE_NEWCGROUP)
				continue;
			shim_error("unable to open %s namespace file: %m", namespaces[i].name);
			goto fail;
		}
		/* Joining our own namespace is pointless, and setns(user) into our own fails with EINVAL. */
		if (stat(self, &ours) == 0 && ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino)
			continue;
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			shim_error("unable to open %s namespace file: %m", namespaces[i].name);
			goto fail;
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)st->pid);
	if ((n = readlink(path, cwd, sizeof(cwd) - 1)) < 0) {
		shim_error("couldn't read container cwd: %m");
		shim_error("couldn't get container directory");
		goto fail;
	}
	cwd[n] = '\0';
	if (import_env(sp, st->pid) < 0)
		goto fail;
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(namespaces); ++i) {
		if (fds[i] < 0)
			continue;
		if (setns(fds[i], namespaces[i].flag) < 0) {
			shim_error("couldn't join %s namespace: %m", namespaces[i].name);
			goto fail;
		}
		joined_user = joined_user || namespaces[i].flag == CLONE_NEWUSER;
	}
	/* Now that our root is the container's, the kernel names its cwd as the container sees it. */
	if ((n = readlink(path, after, sizeof(after) - 1)) > 0) {
		after[n] = '\0';
		memcpy(cwd, after, (size_t)n + 1);
	}
	if (shim_args.workdir != NULL) {
		if (chdir(shim_args.workdir) < 0) {
			shim_error("couldn't chdir to %s: %m", shim_args.workdir);
			goto fail;
		}
	} else if (chdir(cwd) < 0) {
		shim_error("couldn't chdir to container cwd %s: %m", cwd);
		goto fail;
	}
	if (joined_user && seccomp_install() < 0)
		goto fail;
	rv = 0;
fail:
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(fds); ++i)
		if (fds[i] >= 0)
			close(fds[i]);
	return (rv);
}
