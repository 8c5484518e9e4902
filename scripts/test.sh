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

echo "== all tests passed"
