#include "switchroot.h"
#include "errors.h"
#include "seccomp.h"
#include "userns.h"
#include "wire.h"
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

int enr_switchroot(const char *rootfs) {
  int rc = 0;
  int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int newroot = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (oldroot < 0 || newroot < 0) { rc = -errno; goto out; }
  if (fchdir(newroot) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || fchdir(oldroot) < 0 ||
      mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0 || umount2(".", MNT_DETACH) < 0 ||
      fchdir(newroot) < 0 || chroot(".") < 0) { rc = -errno; goto out; }
  if (unshare(CLONE_NEWCGROUP) < 0 && errno != EINVAL) rc = -errno;
out:
  if (oldroot >= 0) close(oldroot);
  if (newroot >= 0) close(newroot);
  return rc;
}

#define ENR_MAX_ENV 8192
#define ENR_MAX_ARGS 8192
static const char *g_envp[ENR_MAX_ENV + 16];
static size_t g_nenv;
static const char *g_argv[ENR_MAX_ARGS + 8];
static char g_extra[8192];     // storage for variables the login emulation adds
static size_t g_extra_len;
static char g_passwd[256 * 1024];
static char g_defs[64 * 1024];
static char g_rcpath[64];
static char g_argv0[256];

static const char *env_get(const char *key) {
  size_t kl = enr_strlen(key);
  for (size_t i = g_nenv; i-- > 0;) {
    if (strncmp(g_envp[i], key, kl) == 0 && g_envp[i][kl] == '=') return g_envp[i] + kl + 1;
  }
  return nullptr;
}

// Login emulation never overwrites what the environment file set.
static void env_default(const char *key, const char *value) {
  if (value == nullptr || env_get(key) != nullptr || g_nenv >= ENR_MAX_ENV) return;
  size_t need = enr_strlen(key) + 1 + enr_strlen(value) + 1;
  if (g_extra_len + need > sizeof g_extra) return;
  char *s = g_extra + g_extra_len;
  s[0] = '\0';
  enr_strlcat(s, key, need); enr_strlcat(s, "=", need); enr_strlcat(s, value, need);
  g_extra_len += need;
  g_envp[g_nenv++] = s;
}

// Whole small file into buf, lines NUL-separated. Returns length or -1.
static ssize_t slurp_lines(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) != 0) {
    if (r < 0) { if (errno == EINTR) continue; close(fd); return -1; }
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  for (size_t i = 0; i < n; i++) if (buf[i] == '\n') buf[i] = '\0';
  return (ssize_t)n;
}

static const char *defs_get(ssize_t len, const char *key) {
  size_t kl = enr_strlen(key);
  const char *found = nullptr;
  for (ssize_t i = 0; i < len; i += (ssize_t)enr_strlen(g_defs + i) + 1) {
    char *l = g_defs + i;
    while (*l == ' ' || *l == '\t') l++;
    if (strncmp(l, key, kl) != 0 || (l[kl] != ' ' && l[kl] != '\t')) continue;
    char *v = l + kl;
    while (*v == ' ' || *v == '\t') v++;
    char *e = v + enr_strlen(v);
    while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
    found = v;
  }
  return found;
}

struct pw_entry { char name[256]; char home[1024]; char shell[1024]; unsigned long uid, gid; int found; };
static struct pw_entry g_pw, g_mpw;

// Copy field (up to ':' or end) into out.
static void pw_field(const char *f, char *out, size_t cap) {
  size_t n = 0;
  while (f[n] != '\0' && f[n] != ':' && n + 1 < cap) { out[n] = f[n]; n++; }
  out[n] = '\0';
}

// The passwd entry of uid (name, home, shell). Returns 0 when found; the buffer is left intact.
static int passwd_find(ssize_t len, unsigned long uid, struct pw_entry *pw) {
  char uidbuf[24];
  enr_utoa(uid, uidbuf, sizeof uidbuf);
  size_t ul = enr_strlen(uidbuf);
  for (ssize_t i = 0; i < len; i += (ssize_t)enr_strlen(g_passwd + i) + 1) {
    const char *f[7];
    const char *l = g_passwd + i;
    int n = 0;
    f[n++] = l;
    for (const char *c = l; *c != '\0' && n < 7; c++) if (*c == ':') f[n++] = c + 1;
    if (n < 7) continue;
    if (strncmp(f[2], uidbuf, ul) != 0 || f[2][ul] != ':') continue;
    pw_field(f[0], pw->name, sizeof pw->name);
    pw_field(f[5], pw->home, sizeof pw->home);
    pw_field(f[6], pw->shell, sizeof pw->shell);
    pw->uid = uid;
    pw->gid = 0;
    for (const char *c = f[3]; *c >= '0' && *c <= '9'; c++) pw->gid = pw->gid * 10 + (unsigned long)(*c - '0');
    pw->found = 1;
    return 0;
  }
  return -1;
}

static unsigned long outer_uid(unsigned long fallback) {
  char buf[128];
  int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fallback;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return fallback;
  buf[n] = '\0';
  char *p = buf;
  while (*p == ' ') p++;
  while (*p >= '0' && *p <= '9') p++;   // inner id
  while (*p == ' ') p++;
  if (*p < '0' || *p > '9') return fallback;
  unsigned long v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + (unsigned long)(*p++ - '0');
  return v;
}

static void print_file(const char *path) {
  char buf[4096];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) (void)enr_write_all(1, buf, (size_t)n);
  close(fd);
}

static int executable(const char *p) { return p != nullptr && p[0] != '\0' && access(p, X_OK) == 0; }

static ssize_t g_dl = -1;      // length of g_defs (login.defs), -1 when unreadable
static char g_aux[64 * 1024];  // /etc/group, /etc/locale.conf, the hushlogin list: one at a time
static char g_mail[PATH_MAX];
static char g_path[PATH_MAX];

static const char *def(const char *key) { return g_dl > 0 ? defs_get(g_dl, key) : nullptr; }
static bool def_yes(const char *key) { const char *v = def(key); return v != nullptr && strcmp(v, "yes") == 0; }

// Iterate the NUL-separated lines of a slurped buffer (len -1 when unreadable: no lines).
#define FOR_LINES(buf, len, l) for (char *l = (buf); (len) > 0 && l < (buf) + (len); l += enr_strlen(l) + 1)

// LANG and LC_* from /etc/locale.conf (KEY=VALUE, optionally quoted), as pam_env/login do.
static void locale_env(void) {
  ssize_t n = slurp_lines("/etc/locale.conf", g_aux, sizeof g_aux);
  for (char *line = g_aux, *next; n > 0 && line < g_aux + n; line = next) {
    next = line + enr_strlen(line) + 1;   // before the line is cut up below
    char *l = line;
    while (*l == ' ' || *l == '\t') l++;
    char *eq = strchr(l, '=');
    if (eq == nullptr || (strncmp(l, "LANG=", 5) != 0 && strncmp(l, "LC_", 3) != 0)) continue;
    bool ok = true;
    for (char *c = l; c < eq; c++) ok = ok && ((*c >= 'A' && *c <= 'Z') || *c == '_');
    if (!ok) continue;
    *eq = '\0';
    char *v = eq + 1, *e = next - 1;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
    if (e - v >= 2 && (v[0] == '"' || v[0] == '\'') && e[-1] == v[0]) { e[-1] = '\0'; v++; }
    env_default(l, v);   // copies
  }
}

// USERGROUPS_ENAB: a user whose primary group is their own (same name, gid == uid) gets the group bits
// of the umask equal to the owner bits (shadow's login).
static bool own_group(const struct pw_entry *pw) {
  if (pw->uid == 0 || pw->uid != pw->gid) return false;
  ssize_t n = slurp_lines("/etc/group", g_aux, sizeof g_aux);
  size_t nl = enr_strlen(pw->name);
  char gid[24];
  enr_utoa(pw->gid, gid, sizeof gid);
  size_t gl = enr_strlen(gid);
  FOR_LINES(g_aux, n, l) {
    if (strncmp(l, pw->name, nl) != 0 || l[nl] != ':') continue;
    const char *f = strchr(l + nl + 1, ':');
    if (f != nullptr && strncmp(f + 1, gid, gl) == 0 && f[1 + gl] == ':') return true;
  }
  return false;
}

static void login_umask(void) {
  mode_t m = umask(022);
  const char *um = def("UMASK");
  if (um != nullptr) {
    unsigned v = 0;
    for (const char *c = um; *c >= '0' && *c <= '7'; c++) v = v * 8 + (unsigned)(*c - '0');
    m = (mode_t)(v & 0777);
  }
  if (def_yes("USERGROUPS_ENAB") && g_pw.found && own_group(&g_pw)) m = (mode_t)((m & ~070) | ((m >> 3) & 070));
  umask(m);
}

// ULIMIT (in 512-byte blocks) limits the size of files the session writes.
static void login_ulimit(void) {
  const char *u = def("ULIMIT");
  if (u == nullptr || *u < '0' || *u > '9') return;
  unsigned long long blocks = 0;
  for (const char *c = u; *c >= '0' && *c <= '9' && blocks < (1ULL << 50); c++) blocks = blocks * 10 + (unsigned long long)(*c - '0');
  struct rlimit rl;
  if (getrlimit(RLIMIT_FSIZE, &rl) < 0) return;
  rlim_t want = (rlim_t)(blocks * 512);
  if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;   // cannot raise the hard limit
  rl.rlim_cur = rl.rlim_max = want;
  (void)setrlimit(RLIMIT_FSIZE, &rl);
}

// MAIL when MAIL_CHECK_ENAB: $HOME/MAIL_FILE, else MAIL_DIR (default /var/spool/mail)/user.
static void mail_env(void) {
  if (!def_yes("MAIL_CHECK_ENAB") || !g_pw.found) return;
  const char *file = def("MAIL_FILE"), *dir = def("MAIL_DIR");
  g_mail[0] = '\0';
  if (file != nullptr) { enr_strlcat(g_mail, g_pw.home, sizeof g_mail); enr_strlcat(g_mail, "/", sizeof g_mail); enr_strlcat(g_mail, file, sizeof g_mail); }
  else { enr_strlcat(g_mail, dir != nullptr ? dir : "/var/spool/mail", sizeof g_mail); enr_strlcat(g_mail, "/", sizeof g_mail); enr_strlcat(g_mail, g_pw.name, sizeof g_mail); }
  env_default("MAIL", g_mail);
}

// HUSHLOGIN_FILE: relative, a file in $HOME whose presence hushes; absolute, a list of user names and shells.
static bool hushed(void) {
  const char *hf = def("HUSHLOGIN_FILE");
  if (hf == nullptr || hf[0] == '\0') return false;
  if (hf[0] != '/') {
    const char *home = env_get("HOME");
    g_path[0] = '\0';
    enr_strlcat(g_path, home != nullptr ? home : "", sizeof g_path); enr_strlcat(g_path, "/", sizeof g_path); enr_strlcat(g_path, hf, sizeof g_path);
    return access(g_path, F_OK) == 0;
  }
  ssize_t n = slurp_lines(hf, g_aux, sizeof g_aux);
  FOR_LINES(g_aux, n, l) if (g_pw.found && (strcmp(l, g_pw.name) == 0 || strcmp(l, g_pw.shell) == 0)) return true;
  return false;
}

// The message of the day: each file of MOTD_FILE (colon-separated, default /etc/motd), unless hushed.
static void print_motd(void) {
  if (hushed()) return;
  const char *list = def("MOTD_FILE");
  if (list == nullptr) list = "/etc/motd";
  for (const char *p = list; *p != '\0';) {
    size_t n = 0;
    while (p[n] != '\0' && p[n] != ':') n++;
    if (n > 0 && n < sizeof g_path) { memcpy(g_path, p, n); g_path[n] = '\0'; print_file(g_path); }
    p += n;
    if (*p == ':') p++;
  }
}

// Returns the FAKE_SHELL value, if any.
static const char *login_emulate(int fd) {
  ssize_t dl = g_dl = slurp_lines("/etc/login.defs", g_defs, sizeof g_defs);
  unsigned long euid = geteuid();
  unsigned long muid = outer_uid(euid);
  const char *nologin = dl > 0 ? defs_get(dl, "NOLOGINS_FILE") : nullptr;
  if (nologin == nullptr) nologin = "/etc/nologin";
  if (euid != 0 && access(nologin, F_OK) == 0) { print_file(nologin); _exit(0); }

  env_default("TERM", "dumb");
  ssize_t pl = slurp_lines("/etc/passwd", g_passwd, sizeof g_passwd);
  if (pl > 0 && passwd_find(pl, euid, &g_pw) == 0) {
    env_default("HOME", g_pw.home);
    env_default("SHELL", g_pw.shell);
    env_default("USER", g_pw.name);
  }
  if (pl > 0 && passwd_find(pl, muid, &g_mpw) == 0) env_default("LOGNAME", g_mpw.name);
  const char *path = dl > 0 ? defs_get(dl, euid == 0 ? "ENV_SUPATH" : "ENV_PATH") : nullptr;
  if (path != nullptr && strncmp(path, "PATH=", 5) == 0) path += 5;
  if (path == nullptr) path = euid == 0 ? "/bin:/usr/bin:/sbin:/usr/sbin" : "/usr/local/bin:/bin:/usr/bin";
  env_default("PATH", path);
  const char *tz = dl > 0 ? defs_get(dl, "ENV_TZ") : nullptr;
  if (tz != nullptr && strncmp(tz, "TZ=", 3) == 0) env_default("TZ", tz + 3);
  mail_env();
  locale_env();
  login_umask();
  login_ulimit();
  const char *h = env_get("HOME");
  if (h != nullptr && chdir(h) < 0) {
    const char *dh = dl > 0 ? defs_get(dl, "DEFAULT_HOME") : nullptr;
    if (dh == nullptr || strcmp(dh, "yes") != 0) enr_fail(fd, ENR_STEP_CHDIR, errno, h);
    if (chdir("/") < 0) enr_fail(fd, ENR_STEP_CHDIR, errno, "/");
  }
  return dl > 0 ? defs_get(dl, "FAKE_SHELL") : nullptr;
}

void enr_exec_container(const struct enr_exec_args *a) {
  const int fd = a->report_fd;
  const bool login = (a->flags & ENR_F_LOGIN) != 0;
  struct enr_reader r = { a->buf, a->buf + a->len };
  struct enr_rec rec;
  const char *cmd[ENR_MAX_ARGS];
  size_t ncmd = 0;
  int rc;
  g_nenv = 0;
  while ((rc = enr_next(&r, &rec)) > 0) {
    const char *s = (rec.tag == ENR_T_ENV || rec.tag == ENR_T_ARG) ? enr_str(&rec) : nullptr;
    if (rec.tag == ENR_T_ENV && s != nullptr && g_nenv < ENR_MAX_ENV) g_envp[g_nenv++] = s;
    if (rec.tag == ENR_T_ARG && s != nullptr && ncmd < ENR_MAX_ARGS) cmd[ncmd++] = s;
  }
  if (rc < 0) enr_fail(fd, ENR_STEP_PROTOCOL, EINVAL, "exec");

  // Privileges (enroot-switchroot): keep capabilities only for uid 0 inside; always no_new_privs.
  if (geteuid() != 0 && (rc = enr_caps_drop_all(a->last_cap)) < 0) enr_fail(fd, ENR_STEP_CAPS, -rc, nullptr);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) enr_fail(fd, ENR_STEP_NNP, errno, nullptr);
  if ((a->flags & ENR_F_SECCOMP) && (rc = enr_seccomp_install()) < 0) enr_fail(fd, ENR_STEP_SECCOMP, -rc, nullptr);

  const char *fake = login ? login_emulate(fd) : nullptr;
  g_envp[g_nenv] = nullptr;

  const char *shell = "/bin/sh";
  const char *sh_env = env_get("SHELL");
  if (executable(fake)) shell = fake;
  else if (executable(sh_env)) shell = sh_env;
  const char *base = strrchr(shell, '/');
  base = base == nullptr ? shell : base + 1;
  g_argv0[0] = '\0';
  if (login) enr_strlcat(g_argv0, "-", sizeof g_argv0);
  enr_strlcat(g_argv0, base, sizeof g_argv0);

  const char *rcpath = nullptr;
  if (a->rc_fd >= 0) {
    char num[16];
    enr_utoa((unsigned long)a->rc_fd, num, sizeof num);
    enr_strlcpy(g_rcpath, "/proc/self/fd/", sizeof g_rcpath);
    enr_strlcat(g_rcpath, num, sizeof g_rcpath);
    rcpath = g_rcpath;
  } else if (access("/etc/rc", F_OK) == 0) {
    rcpath = "/etc/rc";
  }

  size_t n = 0;
  g_argv[n++] = g_argv0;
  if (rcpath != nullptr) {
    g_argv[n++] = rcpath;                      // the rc runs as a script with the command as "$@"
    for (size_t i = 0; i < ncmd; i++) g_argv[n++] = cmd[i];
  } else if (ncmd > 0) {
    if (strchr(cmd[0], ' ') != nullptr) {      // a shell string
      g_argv[n++] = "-c"; g_argv[n++] = cmd[0]; g_argv[n++] = g_argv0;
      for (size_t i = 1; i < ncmd; i++) g_argv[n++] = cmd[i];
    } else if (access(cmd[0], F_OK) < 0 || access(cmd[0], R_OK | X_OK) == 0) {
      g_argv[n++] = "-c"; g_argv[n++] = "exec \"$@\""; g_argv[n++] = g_argv0;
      for (size_t i = 0; i < ncmd; i++) g_argv[n++] = cmd[i];
    } else {                                   // exists but is not executable: a script
      for (size_t i = 0; i < ncmd; i++) g_argv[n++] = cmd[i];
    }
  } else if (login) {
    print_motd();
  }
  g_argv[n] = nullptr;
  execve(shell, const_cast<char *const *>(g_argv), const_cast<char *const *>(g_envp));
  enr_fail(fd, ENR_STEP_EXEC, errno, shell);
}
