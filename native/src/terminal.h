// isatty(3) for the launcher: Node's own answer (process.stdin.isTTY) creates the stdin stream, and with
// it the net, stream and tty modules, a few milliseconds of every start for one ioctl.
#pragma once
#include <napi.h>

// isatty(fd) → boolean
Napi::Value IsTerminal(const Napi::CallbackInfo& info);
