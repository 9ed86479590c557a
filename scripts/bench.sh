#!/usr/bin/env bash
# Runs the wise-oauth benchmarks and prints one table of figures (Markdown), with the bars.
#
#   scripts/bench.sh                 # everything (about 22 minutes on 2 cores)
#   scripts/bench.sh instructions    # only step 7 (or ONLY=instructions scripts/bench.sh)
#   scripts/bench.sh client          # only step 1b (the API client's paired rounds)
#   scripts/bench.sh http            # only step 2
#   HTTP_STORES=redis HTTP_ADAPTERS=actix HTTP_REFERENCES= scripts/bench.sh http   # one row
#   SKIP_CRITERION=1 scripts/bench.sh
#   DATABASE_URL=postgres://user@host:5432/db scripts/bench.sh
#
# What it runs:
#   1. cargo bench --bench hot_path   (criterion, in process: WiseToken vs no extractor)
#   1b. cargo bench --bench client -- paired (WiseClient vs a bare reqwest call, pinned to
#      one core, 3 runs)
#   2. wrk on loopback, 64 connections: the same app's /with and /without routes, measured
#      at the same time on two copies of the app that share one core,
#      axum and actix-web, memory, PostgreSQL and Redis stores (behind the manager's cache);
#      the servers on core 0, wrk on core 1 (taskset); and, as references, a no-op
#      extractor and a naive Mutex<HashMap> extractor against /without the same way
#   3. the refresh herd: 1,000 concurrent requests on one expired link (1 instance on
#      memory; 3 instances on PostgreSQL, and on Redis)
#   4. link flows per second against the in-process emulator
#   5. resident memory per link with 1,000,000 links in the memory store
#   6. the link cache's hit ratio against an exact LRU on seeded Zipf traces
#   7. the hot path in instructions (valgrind --tool=callgrind, deterministic): one request
#      through axum with a no-op extractor, with the plugin (layer + WiseToken), with a
#      naive Mutex<HashMap> extractor and with tower-sessions (benches/instructions.rs);
#      and one API call through WiseClient against a bare reqwest call sending the same
#      headers, both threads counted (benches/client_instructions.rs)
#   8. token waves: WAVE_LINKS (10,000) links expiring together on 3 instances over one
#      PostgreSQL (memory without it), Wise answering each refresh in 1 s, with 0 % and
#      5 % random refresh faults (about 7 minutes together, linking included)
# Installs wrk and valgrind with apt-get when they are missing. The PostgreSQL rows need a reachable
# DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) and are reported as not
# measured otherwise. Each figure comes from a process of its own.
set -euo pipefail

cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
WRK_SECONDS="${WRK_SECONDS:-3}"
WRK_ROUNDS="${WRK_ROUNDS:-16}"
WRK_CONNECTIONS=64
# Step 2's rows: which stores and adapters.
HTTP_STORES="${HTTP_STORES:-memory postgres redis}"
HTTP_ADAPTERS="${HTTP_ADAPTERS:-axum actix}"
# ... and the reference extractors measured the same way beside them (memory store).
HTTP_REFERENCES="${HTTP_REFERENCES:-noop naive}"
WAVE_LINKS="${WAVE_LINKS:-10000}"
WAVE_BOUND=32
# Step 7: each variant runs INSTR_N1 and INSTR_N2 requests; the difference cancels start-up.
INSTR_N1="${INSTR_N1:-2000}"
INSTR_N2="${INSTR_N2:-12000}"
# ... and each side of the client comparison CLIENT_N1 and CLIENT_N2 calls.
CLIENT_N1="${CLIENT_N1:-200}"
CLIENT_N2="${CLIENT_N2:-1200}"
# The client's paired wall-clock measurement (step 1b) runs CLIENT_RUNS times.
CLIENT_RUNS="${CLIENT_RUNS:-3}"
ONLY="${ONLY:-${1:-}}"
case "$ONLY" in
    "" | instructions | http | client) ;;
    *) echo "usage: $0 [instructions | http | client]  (or ONLY=instructions $0)" >&2; exit 2 ;;
esac
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill $SERVER_PID 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }
verdict() { if python3 -c "import sys; sys.exit(0 if ($1) else 1)"; then echo pass; else echo "**miss**"; fi; }
fig() { sed -n "s/^FIGURE $1 //p" "$2" | tail -1; }
apt_install() { # package
    log "installing $1 (apt-get)"
    local sudo=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo=sudo; fi
    $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq "$1" >&2
}
bench_bin() { # name: builds benches/NAME.rs (release) and prints the binary's path
    log "building benches/$1.rs (release)"
    local bin
    bin="$(cargo bench --bench "$1" --no-run 2>&1 \
        | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
    [ -x "$bin" ] || { log "could not build benches/$1.rs"; exit 1; }
    echo "$bin"
}
table() {
    echo
    echo "wise-oauth benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GB RAM, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| measurement | figure | bar | verdict |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
}

# ----- 1b. the API client in time ----------------------------------------------------------
# benches/client.rs, its paired measurement only (criterion's filter `paired` matches none of
# its functions): rounds of one bare reqwest call with the headers the client sends, the
# same with the token read from the manager first, the bare call with only the token, and
# one WiseClient call to the emulator's GET /v1/me, in rotating order, each timed;
# CLIENT_RUNS processes. The process (the calls' thread and the emulator's) is pinned to
# one core: unpinned, each call waits twice for a thread on the other core to be woken,
# which makes a call four times as long and measures the scheduler. The bar is against the
# bare call with the same headers; the figures against the call with only the token are
# printed beside it. The verdict reads each run's median of the per-round differences (the
# estimate the pairing is for); the difference of the two medians, which moves with any
# change of load during a run, is printed beside it.
client_time() {
    local bin
    bin="$(bench_bin client)"
    local pin="" run line added=() medians=() plain=() bare=() client=()
    command -v taskset >/dev/null 2>&1 && pin="taskset -c 0"
    for run in $(seq 1 "$CLIENT_RUNS"); do
        log "API client in time: paired rounds, run $run of $CLIENT_RUNS"
        line="$($pin "$bin" --bench paired 2>&1 | grep '^api_call/paired')" \
            || { log "benches/client.rs printed no paired figure"; exit 1; }
        bare+=("$(sed -n 's/.*median bare_reqwest_with_correlation_id \([0-9.]*\) µs.*/\1/p' <<<"$line")")
        client+=("$(sed -n 's/.*median wise_client \([0-9.]*\) µs.*/\1/p' <<<"$line")")
        added+=("$(sed -n 's/.*client minus bare_reqwest_with_correlation_id: difference of medians -\?[0-9.]* µs, median of per-round differences \(-\?[0-9.]*\) µs.*/\1/p' <<<"$line")")
        medians+=("$(sed -n 's/.*client minus bare_reqwest_with_correlation_id: difference of medians \(-\?[0-9.]*\) µs.*/\1/p' <<<"$line")")
        plain+=("$(sed -n 's/.*client minus bare_reqwest: difference of medians -\?[0-9.]* µs, median of per-round differences \(-\?[0-9.]*\) µs.*/\1/p' <<<"$line")")
    done
    local worst
    signed() { python3 -c "import sys; print(', '.join('%+.2f' % float(a) for a in sys.argv[1:]))" "$@"; }
    worst="$(python3 -c "import sys; print(max(float(a) for a in sys.argv[1:]))" "${added[@]}")"
    row "API call through WiseClient over a bare reqwest call sending the same headers (GET /v1/me on the emulator, 20,000 paired rounds, ${pin:+pinned to core 0, }$CLIENT_RUNS runs): median of the per-round differences (differences of the medians; medians bare / client of the last: ${bare[-1]} / ${client[-1]} µs)" \
        "$(signed "${added[@]}") µs ($(signed "${medians[@]}"))" "≤ +1 µs in every run" "$(verdict "$worst <= 1.0")"
    row "... and over the bare call with only the bearer token (no correlation id, no Accept), same runs, median of the per-round differences" \
        "$(signed "${plain[@]}") µs" "-" "-"
}

# ----- 7. hot path in instructions (callgrind) ---------------------------------------------
# benches/instructions.rs builds one app variant, finalized with .with_state as axum::serve
# runs it, and drives N requests through its tower::Service on a current-thread runtime
# inside `measured`, the only function callgrind collects in (--toggle-collect). Each
# variant runs N1 and N2 requests: instructions per request = (Ir(N2) - Ir(N1)) / (N2 - N1).
# Every variant's N2 run is repeated: the counts must be identical (deterministic).
instructions() {
    command -v valgrind >/dev/null 2>&1 || apt_install valgrind
    local bin
    bin="$(bench_bin instructions)"
    ir() { # variant requests run -> total Ir collected inside `measured`
        local out="$WORK/callgrind.$1.$2.$3"
        # An empty environment: its size moves the stack, and with it the path a memcpy
        # takes (glibc checks page aliasing), by about 2 instructions per request.
        env -i "$(command -v valgrind)" --tool=callgrind --collect-atstart=no \
            --toggle-collect='*instructions::measured*' \
            --callgrind-out-file="$out" "$bin" "$1" "$2" >"$out.log" 2>&1 \
            || { cat "$out.log" >&2; exit 1; }
        sed -n 's/^summary: //p' "$out"
    }
    local variant n1 n2 again per
    declare -A PER=()
    local repeat="identical"
    for variant in noop noop_state wise naive sessions; do
        log "instructions: $variant ($INSTR_N1 and $INSTR_N2 requests, the latter twice)"
        n1="$(ir "$variant" "$INSTR_N1" 1)"; n2="$(ir "$variant" "$INSTR_N2" 1)"
        again="$(ir "$variant" "$INSTR_N2" 2)"
        [ "$n2" = "$again" ] || repeat="**differ** ($variant: $n2 vs $again)"
        per="$(python3 -c "print('%.1f' % (($n2 - $n1) / ($INSTR_N2 - $INSTR_N1)))")"
        PER[$variant]="$per"
        log "instructions: $variant Ir($INSTR_N1) = $n1, Ir($INSTR_N2) = $n2 and $again: $per per request"
    done
    local label
    for variant in noop noop_state wise naive sessions; do
        case "$variant" in
            noop) label="no-op extractor (axum's baseline), state ()" ;;
            noop_state) label="no-op extractor, a state of one Arc (what any app state costs axum)" ;;
            wise) label="the plugin: WiseToken with the WisePlugin state (fresh cached token)" ;;
            naive) label="naive extractor: Mutex<HashMap> in the app state, token cloned" ;;
            sessions) label="tower-sessions, MemoryStore (token read from the session)" ;;
        esac
        row "instructions per request (callgrind), axum router after .with_state: $label" \
            "$(python3 -c "print(f'{${PER[$variant]}:,.0f}')")" "-" "-"
    done
    local over naive sessions state_over
    over="$(python3 -c "print(round(${PER[wise]} - ${PER[noop]}))")"
    state_over="$(python3 -c "print(round(${PER[wise]} - ${PER[noop_state]}))")"
    naive="$(python3 -c "print(round(${PER[naive]} - ${PER[noop]}))")"
    sessions="$(python3 -c "print(round(${PER[sessions]} - ${PER[noop]}))")"
    row "instructions the plugin adds per request over the no-op extractor ((Ir($INSTR_N2) − Ir($INSTR_N1)) / $((INSTR_N2 - INSTR_N1)); repeat runs $repeat)" \
        "**+$(python3 -c "print(f'{$over:,}')")** (+$(python3 -c "print(f'{$state_over:,}')") over the no-op with a state; naive map +$(python3 -c "print(f'{$naive:,}')"), tower-sessions +$(python3 -c "print(f'{$sessions:,}')"))" \
        "≤ +1,000, and ≤ the naive map" \
        "$(verdict "$over <= 1000 and $over <= $naive")"
    client_instructions
}

# benches/client_instructions.rs: CLIENT_N calls of one side (bare reqwest or WiseClient)
# on a current-thread runtime, the emulator on a thread of its own. Every thread is counted
# (the calls' thread and the emulator's), so a client that made the server work more would
# show; per call = (Ir(N2) - Ir(N1)) / (N2 - N1), per thread.
client_instructions() {
    local bin
    bin="$(bench_bin client_instructions)"
    threads_ir() { # side calls -> "calls_thread_Ir emulator_thread_Ir"
        local out="$WORK/callgrind.client.$1.$2"
        env -i "$(command -v valgrind)" --tool=callgrind --separate-threads=yes \
            --callgrind-out-file="$out" "$bin" "$1" "$2" >"$out.log" 2>&1 \
            || { cat "$out.log" >&2; exit 1; }
        echo "$(sed -n 's/^summary: //p' "$out-01") $(sed -n 's/^summary: //p' "$out-02")"
    }
    local side a b
    declare -A CALLS=() SERVER=()
    for side in bare client; do
        log "instructions: $side API calls ($CLIENT_N1 and $CLIENT_N2)"
        read -r a_calls a_server < <(threads_ir "$side" "$CLIENT_N1")
        read -r b_calls b_server < <(threads_ir "$side" "$CLIENT_N2")
        CALLS[$side]="$(( (b_calls - a_calls) / (CLIENT_N2 - CLIENT_N1) ))"
        SERVER[$side]="$(( (b_server - a_server) / (CLIENT_N2 - CLIENT_N1) ))"
        log "instructions: $side ${CALLS[$side]} per call on the calls' thread, ${SERVER[$side]} on the emulator's"
    done
    local added=$(( CALLS[client] + SERVER[client] - CALLS[bare] - SERVER[bare] ))
    row "instructions per API call (callgrind), GET /v1/me on loopback: bare reqwest with the same headers / WiseClient (calls' thread + emulator's thread)" \
        "$(python3 -c "print(f'{${CALLS[bare]}:,} + {${SERVER[bare]}:,} / {${CALLS[client]}:,} + {${SERVER[client]}:,}')")" "-" "-"
    row "instructions WiseClient adds per API call over the bare call, both threads" \
        "**$(python3 -c "print(f'{$added:+,}')")**" "- (the bar is in time: benches/client.rs)" "-"
}

command -v python3 >/dev/null 2>&1 || { log "python3 is needed to compute the figures"; exit 1; }
if [ "$ONLY" = instructions ]; then
    instructions
    table
    exit 0
fi
if [ "$ONLY" = client ]; then
    command -v taskset >/dev/null 2>&1 || apt_install util-linux
    client_time
    table
    exit 0
fi

# ----- tools ------------------------------------------------------------------------------
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v taskset >/dev/null 2>&1 || apt_install util-linux
command -v python3 >/dev/null 2>&1 || { log "python3 is needed to read criterion's estimates"; exit 1; }

PG=0
if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -d "$DATABASE_URL" 2>/dev/null; then
    PG=1
elif ! command -v pg_isready >/dev/null 2>&1; then
    PG=1 # try; the figures binary reports a failed connection
fi
[ "$PG" = 1 ] || log "PostgreSQL at $DATABASE_URL is not reachable: its rows are skipped"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
REDIS=0
if command -v redis-cli >/dev/null 2>&1 && redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then REDIS=1; fi
[ "$REDIS" = 1 ] || log "Redis at $REDIS_URL is not reachable: its rows are skipped"

log "building (release)"
FIGURES="$(cargo bench --features postgres,redis --bench figures --no-run 2>&1 \
    | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
[ -x "$FIGURES" ] || { log "could not build benches/figures.rs"; exit 1; }

# ----- 1. hot path in process (criterion) ------------------------------------------------
if [ "${SKIP_CRITERION:-0}" != 1 ] && [ "$ONLY" != http ]; then
    log "criterion hot path"
    cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 3 >"$WORK/criterion.txt" 2>&1 \
        || { cat "$WORK/criterion.txt" >&2; exit 1; }
    CRIT="${CARGO_TARGET_DIR:-target}/criterion"
    for adapter in axum actix; do
        median() {
            python3 -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["median"]["point_estimate"]/1000))' \
                "$CRIT/$adapter/$1/new/estimates.json"
        }
        without="$(median without)"; with="$(median with)"
        added="$(python3 -c "print('%+.3f' % ($with - $without))")"
        row "hot path in process, $adapter: median with / without WiseToken" \
            "$with µs / $without µs ($added µs)" "≤ +0.3 µs" "$(verdict "$added <= 0.3")"
    done
fi

if [ "$ONLY" != http ]; then
    client_time
fi

# ----- 2. hot path over HTTP (wrk) --------------------------------------------------------
# Two copies of the same app (one tokio or actix worker each) share core 0; in each round
# one copy takes wrk's load on /with and the other on /without, at the same time, from two
# wrk processes on core 1 (32 connections each). The scheduler gives the two busy copies
# equal CPU time, so their throughputs compare what a request costs on each route, and
# whatever slows the core in a round (a neighbour on the host, the clock) slows both alike:
# run one after the other, 3-second runs of one route differ by up to 30 % on this kind of
# machine, simultaneous ones by about 2 %. The copies swap routes from round to round. The
# figure is the median of the per-round ratios over the rounds in which core 0 was busy
# (idle under 10 % of the round; otherwise wrk, not the app, set the pace), and a row needs
# three in four rounds busy.
to_ms() { # wrk latency ("812.00us", "1.20ms", "2.00s") -> ms
    python3 -c '
import sys
v = sys.argv[1]
for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
    if v.endswith(unit):
        print("%.2f" % (float(v[: -len(unit)]) * f)); break' "$1"
}
cpu_ticks() { # a process's user + system CPU time so far, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
core0() { # core 0's idle and total time so far, in clock ticks
    awk '$1 == "cpu0" {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}
requests() { awk '/requests in/ {print $1}' "$1"; }
rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
pct() { to_ms "$(awk -v p="$2" '$1 == p {print $2}' "$1")"; }
ON_SERVER_CORE=""
ON_LOAD_CORE=""
if [ "$(nproc)" -ge 2 ]; then
    ON_SERVER_CORE="taskset -c 0"
    ON_LOAD_CORE="taskset -c 1"
else
    log "one core: the servers and wrk share it"
fi
serve_copy() { # adapter store name: starts a copy, sets PORTS[name] and PIDS[name]
    $ON_SERVER_CORE "$FIGURES" serve --adapter "$1" --store "$2" --workers 1 \
        >"$WORK/serve.$3.out" 2>"$WORK/serve.$3.err" &
    PIDS[$3]=$!
    SERVER_PID="$SERVER_PID ${PIDS[$3]}"
    for _ in $(seq 1 300); do
        grep -q '^PORT ' "$WORK/serve.$3.out" 2>/dev/null && break
        kill -0 "${PIDS[$3]}" 2>/dev/null || { cat "$WORK/serve.$3.err" >&2; exit 1; }
        sleep 0.1
    done
    PORTS[$3]="$(sed -n 's/^PORT //p' "$WORK/serve.$3.out")"
}
round() { # n: $ROUTE on one copy and /without on the other, at the same time
    local with_on=a without_on=b
    if [ $(($1 % 2)) = 0 ]; then with_on=b; without_on=a; fi
    local ca cb wa wb core
    ca="$(cpu_ticks "${PIDS[a]}")"; cb="$(cpu_ticks "${PIDS[b]}")"; core="$(core0)"
    $ON_LOAD_CORE wrk -t1 -c"$((WRK_CONNECTIONS / 2))" -d"${WRK_SECONDS}s" --latency \
        "http://127.0.0.1:${PORTS[$with_on]}/$ROUTE" >"$WORK/with.$1" & wa=$!
    $ON_LOAD_CORE wrk -t1 -c"$((WRK_CONNECTIONS / 2))" -d"${WRK_SECONDS}s" --latency \
        "http://127.0.0.1:${PORTS[$without_on]}/without" >"$WORK/without.$1" & wb=$!
    wait "$wa" "$wb"
    local da=$(($(cpu_ticks "${PIDS[a]}") - ca)) db=$(($(cpu_ticks "${PIDS[b]}") - cb))
    local busy
    busy="$(python3 -c "import sys; i0, t0, i1, t1 = map(int, sys.argv[1:]); print('%.3f' % (1 - (i1 - i0) / max(1, t1 - t0)))" $core $(core0))"
    if [ "$with_on" = a ]; then echo "$da $db $busy" >"$WORK/cpu.$1"; else echo "$db $da $busy" >"$WORK/cpu.$1"; fi
    log "round $1: with $(rps "$WORK/with.$1") / without $(rps "$WORK/without.$1") rps, core 0 busy $busy"
}

http_row() { # adapter store route label: one row, $ROUTE against /without
    local adapter="$1" store="$2" label="${4:-}"
    ROUTE="$3"
    log "wrk: $adapter, $store store, /$ROUTE against /without, two copies on one core"
    declare -A PIDS=() PORTS=()
    SERVER_PID=""
    serve_copy "$adapter" "$store" a
    serve_copy "$adapter" "$store" b
    round 0 # warm-up, not counted
    for r in $(seq 1 "$WRK_ROUNDS"); do round "$r"; done
    kill $SERVER_PID; wait $SERVER_PID 2>/dev/null || true; SERVER_PID=""
    grep -q "Non-2xx" "$WORK"/with.* && { log "non-2xx answers on /$ROUTE"; cat "$WORK"/with.* >&2; exit 1; }
    local rounds="" r
    for r in $(seq 1 "$WRK_ROUNDS"); do
        rounds="$rounds ($(rps "$WORK/with.$r"), $(rps "$WORK/without.$r"), $(requests "$WORK/with.$r"), $(requests "$WORK/without.$r"), $(sed 's/ /, /g' "$WORK/cpu.$r")),"
    done
    local r_with r_without ratio spread counted cpu_with cpu_without
    read -r r_with r_without ratio spread counted cpu_with cpu_without < <(python3 -c "
import os, statistics as s
tick = 1.0 / os.sysconf('SC_CLK_TCK')
rounds = [$rounds]
busy = [r for r in rounds if r[6] >= 0.9]
ratios = [w / wo for w, wo, *_ in busy] or [0.0]
def us(i, n):  # the copies' CPU microseconds per request on a route, over the busy rounds
    return sum(r[i] for r in busy) * tick * 1e6 / max(1, sum(r[n] for r in busy))
print('%.0f %.0f %.3f %.3f-%.3f %d %.1f %.1f' % (s.median(r[0] for r in rounds), s.median(r[1] for r in rounds),
      s.median(ratios), min(ratios), max(ratios), len(busy), us(4, 2), us(5, 3)))")
    local last="$WRK_ROUNDS" figure
    figure="$r_with / $r_without = **$ratio** (rounds $spread, $counted of $WRK_ROUNDS with the core busy; CPU per request $cpu_with / $cpu_without µs; with $(pct "$WORK/with.$last" 50%), $(pct "$WORK/with.$last" 99%); without $(pct "$WORK/without.$last" 50%), $(pct "$WORK/without.$last" 99%))"
    if [ "$ROUTE" = with ]; then
        row "HTTP $adapter, $store store: rps with / without, two copies sharing one core, median of $WRK_ROUNDS simultaneous rounds (p50, p99 ms)" \
            "$figure" "ratio ≥ 0.97" "$(verdict "$ratio >= 0.97 and 4 * $counted >= 3 * $WRK_ROUNDS")"
    else
        row "HTTP $adapter, $label: rps /$ROUTE / without, measured the same way" "$figure" "-" "-"
    fi
}

for store in $HTTP_STORES; do
    if [ "$store" = redis ] && [ "$REDIS" != 1 ]; then
        row "HTTP rps ratio, $store store" "not measured (no Redis)" "≥ 0.97" "-"
        continue
    fi
    if [ "$store" = postgres ] && [ "$PG" != 1 ]; then
        row "HTTP rps ratio, $store store" "not measured (no PostgreSQL)" "≥ 0.97" "-"
        continue
    fi
    for adapter in $HTTP_ADAPTERS; do
        http_row "$adapter" "$store" with
    done
done
# The references, beside the memory rows: a no-op extractor (what the framework spends on
# any extractor) and the naive Mutex<HashMap> extractor of step 7 (a token cloned out of
# one locked map), on the same app.
for adapter in $HTTP_ADAPTERS; do
    for reference in $HTTP_REFERENCES; do
        case "$reference" in
            noop) http_row "$adapter" memory noop "no-op extractor (reference)" ;;
            naive) http_row "$adapter" memory naive "naive Mutex<HashMap> extractor (reference)" ;;
        esac
    done
done
if [ "$ONLY" = http ]; then
    table
    exit 0
fi

# ----- 3. refresh herd --------------------------------------------------------------------
herd() { # store instances
    log "herd: $1 store, $2 instance(s)"
    "$FIGURES" herd --store "$1" --instances "$2" --requests 1000 >"$WORK/herd.out" 2>"$WORK/herd.err" \
        || { cat "$WORK/herd.err" >&2; exit 1; }
    local n ok refreshes solo last
    n="$(fig herd.requests "$WORK/herd.out")"; ok="$(fig herd.ok "$WORK/herd.out")"
    refreshes="$(fig herd.refreshes "$WORK/herd.out")"
    solo="$(fig herd.solo_ms "$WORK/herd.out")"; last="$(fig herd.last_ms "$WORK/herd.out")"
    row "refresh herd, $1 store, $2 instance(s): refreshes at the emulator ($ok/$n answered 200)" \
        "$refreshes" "exactly 1" "$(verdict "$refreshes == 1 and $ok == $n")"
    row "refresh herd, $1 store, $2 instance(s): last of $n responses vs one refresh alone" \
        "$last ms vs $solo ms" "≤ refresh + 50 ms" "$(verdict "$last <= $solo + 50")"
}
herd memory 1
if [ "$PG" = 1 ]; then herd postgres 3; else row "refresh herd, 3 instances on PostgreSQL" "not measured (no PostgreSQL)" "exactly 1" "-"; fi
if [ "$REDIS" = 1 ]; then herd redis 3; else row "refresh herd, 3 instances on Redis" "not measured (no Redis)" "exactly 1" "-"; fi

# ----- 4. link flows ----------------------------------------------------------------------
log "link flows"
"$FIGURES" flow --flows 2000 --concurrency 8 >"$WORK/flow.out" 2>"$WORK/flow.err" \
    || { cat "$WORK/flow.err" >&2; exit 1; }
row "link flows per second (8 at a time, memory store, emulator in process)" \
    "$(fig flow.per_second "$WORK/flow.out")/s" "-" "-"
row "one link flow (median): start / consent at Wise / callback" \
    "$(fig flow.start_us "$WORK/flow.out") / $(fig flow.consent_us "$WORK/flow.out") / $(fig flow.callback_us "$WORK/flow.out") µs" "-" "-"
row "library's own share of a flow (flow minus the consent hop and the callback's Wise calls, $(fig flow.wise_calls_us "$WORK/flow.out") µs)" \
    "$(fig flow.library_us "$WORK/flow.out") µs = $(fig flow.library_share_pct "$WORK/flow.out")%" "-" "-"

# ----- 5. memory per link -----------------------------------------------------------------
log "memory, 1,000,000 links"
"$FIGURES" memory --links 1000000 >"$WORK/memory.out" 2>"$WORK/memory.err" \
    || { cat "$WORK/memory.err" >&2; exit 1; }
per_link="$(fig memory.bytes_per_link "$WORK/memory.out")"
row "RSS growth per link, 1,000,000 links in MemoryTokenStore (sealed record $(fig memory.sealed_bytes "$WORK/memory.out") B, UUID user ids)" \
    "$per_link B" "≤ 512 B" "$(verdict "$per_link <= 512")"

# ----- 6. link cache hit ratio -------------------------------------------------------------
log "link cache hit ratio"
"$FIGURES" cache >"$WORK/cache.out" 2>"$WORK/cache.err" \
    || { cat "$WORK/cache.err" >&2; exit 1; }
for s in 0_8 1_1; do
    ours="$(fig "cache.s$s.s3fifo" "$WORK/cache.out")"; lru="$(fig "cache.s$s.lru" "$WORK/cache.out")"
    row "link cache hit ratio, Zipf s=${s/_/.}, 100,000 users, capacity 10,000: S3-FIFO / exact LRU" \
        "$ours / $lru" "≥ LRU" "$(verdict "$ours >= $lru")"
done

# ----- 7. hot path in instructions -----------------------------------------------------------
instructions

# ----- 8. token waves --------------------------------------------------------------------
wave_store=memory
[ "$PG" = 1 ] && wave_store=postgres
wave() { # faults-percent
    log "token wave: $WAVE_LINKS links, 3 instances, $wave_store store, $1 % faults"
    "$FIGURES" waves --store "$wave_store" --links "$WAVE_LINKS" --instances 3 --bound "$WAVE_BOUND" \
        --delay-ms 1000 --faults "$1" >"$WORK/waves.out" 2>"$WORK/waves.err" \
        || { cat "$WORK/waves.err" >&2; exit 1; }
    local links requests served issued lost calls peak
    links="$(fig waves.links "$WORK/waves.out")"; requests="$(fig waves.requests "$WORK/waves.out")"
    served="$(fig waves.served "$WORK/waves.out")"; issued="$(fig waves.issued "$WORK/waves.out")"
    lost="$(fig waves.lost_answers "$WORK/waves.out")"; calls="$(fig waves.refresh_calls "$WORK/waves.out")"
    peak="$(fig waves.peak "$WORK/waves.out")"
    row "token wave, $links links on 3 instances ($wave_store), Wise 1 s per refresh, $1 % random faults: token sets Wise issued ($calls refresh calls; $served/$requests requests served a live token)" \
        "$issued for $links links ($lost answers lost by a fault)" "one per link, + one per lost answer" \
        "$(verdict "$issued <= $links + $lost and $served == $requests")"
    row "token wave, $1 % faults: duration, request wait p50 / p99, most refresh calls at Wise at once" \
        "$(fig waves.seconds "$WORK/waves.out") s, $(fig waves.p50_ms "$WORK/waves.out") / $(fig waves.p99_ms "$WORK/waves.out") ms, $peak" \
        "≤ 3 × $WAVE_BOUND at once" "$(verdict "$peak <= 3 * $WAVE_BOUND")"
}
wave 0
wave 5

# ----- table ------------------------------------------------------------------------------
table
