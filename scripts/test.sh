#!/bin/sh
# test.sh - install dependencies, build, lint, and run every test: once in a
# normal build and once under AddressSanitizer + UndefinedBehaviorSanitizer.
set -eu
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# meson setup, or reconfigure an existing build dir with the same options.
setup() {
	dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@"
	fi
}

echo "== lint: clang-format and cppcheck"
scripts/lint.sh

echo "== build and test (debugoptimized)"
setup build
ninja -C build
meson test -C build --print-errorlogs

echo "== build and test under ASan + UBSan"
setup build-san -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
	-Dc_args=-fno-sanitize-recover=all
ninja -C build-san
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	meson test -C build-san --print-errorlogs --timeout-multiplier 3

# clang with coverage on everything (-fsanitize=fuzzer-no-link), so the
# fuzzers see the store's and the daemon's branches; 60 s per target on a
# temporary copy of tests/fuzz/corpus/<target> (see tests/fuzz/meson.build).
echo "== fuzz (libFuzzer, ASan + UBSan, 60 s per target)"
CC=clang setup build-fuzz -Dfuzz=enabled -Dtests=enabled -Db_lundef=false \
	-Db_sanitize=address,undefined -Dc_args='-fsanitize=fuzzer-no-link -fno-sanitize-recover=all'
ninja -C build-fuzz
meson test -C build-fuzz --suite fuzz --print-errorlogs

echo "== all tests passed"
