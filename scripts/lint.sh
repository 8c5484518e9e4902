#!/bin/sh
# lint.sh - the tree is clang-formatted and cppcheck-clean. Exits non-zero
# on any finding. (ctuuninitvar is off: it flags every out-parameter that a
# callee fills, e.g. `bs_usage u; get(&u);`.)
set -eu
cd "$(dirname "$0")/.."

files=$(git ls-files '*.c' '*.h')
[ -n "$files" ] || exit 0
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
# shellcheck disable=SC2086
cppcheck --quiet --error-exitcode=1 --std=c11 --inline-suppr \
	--enable=warning,performance,portability \
	--suppress=missingIncludeSystem --suppress=ctuuninitvar \
	--library=scripts/criterion.cfg $files
