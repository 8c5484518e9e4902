#!/usr/bin/env python3
"""run_peers.py - budgetd's store benchmark beside the peers of ../shared/peers,
in one session, repetitions interleaved (rep loop outside, configurations
inside), so that both sides see the same machine at the same moments.

Per repetition:
  1. fsync_bench (peers' fsync_bench.c): 4 KiB overwrite / append + fdatasync
  2. for batch 1, 16, 128 x ncaps 1000, 1: store_bench (sync full), then the
     peers' budget_sqlite.c (WAL + synchronous=FULL) with the same batch and
     ncaps; then store_bench batch 128 with sync normal (ncaps 1000, 1)
  3. PostgreSQL: peers' pg/pg_start.sh, pg/pg_bench.py (1 repetition,
     synchronous_commit=on, 8 and 32 clients, spread and contended), pg_stop.sh
  4. Redis: peers' redis/redis_bench.py (1 repetition, appendfsync always and
     everysec; it starts and wipes its own server per policy)

Every run goes through the peers' harness.py, which appends one JSON line per
run (figure, load1 before/after, machine CPU busy %, disk flushes/s) to
$PEERS_RAW. At the end (or with --summarize RAW) it prints markdown tables:
median [min-max] over repetitions and the median load1.

usage: bench/run_peers.py [REPS [SECONDS [PG_SECONDS [REDIS_SECONDS]]]]
       bench/run_peers.py --summarize RAW.jsonl...   (tables over one or more runs)
env:   PEERS_DIR   peers directory (default: ../shared/peers from the repo root)
       PEERS_DATA  scratch dir on the disk to measure (default /tmp/peersdata);
                   PostgreSQL and Redis live under it and are wiped at the end
       PEERS_RAW   JSON lines output (default /var/tmp/budgetd-peers/raw.jsonl)
       STORE_BENCH store_bench binary (default build/bench/store_bench; it is
                   copied to $PEERS_DATA/bin first so a rebuild mid-run does
                   not mix versions)
       PARTS       subset of "fsync store pg redis" (default all)
Each single run is bounded by the harness (115 s); needs root (PostgreSQL
runs as the postgres user), gcc, libsqlite3-dev, libhiredis-dev, postgresql-15,
redis-server, redis-tools.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summarize(paths):
    groups, order = {}, []
    for i, path in enumerate(paths):
        for line in open(path):
            r = json.loads(line)
            r["file"] = i
            key = (r["section"], r["config"])
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(r)

    def fmt(x):
        if x is None:
            return "-"
        if x < 100:
            return f"{x:.3g}"
        return f"{round(x):,}"

    def med(rs, k):
        v = [r[k] for r in rs if r.get("ok") and r.get(k) is not None]
        return statistics.median(v) if v else None

    lat = {
        "fsync": [("p50", "p50 µs"), ("p99", "p99 µs")],
        "store-pairs": [("p50", "commit p50 µs"), ("p99", "commit p99 µs"), ("max", "commit max µs")],
        "sqlite-pairs": [("p50", "txn p50 µs"), ("p99", "txn p99 µs"), ("max", "txn max µs")],
        "pg-pairs": [("lat_p50_ms", "pair p50 ms"), ("lat_p99_ms", "pair p99 ms")],
        "redis-pairs": [("lat_p50_ms", "pair p50 ms"), ("lat_p99_ms", "pair p99 ms")],
        "redis-benchmark-authorize": [("lat_p50_ms", "call p50 ms"), ("lat_p99_ms", "call p99 ms")],
    }
    sections = []
    for s, _ in order:
        if s not in sections:
            sections.append(s)
    for sec in sections:
        cols = lat.get(sec, [])
        print(f"\n#### {sec}\n")
        hdr = ["config", "n", "median [min–max]"] + \
              (["median per input"] if len(paths) > 1 else []) + [h for _, h in cols] + \
              ["load1 med [min–max]", "CPU busy % (med)", "disk flushes/s (med)", "failed"]
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for key in order:
            if key[0] != sec:
                continue
            rs = groups[key]
            vals = sorted(r["value"] for r in rs if r.get("ok"))
            loads = sorted(r["load1_before"] for r in rs)
            bad = sum(1 for r in rs if not r.get("ok") or r.get("check_failed"))
            fig = (f"{fmt(statistics.median(vals))} [{fmt(vals[0])}–{fmt(vals[-1])}]"
                   if vals else "-")
            row = [key[1], str(len(vals)), fig]
            if len(paths) > 1:
                row.append(" / ".join(fmt(med([r for r in rs if r["file"] == i], "value"))
                                      for i in range(len(paths))))
            row += [fmt(med(rs, k)) for k, _ in cols]
            row += [f"{statistics.median(loads):.2f} [{loads[0]:.2f}–{loads[-1]:.2f}]",
                    fmt(med(rs, "machine_cpu_busy_pct")), fmt(med(rs, "disk_flushes_per_s")),
                    str(bad)]
            print("| " + " | ".join(row) + " |")

    # store_bench and budget_sqlite ran back to back (seconds apart) with the
    # same batch and ncaps: their ratio per pair of runs cancels much of the
    # machine's drift.
    print("\n#### store ÷ SQLite C (paired runs, same batch and ncaps, seconds apart)\n")
    print("| config | n | store ÷ sqlite median [min–max] |")
    print("|---|---|---|")
    for sec, cfg in order:
        if sec != "store-pairs" or not cfg.startswith("full"):
            continue
        sq = {(r["file"], r["rep"]): r for r in groups.get(("sqlite-pairs", cfg), []) if r.get("ok")}
        q = sorted(r["value"] / sq[(r["file"], r["rep"])]["value"]
                   for r in groups[(sec, cfg)] if r.get("ok") and (r["file"], r["rep"]) in sq)
        if q:
            print(f"| {cfg} | {len(q)} | {statistics.median(q):.2f} [{q[0]:.2f}–{q[-1]:.2f}] |")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--summarize":
        summarize(sys.argv[2:])
        return
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    secs = sys.argv[2] if len(sys.argv) > 2 else "6"
    pg_secs = sys.argv[3] if len(sys.argv) > 3 else "15"
    redis_secs = sys.argv[4] if len(sys.argv) > 4 else "10"
    peers = os.path.abspath(os.environ.get("PEERS_DIR", os.path.join(ROOT, "..", "shared", "peers")))
    data = os.environ.setdefault("PEERS_DATA", "/tmp/peersdata")
    raw = os.environ.setdefault("PEERS_RAW", "/var/tmp/budgetd-peers/raw.jsonl")
    parts = os.environ.get("PARTS", "fsync store pg redis").split()
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    sys.path.insert(0, peers)
    import harness  # the peers' harness: same noise context as their figures

    binp = os.path.join(data, "bin")
    os.makedirs(binp, exist_ok=True)
    store_bench = os.path.join(binp, "store_bench")
    shutil.copy2(os.environ.get("STORE_BENCH", os.path.join(ROOT, "build", "bench", "store_bench")),
                 store_bench)
    subprocess.check_call(["gcc", "-O2", "-Wall", "-o", f"{binp}/budget_sqlite",
                           f"{peers}/budget_sqlite.c", "-lsqlite3"])
    subprocess.check_call(["gcc", "-O2", "-Wall", "-o", f"{binp}/fsync_bench",
                           f"{peers}/fsync_bench.c"])
    print(f"# raw: {raw}; data: {data}; store_bench sha: " +
          subprocess.run(["sha1sum", store_bench], capture_output=True, text=True).stdout.split()[0],
          flush=True)

    def parse_kv(out):
        d = harness.kv(out)
        d["value"] = d["pairs_per_s"]
        return d

    def parse_fsync(out):
        d = harness.kv(out)
        d["value"] = d["ops_per_s"]
        return d

    def rm_db(p):
        for s in ("", "-wal", "-shm"):
            try:
                os.unlink(p + s)
            except FileNotFoundError:
                pass

    store_db = os.path.join(data, "store.db")
    py = sys.executable
    for rep in range(reps):
        print(f"# rep {rep}: {time.strftime('%H:%M:%S')} uptime:" +
              subprocess.run(["uptime"], capture_output=True, text=True).stdout.rstrip(), flush=True)
        if "fsync" in parts:
            for mode in ("overwrite", "append"):
                harness.run("fsync", mode, rep, [f"{binp}/fsync_bench", data, mode, "3"], parse_fsync)
        if "store" in parts:
            for b in ("1", "16", "128"):
                for n in ("1000", "1"):
                    rm_db(store_db)
                    harness.run("store-pairs", f"full batch={b} ncaps={n}", rep,
                                [store_bench, store_db, b, n, secs, "full"], parse_kv)
                    rm_db(store_db)
                    harness.run("sqlite-pairs", f"full batch={b} ncaps={n}", rep,
                                [f"{binp}/budget_sqlite", f"{data}/budget.db", "full", b, n, secs],
                                parse_kv)
            for n in ("1000", "1"):
                rm_db(store_db)
                harness.run("store-pairs", f"normal batch=128 ncaps={n}", rep,
                            [store_bench, store_db, "128", n, secs, "normal"], parse_kv)
            rm_db(store_db)
        if "pg" in parts:
            env = dict(os.environ, PG_GLOBAL="0", PG_FILTER=r"^c=(8|32) sync=on ")
            subprocess.check_call([f"{peers}/pg/pg_start.sh"])
            try:
                subprocess.check_call([py, f"{peers}/pg/pg_bench.py", "1", pg_secs], env=env)
            finally:
                subprocess.call([f"{peers}/pg/pg_stop.sh"])
        if "redis" in parts:
            subprocess.check_call([py, f"{peers}/redis/redis_bench.py", "1", redis_secs])
    if "pg" in parts:
        subprocess.call([f"{peers}/pg/pg_stop.sh", "--wipe"])
    print(f"# done {time.strftime('%H:%M:%S')} uptime:" +
          subprocess.run(["uptime"], capture_output=True, text=True).stdout.rstrip(), flush=True)
    summarize([raw])


if __name__ == "__main__":
    main()
