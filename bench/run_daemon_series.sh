#!/bin/sh
# run_daemon_series.sh - the daemon runs of bench/RESULTS.md, repeatable:
# bench/run_daemon_bench.sh with its defaults (64 in flight, sync full) three
# times, interleaved with one run each of --sync normal, --inflight 16 and
# --inflight 256 (order: default, normal, default, 16, default, 256).
# budgetd and loadgen are copied first, so a rebuild during the series does
# not mix versions. Each report goes to OUT/NN-NAME.md; a summary table of
# all runs (one row per mode per run) is printed at the end.
#
# usage: bench/run_daemon_series.sh [OUT]   (default /var/tmp/budgetd-daemon-series)
#        bench/run_daemon_series.sh --summarize OUT...   (tables only, over
#        the reports of one or more earlier series)
# env:   BUILD (default build), EXTRA (more run_daemon_bench.sh options)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}

# Per configuration and mode, over all runs found: median [min-max] of
# calls/s, ratio, p50/p99/p999, mean latency and in-flight / calls/s.
summarize() {
	python3 - "$@" <<'PY'
import glob, json, re, statistics, sys
rows = {}
for d in sys.argv[1:]:
    for f in sorted(glob.glob(d + "/[0-9][0-9]-*.md")):
        txt = open(f).read()
        cmd = re.search(r"^- command: `[^ ]*run_daemon_bench.sh(.*)`$", txt, re.M).group(1)
        opts = re.sub(r" --(budgetd|loadgen) \S+", "", cmd).strip() or "(defaults)"
        load = float(re.search(r"load average before: ([\d.]+)", txt).group(1))
        runs = [json.loads(l) for l in txt.splitlines() if l.startswith('{"mode"')]
        health = next((r["calls_per_s"] for r in runs if r["mode"] == "health"), None)
        for r in runs:
            r["ratio"] = r["calls_per_s"] / health if health and r["mode"] != "health" else None
            r["load"] = load
            r["little_us"] = r["inflight"] / r["calls_per_s"] * 1e6
            rows.setdefault((opts, r["mode"]), []).append(r)
def mm(rs, k, f="{:.0f}"):
    v = sorted(r[k] for r in rs if r.get(k) is not None)
    if not v:
        return "-"
    return (f + " [" + f + "–" + f + "]").format(statistics.median(v), v[0], v[-1])
print("| options | mode | n | calls/s | ratio ÷ health | p50 µs | p99 µs | p999 µs | mean µs | in-flight ÷ calls/s µs | load1 before |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (opts, mode), rs in rows.items():
    print(f"| {opts} | {mode} | {len(rs)} | {mm(rs, 'calls_per_s')} | {mm(rs, 'ratio', '{:.2f}')} | "
          f"{mm(rs, 'p50_us')} | {mm(rs, 'p99_us')} | {mm(rs, 'p999_us')} | {mm(rs, 'mean_us')} | "
          f"{mm(rs, 'little_us')} | {mm(rs, 'load', '{:.2f}')} |")
PY
}
if [ "${1:-}" = --summarize ]; then
	shift
	summarize "$@"
	exit 0
fi
OUT=${1:-/var/tmp/budgetd-daemon-series}
mkdir -p "$OUT/bin"
cp "$BUILD/daemon/budgetd" "$BUILD/bench/loadgen" "$OUT/bin/"
echo "# budgetd $(sha1sum "$OUT/bin/budgetd" | cut -c1-12), loadgen $(sha1sum "$OUT/bin/loadgen" | cut -c1-12), tree $(git -C "$ROOT" describe --always --dirty)"

n=0
rc=0
for spec in default "normal --sync normal" default "inflight16 --inflight 16" default "inflight256 --inflight 256"; do
	n=$((n + 1))
	name=${spec%% *}
	opts=
	[ "$name" = "$spec" ] || opts=${spec#* }
	f=$OUT/$(printf %02d "$n")-$name.md
	echo "# $(date -u +%H:%M:%S) run $n: run_daemon_bench.sh $opts ${EXTRA:-}; uptime:$(uptime)"
	# shellcheck disable=SC2086 # opts are words on purpose
	"$ROOT/bench/run_daemon_bench.sh" --budgetd "$OUT/bin/budgetd" --loadgen "$OUT/bin/loadgen" \
		$opts ${EXTRA:-} >"$f" 2>"$f.err" || { rc=1; echo "run $n failed, see $f.err"; }
done

echo
echo "| run | options | load before | mode | calls/s | pairs/s | p50 µs | p99 µs | p999 µs | max µs | ratio | budgetd CPU % | client CPU % | errors | verify |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for f in "$OUT"/[0-9][0-9]-*.md; do
	run=$(basename "$f" .md)
	opts=$(sed -n 's/^- command: `[^ ]*run_daemon_bench.sh\(.*\)`$/\1/p' "$f" |
		sed 's/ --budgetd [^ ]*//; s/ --loadgen [^ ]*//')
	load=$(sed -n 's/.*load average before: \([^ ,]*\).*/\1/p' "$f")
	awk -F'|' -v run="$run" -v opts="${opts:- (defaults)}" -v load="$load" '
		$2 ~ /^ (health|pairs|pairs-hot) $/ {
			gsub(/ /, "", $2)
			printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				run, opts, load, $2, $3, $4, $5, $6, $7, $8, $9, $11, $10, $13, $14)
		}' "$f"
done
echo
summarize "$OUT"
exit $rc
