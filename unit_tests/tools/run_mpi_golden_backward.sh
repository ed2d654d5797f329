#!/usr/bin/env bash
# ringattn under mpirun on every golden case with attention.backward (docs/SPEC.md section 7),
# both partitions: dQ, dK and dV written by the ranks must equal the float64
# answers within 1e-4, and the built-in verification must pass.
#   run_mpi_golden_backward.sh RINGATTN NPY_COMPARE GOLDEN_DIR NP
set -euo pipefail
ringattn=$1 compare=$2 golden=$3 np=$4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_PROC_BIND=false
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for dir in "$golden"/*/; do
  case=$(basename "$dir")
  [ -f "$dir/deck_backward.yaml" ] || continue
  for partition in contiguous zigzag; do
    echo "== $case np=$np $partition (backward)"
    mpirun -np "$np" --oversubscribe "$ringattn" run "$dir/deck_backward.yaml" --quiet \
      --set ring.mode=mpi --set ring.partition=$partition --set verify.enabled=true \
      --set verify.rows=8 --set verify.tolerance=1e-4 --set output.o= --set output.lse= \
      --set output.dq="$out/dq.npy" --set output.dk="$out/dk.npy" --set output.dv="$out/dv.npy" \
      --set output.results="$out/results.yaml"
    "$compare" "$out/dq.npy" "$dir/dq_ref.npy" 1e-4
    "$compare" "$out/dk.npy" "$dir/dk_ref.npy" 1e-4
    "$compare" "$out/dv.npy" "$dir/dv_ref.npy" 1e-4
    grep -q "status: ok" "$out/results.yaml"
    grep -q "dkv_rows_checked: 8" "$out/results.yaml"
  done
done
echo "all golden backward cases passed at np=$np"
