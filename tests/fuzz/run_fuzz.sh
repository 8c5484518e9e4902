#!/bin/sh
# run_fuzz.sh - one bounded libFuzzer run, for the meson 'fuzz' suite.
#
# usage: run_fuzz.sh FUZZER SEED_CORPUS ARTIFACT_DIR SECONDS
#
# The fuzzer works on a fresh temporary copy of SEED_CORPUS (removed at the
# end), so the committed corpus is never modified and what a run finds is not
# committed by accident. A crash, leak or timeout input is written to
# ARTIFACT_DIR and the run fails; add it to SEED_CORPUS once fixed.
set -eu

if [ $# -ne 4 ]; then
	echo "usage: $0 FUZZER SEED_CORPUS ARTIFACT_DIR SECONDS" >&2
	exit 2
fi
fuzzer=$1 seeds=$2 artifacts=$3 seconds=$4

work=$(mktemp -d "${TMPDIR:-/tmp}/budgetd-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cp -R "$seeds/." "$work/"
mkdir -p "$artifacts"

# libFuzzer reports a finding with exit status 77 by default, which meson
# reads as "skipped": every finding must be a plain failure.
rc=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$artifacts/" "$work" || rc=$?
[ "$rc" -ne 77 ] || rc=1
exit "$rc"
