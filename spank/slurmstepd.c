/*
 * The remote context (slurmstepd), the protocol of doc/slurm.md:
 *   init / init_post_opt (root): configuration, options, PYXIS_* from the job env, runtime directory;
 *   user_init (once per step per node, euid = user): with a shared cache, `launcher slurm-import` as the
 *     cache account; then `launcher slurm-launch ...` as the user: it imports, starts the container once,
 *     answers "READY <pid>" or "ERROR <message>" on fd 3 and stays as the container's supervisor (or,
 *     after the job's first step on the node, the job's launcher service does that: service.c). While
 *     waiting, a cancelled job (scancel) gets the launcher a SIGTERM. A failure is stored and reported by
 *     task_init (Slurm drops user_init's return code, bug 7573);
 *   task_init (each task, as the user): join that pid's namespaces (join.c);
 *   task_exit (root, after the last local task): kill the container init, wait for the launcher, then
 *     `launcher slurm-teardown ...` for --container-save and the removal of unnamed containers.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "args.h"
#include "config.h"
#include "shim.h"
#include "step.h"

#ifndef SLURM_BATCH_SCRIPT
#define SLURM_BATCH_SCRIPT 0xfffffffb
#endif
#ifndef SLURM_MAX_NORMAL_STEP_ID
#define SLURM_MAX_NORMAL_STEP_ID 0xfffffff0
#endif

struct shim_step shim_step = { .pid = -1, .pidfd = -1, .launcher_pidfd = -1 };

static void text_append(char **text, const char *fmt, va_list ap)
{
	char *line = NULL, *n = NULL;

	if (vasprintf(&line, fmt, ap) < 0)
		return;
	if (asprintf(&n, "%s%s\n", *text ? *text : "", line) >= 0) {
		free(*text);
		*text = n;
	}
	free(line);
}

void shim_step_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	text_append(&shim_step.error_text, fmt, ap);
	va_end(ap);
}

void shim_step_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	text_append(&shim_step.info_text, fmt, ap);
	va_end(ap);
}

static const char *stepd_getenv(void *ctx, const char *name)
{
	static char buf[PATH_MAX];

	if (spank_getenv((spank_t)ctx, name, buf, sizeof(buf)) != ESPANK_SUCCESS)
		return (NULL);
	return (buf);
}

int shim_stepd_init(spank_t sp, int ac, char **av)
{
	if (shim_config_parse(&shim_step.config, ac, av) < 0)
		return (-1);
	/* Registered here too, so the values srun forwards reach our callbacks. */
	return (shim_args_register(sp));
}

static int mkdir_owned(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	mode_t old = umask(0);
	int rv = mkdir(path, mode);

	umask(old);
	if (rv < 0 && errno != EEXIST) {
		shim_error("couldn't mkdir %s: %m", path);
		return (-1);
	}
	if (rv == 0 && chown(path, uid, gid) < 0) {
		shim_error("couldn't chown %s: %m", path);
		return (-1);
	}
	return (0);
}

int shim_stepd_post_opt(spank_t sp, int ac, char **av)
{
	char path[PATH_MAX];
	uid_t uid;
	gid_t gid;

	(void)ac, (void)av;
	shim_args_apply_env(stepd_getenv, sp);
	/* srun already printed the "ignoring" lines; the node stays quiet. */
	if (!shim_args_enabled(true))
		return (0);
	shim_step.enabled = true;
	if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS || spank_get_item(sp, S_JOB_GID, &gid) != ESPANK_SUCCESS) {
		shim_error("couldn't get job uid/gid");
		return (-1);
	}
	if (snprintf(path, sizeof(path), "%s/%u", shim_step.config.runtime_path, (unsigned)uid) >= (int)sizeof(path)) {
		shim_error("runtime_path: path too long: %s", shim_step.config.runtime_path);
		return (-1);
	}
	if (mkdir_owned(shim_step.config.runtime_path, 0755, 0, 0) < 0 || mkdir_owned(path, 0700, uid, gid) < 0)
		return (-1);
	return (0);
}

static int step_collect(spank_t sp)
{
	struct shim_step *st = &shim_step;
	gid_t *gids = NULL;
	char **env = NULL;
	size_t n = 0;

	if (spank_get_item(sp, S_JOB_UID, &st->uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &st->gid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_SUPPLEMENTARY_GIDS, &gids, &st->ngids) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_ID, &st->jobid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &st->stepid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &st->local_tasks) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_TOTAL_TASK_COUNT, &st->total_tasks) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_ENV, &env) != ESPANK_SUCCESS) {
		shim_step_error("couldn't get job information");
		return (-1);
	}
	if (st->ngids > 0 && (st->gids = calloc((size_t)st->ngids, sizeof(gid_t))) != NULL)
		memcpy(st->gids, gids, (size_t)st->ngids * sizeof(gid_t));
	else
		st->ngids = 0;
	while (env != NULL && env[n] != NULL)
		n++;
	if ((st->env = calloc(n + 1, sizeof(char *))) == NULL)
		return (-1);
	for (size_t i = 0; i < n; ++i)
		if ((st->env[i] = strdup(env[i])) == NULL)
			return (-1);
	if (st->stepid == SLURM_BATCH_SCRIPT) {
		int argc = 0;
		char **argv = NULL;

		if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS) {
			shim_step_error("couldn't get job argv");
			return (-1);
		}
		if (argc == 0) {
			shim_step_error("couldn't get sbatch script: argc == 0");
			return (-1);
		}
		st->batch_script = strdup(argv[0]);
	}
	return (0);
}

static const char *job_env(const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; shim_step.env != NULL && shim_step.env[i] != NULL; ++i)
		if (strncmp(shim_step.env[i], name, len) == 0 && shim_step.env[i][len] == '=')
			return (shim_step.env[i] + len + 1);
	return (NULL);
}

/* enroot fstab escaping of a path: space, tab, newline and backslash as octal. */
static char *fstab_escape(const char *s)
{
	char *out = malloc(strlen(s) * 4 + 1), *p = out;

	if (out == NULL)
		return (NULL);
	for (; *s != '\0'; ++s) {
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\\')
			p += sprintf(p, "\\%03o", (unsigned char)*s);
		else
			*p++ = *s;
	}
	*p = '\0';
	return (out);
}

/* The launcher arguments shared by slurm-launch and slurm-teardown. */
static void step_argv(struct shim_argv *a, const char *verb)
{
	const struct shim_args *o = &shim_args;
	const struct shim_config *c = &shim_step.config;
	const char *pwd = job_env("PWD");

	shim_argv_push(a, "enroot");
	shim_argv_push(a, "%s", verb);
	shim_argv_push(a, "--job-id=%u", shim_step.jobid);
	shim_argv_push(a, "--step-id=%u", shim_step.stepid);
	shim_argv_push(a, "--local-tasks=%u", shim_step.local_tasks);
	shim_argv_push(a, "--total-tasks=%u", shim_step.total_tasks);
	shim_argv_push(a, "--status-fd=3");
	shim_argv_push(a, "--runtime-path=%s", c->runtime_path);
	shim_argv_push(a, "--scope=%s", c->container_scope == SHIM_SCOPE_JOB ? "job" : "global");
	shim_argv_push(a, "--cache=%s", shim_step.cache != NULL ? shim_step.cache : c->cache);
	if (pwd != NULL)
		shim_argv_push(a, "--cwd=%s", pwd);
	if (o->image != NULL)
		shim_argv_push(a, "--image=%s", o->image);
	if (o->name != NULL)
		shim_argv_push(a, "--name=%s:%s", o->name, o->name_flag);
	for (size_t i = 0; i < o->mounts_len; ++i) {
		char *src = fstab_escape(o->mounts[i].src), *dst = fstab_escape(o->mounts[i].dst);

		if (src == NULL || dst == NULL)
			a->oom = true;
		else
			shim_argv_push(a, "--mount=%s %s %s", src, dst, o->mounts[i].flags);
		free(src);
		free(dst);
	}
	if (shim_step.batch_script != NULL) {
		char *s = fstab_escape(shim_step.batch_script);

		if (s == NULL)
			a->oom = true;
		else
			shim_argv_push(a, "--mount=%s %s x-create=file,bind,ro,nosuid,nodev,private", s, s);
		free(s);
	}
	if (o->workdir != NULL)
		shim_argv_push(a, "--workdir=%s", o->workdir);
	if (o->save != NULL)
		shim_argv_push(a, "--save=%s", o->save);
	shim_argv_push(a, "--entrypoint=%s", (o->entrypoint != -1 ? o->entrypoint : c->execute_entrypoint) ? "y" : "n");
	if (o->entrypoint_log == 1)
		shim_argv_push(a, "--entrypoint-log");
	for (size_t i = 0; i < o->env_len; ++i)
		shim_argv_push(a, "--env=%s", o->env[i]);
	if (c->importer[0] != '\0')
		shim_argv_push(a, "--importer=%s", c->importer);
	if (c->use_enroot_load)
		shim_argv_push(a, "--use-enroot-load");
	if (c->use_squashfuse)
		shim_argv_push(a, "--use-squashfuse");
}

/*
 * Is the job being cancelled (scancel, time limit, node failure)? Asked of slurmctld through libslurm's
 * slurm_load_job, which slurmstepd itself links (looked up at run time, so that the plugin still loads in
 * srun and sbatch, and a missing symbol only disables the check). One RPC per node every few seconds,
 * only while a launcher is still preparing the container.
 */
static bool step_job_cancelled(const struct shim_step *st)
{
	typedef int (*load_job_fn)(job_info_msg_t **, uint32_t, uint16_t);
	typedef void (*free_fn)(job_info_msg_t *);
	static load_job_fn load_job;
	static free_fn free_msg;
	job_info_msg_t *msg = NULL;
	bool ending = false;

	if (load_job == NULL) {
		load_job = (load_job_fn)dlsym(RTLD_DEFAULT, "slurm_load_job");
		free_msg = (free_fn)dlsym(RTLD_DEFAULT, "slurm_free_job_info_msg");
		if (load_job == NULL || free_msg == NULL)
			return (false);
	}
	if (load_job(&msg, st->jobid, SHOW_ALL) != 0 || msg == NULL)
		return (false);
	if (msg->record_count > 0) {
		uint32_t state = msg->job_array[0].job_state;

		ending = (state & JOB_STATE_BASE) > JOB_SUSPENDED || (state & JOB_COMPLETING) != 0;
	}
	free_msg(msg);
	return (ending);
}

/*
 * Pull once per cluster: with cache=shared:<dir> and cache_user=<account>, the import runs first as that
 * account (never root, never the job user), alone allowed to write the shared cache; the job user's
 * launcher then finds the image there and reads it. Only registry images: a file on the node is the user's.
 * Any failure (typically a private image the account may not read) falls back to the per-user cache, so
 * that the user's own launcher tries with the user's credentials and reports its own error.
 */
static void step_shared_import(void)
{
	struct shim_argv argv = { 0 };
	struct shim_run run = { 0 };
	int status;

	if (strncmp(shim_step.config.cache, "shared:", 7) != 0 || shim_step.config.cache_user[0] == '\0' ||
	    shim_args.image == NULL || shim_args.image[0] == '.' || shim_args.image[0] == '/')
		return;
	shim_argv_push(&argv, "enroot");
	shim_argv_push(&argv, "slurm-import");
	shim_argv_push(&argv, "--job-id=%u", shim_step.jobid);
	shim_argv_push(&argv, "--step-id=%u", shim_step.stepid);
	shim_argv_push(&argv, "--runtime-path=%s", shim_step.config.runtime_path);
	shim_argv_push(&argv, "--cache=%s", shim_step.config.cache);
	shim_argv_push(&argv, "--image=%s", shim_args.image);
	run.cache_user = true;
	run.cancelled = step_job_cancelled;
	status = shim_launcher_run(&shim_step, &argv, &run);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		slurm_info(SHIM_PREFIX ": shared cache import failed (status %d), using the per-user cache", status);
		shim_step.cache = "per-user";
	}
	if (run.log_fd >= 0)
		close(run.log_fd);
	shim_argv_free(&argv);
}

static int step_launch(void)
{
	struct shim_argv argv = { 0 };
	char line[4096];
	struct shim_run run = { .line = line, .linesz = sizeof(line), .detach = true, .cancelled = step_job_cancelled };
	char service[PATH_MAX];
	int status, rv = -1;
	long pid;
	char *end;

	step_shared_import();
	step_argv(&argv, "slurm-launch");
	/*
	 * A job's later steps only (numbered steps after step 0): a job that srun made for one step, or a
	 * batch step, would start a service for nothing. The second step starts it, the third on use it.
	 */
	if (shim_step.config.launcher_service > 0 && shim_step.stepid >= 1 && shim_step.stepid < SLURM_MAX_NORMAL_STEP_ID &&
	    shim_service_path(&shim_step.config, shim_step.uid, shim_step.jobid, service, sizeof(service)) == 0) {
		shim_argv_push(&argv, "--service=%s", service);
		shim_argv_push(&argv, "--service-idle=%u", shim_step.config.launcher_service);
		run.service = service;
	}
	status = shim_launcher_run(&shim_step, &argv, &run);
	if (status == -1)
		goto fail;
	if (run.pid > 0) {
		/* It supervises the container until teardown kills it; held by pidfd, waited for there. */
		shim_step.launcher_pid = run.pid;
		shim_step.launcher_pidfd = (int)syscall(SYS_pidfd_open, run.pid, 0);
	}
	if (strncmp(line, "READY ", 6) == 0 && (run.pid > 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
		errno = 0;
		pid = strtol(line + 6, &end, 10);
		/* "READY <pid> keep": a running named container we attach to; it outlives the step. */
		if (strcmp(end, " keep") == 0) {
			shim_step.keep = true;
			end += 5;
		}
		if (errno != 0 || end == line + 6 || *end != '\0' || pid <= 1) {
			shim_step_error("launcher protocol error: %s", line);
			goto fail;
		}
		shim_step.pid = (pid_t)pid;
		/* Hold the process, not its number: a pidfd cannot be recycled under us. */
		shim_step.pidfd = (int)syscall(SYS_pidfd_open, shim_step.pid, 0);
		if (shim_step.pidfd < 0) {
			shim_step_error("container process %ld vanished: %s", pid, strerror(errno));
			goto fail;
		}
		if (shim_args.entrypoint_log == 1)
			shim_launcher_log_to_info(run.log_fd);
		rv = 0;
		goto out;
	}
	if (strncmp(line, "ERROR ", 6) == 0)
		shim_step_error("%s", line + 6);
	else if (WIFEXITED(status))
		shim_step_error("launcher failed with error code: %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		shim_step_error("launcher terminated with signal %d", WTERMSIG(status));
	else
		shim_step_error("launcher protocol error: %s", line);
fail:
	/* A launcher that answered READY still supervises its container: nobody will join it, end both. */
	if (shim_step.launcher_pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, shim_step.launcher_pidfd, SIGKILL, NULL, 0);
	shim_launcher_log_to_error(run.log_fd);
out:
	if (run.log_fd >= 0)
		close(run.log_fd);
	shim_argv_free(&argv);
	return (rv);
}

int shim_stepd_user_init(spank_t sp, int ac, char **av)
{
	void *shm;

	(void)ac, (void)av;
	if (!shim_step.enabled)
		return (0);
	shm = mmap(NULL, sizeof(uint32_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED) {
		shim_step_error("couldn't map shared memory: %s", strerror(errno));
		shim_step.error = -1;
		return (0);
	}
	shim_step.started = shm;
	if (step_collect(sp) < 0 || step_launch() < 0) {
		/* Never returned from here: Slurm would drop it (bug 7573). task_init reports it. */
		slurm_debug(SHIM_PREFIX ": user_init() failed; postponing error for now, will report later");
		shim_step.error = -1;
	}
	return (0);
}

int shim_stepd_task_init(spank_t sp, int ac, char **av)
{
	uint32_t local_id = 0;
	char *line, *save = NULL;

	(void)ac, (void)av;
	if (!shim_step.enabled)
		return (0);
	if (shim_step.error != 0) {
		/* One report per node, from its first task; the others just fail. */
		(void)spank_get_item(sp, S_TASK_ID, &local_id);
		if (local_id == 0 && shim_step.error_text != NULL)
			for (line = strtok_r(shim_step.error_text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
				shim_error("%s", line);
		return (-1);
	}
	(void)spank_get_item(sp, S_TASK_ID, &local_id);
	if (local_id == 0 && shim_step.info_text != NULL)
		for (line = strtok_r(shim_step.info_text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
			shim_info("%s", line);
	if (shim_join(sp, &shim_step) < 0)
		return (-1);
	__atomic_fetch_add(shim_step.started, 1, __ATOMIC_SEQ_CST);
	return (0);
}


/*
 * The supervising launcher ends when its container does, after removing what the step made (the runtime
 * directory, an unnamed container's extracted root filesystem); wait for it, so that all of that is gone
 * before the step ends. slurmstepd reaps any child (wait3(-1)), so the pidfd, not waitpid, tells when it
 * is gone. Returns false when it had to be killed: its clean-up is then slurm-teardown's.
 */
static bool step_wait_launcher(void)
{
	struct pollfd p = { .fd = shim_step.launcher_pidfd, .events = POLLIN };
	bool clean = true;
	int status;

	if (shim_step.launcher_pidfd < 0)
		return (true);
	if (poll(&p, 1, 60000) == 0) {
		shim_error("the launcher (pid %d) did not exit, killing it", (int)shim_step.launcher_pid);
		(void)syscall(SYS_pidfd_send_signal, shim_step.launcher_pidfd, SIGKILL, NULL, 0);
		(void)poll(&p, 1, 5000);
		clean = false;
	}
	(void)waitpid(shim_step.launcher_pid, &status, WNOHANG);
	close(shim_step.launcher_pidfd);
	shim_step.launcher_pidfd = -1;
	return (clean);
}

static void step_teardown(void)
{
	struct shim_argv argv = { 0 };
	struct shim_run run = { 0 };
	int status;
	bool all = shim_step.started != NULL && *shim_step.started == shim_step.local_tasks;
	pid_t pid = shim_step.pid;
	bool clean;

	if (shim_step.pidfd >= 0) {
		if (!shim_step.keep)
			(void)syscall(SYS_pidfd_send_signal, shim_step.pidfd, SIGKILL, NULL, 0);
		close(shim_step.pidfd);
		shim_step.pidfd = -1;
	}
	clean = step_wait_launcher();
	if (shim_step.pid < 0)
		return;
	/* Once only. */
	shim_step.pid = -1;
	/* Nothing left to do but an export, unless the launcher could not clean up itself: no Node start-up. */
	if (shim_args.save == NULL && clean)
		return;
	step_argv(&argv, "slurm-teardown");
	shim_argv_push(&argv, "--pid=%d", (int)pid);
	shim_argv_push(&argv, "--all-started=%s", all ? "y" : "n");
	status = shim_launcher_run(&shim_step, &argv, &run);
	if (status != -1 && WIFSIGNALED(status)) {
		shim_error("container teardown terminated with signal %d", WTERMSIG(status));
		shim_launcher_log_print(run.log_fd);
	} else if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		shim_error("container teardown failed with error code: %d", status == -1 ? -1 : WEXITSTATUS(status));
		shim_launcher_log_print(run.log_fd);
	}
	if (run.log_fd >= 0)
		close(run.log_fd);
	shim_argv_free(&argv);
}

/*
 * The last local task to exit tears down, here and not in slurm_spank_exit: once every task has
 * exited the step completes, and Slurm signals everything still running under slurmstepd, an export
 * in progress included.
 */
int shim_stepd_task_exit(spank_t sp, int ac, char **av)
{
	static uint32_t completed;

	(void)sp, (void)ac, (void)av;
	if (shim_step.enabled && ++completed == shim_step.local_tasks)
		step_teardown();
	return (0);
}

int shim_stepd_exit(spank_t sp, int ac, char **av)
{
	(void)sp, (void)ac, (void)av;
	/* Normally done by the last task_exit; this catches steps whose tasks never started. */
	if (shim_step.enabled)
		step_teardown();
	if (shim_step.started != NULL)
		munmap(shim_step.started, sizeof(uint32_t));
	for (size_t i = 0; shim_step.env != NULL && shim_step.env[i] != NULL; ++i)
		free(shim_step.env[i]);
	free(shim_step.env);
	free(shim_step.gids);
	free(shim_step.batch_script);
	free(shim_step.error_text);
	free(shim_step.info_text);
	shim_args_free();
	memset(&shim_step, 0, sizeof(shim_step));
	shim_step.pid = -1;
	shim_step.pidfd = -1;
	shim_step.launcher_pidfd = -1;
	return (0);
}
