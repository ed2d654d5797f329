#!/usr/bin/env bash
# Eight `ringattn run`s started at the same moment, as a sweep script would:
# simulated runs outside any launcher (they must not touch MPI at all: their
# TMPDIR is a path no one can create, so an MPI_Init, which puts its session
# folder there, would fail) and, with MPIEXEC given,
# small `mpirun -np 2` runs, each with its own Open MPI session folder. All
# eight must exit 0 with their results, O and LSE files in place and verified.
#   run_concurrent.sh RINGATTN DECK [MPIEXEC]
set -uo pipefail
ringattn=$1 deck=$2 mpiexec=${3:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_PROC_BIND=false
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

runs=8 mpi_runs=0
[ -n "$mpiexec" ] && mpi_runs=3
small=(--quiet --set problem.seq_len=1024 --set benchmark.warmup=0 --set benchmark.repeats=1
       --set verify.enabled=true --set verify.rows=8)
pids=()
for i in $(seq 1 "$runs"); do
  dir="$out/run$i"
  mkdir -p "$dir"
  touch "$dir/not-a-folder"
  outputs=(--set output.results="$dir/results.yaml" --set output.o="$dir/o.npy"
           --set output.lse="$dir/lse.npy")
  if [ "$i" -le "$mpi_runs" ]; then
    OMPI_MCA_orte_tmpdir_base="$dir/ompi" PRTE_MCA_prte_tmpdir_base="$dir/ompi" \
      "$mpiexec" -np 2 --oversubscribe "$ringattn" run "$deck" "${small[@]}" "${outputs[@]}" \
      --set ring.mode=mpi --set ring.size=2 >"$dir/log" 2>&1 &
  else
    # No launcher and no MPI session variables: Open MPI would put a session
    # folder under TMPDIR, which cannot be created (even by root).
    env -u OMPI_MCA_orte_tmpdir_base -u PRTE_MCA_prte_tmpdir_base TMPDIR="$dir/not-a-folder/tmp" \
      "$ringattn" run "$deck" "${small[@]}" "${outputs[@]}" \
      --set ring.mode=simulated --set ring.size=$((i % 4 + 1)) >"$dir/log" 2>&1 &
  fi
  pids+=($!)
done

failures=0
for i in $(seq 1 "$runs"); do
  dir="$out/run$i"
  kind=simulated
  [ "$i" -le "$mpi_runs" ] && kind="mpirun -np 2"
  wait "${pids[$((i - 1))]}"
  rc=$?
  why=()
  [ "$rc" -eq 0 ] || why+=("exit $rc")
  for f in results.yaml o.npy lse.npy; do [ -s "$dir/$f" ] || why+=("no $f"); done
  grep -q "status: ok" "$dir/results.yaml" 2>/dev/null || why+=("results.yaml lacks status: ok")
  if [ ${#why[@]} -eq 0 ]; then
    echo "ok    run $i ($kind)"
  else
    failures=$((failures + 1))
    echo "FAIL  run $i ($kind): ${why[*]}"
    sed 's/^/      /' "$dir/log" | tail -n 15
  fi
done
echo "$runs concurrent runs, $failures failed"
[ "$failures" -eq 0 ]
