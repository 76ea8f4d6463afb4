// Joining a running setup or container (enroot-nsenter join mode, spec §6.1): hooks join the setup
// child's user and mount namespaces with full capabilities; `enroot exec` joins every namespace of PID
// that differs from ours.
#pragma once
#include <napi.h>

enum enr_ns_bit { ENR_NS_USER = 1, ENR_NS_MNT = 2, ENR_NS_PID = 4, ENR_NS_NET = 8, ENR_NS_IPC = 16, ENR_NS_UTS = 32, ENR_NS_CGROUP = 64 };

// spawnJoined({ pid, argv, env, cwd?, cwdFromTarget?, namespaces, seccomp, ambientCaps, capLast, nofile? }): number
Napi::Value SpawnJoined(const Napi::CallbackInfo &info);
