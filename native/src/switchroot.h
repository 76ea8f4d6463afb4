// enroot-switchroot (spec §6.2): pivot into the rootfs, drop privileges as enroot does, emulate a login,
// and dispatch the command through the container's shell. Child-side only.
#pragma once
#include <stddef.h>

// pivot_root(".", ".") into rootfs, detach the old root, chroot, new cgroup namespace. 0 or -errno.
int enr_switchroot(const char *rootfs);

struct enr_exec_args {
  int report_fd;
  unsigned flags;          // ENR_F_*
  unsigned last_cap;
  const char *buf;         // phase-2 records: ENR_T_ENV, ENR_T_ARG
  size_t len;
  int rc_fd;               // memfd holding the rc script, or -1
};
// Builds the environment and argv, then execs. Never returns (reports and exits on failure).
[[noreturn]] void enr_exec_container(const struct enr_exec_args *a);
