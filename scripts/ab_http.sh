#!/usr/bin/env bash
# Compares two routes, of one build of benches/figures.rs or of two, over HTTP: step 2 of
# scripts/bench.sh (two copies of the app, one worker each, sharing core 0, loaded at the
# same time by two wrk processes on core 1), with the copies named here.
#
#   scripts/ab_http.sh BIN_A:/route BIN_B:/route [axum|actix] [rounds]
#   e.g. the plugin over a no-op extractor, and an old build against a new one:
#   scripts/ab_http.sh target/release/deps/figures-X:/noop target/release/deps/figures-X:/with actix
#   scripts/ab_http.sh /tmp/figures-old:/with target/release/deps/figures-X:/with actix
#
# Prints each round's requests per second and the median of B / A over the rounds (after
# one warm-up round), with each copy's CPU time per request. The memory store; the
# binaries come from `cargo bench --bench figures --no-run`.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
ADAPTER="${3:-actix}"
ROUNDS="${4:-16}"
WORK="$(mktemp -d)"
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() { # bin name: starts a copy on core 0, prints its port
    taskset -c 0 "$1" serve --adapter "$ADAPTER" --store memory --workers 1 \
        >"$WORK/$2.out" 2>"$WORK/$2.err" &
    echo $! >"$WORK/$2.pid"
    for _ in $(seq 1 300); do
        grep -q '^PORT ' "$WORK/$2.out" 2>/dev/null && break
        sleep 0.1
    done
    sed -n 's/^PORT //p' "$WORK/$2.out"
}
ticks() { awk '{print $14 + $15}' "/proc/$(cat "$WORK/$1.pid")/stat"; }
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
wrk_n() { awk '/requests in/ {print $1}' "$1"; }

PORT_A="$(start "${1%%:*}" a)"
PORT_B="$(start "${2%%:*}" b)"
PIDS="$(cat "$WORK/a.pid") $(cat "$WORK/b.pid")"
for r in $(seq 0 "$ROUNDS"); do
    ta="$(ticks a)"; tb="$(ticks b)"
    taskset -c 1 wrk -t1 -c32 -d3s "http://127.0.0.1:$PORT_A${1#*:}" >"$WORK/wa" & wa=$!
    taskset -c 1 wrk -t1 -c32 -d3s "http://127.0.0.1:$PORT_B${2#*:}" >"$WORK/wb" & wb=$!
    wait "$wa" "$wb"
    [ "$r" = 0 ] && continue # warm-up
    echo "$(wrk_rps "$WORK/wa") $(wrk_rps "$WORK/wb") $(wrk_n "$WORK/wa") $(wrk_n "$WORK/wb") $(($(ticks a) - ta)) $(($(ticks b) - tb))"
done | tee "$WORK/rounds"
python3 - "$WORK/rounds" <<'PY'
import os, statistics as s, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
ratios = [b / a for a, b, *_ in rows]
tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
cpu = lambda i, n: sum(r[i] for r in rows) * tick_us / sum(r[n] for r in rows)
print("B / A: median %.4f (rounds %.3f-%.3f, %d); CPU per request A %.2f µs, B %.2f µs"
      % (s.median(ratios), min(ratios), max(ratios), len(ratios), cpu(4, 2), cpu(5, 3)))
PY
