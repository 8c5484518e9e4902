#!/bin/sh
# run.sh - install dependencies, build, and run a short store demo (the
# daemon replaces this once it exists).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build
mkdir -p var
exec build/bench/store_bench var/demo.db 16 100 2
