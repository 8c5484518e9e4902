#!/bin/sh
# run.sh - install dependencies, build, and run budgetd on its defaults:
# the database ./var/budgetd.db, gRPC on 127.0.0.1:50051. Extra arguments
# go to budgetd (see build/daemon/budgetd --help). Ctrl-C stops it cleanly.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build
exec build/daemon/budgetd "$@"
