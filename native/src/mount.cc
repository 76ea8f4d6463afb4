#include "mount.h"
#include "errors.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define ENR_MAX_SYMLINKS 40

// Child-side scratch: static, so nothing is allocated after fork.
static char g_rest[2 * PATH_MAX];
static char g_tmp[2 * PATH_MAX];
static char g_res[PATH_MAX];
static char g_full[2 * PATH_MAX];
static char g_link[PATH_MAX];

int enr_resolve(const char *root, const char *target, char *out, size_t cap) {
  int links = 0;
  if (enr_strlcpy(g_rest, target, sizeof g_rest) < 0) return -ENAMETOOLONG;
  g_res[0] = '\0';
  const char *p = g_rest;
  for (;;) {
    while (*p == '/') p++;
    if (*p == '\0') break;
    const char *e = p;
    while (*e != '\0' && *e != '/') e++;
    size_t n = (size_t)(e - p);
    if (n == 1 && p[0] == '.') { p = e; continue; }
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      if (g_res[0] == '\0') return -EXDEV;   // never above the root
      char *slash = strrchr(g_res, '/');
      *slash = '\0';
      p = e;
      continue;
    }
    size_t rl = enr_strlen(g_res);
    if (rl + 1 + n + 1 > sizeof g_res) return -ENAMETOOLONG;
    g_res[rl] = '/';
    memcpy(g_res + rl + 1, p, n);
    g_res[rl + 1 + n] = '\0';
    g_full[0] = '\0';
    if (enr_strlcat(g_full, root, sizeof g_full) < 0 || enr_strlcat(g_full, g_res, sizeof g_full) < 0) return -ENAMETOOLONG;
    ssize_t ll = readlink(g_full, g_link, sizeof g_link - 1);
    if (ll < 0) {
      if (errno != EINVAL && errno != ENOENT && errno != ENOTDIR) return -errno;
      p = e;   // not a symlink, or missing: keep it
      continue;
    }
    if (++links > ENR_MAX_SYMLINKS) return -ELOOP;
    g_link[ll] = '\0';
    g_res[rl] = '\0';                         // drop the link itself
    if (g_link[0] == '/') g_res[0] = '\0';    // absolute: re-anchored at the root
    g_tmp[0] = '\0';
    if (enr_strlcat(g_tmp, g_link, sizeof g_tmp) < 0 || enr_strlcat(g_tmp, "/", sizeof g_tmp) < 0 ||
        enr_strlcat(g_tmp, e, sizeof g_tmp) < 0) return -ENAMETOOLONG;
    memcpy(g_rest, g_tmp, sizeof g_rest);
    p = g_rest;
  }
  out[0] = '\0';
  if (enr_strlcat(out, root, cap) < 0 || enr_strlcat(out, g_res, cap) < 0) return -ENAMETOOLONG;
  return 0;
}

// Create the missing parents (0755) of path, below root.
static int mkparents(const char *root, const char *path) {
  char buf[PATH_MAX];
  if (enr_strlcpy(buf, path, sizeof buf) < 0) return -ENAMETOOLONG;
  size_t start = enr_strlen(root);
  char *last = strrchr(buf, '/');
  if (last == nullptr || (size_t)(last - buf) <= start) return 0;
  for (char *s = buf + start + 1; s <= last; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -errno;
    *s = '/';
  }
  return 0;
}

unsigned long enr_locked_flags(const char *path) {
  struct statvfs sv;
  unsigned long f = 0;
  if (statvfs(path, &sv) < 0) return 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

int enr_remount_ro(const char *path, int in_userns) {
  unsigned long f = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;
  if (in_userns) f |= enr_locked_flags(path);
  return mount(nullptr, path, nullptr, f, nullptr) < 0 ? -errno : 0;
}

static char g_path[2 * PATH_MAX];

// One failure: fatal, or a warning (nofail) unless silent. Returns so the caller can stop this op.
static void op_error(int fd, const struct enr_mount *m, int step, int err, const char *a, const char *b) {
  if (m->bits & ENR_M_NOFAIL) {
    if (!(m->bits & ENR_M_SILENT)) enr_send2(fd, ENR_MSG_WARN, step, err, a, b != nullptr ? " at " : nullptr, b);
    return;
  }
  enr_send2(fd, ENR_MSG_ERROR, step, err, a, b != nullptr ? " at " : nullptr, b);
  _exit(1);
}

void enr_mount_apply(int fd, const char *root, const struct enr_mount *m, int in_userns) {
  int rc = enr_resolve(root, m->target, g_path, sizeof g_path);
  if (rc < 0) {
    g_tmp[0] = '\0';
    enr_strlcat(g_tmp, root, sizeof g_tmp);
    if (m->target[0] != '/') enr_strlcat(g_tmp, "/", sizeof g_tmp);
    enr_strlcat(g_tmp, m->target, sizeof g_tmp);
    return op_error(fd, m, ENR_STEP_RESOLVE, -rc, g_tmp, nullptr);
  }
  const int is_bind = (m->flags & MS_BIND) != 0;
  if (m->create != 0) {
    int kind = (int)m->create;   // 1 dir, 2 file, 3 auto
    if (kind == 3) {
      kind = 1;
      if (is_bind || (m->bits & ENR_M_MOVE)) {
        struct stat st;
        kind = stat(m->source, &st) < 0 ? 0 : (S_ISDIR(st.st_mode) ? 1 : 2);
      }
    }
    if (kind != 0) {
      if ((rc = mkparents(root, g_path)) < 0) return op_error(fd, m, ENR_STEP_MKDIR, -rc, g_path, nullptr);
      // mode 0000: how export recognises placeholders
      if (kind == 1 && mkdir(g_path, 0000) < 0 && errno != EEXIST) return op_error(fd, m, ENR_STEP_MKDIR, errno, g_path, nullptr);
      if (kind == 2) {
        int f = open(g_path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0000);
        if (f < 0 && errno != EEXIST) return op_error(fd, m, ENR_STEP_MKFILE, errno, g_path, nullptr);
        if (f >= 0) close(f);
      }
    }
  }
  if (m->bits & ENR_M_DETACH) {
    if (umount2(g_path, MNT_DETACH) < 0) op_error(fd, m, ENR_STEP_UMOUNT, errno, m->source, g_path);
    return;
  }
  const unsigned long prop_mask = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE;
  unsigned long flags = m->flags & ~prop_mask;
  const char *data = m->data[0] != '\0' ? m->data : nullptr;
  if (strcmp(m->fstype, "none") != 0 || (flags & ~MS_REC) != 0) {
    // A remount (of a bind too: `none /x none bind,remount,ro`) changes flags in place; there is no source.
    if (is_bind && !(flags & MS_REMOUNT)) {
      if (mount(m->source, g_path, nullptr, MS_BIND | (flags & MS_REC), nullptr) < 0)
        return op_error(fd, m, ENR_STEP_MOUNT, errno, m->source, g_path);
      if ((flags & ~(MS_BIND | MS_REC)) != 0 || data != nullptr) {
        unsigned long f = (flags & ~MS_REC) | MS_REMOUNT | MS_BIND;
        if (in_userns) f |= enr_locked_flags(m->source);
        if (mount(nullptr, g_path, nullptr, f, data) < 0) return op_error(fd, m, ENR_STEP_MOUNT, errno, m->source, g_path);
      }
    } else {
      unsigned long f = (flags & MS_REMOUNT) ? (flags & ~MS_REC) : flags;
      if ((f & MS_REMOUNT) && in_userns) f |= enr_locked_flags(g_path);
      const char *src = (f & MS_REMOUNT) ? nullptr : m->source;
      const char *type = strcmp(m->fstype, "none") == 0 ? nullptr : m->fstype;
      if (mount(src, g_path, type, f, data) < 0) return op_error(fd, m, ENR_STEP_MOUNT, errno, m->source, g_path);
    }
  }
  for (uint32_t i = 0; i < m->nprop; i++) {
    if (mount(nullptr, g_path, nullptr, m->prop[i], nullptr) < 0)
      return op_error(fd, m, ENR_STEP_PROPAGATION, errno, g_path, nullptr);
  }
}

void enr_mount_all(int fd, const char *root, const char *buf, size_t len, int in_userns) {
  struct enr_reader r = { buf, buf + len };
  struct enr_rec rec;
  int rc;
  while ((rc = enr_next(&r, &rec)) > 0) {
    if (rec.tag != ENR_T_MOUNT) continue;
    struct enr_mount m;
    if (enr_parse_mount(&rec, &m) < 0) enr_fail(fd, ENR_STEP_PROTOCOL, EINVAL, "mount");
    enr_mount_apply(fd, root, &m, in_userns);
  }
  if (rc < 0) enr_fail(fd, ENR_STEP_PROTOCOL, EINVAL, "plan");
}
