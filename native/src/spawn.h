// Starting a container: the forked child's two phases (spec §5.1 as a checklist: namespaces, private
// rootfs, early mounts | hooks run by Node | hook and late mounts, read-only remount, switch root, exec),
// the process helpers shared with join, and waiting for children without blocking the event loop.
#pragma once
#include <napi.h>
#include <sys/types.h>

// First thing in every forked child: default signal dispositions, empty mask, die with the parent.
// Returns -1 when the parent is already gone.
int enr_child_init(pid_t expected_parent);
// fork() with every signal blocked across it (the child resets them in enr_child_init); the parent's
// mask is restored and fork's errno kept.
pid_t enr_fork_blocked(void);
// Clear close-on-exec and O_NONBLOCK on fds 0-2 just before execve.
void enr_inherit_stdio(void);
// Forward SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to child and mirror its exit status or
// terminating signal (enroot-nsenter after a pid namespace fork). Never returns.
[[noreturn]] void enr_mirror_child(pid_t child);

Napi::Value StartContainer(const Napi::CallbackInfo &info);
Napi::Value StartLower(const Napi::CallbackInfo &info);
Napi::Value WaitChild(const Napi::CallbackInfo &info);
