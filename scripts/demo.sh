#!/usr/bin/env bash
# The README's first command. On a fresh Debian 12 machine, as root:
#   bash scripts/demo.sh         install + build (scripts/setup.sh), start a loopback registry on 127.0.0.1:5000
#                                with a busybox image and a 3-node Slurm cluster with spank_enroot.so, run
#                                `srun -N3 --container-image=127.0.0.1:5000#busybox hostname` as the user
#                                enroot-test, and leave registry and cluster running for you to use.
#   bash scripts/demo.sh stop    stop them.
#   bash scripts/demo.sh status  list the running demo daemons.
# Idempotent: a second run stops what the previous one left and starts it again (seconds).
# State, logs and registry storage: /var/tmp/enroot-demo. The daemons are in scripts/demo.ts.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then echo "demo: run as root (it installs packages and starts daemons)" >&2; exit 1; fi

demo_js=.build/scripts/demo.js
# tap and other callers may inject loaders; the demo must run as a person would run it
unset NODE_OPTIONS

case "${1:-run}" in
  stop|status|usage)
    # stop must work even before anything was built (nothing to stop then)
    if [ ! -f "$demo_js" ]; then echo "demo: nothing built yet, nothing to stop"; exit 0; fi
    exec node "$demo_js" "$1" ;;
  run) ;;
  *) echo "usage: bash scripts/demo.sh [stop|status]" >&2; exit 2 ;;
esac

bash scripts/setup.sh

# The demo's own TypeScript (scripts/demo*.ts and the test helpers it reuses) compiles with the tools
# project into .build/. tsc emits despite type errors elsewhere in the tree, so its exit status is not the
# criterion: the output is. Skipped when nothing it reads changed since the last build (second run: seconds).
stamp=.build/.demo-built
if [ ! -f "$stamp" ] || [ ! -f "$demo_js" ] || [ -n "$(find launcher/src test/helpers scripts bench tsconfig.json tsconfig.tools.json -name '*.ts' -newer "$stamp" -o -name 'tsconfig*.json' -newer "$stamp" 2>/dev/null | head -1)" ]; then
  echo "demo: compiling scripts (npx tsc -p tsconfig.tools.json)"
  mkdir -p .build
  npx tsc -p tsconfig.tools.json >.build/tsc.log 2>&1 || echo "demo: tsc reported type errors (see .build/tsc.log); using what it emitted"
  [ -f "$demo_js" ] || { cat .build/tsc.log >&2; echo "demo: $demo_js was not produced" >&2; exit 1; }
  touch "$stamp"
fi

node "$demo_js" start
node "$demo_js" check
node "$demo_js" usage
