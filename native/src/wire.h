// The plan wire format written by launcher/src/runtime/native.ts (encodePhase): records of
// [u32 tag][u32 length][payload, padded to 4]. Strings carry their NUL, so the child points into the
// buffer and never copies or allocates.
#pragma once
#include <stddef.h>
#include <stdint.h>

enum enr_tag : uint32_t {
  ENR_T_FLAGS = 1,      // u32: ENR_F_*
  ENR_T_ROOTFS_DIR = 2,
  ENR_T_ROOTFS_IMAGE = 3,
  ENR_T_MNTDIR = 4,     // host directory (runtimeDir/mnt) where the private tmpfs goes
  ENR_T_SQUASHFUSE = 5,
  ENR_T_MOUNT = 6,
  ENR_T_ENV = 7,
  ENR_T_ARG = 8,
  ENR_T_RC = 9,
  ENR_T_CAPLAST = 10,   // u32
  ENR_T_INNER_UID = 11, // u32
  ENR_T_INNER_GID = 12, // u32
  ENR_T_END = 13,
  ENR_T_BATCH = 14,     // u32, first record of a control message: mounts only, acknowledge and wait for more
  ENR_T_NOFILE = 15,    // u32: RLIMIT_NOFILE soft limit to restore before exec (0: leave it)
  ENR_T_LOWER_PID = 16, // u32: a lower holder (startLower): join its user and mount namespaces instead of
                        // making a user namespace, and use its squashfs mount instead of a squashfuse of our own
  ENR_T_LOWER_DIR = 17, // the holder's squashfs mount point (in its mount namespace, so in ours after the join)
};

enum enr_flag : uint32_t {
  ENR_F_USERNS = 1u << 0,
  ENR_F_REMAP = 1u << 1,
  ENR_F_PID = 1u << 2,
  ENR_F_NET = 1u << 3,
  ENR_F_IPC = 1u << 4,
  ENR_F_UTS = 1u << 5,
  ENR_F_WRITABLE = 1u << 6,
  ENR_F_SECCOMP = 1u << 7,
  ENR_F_LOGIN = 1u << 8,
};

struct enr_reader { const char *p; const char *end; };
struct enr_rec { uint32_t tag; uint32_t len; const char *data; };

// 1: a record, 0: end of buffer, -1: malformed.
int enr_next(struct enr_reader *r, struct enr_rec *out);
uint32_t enr_u32(const struct enr_rec *rec);
// A string record's payload, or NULL when it is not NUL-terminated.
const char *enr_str(const struct enr_rec *rec);

#define ENR_MOUNT_MAXPROP 4
struct enr_mount {
  uint32_t flags;
  uint32_t nprop;
  uint32_t prop[ENR_MOUNT_MAXPROP];
  uint32_t create;  // 0 none, 1 dir, 2 file, 3 auto
  uint32_t bits;    // 1 detach, 2 move, 4 nofail, 8 silent
  const char *source, *target, *fstype, *data, *origin;
};
enum { ENR_M_DETACH = 1, ENR_M_MOVE = 2, ENR_M_NOFAIL = 4, ENR_M_SILENT = 8 };
int enr_parse_mount(const struct enr_rec *rec, struct enr_mount *m);
