#!/usr/bin/env bash
# ringattn under mpirun on golden cases, both partitions: O and LSE written by
# the ranks must equal the float64 answers within 2e-5.
#   run_mpi_golden.sh RINGATTN NPY_COMPARE GOLDEN_DIR NP
set -euo pipefail
ringattn=$1 compare=$2 golden=$3 np=$4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_PROC_BIND=false
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# An Open MPI session folder of this script's own unless the caller (CTest)
# gave one: concurrent jobs race on a shared one (open-mpi/ompi#8510).
if [ -z "${OMPI_MCA_orte_tmpdir_base:-}" ]; then
  export OMPI_MCA_orte_tmpdir_base="$out/ompi" PRTE_MCA_prte_tmpdir_base="$out/ompi"
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
