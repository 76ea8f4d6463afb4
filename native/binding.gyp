{
  "targets": [{
    "target_name": "enroot_native",
    "sources": [
      "src/addon.cc", "src/errors.cc", "src/wire.cc", "src/userns.cc", "src/mount.cc",
      "src/switchroot.cc", "src/seccomp.cc", "src/spawn.cc", "src/join.cc", "src/terminal.cc", "src/nofile.cc"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE", "_FORTIFY_SOURCE=2"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags": ["-Wall", "-Wextra", "-Werror", "-O2", "-fstack-protector-strong", "-fno-strict-aliasing"],
    "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2", "-fstack-protector-strong", "-fno-exceptions"],
    "ldflags": ["-Wl,-z,relro", "-Wl,-z,now", "-Wl,-z,noexecstack"]
  }]
}
