// Failure reporting across the fork boundary. Between fork and exec the child writes one fixed-size
// record {type, step, errno, path} on a close-on-exec pipe (atomic: smaller than PIPE_BUF); text is
// only made on the Node side (MakeStepError), never in the child.
#pragma once
#include <stddef.h>
#include <stdint.h>

enum enr_step {
  ENR_STEP_NONE = 0,
  ENR_STEP_FORK,
  ENR_STEP_USERNS,
  ENR_STEP_SETGROUPS,
  ENR_STEP_UIDMAP,
  ENR_STEP_GIDMAP,
  ENR_STEP_UNSHARE,
  ENR_STEP_PROPAGATION_ROOT,
  ENR_STEP_TMPFS,
  ENR_STEP_ROOTFS,
  ENR_STEP_SQUASHFUSE,
  ENR_STEP_FUSE_WAIT,
  ENR_STEP_OVERLAY,
  ENR_STEP_RESOLVE,
  ENR_STEP_MKDIR,
  ENR_STEP_MKFILE,
  ENR_STEP_MOUNT,
  ENR_STEP_UMOUNT,
  ENR_STEP_PROPAGATION,
  ENR_STEP_REMOUNT_RO,
  ENR_STEP_PROTOCOL,
  ENR_STEP_RC,
  ENR_STEP_SWITCHROOT,
  ENR_STEP_CAPS,
  ENR_STEP_NNP,
  ENR_STEP_SECCOMP,
  ENR_STEP_LOOPBACK,
  ENR_STEP_CHDIR,
  ENR_STEP_EXEC,
  ENR_STEP_OPEN_NS,
  ENR_STEP_JOIN_NS,
  ENR_STEP_WORKDIR,
  ENR_STEP_PDEATHSIG,
  ENR_STEP_COUNT
};

enum enr_msg_type : uint32_t {
  ENR_MSG_ERROR = 'E',
  ENR_MSG_WARN = 'W',
  ENR_MSG_READY = 'R',
  ENR_MSG_PID = 'P',
  ENR_MSG_ACK = 'A',   // a ENR_T_BATCH control message was applied
};

#define ENR_MSG_PATH_MAX 2048
struct enr_msg {
  uint32_t type;
  int32_t step;
  int32_t err;
  int32_t value;
  char path[ENR_MSG_PATH_MAX];
};

// Async-signal-safe helpers for the forked child.
size_t enr_strlen(const char *s);
// Appends src to dst (capacity cap, always NUL-terminated); returns 0 or -1 when truncated.
int enr_strlcat(char *dst, const char *src, size_t cap);
int enr_strlcpy(char *dst, const char *src, size_t cap);
void enr_utoa(unsigned long v, char *out, size_t cap);
int enr_write_all(int fd, const void *buf, size_t len);
// Send a record; path may be NULL. errno is preserved.
void enr_send(int fd, uint32_t type, int step, int err, int value, const char *path);
void enr_send2(int fd, uint32_t type, int step, int err, const char *a, const char *sep, const char *b);
// Report and _exit(1).
[[noreturn]] void enr_fail(int fd, int step, int err, const char *path);

const char *enr_step_text(int step);

#include <napi.h>
// Node side: an Error like Node's fs errors (code, errno, syscall, path, step) from a child record.
Napi::Object enr_make_error(Napi::Env env, int step, int err, const char *path);
// Throw it; returns env.Null() for the caller to return.
Napi::Value enr_throw(Napi::Env env, int step, int err, const char *path);
Napi::Value MakeError(const Napi::CallbackInfo &info);
