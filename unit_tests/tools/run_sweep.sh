#!/usr/bin/env bash
# The sweep decks at a small size: ringattn writes one CSV row per point and
# scripts/plot_sweep.py turns the CSV into a PNG.
#   run_sweep.sh RINGATTN SOURCE_DIR
set -euo pipefail
ringattn=$1 src=$2
# Idle OpenMP threads sleep rather than spin: on a loaded machine spinning
# threads made this test about ten times slower.
export OMP_NUM_THREADS=2 OMP_PROC_BIND=false OMP_WAIT_POLICY=passive
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
check() { # deck, expected points, overrides...
  local deck=$1 points=$2
  shift 2
  local name
  name=$(basename "$deck" .yaml)
  "$ringattn" run "$src/inputs/$deck" --quiet "$@" --set output.csv="$out/$name.csv" \
    --set output.results="$out/$name.yaml"
  rows=$(($(wc -l <"$out/$name.csv") - 1))
  [ "$rows" -eq "$points" ] || { echo "$name: expected $points CSV rows, got $rows"; exit 1; }
  grep -q "^status: ok" "$out/$name.yaml"
  /usr/bin/python3 "$src/scripts/plot_sweep.py" "$out/$name.csv"
  [ -s "$out/$name.png" ] || { echo "$name: no plot"; exit 1; }
}
check strong_scaling.yaml 5 --set problem.seq_len=2048
check weak_scaling.yaml 9 --set 'sweep.problem.seq_len=[16384, 32768, 65536]' --set problem.heads=1 \
  --set problem.kv_heads=1
echo "sweeps and plots ok"
