// Registers the native operations; each family lives in its own source pair.
#include <napi.h>
#include "errors.h"
#include "join.h"
#include "spawn.h"
#include "terminal.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("startContainer", Napi::Function::New(env, StartContainer));
  exports.Set("startLower", Napi::Function::New(env, StartLower));
  exports.Set("waitChild", Napi::Function::New(env, WaitChild));
  exports.Set("spawnJoined", Napi::Function::New(env, SpawnJoined));
  exports.Set("makeError", Napi::Function::New(env, MakeError));
  exports.Set("isTerminal", Napi::Function::New(env, IsTerminal));
  exports.Set("abiVersion", Napi::Number::New(env, 4));
  return exports;
}

NODE_API_MODULE(enroot_native, Init)
