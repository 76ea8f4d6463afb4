#include "spawn.h"
#include "nofile.h"
#include "errors.h"
#include "mount.h"
#include "switchroot.h"
#include "userns.h"
#include "wire.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <uv.h>

extern char **environ;

int enr_child_init(pid_t expected_parent) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  // Node's handlers write to its own pipes: none may run in the child.
  for (int s = 1; s < NSIG; s++) if (s != SIGKILL && s != SIGSTOP) (void)sigaction(s, &sa, nullptr);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return -1;
  // A child forked into a new pid namespace sees its parent as 0 (outside): nothing to compare with.
  if (expected_parent != 0 && getppid() != expected_parent) return -1;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  return 0;
}

void enr_inherit_stdio(void) {
  // Node marks its stdio close-on-exec and may have made it non-blocking: the container gets them plain.
  for (int i = 0; i < 3; i++) {
    (void)fcntl(i, F_SETFD, 0);
    int fl = fcntl(i, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) (void)fcntl(i, F_SETFL, fl & ~O_NONBLOCK);
  }
}

void enr_mirror_child(pid_t child) {
  static const int fwd[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (int s : fwd) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int st;
  for (;;) {
    pid_t r = waitpid(child, &st, WNOHANG | WUNTRACED);
    if (r == child && WIFSTOPPED(st)) {
      // Job control (enroot-nsenter): the child stopped (Ctrl-Z inside, SIGSTOP from outside), so we stop
      // too and the shell above sees the job stop; once continued, we continue the child.
      (void)kill(getpid(), SIGSTOP);
      (void)kill(child, SIGCONT);
      continue;
    }
    if (r == child) break;
    if (r < 0 && errno != EINTR) _exit(1);
    int sig = sigwaitinfo(&set, nullptr);
    if (sig > 0 && sig != SIGCHLD) kill(child, sig);
  }
  if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
  int sig = WTERMSIG(st);
  signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  sigprocmask(SIG_UNBLOCK, &one, nullptr);
  raise(sig);
  _exit(128 + sig);
}

namespace {

struct phase1 {
  unsigned flags = 0;
  const char *rootdir = nullptr, *image = nullptr, *mntdir = nullptr, *squashfuse = "/usr/bin/squashfuse";
  unsigned last_cap = 40;
  uid_t inner_uid = 0;
  gid_t inner_gid = 0;
  unsigned nofile = 0;
  pid_t lower_pid = 0;
  const char *lower_dir = nullptr;
};

char g_root[PATH_MAX];
char g_lower[PATH_MAX];
char g_fuseopt[64];

void sub_path(char *out, const char *dir, const char *leaf) {
  out[0] = '\0';
  enr_strlcat(out, dir, PATH_MAX); enr_strlcat(out, "/", PATH_MAX); enr_strlcat(out, leaf, PATH_MAX);
}

void loopback_up(int fd) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  enr_strlcpy(ifr.ifr_name, "lo", sizeof ifr.ifr_name);
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) enr_fail(fd, ENR_STEP_LOOPBACK, errno, "lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) enr_fail(fd, ENR_STEP_LOOPBACK, errno, "lo");
  close(s);
}

void mount_overlay(int fd) {
  // Relative to the private tmpfs (cwd): no escaping of the runtime path in the option string.
  const char *opts[] = { "lowerdir=lower,upperdir=upper,workdir=work,xino=off,userxattr",
                         "lowerdir=lower,upperdir=upper,workdir=work,xino=off" };
  for (const char *o : opts) {
    if (mount("overlay", "root", "overlay", MS_NOSUID | MS_NODEV, o) == 0) return;
    if (errno != EINVAL) break;
  }
  enr_fail(fd, ENR_STEP_OVERLAY, errno, g_root);
}

// Copy the directory skeleton of lower into upper (modes kept, owner us). Raw getdents64, no allocation;
// unreadable directories are skipped.
void mirror_dirs(int lower, int upper, int depth) {
  char buf[4096];
  if (depth > 48) return;
  for (;;) {
    long n = syscall(SYS_getdents64, lower, buf, sizeof buf);
    if (n <= 0) return;
    for (long off = 0; off < n;) {
      struct linux_dirent64 { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; };
      auto *d = reinterpret_cast<struct linux_dirent64 *>(buf + off);
      off += d->reclen;
      if (d->type != DT_DIR || strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0) continue;
      struct stat st;
      if (fstatat(lower, d->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) continue;
      if (mkdirat(upper, d->name, st.st_mode & 07777) < 0 && errno != EEXIST) continue;
      if (fchmodat(upper, d->name, st.st_mode & 07777, 0) < 0) continue;   // umask
      int l = openat(lower, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (l < 0) continue;
      int u = openat(upper, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (u >= 0) { mirror_dirs(l, u, depth + 1); close(u); }
      close(l);
    }
  }
}

// squashfuse -f in a child inside the namespaces; it lives exactly as long as the container process
// (its parent after exec), through PR_SET_PDEATHSIG. Returns its pid once the mount is there.
pid_t mount_squashfs(int fd, const struct phase1 &p) {
  char u[24], g[24];
  enr_utoa(p.inner_uid, u, sizeof u); enr_utoa(p.inner_gid, g, sizeof g);
  enr_strlcpy(g_fuseopt, "uid=", sizeof g_fuseopt); enr_strlcat(g_fuseopt, u, sizeof g_fuseopt);
  enr_strlcat(g_fuseopt, ",gid=", sizeof g_fuseopt); enr_strlcat(g_fuseopt, g, sizeof g_fuseopt);
  pid_t self = getpid();
  pid_t f = fork();
  if (f < 0) enr_fail(fd, ENR_STEP_SQUASHFUSE, errno, p.squashfuse);
  if (f == 0) {
    if (enr_child_init(self) < 0) _exit(1);
    if (p.inner_uid != 0) (void)enr_caps_raise_ambient(p.last_cap);
    const char *argv[] = { "squashfuse", "-f", "-o", g_fuseopt, p.image, g_lower, nullptr };
    execve(p.squashfuse, const_cast<char *const *>(argv), environ);
    enr_fail(fd, ENR_STEP_SQUASHFUSE, errno, p.squashfuse);
  }
  struct stat top, low;
  if (stat(".", &top) < 0) enr_fail(fd, ENR_STEP_FUSE_WAIT, errno, p.image);
  // Polled every half millisecond for 10 s: squashfuse mounts within a few milliseconds, and every start
  // of an image waits for it (a coarser step was, on average, half a step of waiting for nothing).
  for (int i = 0; i < 20000; i++) {
    if (stat(g_lower, &low) == 0 && low.st_dev != top.st_dev) return f;
    int st;
    if (waitpid(f, &st, WNOHANG) == f) enr_fail(fd, ENR_STEP_FUSE_WAIT, EIO, p.image);
    struct timespec ts = { 0, 500 * 1000 };
    nanosleep(&ts, nullptr);
  }
  kill(f, SIGKILL);
  enr_fail(fd, ENR_STEP_FUSE_WAIT, ETIMEDOUT, p.image);
}

// The private rootfs: a tmpfs on runtimeDir/mnt holding lower/upper/work/root. A start never writes to
// the shared rootfs (no lock needed, read-only and foreign-owned rootfs work: enroot#91, #154).
void setup_rootfs(int fd, const struct phase1 &p, int in_userns) {
  if (mount("tmpfs", p.mntdir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, p.mntdir);
  if (mount(nullptr, p.mntdir, nullptr, MS_PRIVATE, nullptr) < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, p.mntdir);
  if (chdir(p.mntdir) < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, p.mntdir);
  sub_path(g_root, p.mntdir, "root");
  sub_path(g_lower, p.mntdir, "lower");
  const char *dirs[] = { "root", "lower", "upper", "work" };
  for (const char *d : dirs) if (mkdir(d, 0755) < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, d);
  if (p.image != nullptr) {
    if (p.lower_dir != nullptr) {
      // The holder's squashfuse, already mounted (and its page cache warm): seen here since our mount
      // namespace is a copy of the holder's.
      if (mount(p.lower_dir, "lower", nullptr, MS_BIND, nullptr) < 0) enr_fail(fd, ENR_STEP_ROOTFS, errno, p.lower_dir);
    } else {
      (void)mount_squashfs(fd, p);
    }
    mount_overlay(fd);
  } else if (p.flags & ENR_F_WRITABLE) {
    if (mount(p.rootdir, "root", nullptr, MS_BIND, nullptr) < 0) enr_fail(fd, ENR_STEP_ROOTFS, errno, p.rootdir);
    unsigned long f = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV;
    if (in_userns) f |= enr_locked_flags(g_root);
    if (mount(nullptr, "root", nullptr, f, nullptr) < 0) enr_fail(fd, ENR_STEP_ROOTFS, errno, p.rootdir);
  } else {
    if (mount(p.rootdir, "lower", nullptr, MS_BIND, nullptr) < 0) enr_fail(fd, ENR_STEP_ROOTFS, errno, p.rootdir);
    struct stat st;
    // A rootfs owned by someone else (root, read-only, enroot#91): its directories would show as the
    // overflow id and refuse every hook write. Their copies in the upper layer are ours, and overlay takes
    // a merged directory's attributes from the upper one, so hooks can create and replace files.
    if (stat("lower", &st) == 0 && st.st_uid != geteuid()) {
      int lo = open("lower", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      int up = open("upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (lo >= 0 && up >= 0) mirror_dirs(lo, up, 0);
      if (lo >= 0) close(lo);
      if (up >= 0) close(up);
    }
    mount_overlay(fd);
  }
  if (chdir("/") < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, "/");
}

// Phase 2 arrives as [u32 length][records] on the control pipe.
const char *read_phase2(int fd, int control, size_t *len) {
  uint32_t n = 0;
  size_t got = 0;
  while (got < sizeof n) {
    ssize_t r = read(control, reinterpret_cast<char *>(&n) + got, sizeof n - got);
    if (r == 0) _exit(1);   // Node gave up (a hook failed): nothing to report
    if (r < 0) { if (errno == EINTR) continue; enr_fail(fd, ENR_STEP_PROTOCOL, errno, "control"); }
    got += (size_t)r;
  }
  if (n == 0) { *len = 0; return ""; }
  char *buf = static_cast<char *>(mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (buf == MAP_FAILED) enr_fail(fd, ENR_STEP_PROTOCOL, errno, "control");
  for (got = 0; got < n;) {
    ssize_t r = read(control, buf + got, n - got);
    if (r == 0) _exit(1);
    if (r < 0) { if (errno == EINTR) continue; enr_fail(fd, ENR_STEP_PROTOCOL, errno, "control"); }
    got += (size_t)r;
  }
  *len = n;
  return buf;
}

bool is_batch(const char *buf, size_t len) {
  struct enr_reader r = { buf, buf + len };
  struct enr_rec rec;
  return enr_next(&r, &rec) > 0 && rec.tag == ENR_T_BATCH;
}

int make_rc_memfd(int fd, const char *buf, size_t len) {
  struct enr_reader r = { buf, buf + len };
  struct enr_rec rec;
  while (enr_next(&r, &rec) > 0) {
    if (rec.tag != ENR_T_RC) continue;
    int m = (int)syscall(SYS_memfd_create, "rc", 0);
    if (m < 0) enr_fail(fd, ENR_STEP_RC, errno, "memfd");
    if (rec.len > 0 && enr_write_all(m, rec.data, rec.len - 1) < 0) enr_fail(fd, ENR_STEP_RC, errno, "memfd");
    if (lseek(m, 0, SEEK_SET) < 0) enr_fail(fd, ENR_STEP_RC, errno, "memfd");
    return m;
  }
  return -1;
}

// Phase 1's records into p (a holder's are a subset); < 0 on a malformed record.
int parse_phase1(const char *buf, size_t len, struct phase1 *p) {
  struct enr_reader r = { buf, buf + len };
  struct enr_rec rec;
  int rc;
  while ((rc = enr_next(&r, &rec)) > 0) {
    switch (rec.tag) {
      case ENR_T_FLAGS: p->flags = enr_u32(&rec); break;
      case ENR_T_ROOTFS_DIR: p->rootdir = enr_str(&rec); break;
      case ENR_T_ROOTFS_IMAGE: p->image = enr_str(&rec); break;
      case ENR_T_MNTDIR: p->mntdir = enr_str(&rec); break;
      case ENR_T_SQUASHFUSE: p->squashfuse = enr_str(&rec); break;
      case ENR_T_CAPLAST: p->last_cap = enr_u32(&rec); break;
      case ENR_T_INNER_UID: p->inner_uid = enr_u32(&rec); break;
      case ENR_T_INNER_GID: p->inner_gid = enr_u32(&rec); break;
      case ENR_T_NOFILE: p->nofile = enr_u32(&rec); break;
      case ENR_T_LOWER_PID: p->lower_pid = (pid_t)enr_u32(&rec); break;
      case ENR_T_LOWER_DIR: p->lower_dir = enr_str(&rec); break;
      default: break;
    }
  }
  return rc;
}

// The user and mount namespaces of a lower holder (holder_child): the same user mapping as a namespace of
// our own, and its squashfs mount. The unshare of a mount namespace that follows makes our own copy.
void join_lower(int fd, pid_t holder) {
  char path[64], num[24];
  enr_utoa((unsigned long)holder, num, sizeof num);
  int nsfd[2];
  const char *names[2] = { "/ns/user", "/ns/mnt" };
  for (int i = 0; i < 2; i++) {
    enr_strlcpy(path, "/proc/", sizeof path); enr_strlcat(path, num, sizeof path); enr_strlcat(path, names[i], sizeof path);
    if ((nsfd[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0) enr_fail(fd, ENR_STEP_USERNS, errno, path);
  }
  if (setns(nsfd[0], CLONE_NEWUSER) < 0) enr_fail(fd, ENR_STEP_USERNS, errno, "lower holder user namespace");
  if (setns(nsfd[1], CLONE_NEWNS) < 0) enr_fail(fd, ENR_STEP_USERNS, errno, "lower holder mount namespace");
  close(nsfd[0]); close(nsfd[1]);
}

// A lower holder: a user and mount namespace in which squashfuse keeps an image mounted for the
// containers that join it (join_lower), so that each start skips squashfuse's start and mount and finds
// the image's pages cached. It reports READY with the mount point and then only waits; it dies with Node
// (enr_child_init), and its squashfuse with it.
[[noreturn]] void holder_child(const char *buf, size_t len, int fd, pid_t node) {
  if (enr_child_init(node) < 0) _exit(1);
  struct phase1 p;
  int rc = parse_phase1(buf, len, &p);
  if (rc < 0 || p.mntdir == nullptr || p.image == nullptr || p.squashfuse == nullptr) enr_fail(fd, ENR_STEP_PROTOCOL, EINVAL, "lower");
  enr_userns_create(fd, geteuid(), getegid(), p.inner_uid, p.inner_gid);
  if (unshare(CLONE_NEWNS) < 0) enr_fail(fd, ENR_STEP_UNSHARE, errno, "mount");
  if (mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) enr_fail(fd, ENR_STEP_PROPAGATION_ROOT, errno, "/");
  if (mount("tmpfs", p.mntdir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, p.mntdir);
  if (chdir(p.mntdir) < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, p.mntdir);
  if (mkdir("lower", 0755) < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, "lower");
  sub_path(g_lower, p.mntdir, "lower");
  pid_t fuse = mount_squashfs(fd, p);
  if (chdir("/") < 0) enr_fail(fd, ENR_STEP_TMPFS, errno, "/");
  enr_send(fd, ENR_MSG_READY, 0, 0, 0, g_lower);
  close(fd);
  // A holder whose squashfuse is gone holds a dead mount: it ends too, and is no longer handed out.
  for (;;) {
    int st;
    if (waitpid(fuse, &st, 0) == fuse || errno != EINTR) _exit(1);
  }
}

[[noreturn]] void container_child(const char *buf, size_t len, int fd, int control, pid_t node) {
  if (enr_child_init(node) < 0) _exit(1);
  struct phase1 p;
  int rc = parse_phase1(buf, len, &p);
  if (rc < 0 || p.mntdir == nullptr || (p.rootdir == nullptr) == (p.image == nullptr) || p.squashfuse == nullptr ||
      (p.lower_pid != 0) != (p.lower_dir != nullptr) || (p.lower_pid != 0 && (p.image == nullptr || !(p.flags & ENR_F_USERNS))))
    enr_fail(fd, ENR_STEP_PROTOCOL, EINVAL, "phase 1");
  const int userns = (p.flags & ENR_F_USERNS) != 0;

  // user → pid (fork) → mount → net → ipc → uts, as enroot-nsenter
  if (p.lower_pid != 0) join_lower(fd, p.lower_pid);
  else if (userns) enr_userns_create(fd, geteuid(), getegid(), p.inner_uid, p.inner_gid);
  if (p.flags & ENR_F_PID) {
    if (unshare(CLONE_NEWPID) < 0) enr_fail(fd, ENR_STEP_UNSHARE, errno, "pid");
    pid_t c = fork();
    if (c < 0) enr_fail(fd, ENR_STEP_FORK, errno, nullptr);
    if (c > 0) {
      enr_send(fd, ENR_MSG_PID, 0, 0, c, nullptr);
      close(fd); close(control);
      enr_mirror_child(c);
    }
    if (enr_child_init(0) < 0) _exit(1);
  }
  int ns = CLONE_NEWNS;
  if (p.flags & ENR_F_NET) ns |= CLONE_NEWNET;
  if (p.flags & ENR_F_IPC) ns |= CLONE_NEWIPC;
  if (p.flags & ENR_F_UTS) ns |= CLONE_NEWUTS;
  if (unshare(ns) < 0) enr_fail(fd, ENR_STEP_UNSHARE, errno, "mount");
  // Nothing we mount may propagate back to the host (enroot 4576b55).
  if (mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) enr_fail(fd, ENR_STEP_PROPAGATION_ROOT, errno, "/");
  if (p.flags & ENR_F_NET) loopback_up(fd);

  setup_rootfs(fd, p, userns);
  enr_mount_all(fd, g_root, buf, len, userns);   // pass -1
  enr_send(fd, ENR_MSG_READY, 0, 0, 0, g_root);

  // Control messages until the final one: a batch (a built-in hook's direct mounts, which must be in place
  // before the next hook runs) is applied and acknowledged; the final one carries the hook and late mounts,
  // the environment, the command and the rc.
  size_t len2 = 0;
  const char *buf2;
  for (;;) {
    buf2 = read_phase2(fd, control, &len2);
    if (!is_batch(buf2, len2)) break;
    enr_mount_all(fd, g_root, buf2, len2, userns);
    (void)munmap(const_cast<char *>(buf2), len2);
    enr_send(fd, ENR_MSG_ACK, 0, 0, 0, nullptr);
  }
  close(control);
  enr_mount_all(fd, g_root, buf2, len2, userns);  // hook mounts, then pass 0
  if (!(p.flags & ENR_F_WRITABLE) && (rc = enr_remount_ro(g_root, userns)) < 0) enr_fail(fd, ENR_STEP_REMOUNT_RO, -rc, g_root);

  // Nothing of Node's may leak into the container; the rc memfd is made after this on purpose.
  if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) < 0) {
    for (int i = 3; i < 1024; i++) if (i != fd) (void)fcntl(i, F_SETFD, FD_CLOEXEC);
  }
  enr_inherit_stdio();
  int rcfd = make_rc_memfd(fd, buf2, len2);
  if ((rc = enr_switchroot(g_root)) < 0) enr_fail(fd, ENR_STEP_SWITCHROOT, -rc, p.rootdir != nullptr ? p.rootdir : p.image);
  enr_restore_nofile(p.nofile);
  struct enr_exec_args a = { fd, p.flags, p.last_cap, buf2, len2, rcfd };
  enr_exec_container(&a);
}

}  // namespace

// fork() with every signal blocked across it: no handler of Node's may run in the child before
// enr_child_init resets them. The parent's mask is back on return, and fork's errno kept.
pid_t enr_fork_blocked(void) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = fork();
  if (pid != 0) {
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = e;
  }
  return pid;
}

// startContainer(phase1: Buffer): { pid, statusFd, controlFd }
Napi::Value StartContainer(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "startContainer(buffer)").ThrowAsJavaScriptException();
    return env.Null();
  }
  Napi::Buffer<char> b = info[0].As<Napi::Buffer<char>>();
  int status[2], control[2];
  if (pipe2(status, O_CLOEXEC) < 0) return enr_throw(env, ENR_STEP_FORK, errno, "pipe");
  if (pipe2(control, O_CLOEXEC) < 0) {
    int e = errno; close(status[0]); close(status[1]);
    return enr_throw(env, ENR_STEP_FORK, e, "pipe");
  }
  pid_t node = getpid();
  pid_t pid = enr_fork_blocked();
  if (pid == 0) {
    close(status[0]); close(control[1]);
    container_child(b.Data(), b.Length(), status[1], control[0], node);
  }
  int e = errno;
  close(status[1]); close(control[0]);
  if (pid < 0) {
    close(status[0]); close(control[1]);
    return enr_throw(env, ENR_STEP_FORK, e, nullptr);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, pid));
  o.Set("statusFd", Napi::Number::New(env, status[0]));
  o.Set("controlFd", Napi::Number::New(env, control[1]));
  return o;
}

// startLower(phase1-like buffer: image, mntdir, squashfuse, inner uid/gid, caplast): { pid, statusFd }.
// The holder reports READY <mount point> or an error on statusFd, then waits until killed.
Napi::Value StartLower(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "startLower(buffer)").ThrowAsJavaScriptException();
    return env.Null();
  }
  Napi::Buffer<char> b = info[0].As<Napi::Buffer<char>>();
  int status[2];
  if (pipe2(status, O_CLOEXEC) < 0) return enr_throw(env, ENR_STEP_FORK, errno, "pipe");
  pid_t node = getpid();
  pid_t pid = enr_fork_blocked();
  if (pid == 0) {
    close(status[0]);
    holder_child(b.Data(), b.Length(), status[1], node);
  }
  int e = errno;
  close(status[1]);
  if (pid < 0) {
    close(status[0]);
    return enr_throw(env, ENR_STEP_FORK, e, nullptr);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, pid));
  o.Set("statusFd", Napi::Number::New(env, status[0]));
  return o;
}

namespace {

struct waiter {
  uv_poll_t poll;
  pid_t pid;
  int pidfd;
  Napi::FunctionReference cb;
  napi_env env;
};

void waiter_closed(uv_handle_t *h) { delete static_cast<waiter *>(h->data); }

void waiter_ready(uv_poll_t *h, int, int) {
  waiter *w = static_cast<waiter *>(h->data);
  int st;
  pid_t r = waitpid(w->pid, &st, WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR)) return;   // not yet
  uv_poll_stop(&w->poll);
  close(w->pidfd);
  Napi::Env env(w->env);
  Napi::HandleScope scope(env);
  Napi::Value code = env.Null(), sig = env.Null();
  if (r < 0) code = Napi::Number::New(env, -1);
  else if (WIFEXITED(st)) code = Napi::Number::New(env, WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) sig = Napi::Number::New(env, WTERMSIG(st));
  Napi::FunctionReference cb = std::move(w->cb);
  uv_close(reinterpret_cast<uv_handle_t *>(&w->poll), waiter_closed);
  cb.MakeCallback(env.Global(), { code, sig });
}

}  // namespace

// waitChild(pid, cb(code|null, signal|null)): reaps pid when its pidfd becomes readable (event loop, no thread).
Napi::Value WaitChild(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "waitChild(pid, callback)").ThrowAsJavaScriptException();
    return env.Null();
  }
  pid_t pid = info[0].As<Napi::Number>().Int32Value();
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return enr_throw(env, ENR_STEP_NONE, errno, "pidfd_open");
  uv_loop_t *loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  waiter *w = new waiter();
  w->pid = pid; w->pidfd = pidfd; w->env = env;
  w->cb = Napi::Persistent(info[1].As<Napi::Function>());
  w->poll.data = w;
  if (uv_poll_init(loop, &w->poll, pidfd) != 0 || uv_poll_start(&w->poll, UV_READABLE, waiter_ready) != 0) {
    close(pidfd);
    delete w;
    return enr_throw(env, ENR_STEP_NONE, EINVAL, "uv_poll");
  }
  return env.Undefined();
}
