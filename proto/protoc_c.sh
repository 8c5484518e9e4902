#!/bin/sh
# protoc_c.sh - generate protobuf-c code for one .proto file (meson generator).
#
# Why a wrapper: protoc-c 1.4 (Debian 12) refuses proto3 `optional` fields.
# protoc itself represents `optional T x = N;` as a one-field "synthetic"
# oneof named `_x` whose field is flagged proto3_optional. This script builds
# the file's descriptor set with protoc, clears that flag (what is left is an
# ordinary oneof, with exactly the same wire format and JSON mapping), and
# runs protoc-c on the result. In the generated C, `optional T x` of message M
# is therefore a case member plus an anonymous union:
#     M__XCase _x_case;   /* 0 (..._X__NOT_SET) or N (..._X_X) when present */
#     union { T x; };
# Files without `optional` fields are generated unchanged.
#
# usage: protoc_c.sh PROTOC PROTOC_C OUT_DIR DEPFILE INPUT PROTO_PATH...
#   OUT_DIR    protoc-c's --c_out; the outputs are written to
#              OUT_DIR/<INPUT's path inside its proto path, without .proto>.pb-c.{c,h}
#   DEPFILE    make-style dependency file written for the .pb-c.c output
#   INPUT      the .proto file on disk; it must lie inside one PROTO_PATH
#   PROTO_PATH import roots, in search order (google/protobuf/descriptor.proto
#              must be found in one of them)
set -eu

if [ $# -lt 6 ]; then
	echo "usage: $0 PROTOC PROTOC_C OUT_DIR DEPFILE INPUT PROTO_PATH..." >&2
	exit 2
fi
protoc=$1 protoc_c=$2 out=$3 depfile=$4 input=$5
shift 5

abs_dir() { (cd "$1" && pwd -P); }

input_abs=$(abs_dir "$(dirname "$input")")/$(basename "$input")
script_abs=$(abs_dir "$(dirname "$0")")/$(basename "$0")

# Turn the proto paths into --proto_path options and find INPUT's name
# relative to its proto path (the name protoc and protoc-c know it by).
name=
n=$#
for p; do
	pa=$(abs_dir "$p")
	if [ -z "$name" ]; then
		case $input_abs in "$pa"/*) name=${input_abs#"$pa"/} ;; esac
	fi
	set -- "$@" "--proto_path=$pa"
done
shift "$n"
if [ -z "$name" ]; then
	echo "$0: $input is not inside any proto path" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/protoc_c.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$protoc" "$@" --include_imports --dependency_out="$tmp/deps" \
	--descriptor_set_out="$tmp/with_optional.pb" "$input_abs"
"$protoc" "$@" --decode=google.protobuf.FileDescriptorSet google/protobuf/descriptor.proto \
	<"$tmp/with_optional.pb" >"$tmp/set.txt"
# Text format prints one field per line; comments are not included (no
# --include_source_info), so this only matches the real flag.
sed '/^ *proto3_optional: true$/d' "$tmp/set.txt" |
	"$protoc" "$@" --encode=google.protobuf.FileDescriptorSet google/protobuf/descriptor.proto \
		>"$tmp/plain.pb"
mkdir -p "$out"
"$protoc_c" --descriptor_set_in="$tmp/plain.pb" --c_out="$out" "$name"

# protoc names its descriptor set as the target; ninja wants the first output.
{
	printf '%s: %s \\\n' "$out/${name%.proto}.pb-c.c" "$script_abs"
	sed '1s/^[^:]*: *//' "$tmp/deps"
} >"$depfile"
