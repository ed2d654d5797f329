#!/usr/bin/env bash
# The CUDA build (compile only; nothing here needs a GPU):
#   1. Debian's non-free CUDA 11.8 toolkit (nvidia-cuda-toolkit) and g++-11,
#      installed through a private apt sources list derived from the
#      machine's own (the system's apt sources are left untouched)
#   2. Kokkos 3.4.1 with the CUDA and Serial backends,
#      arch AMPERE80 (sm_80 code plus PTX, which newer GPUs JIT-compile at
#      load), built once into ~/.cache/ringattn/kokkos-3.4.1-cuda
#   3. RingAttn against it, compiled by Kokkos' nvcc_wrapper: the library's
#      users (unit tests, MPI tests, benchmarks, the ringattn program) in
#      build-cuda/ (RINGATTN_CUDA_BUILD_DIR to change)
# Idempotent: each step is skipped when already done. Extra CMake arguments
# for RingAttn may follow.
#
#   RINGATTN_CUDA_DEPS_PREFIX  Kokkos prefix  (default ~/.cache/ringattn/kokkos-3.4.1-cuda)
#   RINGATTN_CUDA_BUILD_DIR    build folder   (default build-cuda)
#   RINGATTN_CUDA_JOBS         parallel jobs  (default: nproc)
#
# Kokkos 3.4.1 does not compile with CUDA 12+ (half precision and
# cudaMemPrefetchAsync changes), so any other nvcc on PATH (a CUDA 13 in
# /usr/local/cuda, say) is taken off PATH for this build, and CUDA_HOME,
# CUDA_PATH, CUDA_ROOT and LIBRARY_PATH are cleared (CUDAToolkit_ROOT=/usr);
# where its headers sit in /usr/local/include, CPLUS_INCLUDE_PATH puts
# Debian's CUDA headers ahead of them.
#
#   scripts/build_cuda.sh --deps-only   steps 1 and 2; prints the Kokkos prefix
#   . scripts/build_cuda.sh --env       (sourced) only sets the environment
#                                       above, to run `cmake --build build-cuda`
#                                       again by hand
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${RINGATTN_CACHE:-$HOME/.cache/ringattn}
start=$(date +%s)
log() { echo "[cuda $(( $(date +%s) - start ))s] $*" >&2; }

# --- environment: Debian's CUDA 11.8 and g++-11, nothing else ----------------
cuda_env() {
  local bindir="$cache/cuda-11.8-bin" dir newpath=
  mkdir -p "$bindir"
  ln -sf /usr/bin/nvcc "$bindir/nvcc"
  local IFS=:
  for dir in $PATH; do
    [ -n "$dir" ] || continue
    # drop every other CUDA's bin folder (its ptxas/nvlink would be used too)
    if [ "$dir" != /usr/bin ] && [ "$dir" != "$bindir" ] && [ -x "$dir/nvcc" ]; then continue; fi
    newpath=${newpath:+$newpath:}$dir
  done
  export PATH="$bindir:$newpath"
  unset CUDA_HOME CUDA_PATH CUDA_ROOT LIBRARY_PATH
  # Another CUDA's headers may sit in /usr/local/include (searched before
  # /usr/include): put Debian's CUDA headers ahead of them.
  local inc="$cache/cuda-11.8-include" pkg entry
  if [ ! -e "$inc/cuda_runtime.h" ] && [ -e /usr/include/cuda_runtime.h ]; then
    rm -rf "$inc.tmp" && mkdir -p "$inc.tmp"
    for pkg in nvidia-cuda-dev libcub-dev libthrust-dev libcu++-dev libcupti-dev libnvidia-ml-dev; do
      { dpkg -L "$pkg" 2>/dev/null || true; } | awk -F/ '$2 == "usr" && $3 == "include" && NF >= 4 { print $4 }'
    done | sort -u | while read -r entry; do ln -sfn "/usr/include/$entry" "$inc.tmp/$entry"; done
    rm -rf "$inc" && mv "$inc.tmp" "$inc"
  fi
  export CPLUS_INCLUDE_PATH="$inc${CPLUS_INCLUDE_PATH:+:$CPLUS_INCLUDE_PATH}"
  # Debian's splayed layout: nvcc in /usr/bin, headers in /usr/include,
  # libraries in /usr/lib/<multiarch> (CMake's FindCUDAToolkit knows it)
  export CUDAToolkit_ROOT=/usr
  export NVCC_WRAPPER_DEFAULT_COMPILER=g++-11
}
if [ "${1:-}" = --env ]; then
  cuda_env
  return 0 2>/dev/null || exit 0
fi
set -euo pipefail

# --- 1. Debian packages: nvidia-cuda-toolkit (non-free) and g++-11 ----------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=()
for p in nvidia-cuda-toolkit nvidia-cuda-dev g++-11; do installed "$p" || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] && SUDO= || SUDO=sudo
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || { echo "[cuda] cannot tell the Debian release from /etc/os-release" >&2; exit 1; }
  aptdir="$cache/apt-nonfree"
  mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
  # The machine's own Debian sources (deb822 stanzas and one-line entries of
  # this release's suites), with the non-free components added.
  sources="$aptdir/sources.list"
  : > "$sources"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v OUT="$sources" -v REL="$codename" '
      function flush(   n, m, i, j, U, S) {
        if (types ~ /(^| )deb( |$)/ && uris != "" && enabled != "no") {
          n = split(uris, U, " "); m = split(suites, S, " ")
          for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
            if (S[j] == REL || index(S[j], REL "-") == 1)
              printf "deb %s%s %s main contrib non-free non-free-firmware\n",
                     (key != "" ? "[signed-by=" key "] " : ""), U[i], S[j] >> OUT
        }
        types = uris = suites = key = enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^Signed-By:/ { sub(/^Signed-By:[ \t]*/, ""); key = $0 }
      /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = $0 }
      END { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [opts] URI SUITE components...  ->  same URI and suite, all components
    awk -v REL="$codename" '$1 == "deb" {
        opts = ""; i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts $i " "; i++ } opts = opts $i " "; i++ }
        if ($(i + 1) == REL || index($(i + 1), REL "-") == 1)
          printf "deb %s%s %s main contrib non-free non-free-firmware\n", opts, $i, $(i + 1)
      }' "$f" >> "$sources"
  done
  sort -u -o "$sources" "$sources"
  [ -s "$sources" ] || { echo "[cuda] no $codename suite in apt's sources to add non-free to" >&2; exit 1; }
  aptopts=(-o "Dir::Etc::SourceList=$sources" -o "Dir::Etc::SourceParts=/nonexistent"
           -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
           -o "Acquire::Languages=none")
  log "installing ${need[*]} (Debian non-free CUDA 11.8, about 1.6 GB of packages)"
  $SUDO apt-get "${aptopts[@]}" update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${aptopts[@]}" install -y -q --no-install-recommends \
    nvidia-cuda-toolkit nvidia-cuda-dev g++-11 >&2
  $SUDO apt-get "${aptopts[@]}" clean >&2
fi
cuda_env
nvcc --version | grep -q "release 11\." ||
  { echo "[cuda] nvcc on PATH is not CUDA 11: $(command -v nvcc)" >&2; nvcc --version >&2; exit 1; }
log "nvcc: $(nvcc --version | grep release), host compiler: $(g++-11 --version | head -n 1)"

# --- 2. Kokkos 3.4.1, CUDA + Serial ------------------------------------------
prefix=${RINGATTN_CUDA_DEPS_PREFIX:-$cache/kokkos-3.4.1-cuda}
prefix=$(RINGATTN_KOKKOS_CUDA=1 RINGATTN_DEPS_PREFIX="$prefix" bash "$repo/scripts/bootstrap_kokkos.sh" | tail -n 1)
log "Kokkos (CUDA) in $prefix"
if [ "${1:-}" = --deps-only ]; then
  echo "$prefix"
  exit 0
fi

# --- 3. RingAttn --------------------------------------------------------------
build=${RINGATTN_CUDA_BUILD_DIR:-$repo/build-cuda}
jobs=${RINGATTN_CUDA_JOBS:-$(nproc)}
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER="$prefix/bin/nvcc_wrapper" -DRingAttn_ENABLE_BLAS=OFF \
  -DRingAttn_ENABLE_PACKAGING_TESTS=OFF -DRingAttn_ENABLE_CUDA_BUILD_TEST=OFF "$@" >&2
cmake --build "$build" -j "$jobs" >&2
for t in ringattn_unit_tests ringattn_mpi_tests ringattn_kernel_benchmark ringattn_ring_benchmark ringattn; do
  f=$(find "$build" -type f -name "$t" -perm -u+x | head -n 1)
  [ -n "$f" ] || { echo "[cuda] $t was not built" >&2; exit 1; }
done
log "built unit tests, MPI tests, benchmarks and ringattn (CUDA) in $build"
echo "$build"
