#!/bin/sh
# check_unit.sh - the built budgetd.service passes `systemd-analyze verify`
# and rates at most 2.0 in `systemd-analyze security --offline=yes`.
#
# usage: check_unit.sh BUILT_UNIT BUDGETD_BINARY
# The unit's ExecStart names the installed path; a copy pointing at the
# built binary is verified (the man pages are checked by the install).
set -eu
unit=$1 budgetd=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "systemd-analyze is not installed: cannot check the unit" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
sed "s|^ExecStart=.*|ExecStart=$budgetd|" "$unit" >"$tmp/budgetd.service"

out=$(systemd-analyze verify --man=no "$tmp/budgetd.service" 2>&1) || {
	echo "systemd-analyze verify failed:" >&2
	echo "$out" >&2
	exit 1
}
if [ -n "$out" ]; then
	echo "systemd-analyze verify reported:" >&2
	echo "$out" >&2
	exit 1
fi
echo "ok   systemd-analyze verify: clean"

out=$(systemd-analyze security --offline=yes --threshold=20 "$tmp/budgetd.service" 2>&1) || {
	echo "$out" >&2
	echo "systemd-analyze security: exposure above 2.0" >&2
	exit 1
}
echo "$out" | tail -n 1
echo "ok   systemd-analyze security: exposure at most 2.0"
