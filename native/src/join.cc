#include "join.h"
#include "nofile.h"
#include "errors.h"
#include "seccomp.h"
#include "spawn.h"
#include "userns.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <string>
#include <vector>

namespace {

struct join_req {
  pid_t target;
  unsigned ns;
  int seccomp;
  int ambient;
  unsigned last_cap;
  const char *cwd;          // or nullptr
  int cwd_from_target;
  unsigned nofile;          // the caller's RLIMIT_NOFILE soft limit, 0 to keep ours
  char *const *argv;
  char *const *envp;
};

const struct { unsigned bit; const char *name; int type; } k_ns[] = {
  { ENR_NS_USER, "user", CLONE_NEWUSER }, { ENR_NS_PID, "pid", CLONE_NEWPID }, { ENR_NS_MNT, "mnt", CLONE_NEWNS },
  { ENR_NS_NET, "net", CLONE_NEWNET }, { ENR_NS_IPC, "ipc", CLONE_NEWIPC }, { ENR_NS_UTS, "uts", CLONE_NEWUTS },
  { ENR_NS_CGROUP, "cgroup", CLONE_NEWCGROUP },
};
constexpr int k_nns = sizeof k_ns / sizeof k_ns[0];

char g_p[PATH_MAX];
char g_exe[PATH_MAX];

void ns_path(char *out, const char *pid, const char *name) {
  enr_strlcpy(out, "/proc/", PATH_MAX); enr_strlcat(out, pid, PATH_MAX);
  enr_strlcat(out, "/ns/", PATH_MAX); enr_strlcat(out, name, PATH_MAX);
}

const char *env_path(char *const *envp) {
  for (size_t i = 0; envp[i] != nullptr; i++) if (strncmp(envp[i], "PATH=", 5) == 0) return envp[i] + 5;
  return "/usr/local/bin:/usr/bin:/bin";
}

// execvpe with the new environment's PATH, without allocating.
[[noreturn]] void exec_path(int fd, char *const *argv, char *const *envp) {
  const char *file = argv[0];
  if (strchr(file, '/') != nullptr) {
    execve(file, argv, envp);
    enr_fail(fd, ENR_STEP_EXEC, errno, file);
  }
  int err = ENOENT;
  for (const char *p = env_path(envp);;) {
    const char *e = strchr(p, ':');
    size_t n = e == nullptr ? enr_strlen(p) : (size_t)(e - p);
    if (n + 1 + enr_strlen(file) + 1 < sizeof g_exe) {
      memcpy(g_exe, p, n);
      g_exe[n] = '\0';
      if (n == 0) enr_strlcpy(g_exe, ".", sizeof g_exe);
      enr_strlcat(g_exe, "/", sizeof g_exe); enr_strlcat(g_exe, file, sizeof g_exe);
      execve(g_exe, argv, envp);
      if (errno == EACCES) err = EACCES;
      else if (errno != ENOENT && errno != ENOTDIR) { err = errno; break; }
    }
    if (e == nullptr) break;
    p = e + 1;
  }
  enr_fail(fd, ENR_STEP_EXEC, err, file);
}

[[noreturn]] void join_child(const join_req &r, int fd, pid_t node) {
  if (enr_child_init(node) < 0) _exit(1);
  enr_restore_nofile(r.nofile);
  char pidstr[24];
  enr_utoa((unsigned long)r.target, pidstr, sizeof pidstr);
  // Every fd first: joining the mount namespace changes what /proc shows.
  int nsfd[k_nns];
  for (int i = 0; i < k_nns; i++) {
    nsfd[i] = -1;
    if (!(r.ns & k_ns[i].bit)) continue;
    ns_path(g_p, pidstr, k_ns[i].name);
    nsfd[i] = open(g_p, O_RDONLY | O_CLOEXEC);
    if (nsfd[i] < 0) {
      if (errno == ENOENT && k_ns[i].bit == ENR_NS_CGROUP) continue;
      enr_fail(fd, ENR_STEP_OPEN_NS, errno, g_p);
    }
    struct stat theirs, ours;
    ns_path(g_p, "self", k_ns[i].name);
    if (fstat(nsfd[i], &theirs) == 0 && stat(g_p, &ours) == 0 && theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino) {
      close(nsfd[i]);   // already there
      nsfd[i] = -1;
    }
  }
  int wd = -1;
  if (r.cwd_from_target) {
    enr_strlcpy(g_p, "/proc/", sizeof g_p); enr_strlcat(g_p, pidstr, sizeof g_p); enr_strlcat(g_p, "/cwd", sizeof g_p);
    wd = open(g_p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (wd < 0) enr_fail(fd, ENR_STEP_WORKDIR, errno, g_p);
  } else if (r.cwd != nullptr) {
    wd = open(r.cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (wd < 0) enr_fail(fd, ENR_STEP_WORKDIR, errno, r.cwd);
  }
  int joined_user = 0, joined_mnt = 0;
  for (int i = 0; i < k_nns; i++) {
    if (nsfd[i] < 0) continue;
    if (setns(nsfd[i], k_ns[i].type) < 0) enr_fail(fd, ENR_STEP_JOIN_NS, errno, k_ns[i].name);
    close(nsfd[i]);
    if (k_ns[i].bit == ENR_NS_USER) joined_user = 1;
    if (k_ns[i].bit == ENR_NS_MNT) joined_mnt = 1;
    if (k_ns[i].bit == ENR_NS_PID) {   // only children enter a pid namespace
      pid_t self = getpid();
      pid_t c = fork();
      if (c < 0) enr_fail(fd, ENR_STEP_FORK, errno, nullptr);
      if (c > 0) { close(fd); enr_mirror_child(c); }
      if (enr_child_init(getppid() == 0 ? 0 : self) < 0) _exit(1);
    }
  }
  if (wd >= 0) { if (fchdir(wd) < 0) enr_fail(fd, ENR_STEP_WORKDIR, errno, r.cwd); close(wd); }
  else if (joined_mnt && chdir("/") < 0) enr_fail(fd, ENR_STEP_WORKDIR, errno, "/");
  int rc;
  if (r.ambient && geteuid() != 0 && (rc = enr_caps_raise_ambient(r.last_cap)) < 0) enr_fail(fd, ENR_STEP_CAPS, -rc, nullptr);
  (void)joined_user;
  if (r.seccomp && (rc = enr_seccomp_install()) < 0) enr_fail(fd, ENR_STEP_SECCOMP, -rc, nullptr);
  if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) < 0) {
    for (int i = 3; i < 1024; i++) (void)fcntl(i, F_SETFD, FD_CLOEXEC);
  }
  enr_inherit_stdio();
  exec_path(fd, r.argv, r.envp);
}

std::vector<std::string> strings(Napi::Value v) {
  std::vector<std::string> out;
  if (!v.IsArray()) return out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).ToString().Utf8Value());
  return out;
}

}  // namespace

Napi::Value SpawnJoined(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "spawnJoined(options)").ThrowAsJavaScriptException();
    return env.Null();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  std::vector<std::string> argv = strings(o.Get("argv")), envs = strings(o.Get("env"));
  if (argv.empty()) { Napi::TypeError::New(env, "spawnJoined: empty argv").ThrowAsJavaScriptException(); return env.Null(); }
  std::vector<char *> av, ev;
  for (auto &s : argv) av.push_back(s.data());
  av.push_back(nullptr);
  for (auto &s : envs) ev.push_back(s.data());
  ev.push_back(nullptr);
  std::string cwd = o.Get("cwd").IsString() ? o.Get("cwd").As<Napi::String>().Utf8Value() : std::string();
  join_req r;
  r.target = o.Get("pid").ToNumber().Int32Value();
  r.ns = o.Get("namespaces").ToNumber().Uint32Value();
  r.seccomp = o.Get("seccomp").ToBoolean().Value();
  r.ambient = o.Get("ambientCaps").ToBoolean().Value();
  r.last_cap = o.Get("capLast").IsNumber() ? o.Get("capLast").ToNumber().Uint32Value() : 40;
  r.cwd = cwd.empty() ? nullptr : cwd.c_str();
  r.cwd_from_target = o.Get("cwdFromTarget").ToBoolean().Value();
  r.nofile = o.Get("nofile").IsNumber() ? o.Get("nofile").ToNumber().Uint32Value() : 0;
  r.argv = av.data();
  r.envp = ev.data();

  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return enr_throw(env, ENR_STEP_FORK, errno, "pipe");
  pid_t node = getpid();
  pid_t pid = enr_fork_blocked();
  if (pid == 0) { close(p[0]); join_child(r, p[1], node); }
  int e = errno;
  close(p[1]);
  if (pid < 0) { close(p[0]); return enr_throw(env, ENR_STEP_FORK, e, nullptr); }
  // Like uv_spawn: the pipe closes at exec, or carries the failure. Setup is a few syscalls.
  struct enr_msg m;
  size_t got = 0;
  for (;;) {
    ssize_t n = read(p[0], reinterpret_cast<char *>(&m) + got, sizeof m - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    if (got == sizeof m) break;
  }
  close(p[0]);
  if (got == sizeof m && m.type == ENR_MSG_ERROR) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    m.path[sizeof m.path - 1] = '\0';
    return enr_throw(env, m.step, m.err, m.path);
  }
  return Napi::Number::New(env, pid);
}
