#!/bin/sh
# install-deps.sh - install every Debian 12 package budgetd needs to build,
# test and run. Idempotent: does nothing when all are present. Run as root
# (or with sudo available).
set -eu

PACKAGES="
build-essential pkg-config meson ninja-build git ca-certificates
libsqlite3-dev sqlite3
libgrpc-dev grpc-proto
protobuf-compiler libprotobuf-dev protobuf-c-compiler libprotobuf-c-dev xxd
libuv1-dev
libcriterion-dev libssl-dev
libjansson-dev libinih-dev libsystemd-dev libmicrohttpd-dev
python3 python3-grpcio
scdoc openssl procps systemd
clang libclang-rt-14-dev clang-format cppcheck
"

missing=
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: run as root to install:$missing" >&2; exit 1; }
	SUDO=sudo
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y -q --no-install-recommends $missing
