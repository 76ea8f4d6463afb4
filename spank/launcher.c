/*
 * Running the per-node launcher (the enroot CLI) as the job user, pyxis's way (§7.1): fork; in the
 * child regain root only to drop it for good (setgroups, setresgid, setresuid), oom_score_adj 0
 * (slurmstepd often runs at -1000 and children inherit it), stdin /dev/null, stdout+stderr into a memfd
 * that is replayed only on failure, the status pipe on fd 3, every other fd closed, and an environment
 * built from the job's minus a deny list. The shared cache's import runs the same way as the dedicated
 * cache account, with an environment built from nothing. The child makes no allocation after fork: argv
 * and envp are built before.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "shim.h"
#include "step.h"

#ifndef SHIM_VERSION
#define SHIM_VERSION "0.1.0"
#endif

void shim_argv_push(struct shim_argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL, **n;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL || (n = realloc(a->v, (a->n + 2) * sizeof(*n))) == NULL) {
		free(s);
		a->oom = true;
		return;
	}
	a->v = n;
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

void shim_argv_free(struct shim_argv *a)
{
	for (size_t i = 0; i < a->n; ++i)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* Job variables that must not reach the launcher: per-task values, enroot's path settings, Node's. */
static const char *const deny[] = {
	"PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_TASK_PID", "PMIX_RANK",
	"PMI_FD", "ENROOT_LIBRARY_PATH", "ENROOT_SYSCONF_PATH", "ENROOT_RUNTIME_PATH", "ENROOT_CACHE_PATH",
	"ENROOT_DATA_PATH", "ENROOT_TEMP_PATH", "ENROOT_ZSTD_OPTIONS", "ENROOT_TRANSFER_RETRIES",
	"ENROOT_CONNECT_TIMEOUT", "ENROOT_MAX_CONNECTIONS", "ENROOT_ALLOW_HTTP",
};

/* Node's own settings by prefix (NODE_EXTRA_CA_CERTS alone costs every launcher 45 ms of CPU). */
static const char *const deny_prefix[] = { "NODE_", "UV_" };

static bool env_denied(const char *kv)
{
	size_t klen = strcspn(kv, "=");

	for (size_t i = 0; i < SHIM_ARRAY_SIZE(deny_prefix); ++i)
		if (strncmp(kv, deny_prefix[i], strlen(deny_prefix[i])) == 0)
			return (true);

	for (size_t i = 0; i < SHIM_ARRAY_SIZE(deny); ++i)
		if (strlen(deny[i]) == klen && strncmp(kv, deny[i], klen) == 0)
			return (true);
	return (false);
}

static void env_build(const struct shim_step *st, struct shim_argv *e)
{
	const struct shim_args *a = &shim_args;
	const char *path = getenv("PATH");

	shim_argv_push(e, "PATH=%s", path != NULL ? path : "/usr/local/bin:/usr/bin:/bin");
	for (size_t i = 0; st->env != NULL && st->env[i] != NULL; ++i)
		if (!env_denied(st->env[i]))
			shim_argv_push(e, "%s", st->env[i]);
	shim_argv_push(e, "SLURM_JOB_UID=%u", (unsigned)st->uid);
	shim_argv_push(e, "SLURM_JOB_GID=%u", (unsigned)st->gid);
	/* The user's explicit choices override the enroot configuration, and only then. */
	if (a->mount_home != -1)
		shim_argv_push(e, "ENROOT_MOUNT_HOME=%s", a->mount_home ? "y" : "n");
	if (a->remap_root != -1)
		shim_argv_push(e, "ENROOT_REMAP_ROOT=%s", a->remap_root ? "y" : "n");
	if (a->writable != -1)
		shim_argv_push(e, "ENROOT_ROOTFS_WRITABLE=%s", a->writable ? "y" : "n");
	if (a->unshare_net)
		shim_argv_push(e, "ENROOT_UNSHARE_NET=y");
	if (a->unshare_ipc)
		shim_argv_push(e, "ENROOT_UNSHARE_IPC=y");
	if (a->unshare_uts)
		shim_argv_push(e, "ENROOT_UNSHARE_UTS=y");
	/* An admin's choice (plugstack allow_http=1): the job's own ENROOT_ALLOW_HTTP is on the deny list. */
	if (st->config.allow_http)
		shim_argv_push(e, "ENROOT_ALLOW_HTTP=y");
	shim_argv_push(e, "PYXIS_RUNTIME_PATH=%s", st->config.runtime_path);
	shim_argv_push(e, "PYXIS_VERSION=%s", SHIM_VERSION);
}

/*
 * The cache account's environment: nothing from the job (its variables, credentials and enroot settings
 * must not steer what lands in a cache other users read), only where it works and what the admin allows.
 */
static void env_build_cache(const struct shim_step *st, const struct passwd *pw, const char *tmp, struct shim_argv *e)
{
	const char *path = getenv("PATH");

	shim_argv_push(e, "PATH=%s", path != NULL ? path : "/usr/local/bin:/usr/bin:/bin");
	shim_argv_push(e, "HOME=%s", pw->pw_dir);
	shim_argv_push(e, "USER=%s", pw->pw_name);
	shim_argv_push(e, "LANG=C.UTF-8");
	shim_argv_push(e, "ENROOT_TEMP_PATH=%s", tmp);
	shim_argv_push(e, "XDG_RUNTIME_DIR=%s", tmp);
	if (st->config.allow_http)
		shim_argv_push(e, "ENROOT_ALLOW_HTTP=y");
	shim_argv_push(e, "SLURM_JOB_ID=%u", st->jobid);
	shim_argv_push(e, "SLURM_STEP_ID=%u", st->stepid);
	shim_argv_push(e, "PYXIS_RUNTIME_PATH=%s", st->config.runtime_path);
	shim_argv_push(e, "PYXIS_VERSION=%s", SHIM_VERSION);
}

/* Who the child becomes: the job user with the job's groups, or the cache account with its own group only. */
struct ident {
	uid_t uid;
	gid_t gid;
	const gid_t *gids;
	size_t ngids;
	const char *mkdir; /* the cache account's scratch, made (0700, its own) before dropping root */
};

/* In the child: never returns. Only async-signal-safe calls from here on. */
static void child_exec(const struct ident *id, char *const *argv, char *const *envp, int status_w, int log_fd,
		       const char *exec_err, const char *service)
{
	static const char oom[] = "0";
	int fd, devnull;

	/* slurmstepd's user_init runs with euid = user and ruid = 0: take root back to drop it properly. */
	if (geteuid() != 0 && seteuid(0) < 0)
		_exit(126);
	/* Own session: signals slurmstepd sends to its process group at step end must not cut us short. */
	(void)setsid();
	if ((fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)) >= 0) {
		(void)!write(fd, oom, 1);
		close(fd);
	}
	if (id->mkdir != NULL) {
		if (mkdir(id->mkdir, 0700) < 0 && errno != EEXIST)
			_exit(126);
		if (chown(id->mkdir, id->uid, id->gid) < 0)
			_exit(126);
	}
	if (setgroups(id->ngids, id->gids) < 0 || setresgid(id->gid, id->gid, id->gid) < 0 ||
	    setresuid(id->uid, id->uid, id->uid) < 0)
		_exit(126);
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		_exit(126);
	/* Move both fds above 3 first so that the dup2s below cannot clobber each other. */
	if ((status_w = fcntl(status_w, F_DUPFD_CLOEXEC, 10)) < 0 || (log_fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 10)) < 0)
		_exit(126);
	if (dup2(devnull, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0 || dup2(status_w, 3) < 0)
		_exit(126);
	if (close_range(4, ~0U, 0) < 0)
		_exit(126);
	/* Returns only when the job has no launcher service here that takes the request. */
	if (service != NULL)
		shim_service_relay(service, argv, envp);
	execve(argv[0], argv, envp);
	if (exec_err != NULL)
		(void)!write(3, exec_err, strlen(exec_err));
	_exit(127);
}

/*
 * pyxis (commit 26fa047): scancel during an import sends slurmstepd SIGTERM while it waits in user_init;
 * forward it, so the launcher releases its cache locks and partial files and the step ends promptly.
 */
static volatile sig_atomic_t got_sigterm;

/* How often a waiting shim asks slurmctld about the job, and how long a SIGTERMed launcher gets. */
#define CANCEL_POLL_MS 2000
#define CANCEL_KILL_S 10

static void on_sigterm(int sig)
{
	(void)sig;
	got_sigterm = 1;
}

static void forward_sigterm(pid_t pid)
{
	if (!got_sigterm)
		return;
	got_sigterm = 0;
	shim_info("received SIGTERM, forwarding to child %d", (int)pid);
	(void)kill(pid, SIGTERM);
}

static int wait_child(pid_t pid)
{
	int status;

	for (;;) {
		if (waitpid(pid, &status, 0) == pid)
			return (status);
		if (errno != EINTR)
			return (-1);
		forward_sigterm(pid);
	}
}

/* "READY <pid>" without " keep": the launcher stays alive as the container's supervisor. */
static bool ready_detached(const char *line)
{
	size_t n = strlen(line);

	return (strncmp(line, "READY ", 6) == 0 && !(n >= 5 && strcmp(line + n - 5, " keep") == 0));
}

int shim_launcher_run(const struct shim_step *st, struct shim_argv *argv, struct shim_run *run)
{
	struct shim_argv env = { 0 };
	struct sigaction sa = { .sa_handler = on_sigterm }, old_sa;
	struct ident id = { .uid = st->uid, .gid = st->gid, .gids = st->gids, .ngids = (size_t)st->ngids };
	struct passwd pwbuf, *pw = NULL;
	char pwtext[4096], tmp[PATH_MAX];
	char *exec_err = NULL;
	int pipefd[2] = { -1, -1 };
	size_t len = 0;
	pid_t pid;
	int rv = -1;
	bool sa_set = false;

	run->log_fd = -1;
	run->pid = 0;
	free(argv->v[0]);
	if ((argv->v[0] = strdup(st->config.launcher)) == NULL)
		argv->oom = true;
	if (run->cache_user) {
		if (getpwnam_r(st->config.cache_user, &pwbuf, pwtext, sizeof(pwtext), &pw) != 0 || pw == NULL) {
			shim_error("cache_user: couldn't find account %s", st->config.cache_user);
			goto out;
		}
		if (snprintf(tmp, sizeof(tmp), "%s/%u", st->config.runtime_path, (unsigned)pw->pw_uid) >= (int)sizeof(tmp)) {
			shim_error("runtime_path: path too long: %s", st->config.runtime_path);
			goto out;
		}
		id = (struct ident){ .uid = pw->pw_uid, .gid = pw->pw_gid, .gids = NULL, .ngids = 0, .mkdir = tmp };
		env_build_cache(st, pw, tmp, &env);
	} else {
		env_build(st, &env);
	}
	if (asprintf(&exec_err, "ERROR couldn't execute the launcher %s\n", st->config.launcher) < 0)
		exec_err = NULL;
	if (argv->oom || env.oom) {
		shim_error("could not allocate memory");
		goto out;
	}
	if ((run->log_fd = memfd_create("enroot-log", MFD_CLOEXEC)) < 0) {
		shim_error("couldn't create log memfd: %m");
		goto out;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		shim_error("couldn't create pipe: %m");
		goto out;
	}
	got_sigterm = 0;
	/* No SA_RESTART: a SIGTERM must interrupt the read and the wait below. */
	sa_set = sigaction(SIGTERM, &sa, &old_sa) == 0;
	if ((pid = fork()) < 0) {
		shim_error("couldn't fork: %m");
		goto out;
	}
	if (pid == 0) {
		if (sa_set)
			(void)sigaction(SIGTERM, &old_sa, NULL);
		child_exec(&id, argv->v, env.v, pipefd[1], run->log_fd, exec_err, run->service);
	}
	close(pipefd[1]);
	pipefd[1] = -1;

	/*
	 * One status line; the launcher closes fd 3 after it (the container never holds it). Without a line to
	 * read, until EOF: the launcher's exit. Meanwhile, every few seconds, ask whether the job is being
	 * cancelled: Slurm does not signal a step that is still in user_init (it retries until the tasks
	 * start), so scancel during an import would otherwise wait for the import to finish.
	 */
	{
		char scratch;
		char *buf = run->line != NULL ? run->line : &scratch;
		size_t cap = run->line != NULL ? run->linesz : 2;
		time_t term_at = 0;

		for (;;) {
			struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
			int n = poll(&p, 1, CANCEL_POLL_MS);
			ssize_t r;

			if (n < 0 && errno == EINTR) {
				forward_sigterm(pid);
				continue;
			}
			if (n == 0) {
				if (term_at == 0 && run->cancelled != NULL && run->cancelled(st)) {
					shim_info("job cancelled, sending SIGTERM to the launcher %d", (int)pid);
					(void)kill(pid, SIGTERM);
					term_at = time(NULL);
				} else if (term_at != 0 && time(NULL) - term_at >= CANCEL_KILL_S) {
					(void)kill(pid, SIGKILL);
				}
				continue;
			}
			if (len + 1 >= cap)
				break;
			r = read(pipefd[0], buf + len, 1);
			if (r < 0 && errno == EINTR) {
				forward_sigterm(pid);
				continue;
			}
			if (r <= 0 || (run->line != NULL && buf[len] == '\n'))
				break;
			if (run->line != NULL)
				len++;
		}
		if (run->line != NULL) {
			run->line[len] = '\0';
			if (run->detach && ready_detached(run->line)) {
				run->pid = pid;
				rv = 0;
				goto out;
			}
		}
	}
	rv = wait_child(pid);
out:
	if (sa_set)
		(void)sigaction(SIGTERM, &old_sa, NULL);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	shim_argv_free(&env);
	free(exec_err);
	return (rv);
}

/* Replays the launcher's output: now at error level, or into the step's error or info text for task_init. */
static void log_lines(int log_fd, int mode)
{
	char buf[4096];
	FILE *f;
	int fd;

	if (log_fd < 0 || (fd = dup(log_fd)) < 0)
		return;
	if (lseek(fd, 0, SEEK_SET) < 0 || (f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return;
	}
	if (mode == 0)
		shim_error("printing launcher log file:");
	else if (mode == 1)
		shim_step_error("printing launcher log file:");
	while (fgets(buf, sizeof(buf), f) != NULL) {
		buf[strcspn(buf, "\n")] = '\0';
		if (mode == 0)
			shim_error("    %s", buf);
		else if (mode == 1)
			shim_step_error("    %s", buf);
		else
			shim_step_info("%s", buf);
	}
	fclose(f);
}

void shim_launcher_log_to_error(int log_fd)
{
	log_lines(log_fd, 1);
}

void shim_launcher_log_to_info(int log_fd)
{
	log_lines(log_fd, 2);
}

void shim_launcher_log_print(int log_fd)
{
	log_lines(log_fd, 0);
}
