#!/usr/bin/env bash
# The ring's numbers (memory per member against its model, for R = 1, 4, 16, 64
# at one N; bytes sent against the analytic minimum; contiguous against
# zigzag compute balance under MPI), from runs of the decks in inputs/.
# Run after scripts/setup.sh; prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
ringattn=${RINGATTN:-build/src/driver/ringattn}
out=${RINGATTN_REPORT_DIR:-build/ring_report}
mkdir -p "$out"
# An Open MPI session folder of this script's own unless the caller (CTest)
# gave one: concurrent jobs race on a shared one (open-mpi/ompi#8510).
if [ -z "${OMPI_MCA_orte_tmpdir_base:-}" ]; then
  OMPI_MCA_orte_tmpdir_base="$(cd "$out" && pwd)/ompi"
  export OMPI_MCA_orte_tmpdir_base PRTE_MCA_prte_tmpdir_base="$OMPI_MCA_orte_tmpdir_base"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_PROC_BIND=false

echo "## Simulated ring: memory per member at N = 262144 (LongNet deck, H = 4)"
files=()
for R in 1 4 16 64; do
  "$ringattn" run inputs/longnet.yaml --quiet --set problem.seq_len=262144 --set problem.heads=4 \
    --set problem.kv_heads=4 --set ring.size=$R --set benchmark.warmup=0 --set benchmark.repeats=1 \
    --set output.results="$out/simulated_R${R}_results.yaml" >/dev/null
  files+=("$out/simulated_R${R}_results.yaml")
done
/usr/bin/python3 scripts/ring_report.py "${files[@]}"

echo
echo "## MPI ring, 2 ranks of 1 thread (one per core): dense causal, contiguous against zigzag"
files=()
for partition in contiguous zigzag; do
  OMP_NUM_THREADS=1 mpirun -np 2 "$ringattn" run inputs/dense_causal_mpi.yaml --quiet --kokkos-disable-warnings \
    --set ring.partition=$partition --set output.results="$out/mpi_causal_${partition}_results.yaml" >/dev/null
  files+=("$out/mpi_causal_${partition}_results.yaml")
done
/usr/bin/python3 scripts/ring_report.py "${files[@]}"
for f in "${files[@]}"; do
  echo "$(basename "$f"): $(grep compute_seconds_per_member "$f" | sed 's/^ *//')"
done

echo
echo "## MPI ring, 4 ranks: dilated (LongNet, causal) bytes sent against the analytic minimum"
OMP_NUM_THREADS=1 mpirun -np 4 --oversubscribe "$ringattn" run inputs/longnet_mpi.yaml --quiet --kokkos-disable-warnings \
  --set output.results="$out/mpi_longnet_results.yaml" >/dev/null
/usr/bin/python3 scripts/ring_report.py "$out/mpi_longnet_results.yaml"
grep -E "bytes_sent_per_member|model_bytes_sent_per_member" "$out/mpi_longnet_results.yaml" | sed 's/^ *//'
