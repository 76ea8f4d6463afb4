#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs the whole test suite. Run as root on Debian 12.
# Tests that need user namespaces, FUSE, the registry or Slurm fail instead of skipping when
# ENROOT_TEST_MUST_WORK=1 (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx tap "$@"
