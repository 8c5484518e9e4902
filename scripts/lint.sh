#!/bin/sh
# lint.sh - the tree is clang-formatted and cppcheck-clean. Exits non-zero
# on any finding.
set -eu
cd "$(dirname "$0")/.."

files=$(git ls-files '*.c' '*.h')
[ -n "$files" ] || exit 0
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
# shellcheck disable=SC2086
cppcheck --quiet --error-exitcode=1 --std=c11 --inline-suppr \
	--enable=warning,performance,portability \
	--suppress=missingIncludeSystem $files
