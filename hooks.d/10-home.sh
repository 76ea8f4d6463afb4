#! /bin/sh
# enroot-builtin: home
#
# Placeholder for a hook the runtime implements itself (see doc/hooks.md): while this file is in the system
# hooks.d and executable, enroot runs its built-in "home" hook in-process. Remove it or clear its executable
# bit to disable the hook; replace it with your own executable to override it.
exit 0
