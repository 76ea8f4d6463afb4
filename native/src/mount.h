// enroot-mount's semantics (spec §5.6) for one parsed MountOp, confined to a root directory, plus the
// private rootfs assembly (tmpfs, bind or squashfuse, overlay). Child-side only: raw syscalls, fixed buffers.
#pragma once
#include <stddef.h>
#include "wire.h"

// realpathat: resolve target inside root, following symlinks within it (absolute ones re-anchored);
// ".." above the root is EXDEV; missing components are allowed. out = root + resolved. 0 or -errno.
int enr_resolve(const char *root, const char *target, char *out, size_t cap);

// Apply one op; fatal errors report and exit, nofail ones send a warning unless silent.
void enr_mount_apply(int report_fd, const char *root, const struct enr_mount *m, int in_userns);
// Apply every ENR_T_MOUNT record of a buffer.
void enr_mount_all(int report_fd, const char *root, const char *buf, size_t len, int in_userns);
// Remount a bind/overlay read-only, keeping locked flags. 0 or -errno.
int enr_remount_ro(const char *path, int in_userns);
// nosuid/nodev/noexec/ro/atime flags of the mount at path (statvfs): a user namespace cannot clear
// them (locked flags), so every bind remount ORs them in to avoid EPERM.
unsigned long enr_locked_flags(const char *path);
