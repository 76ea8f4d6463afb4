#include "seccomp.h"
#include <errno.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SECCOMP_FILTER_FLAG_SPEC_ALLOW
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW (1UL << 2)
#endif

#if defined(__x86_64__)
#define ENR_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ENR_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ENR_AUDIT_ARCH AUDIT_ARCH_PPC64LE
#endif

#ifdef ENR_AUDIT_ARCH
#define ENR_RET_ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define ENR_RET_ZERO BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0)
// Jump to the "return 0" statement when nr matches (k counts from the next statement).
#define ENR_MATCH(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), ENR_RET_ZERO

static struct sock_filter g_filter[] = {
  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ENR_AUDIT_ARCH, 1, 0),
  ENR_RET_ALLOW,   // 32-bit x86, x32, arm32: everything allowed, as in enroot
  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
  BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),   // x32 ABI on x86_64
  ENR_RET_ALLOW,
  ENR_MATCH(__NR_chown),
  ENR_MATCH(__NR_lchown),
#endif
  ENR_MATCH(__NR_fchown),
  ENR_MATCH(__NR_fchownat),
  ENR_MATCH(__NR_setuid),
  ENR_MATCH(__NR_setgid),
  ENR_MATCH(__NR_setreuid),
  ENR_MATCH(__NR_setregid),
  ENR_MATCH(__NR_setresuid),
  ENR_MATCH(__NR_setresgid),
  ENR_MATCH(__NR_setgroups),
  // setfsuid/setfsgid(-1) queries the current id and runs normally
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setfsuid, 1, 0),
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setfsgid, 0, 4),
  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffU, 0, 1),
  ENR_RET_ALLOW,
  ENR_RET_ZERO,
  ENR_RET_ALLOW,
};
#endif

int enr_seccomp_install(void) {
#ifdef ENR_AUDIT_ARCH
  struct sock_fprog prog = { (unsigned short)(sizeof g_filter / sizeof g_filter[0]), g_filter };
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog) == 0) return 0;
  if (errno != EINVAL) return -errno;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
  return -errno;
#else
  return 0;
#endif
}
