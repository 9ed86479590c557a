#!/usr/bin/env bash
# Runs the refresh-protocol simulation (tests/protocol_simulation.rs) over
# many seeds and prints how many ran and how many broke an invariant.
#
#   scripts/soak.sh                 # 1,000 seeds from 0
#   SEEDS=5000 BASE=10000 scripts/soak.sh
#   SIM_SEED=42 cargo test --all-features --test protocol_simulation   # replay one
#   SIM_STORE=memory (or postgres) runs one store; both by default (PostgreSQL with DATABASE_URL)
#
# Seeds run in batches of BATCH (default 25) so that one failing seed does not hide the
# rest; a failing batch is replayed seed by seed and each failing seed is listed.
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-1000}"
BASE="${BASE:-0}"
BATCH="${BATCH:-25}"
run() { cargo test -q --all-features --test protocol_simulation -- --nocapture "$@"; }

cargo test -q --all-features --test protocol_simulation --no-run >&2 || exit 2
ran=0
failed=()
start=$(date +%s)
for ((b = BASE; b < BASE + SEEDS; b += BATCH)); do
    n=$((BASE + SEEDS - b < BATCH ? BASE + SEEDS - b : BATCH))
    if ! SIM_BASE=$b SIM_SEEDS=$n run >/dev/null 2>&1; then
        for ((s = b; s < b + n; s++)); do
            SIM_SEED=$s run >/dev/null 2>&1 || failed+=("$s")
        done
    fi
    ran=$((ran + n))
    echo "soak: $ran seeds, ${#failed[@]} with a violation" >&2
done
echo "seeds: $ran, violations: ${#failed[@]}, seconds: $(( $(date +%s) - start ))"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "failing seeds (replay with SIM_SEED=N): ${failed[*]}"
    exit 1
fi
