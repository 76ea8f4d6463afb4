/*
 * The client side of a job's launcher service on a node (doc/slurm.md, "The launcher service";
 * launcher/src/slurm/service.ts has the wire format). The job's first container step on a node runs the
 * launcher, which starts the service; a later step's launcher child, already the job user, hands its
 * request to the service instead of executing a Node program, and relays the answers to the fds the shim
 * reads (status on 3, log on 1/2) until the service reports the exit status. Nothing changes for the rest
 * of the shim: this process is "the launcher" it waits for. The epilog asks the job's service to end.
 *
 * The relay runs in a child forked from slurmstepd: system calls and fixed buffers only, no allocation.
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "step.h"

#define SERVICE_MAGIC "ENROOT-SERVICE-1"
/* How long the epilog waits for a service to end its containers (it allows itself 10 s). */
#define QUIT_TIMEOUT_S 15

int shim_service_path(const struct shim_config *c, uid_t uid, uint32_t jobid, char *buf, size_t size)
{
	struct sockaddr_un sa;
	int n = snprintf(buf, size, "%s/%u/service.%u.sock", c->runtime_path, (unsigned)uid, (unsigned)jobid);

	/* A path too long for a unix socket: no service, every step runs its own launcher. */
	if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof(sa.sun_path))
		return (-1);
	return (0);
}

static char out[1 << 16];
static size_t out_len;

static bool out_flush(int fd)
{
	for (size_t off = 0; off < out_len;) {
		ssize_t w = send(fd, out + off, out_len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return (false);
		off += (size_t)w;
	}
	out_len = 0;
	return (true);
}

/* One NUL-terminated field. */
static bool out_field(int fd, const char *s)
{
	size_t n = strlen(s) + 1;

	while (n > 0) {
		size_t k;

		if (out_len == sizeof(out) && !out_flush(fd))
			return (false);
		k = sizeof(out) - out_len < n ? sizeof(out) - out_len : n;
		memcpy(out + out_len, s, k);
		out_len += k;
		s += k;
		n -= k;
	}
	return (true);
}

static int service_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return (-1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return (-1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return (-1);
	}
	return (fd);
}

static bool send_request(int fd, const char *kind, char *const *argv, char *const *envp)
{
	if (!out_field(fd, SERVICE_MAGIC) || !out_field(fd, kind))
		return (false);
	for (size_t i = 1; argv != NULL && argv[i] != NULL; ++i)
		if (argv[i][0] != '\0' && !out_field(fd, argv[i]))
			return (false);
	if (!out_field(fd, ""))
		return (false);
	for (size_t i = 0; envp != NULL && envp[i] != NULL; ++i)
		if (envp[i][0] != '\0' && !out_field(fd, envp[i]))
			return (false);
	return (out_field(fd, "") && out_flush(fd));
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static char in[8192];

void shim_service_relay(const char *path, char *const *argv, char *const *envp)
{
	static const char lost[] = "ERROR the launcher service on this node ended before the container was ready\n";
	const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGPIPE };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t set;
	size_t len = 0;
	bool taken = false, status_sent = false;
	int fd;

	/* Forked from slurmstepd: its handlers are not ours. A SIGTERM from the shim ends us, and so the request. */
	sigemptyset(&set);
	for (size_t i = 0; i < SHIM_ARRAY_SIZE(sigs); ++i) {
		(void)sigaction(sigs[i], &dfl, NULL);
		sigaddset(&set, sigs[i]);
	}
	(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
	if ((fd = service_connect(path)) < 0)
		return;
	if (!send_request(fd, "launch", argv, envp)) {
		close(fd);
		return;
	}
	for (;;) {
		ssize_t r = read(fd, in + len, sizeof(in) - len);
		char *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		while ((nl = memchr(in, '\n', len)) != NULL) {
			size_t n = (size_t)(nl - in);
			const char *text = n >= 2 ? in + 2 : "";
			size_t tlen = n >= 2 ? n - 2 : 0;

			taken = true;
			if (in[0] == 'L') {
				write_all(2, text, tlen);
				write_all(2, "\n", 1);
			} else if (in[0] == 'S' && !status_sent) {
				write_all(3, text, tlen);
				write_all(3, "\n", 1);
				close(3);
				status_sent = true;
			} else if (in[0] == 'X') {
				int code = 0;

				for (size_t i = 0; i < tlen && text[i] >= '0' && text[i] <= '9' && code < 256; ++i)
					code = code * 10 + (text[i] - '0');
				_exit(code > 255 ? 1 : code);
			}
			memmove(in, nl + 1, len - n - 1);
			len -= n + 1;
		}
		if (len == sizeof(in))
			break;
	}
	close(fd);
	/* Nothing at all: an idle service that was exiting, or another version. Run the launcher instead. */
	if (!taken)
		return;
	if (!status_sent)
		write_all(3, lost, sizeof(lost) - 1);
	_exit(1);
}

void shim_service_quit(const struct shim_config *c, uid_t uid, gid_t gid, uint32_t jobid)
{
	char path[PATH_MAX];
	pid_t pid;
	int status;

	if (shim_service_path(c, uid, jobid, path, sizeof(path)) < 0 || access(path, F_OK) < 0)
		return;
	if ((pid = fork()) < 0)
		return;
	if (pid == 0) {
		char *const argv[] = { "enroot", NULL };
		struct pollfd p;
		time_t until;
		int fd;

		/* As the job user: root never talks to a user's socket. */
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
			_exit(1);
		if ((fd = service_connect(path)) < 0 || !send_request(fd, "quit", argv, NULL))
			_exit(1);
		/* It closes the connection once its containers are gone; never wait past the timeout. */
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		for (until = time(NULL) + QUIT_TIMEOUT_S; time(NULL) < until;) {
			int n = poll(&p, 1, 1000);

			if (n < 0 && errno != EINTR)
				break;
			if (n > 0 && read(fd, in, sizeof(in)) <= 0)
				break;
		}
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}
