#!/usr/bin/env bash
# The hostile-input table (unit_tests/hostile/cases.tsv): each row makes a
# folder with a deck and files, runs one ringattn command in it and checks
#   - the exit code is the expected one (never a signal: < 128),
#   - it finished within the time limit (no hang),
#   - stderr matches the row's regex (for exits 1 and 2; stdout and stderr
#     together for exits 0 and 3), and holds no crash report,
#   - a failing run (exit 1 or 2) left no file behind: no results, O, LSE or
#     CSV, and no temporary *.tmp.* file (none after any run).
#
#   run_hostile.sh RINGATTN MAKE_NPY TABLE serial|mpi [MPIEXEC] [CASE_REGEX]
#
# Table columns (tab-separated; '#' starts a comment line):
#   name  np  setup  command  exit  regex
# np: '-' runs the command directly (serial), a number runs it under
# MPIEXEC -np N. setup: directives separated by ' ;; ', run in order:
#   base | basenpy             the small valid deck (random inputs / q,k,v .npy)
#   deck TEXT                  deck.yaml := TEXT (printf %b: \n, \t, \xHH)
#   file NAME TEXT             NAME := TEXT (printf %b)
#   repeat NAME COUNT TEXT     append TEXT to NAME COUNT times
#   npy NAME [key=value]...    an .npy file by MAKE_NPY (see make_npy.cpp)
#   mkdir NAME | rm NAME
# command: the ringattn arguments (shell words), after optional VAR=VALUE
# environment settings.
set -uo pipefail
ringattn=$(realpath "$1") make_npy=$(realpath "$2") table=$3 mode=$4
mpiexec=${5:-mpirun} only=${6:-}
limit=${RINGATTN_HOSTILE_TIMEOUT:-60}
export OMP_NUM_THREADS=1 OMP_PROC_BIND=false
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

work=$(mktemp -d "${TMPDIR:-/tmp}/ringattn_hostile.XXXXXX")
trap 'rm -rf "$work"' EXIT

base_deck='problem: {batch: 1, seq_len: 32, heads: 2, kv_heads: 2, head_dim: 8, dtype: float32}
ring: {mode: simulated, size: 2, partition: contiguous}
verify: {enabled: true, rows: 4, tolerance: 1.0e-4}
benchmark: {warmup: 0, repeats: 1}
output: {results: results.yaml, o: o.npy, lse: lse.npy}
'

# setup DIRECTIVE: one directive, in the case's folder (the current one).
setup() {
  local verb=${1%% *} rest=""
  [ "$verb" != "$1" ] && rest=${1#* }
  case $verb in
  base) printf '%s' "$base_deck" >deck.yaml ;;
  basenpy)
    printf '%sinput: {source: npy, q: q.npy, k: k.npy, v: v.npy}\n' "$base_deck" >deck.yaml
    "$make_npy" q.npy seed=1 && "$make_npy" k.npy seed=2 && "$make_npy" v.npy seed=3 ;;
  deck) printf '%b' "$rest" >deck.yaml ;;
  file) printf '%b' "${rest#* }" >"${rest%% *}" ;;
  repeat)
    local name count text i
    read -r name count text <<<"$rest"
    for ((i = 0; i < count; ++i)); do printf '%b' "$text"; done >>"$name" ;;
  npy) # shellcheck disable=SC2086
    "$make_npy" $rest ;;
  mkdir) mkdir -p "$rest" ;;
  rm) rm -rf "$rest" ;;
  *) echo "unknown setup directive '$verb'" >&2; return 1 ;;
  esac
}

# Files under the folder (sorted), for "nothing left behind".
listing() { (cd "$1" && find . -mindepth 1 \( -type f -o -type l \) | LC_ALL=C sort); }

crash='terminate called|Segmentation fault|core dumped|Aborted|ERROR: [A-Za-z]+Sanitizer|runtime error:|signal [0-9]+ \(|exited on signal|Bus error|stack smashing'
# run_case NAME NP SETUP COMMAND EXIT REGEX: one row, in its own folder; the
# report (one line, and the reasons when it fails) goes to stdout.
run_case() {
  local name=$1 np=$2 setup_text=$3 command=$4 expected=$5 regex=$6
  local dir ok why rest directive words envs launcher start rc ms took new w
  dir="$work/$name"
  mkdir -p "$dir"
  cd "$dir" || return 1
  ok=1 why=()
  rest=$setup_text
  while [ -n "$rest" ]; do
    directive=${rest%% ;; *}
    [ "$directive" = "$rest" ] && rest="" || rest=${rest#* ;; }
    [ "$directive" = "-" ] && continue
    setup "$directive" || { ok=0; why+=("setup failed: $directive"); }
  done
  listing "$dir" >"$work/$name.before"

  eval "words=($command)"
  envs=()
  while [ ${#words[@]} -gt 0 ] && [[ ${words[0]} =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do
    envs+=("${words[0]}")
    words=("${words[@]:1}")
  done
  launcher=()
  [ "$np" != "-" ] && launcher=("$mpiexec" -np "$np") # Open MPI: oversubscribe set above
  start=$(date +%s%N)
  # Its own Open MPI session folder per row: rows run at once, and Open MPI
  # 4.x races on a shared one (open-mpi/ompi#8510).
  timeout -k 5 "$limit" env OMPI_MCA_orte_tmpdir_base="$work/$name.ompi" \
    PRTE_MCA_prte_tmpdir_base="$work/$name.ompi" "${envs[@]}" "${launcher[@]}" "$ringattn" "${words[@]}" \
    </dev/null >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  took=$((ms / 1000)).$(((ms % 1000) / 100))

  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    ok=0 why+=("no exit within ${limit}s (hang)")
  elif [ $rc -ge 128 ]; then
    ok=0 why+=("ended by signal $((rc - 128))")
  elif [ "$rc" != "$expected" ]; then
    ok=0 why+=("exit $rc, expected $expected")
  fi
  if grep -Eq "$crash" "$work/$name.err" "$work/$name.out"; then
    ok=0 why+=("crash report in the output")
  fi
  if [ "$expected" = 1 ] || [ "$expected" = 2 ]; then
    grep -Eq -- "$regex" "$work/$name.err" || { ok=0; why+=("stderr does not match /$regex/"); }
  else
    cat "$work/$name.out" "$work/$name.err" | grep -Eq -- "$regex" ||
      { ok=0; why+=("output does not match /$regex/"); }
  fi
  listing "$dir" >"$work/$name.after"
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
    new=$(LC_ALL=C comm -13 "$work/$name.before" "$work/$name.after")
    [ -n "$new" ] && { ok=0; why+=("a failed run left files behind: $(echo "$new" | tr '\n' ' ')"); }
  fi
  if grep -q '\.tmp\.' "$work/$name.after"; then
    ok=0 why+=("temporary files left: $(grep '\.tmp\.' "$work/$name.after" | tr '\n' ' ')")
  fi

  if [ $ok = 1 ]; then
    printf 'ok    %-40s exit %s  %ss\n' "$name" "$rc" "$took"
  else
    printf 'FAIL  %-40s exit %s  %ss\n' "$name" "$rc" "$took"
    for w in "${why[@]}"; do echo "      - $w"; done
    echo "      command: ringattn ${words[*]}"
    sed 's/^/      stderr: /' "$work/$name.err" | head -n 8
  fi
}

# Rows run `parallel` at a time (RINGATTN_HOSTILE_JOBS, default 2; 1 under mpirun),
# each in the background with its report in a file, printed in table order.
parallel=${RINGATTN_HOSTILE_JOBS:-2}
[ "$mode" = mpi ] && parallel=1
names=()
while IFS=$'\t' read -r name np setup_text command expected regex || [ -n "$name" ]; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  if [ "$mode" = serial ] && [ "$np" != "-" ]; then continue; fi
  if [ "$mode" = mpi ] && [ "$np" = "-" ]; then continue; fi
  if [ -n "$only" ] && ! [[ $name =~ $only ]]; then continue; fi
  names+=("$name")
  run_case "$name" "$np" "$setup_text" "$command" "$expected" "$regex" </dev/null \
    >"$work/$name.report" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
done <"$table"
wait

total=${#names[@]} failures=0
for name in "${names[@]}"; do
  cat "$work/$name.report"
  grep -q '^ok ' "$work/$name.report" || failures=$((failures + 1))
done

echo "$total cases, $failures failed"
[ "$total" -gt 0 ] && [ "$failures" -eq 0 ]
