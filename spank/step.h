/* The state of one step on one node, owned by slurmstepd; tasks inherit a copy when they fork. */
#ifndef SHIM_STEP_H
#define SHIM_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <slurm/spank.h>

#include "config.h"

struct shim_step {
	struct shim_config config;
	bool enabled;
	uid_t uid;
	gid_t gid;
	gid_t *gids;
	int ngids;
	uint32_t jobid;
	uint32_t stepid;
	uint32_t local_tasks;
	uint32_t total_tasks;
	char **env;          /* the job environment at user_init (a copy) */
	char *batch_script;  /* the batch step's script, bind-mounted at the same path */
	pid_t pid;           /* the container init process reported by the launcher, or -1 */
	int pidfd;
	pid_t launcher_pid;  /* the launcher that stays as the container's supervisor, or 0 */
	int launcher_pidfd;
	const char *cache;   /* the --cache the launcher gets: the configured one, or per-user after a failed shared import */
	bool keep;           /* attached to a running named container: never killed by us */
	uint32_t *started;   /* tasks that joined the container (shared memory: tasks are forked) */
	int error;           /* a postponed user_init failure, reported by task_init (Slurm bug 7573) */
	char *error_text;    /* the lines to print for it */
	char *info_text;     /* --container-entrypoint-log: the launcher's output, printed by task_init */
};

extern struct shim_step shim_step;

/* A growable NULL-terminated argv. */
struct shim_argv {
	char **v;
	size_t n;
	bool oom;
};

void shim_argv_push(struct shim_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void shim_argv_free(struct shim_argv *a);

/* Append one line to the postponed error text / info text. */
void shim_step_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void shim_step_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* How to run the launcher (launcher.c). */
struct shim_run {
	char *line;         /* in: where to store the first status line from fd 3 ("" if none), or NULL */
	size_t linesz;
	bool cache_user;    /* as config.cache_user with a minimal environment, instead of as the job user */
	bool detach;        /* after "READY <pid>" (not "keep"), return without waiting: it supervises the container */
	int log_fd;         /* out: its stdout+stderr (a memfd; the caller replays it on failure and closes it) */
	pid_t pid;          /* out: the launcher's pid when detached */
	bool (*cancelled)(const struct shim_step *st); /* polled every few seconds while waiting: the job is being cancelled */
	const char *service; /* the job's launcher service socket to try before executing the launcher, or NULL */
};

/*
 * Runs the launcher with argv (argv[0] is replaced by the configured path). SIGTERM received while
 * waiting is forwarded to it (scancel during an import). Returns the wait status (0 when detached), or
 * -1 if it could not run.
 */
int shim_launcher_run(const struct shim_step *st, struct shim_argv *argv, struct shim_run *run);
/* Appends the launcher's captured output to the postponed error text, one indented line each. */
void shim_launcher_log_to_error(int log_fd);
/* Appends it to the info text (printed by task_init). */
void shim_launcher_log_to_info(int log_fd);
/* Prints it now, at error level (for failures outside user_init). */
void shim_launcher_log_print(int log_fd);

/* Joins the container of st->pid from a task (join.c); prints its own errors. */
int shim_join(spank_t sp, const struct shim_step *st);

int shim_service_path(const struct shim_config *c, uid_t uid, uint32_t jobid, char *buf, size_t size);
void shim_service_relay(const char *path, char *const *argv, char *const *envp);
void shim_service_quit(const struct shim_config *c, uid_t uid, gid_t gid, uint32_t jobid);

#endif
