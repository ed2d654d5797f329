#!/usr/bin/env bash
# ringattn under mpirun on golden cases, both partitions: O and LSE written by
# the ranks must equal the float64 answers within 2e-5.
# With `half`: in 16-bit storage (problem.dtype bfloat16 and float16) instead;
# the program's own verification checks every row against the float64
# reference of the rounded inputs (default tolerances: O 1e-2 bfloat16, 2e-3
# float16; LSE 1e-3), and O and LSE written by the ranks must match those of
# the simulated ring of as many members.
#   run_mpi_golden.sh RINGATTN NPY_COMPARE GOLDEN_DIR NP [half]
set -euo pipefail
ringattn=$1 compare=$2 golden=$3 np=$4 half=${5:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_PROC_BIND=false
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# An Open MPI session folder of this script's own unless the caller (CTest)
# gave one: concurrent jobs race on a shared one (open-mpi/ompi#8510).
if [ -z "${OMPI_MCA_orte_tmpdir_base:-}" ]; then
  export OMPI_MCA_orte_tmpdir_base="$out/ompi" PRTE_MCA_prte_tmpdir_base="$out/ompi"
fi
if [ "$half" = half ]; then
  for dtype in bfloat16 float16; do
    tol=$([ $dtype = bfloat16 ] && echo 1e-2 || echo 2e-3)
    for case in dense_causal dense_gqa_causal dilated_mixture_causal dilated_head_groups_uneven; do
      echo "== $case $dtype np=$np"
      common=(--quiet --set problem.dtype=$dtype --set ring.partition=zigzag
              --set verify.enabled=true --set verify.rows=1000000)
      "$ringattn" run "$golden/$case/deck.yaml" "${common[@]}" --set ring.mode=simulated \
        --set ring.size="$np" --set output.o="$out/o_sim.npy" --set output.lse="$out/lse_sim.npy" \
        --set output.results="$out/results_sim.yaml"
      mpirun -np "$np" --oversubscribe "$ringattn" run "$golden/$case/deck.yaml" "${common[@]}" \
        --set ring.mode=mpi --set output.o="$out/o.npy" --set output.lse="$out/lse.npy" \
        --set output.results="$out/results.yaml"
      for r in results_sim results; do
        grep -q "status: ok" "$out/$r.yaml"
        grep -q "dtype: $dtype" "$out/$r.yaml"
      done
      "$compare" "$out/o.npy" "$out/o_sim.npy" "$tol"
      "$compare" "$out/lse.npy" "$out/lse_sim.npy" 1e-3
    done
  done
  echo "all 16-bit golden cases passed at np=$np"
  exit 0
fi
for case in dense_causal dense_gqa_causal dilated_mixture dilated_mixture_causal dilated_head_groups_uneven dilated_w_beyond_n; do
  for partition in contiguous zigzag; do
    echo "== $case np=$np $partition"
    mpirun -np "$np" --oversubscribe "$ringattn" run "$golden/$case/deck.yaml" --quiet \
      --set ring.mode=mpi --set ring.partition=$partition --set verify.enabled=true \
      --set verify.tolerance=2e-5 --set output.o="$out/o.npy" --set output.lse="$out/lse.npy" \
      --set output.results="$out/results.yaml"
    "$compare" "$out/o.npy" "$golden/$case/o_ref.npy" 2e-5
    "$compare" "$out/lse.npy" "$golden/$case/lse_ref.npy" 2e-5
    grep -q "status: ok" "$out/results.yaml"
  done
done
echo "all golden cases passed at np=$np"
