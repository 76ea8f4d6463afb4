// Async-signal-safe record writing for the child, and the step texts used on the Node side.
#include "errors.h"
#include <errno.h>
#include <unistd.h>
#include <string.h>

size_t enr_strlen(const char *s) { size_t n = 0; while (s[n] != '\0') n++; return n; }

int enr_strlcpy(char *dst, const char *src, size_t cap) {
  if (cap == 0) return -1;
  dst[0] = '\0';
  return enr_strlcat(dst, src, cap);
}

int enr_strlcat(char *dst, const char *src, size_t cap) {
  size_t n = enr_strlen(dst);
  size_t i = 0;
  while (src[i] != '\0' && n + 1 < cap) dst[n++] = src[i++];
  dst[n] = '\0';
  return src[i] == '\0' ? 0 : -1;
}

void enr_utoa(unsigned long v, char *out, size_t cap) {
  char tmp[24];
  size_t n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v != 0 && n < sizeof tmp);
  size_t i = 0;
  while (n > 0 && i + 1 < cap) out[i++] = tmp[--n];
  out[i] = '\0';
}

int enr_write_all(int fd, const void *buf, size_t len) {
  const char *p = static_cast<const char *>(buf);
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w; len -= (size_t)w;
  }
  return 0;
}

void enr_send2(int fd, uint32_t type, int step, int err, const char *a, const char *sep, const char *b) {
  int saved = errno;
  struct enr_msg m;
  memset(&m, 0, sizeof m);
  m.type = type; m.step = step; m.err = err;
  if (a != nullptr) enr_strlcat(m.path, a, sizeof m.path);
  if (sep != nullptr) enr_strlcat(m.path, sep, sizeof m.path);
  if (b != nullptr) enr_strlcat(m.path, b, sizeof m.path);
  if (fd >= 0) (void)enr_write_all(fd, &m, sizeof m);
  errno = saved;
}

void enr_send(int fd, uint32_t type, int step, int err, int value, const char *path) {
  int saved = errno;
  struct enr_msg m;
  memset(&m, 0, sizeof m);
  m.type = type; m.step = step; m.err = err; m.value = value;
  if (path != nullptr) enr_strlcpy(m.path, path, sizeof m.path);
  if (fd >= 0) (void)enr_write_all(fd, &m, sizeof m);
  errno = saved;
}

void enr_fail(int fd, int step, int err, const char *path) {
  enr_send(fd, ENR_MSG_ERROR, step, err, 0, path);
  _exit(1);
}

// enroot's wording where users script against it (enroot-mount, enroot-switchroot, enroot-nsenter).
const char *enr_step_text(int step) {
  switch (step) {
    case ENR_STEP_FORK: return "failed to fork";
    case ENR_STEP_USERNS: return "failed to create user namespace";
    case ENR_STEP_SETGROUPS: return "failed to write setgroups";
    case ENR_STEP_UIDMAP: return "failed to write uid map";
    case ENR_STEP_GIDMAP: return "failed to write gid map";
    case ENR_STEP_UNSHARE: return "failed to create namespace";
    case ENR_STEP_PROPAGATION_ROOT: return "failed to set mount propagation";
    case ENR_STEP_TMPFS: return "failed to mount runtime tmpfs";
    case ENR_STEP_ROOTFS: return "failed to mount rootfs";
    case ENR_STEP_SQUASHFUSE: return "failed to start squashfuse";
    case ENR_STEP_FUSE_WAIT: return "Failed to mount";
    case ENR_STEP_OVERLAY: return "failed to mount overlay";
    case ENR_STEP_RESOLVE: return "failed to resolve path";
    case ENR_STEP_MKDIR: return "failed to create directory";
    case ENR_STEP_MKFILE: return "failed to create file";
    case ENR_STEP_MOUNT: return "failed to mount";
    case ENR_STEP_UMOUNT: return "failed to unmount";
    case ENR_STEP_PROPAGATION: return "failed to set mount propagation";
    case ENR_STEP_REMOUNT_RO: return "failed to remount rootfs read-only";
    case ENR_STEP_PROTOCOL: return "malformed container plan";
    case ENR_STEP_RC: return "failed to load rc";
    case ENR_STEP_SWITCHROOT: return "failed to switch root";
    case ENR_STEP_CAPS: return "failed to drop capabilities";
    case ENR_STEP_NNP: return "failed to set no_new_privs";
    case ENR_STEP_SECCOMP: return "failed to install seccomp filter";
    case ENR_STEP_LOOPBACK: return "failed to bring up loopback";
    case ENR_STEP_CHDIR: return "failed to change directory";
    case ENR_STEP_EXEC: return "failed to execute";
    case ENR_STEP_OPEN_NS: return "failed to open namespace";
    case ENR_STEP_JOIN_NS: return "failed to join namespace";
    case ENR_STEP_WORKDIR: return "failed to open working directory";
    case ENR_STEP_PDEATHSIG: return "parent exited during setup";
    default: return "native operation failed";
  }
}

Napi::Object enr_make_error(Napi::Env env, int step, int err, const char *path) {
  char msg[ENR_MSG_PATH_MAX + 256];
  msg[0] = '\0';
  enr_strlcat(msg, enr_step_text(step), sizeof msg);
  if (path != nullptr && path[0] != '\0') { enr_strlcat(msg, ": ", sizeof msg); enr_strlcat(msg, path, sizeof msg); }
  if (err != 0) { enr_strlcat(msg, ": ", sizeof msg); enr_strlcat(msg, strerror(err), sizeof msg); }
  Napi::Object e = Napi::Error::New(env, msg).Value();
  const char *name = err != 0 ? strerrorname_np(err) : nullptr;
  e.Set("code", Napi::String::New(env, name != nullptr ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, enr_step_text(step)));
  e.Set("step", Napi::Number::New(env, step));
  if (path != nullptr && path[0] != '\0') e.Set("path", Napi::String::New(env, path));
  return e;
}

Napi::Value enr_throw(Napi::Env env, int step, int err, const char *path) {
  Napi::Error(env, enr_make_error(env, step, err, path)).ThrowAsJavaScriptException();
  return env.Null();
}

// makeError(step, errno, path): the Error for a record read from a child's status pipe.
Napi::Value MakeError(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int step = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  int err = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  std::string path = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : std::string();
  return enr_make_error(env, step, err, path.c_str());
}
