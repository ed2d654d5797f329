#!/usr/bin/env bash
# A build without MPI refuses a mode mpi deck up front, in run, validate and
# plan alike (exit 2, a message naming the missing MPI and what to do, no
# output file), and refuses to run as several processes of a launcher
# (each would run the whole deck alone). A simulated deck still runs.
#   run_no_mpi_refusal.sh RINGATTN DECK
set -uo pipefail
ringattn=$1 deck=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
outputs=(--set output.results="$out/results.yaml" --set output.o="$out/o.npy"
         --set output.lse="$out/lse.npy" --set problem.seq_len=1024)
failures=0
expect() { # NAME EXPECTED_RC REGEX COMMAND...
  local name=$1 want=$2 regex=$3
  shift 3
  "$@" >"$out/stdout" 2>"$out/stderr"
  local rc=$? why=()
  [ "$rc" -eq "$want" ] || why+=("exit $rc, expected $want")
  [ -z "$regex" ] || grep -Eq "$regex" "$out/stderr" || why+=("stderr lacks /$regex/")
  if [ "$want" -ne 0 ] && ls "$out" | grep -Eq '\.(npy|yaml)'; then why+=("left $(ls "$out")"); fi
  if [ "$want" -eq 0 ] && ! grep -q "status: ok" "$out/results.yaml" 2>/dev/null; then
    why+=("no results.yaml with status: ok")
  fi
  if [ ${#why[@]} -eq 0 ]; then echo "ok    $name"; else
    failures=$((failures + 1))
    echo "FAIL  $name: ${why[*]}"
    sed 's/^/      /' "$out/stderr" | head -n 5
  fi
  rm -f "$out"/*.npy "$out"/*.yaml
}
msg='expected simulated, got mpi, but this ringattn was built without MPI.*RingAttn_ENABLE_MPI=ON'
expect "run, mode mpi" 2 "$msg" "$ringattn" run "$deck" --quiet --set ring.mode=mpi "${outputs[@]}"
expect "validate, mode mpi" 2 "$msg" "$ringattn" validate "$deck" --set ring.mode=mpi
expect "plan, mode mpi" 2 "$msg" "$ringattn" plan "$deck" --set ring.mode=mpi
expect "run, mode mpi from a sweep" 2 "$msg" "$ringattn" run "$deck" --quiet \
  --set 'sweep.ring.mode=[simulated, mpi]' "${outputs[@]}"
expect "validate, mode mpi in the deck file" 2 "longnet_mpi\.yaml:[0-9]+:[0-9]+: ring\.mode: $msg" \
  "$ringattn" validate "$(dirname "$deck")/longnet_mpi.yaml"
expect "run as 2 processes of a launcher" 2 'built without MPI.*without mpirun' \
  env OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$ringattn" run "$deck" --quiet "${outputs[@]}"
expect "run, mode simulated" 0 '' "$ringattn" run "$deck" --quiet --set ring.mode=simulated "${outputs[@]}"
echo "$failures failed"
[ "$failures" -eq 0 ]
