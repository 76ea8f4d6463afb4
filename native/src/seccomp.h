// The fake-root filter (spec §7): chown family, set*id and setgroups succeed without effect;
// setfsuid/setfsgid too, except the -1 query form. Other architectures than the build's: allowed.
#pragma once
// 0 or -errno. Tries SECCOMP_FILTER_FLAG_SPEC_ALLOW first, then no flag on EINVAL.
int enr_seccomp_install(void);
