#!/usr/bin/env bash
# RingAttn on a GPU (docs/gpu.md). Two steps, on two machines:
#
#   scripts/gpu_check.sh pack [DIR]
#       On the build machine (Debian 12; no GPU needed). Builds RingAttn for
#       CUDA with scripts/build_cuda.sh's toolchain and Kokkos, without MPI
#       and with the CUDA runtime linked statically, for sm_80 (+ PTX) and
#       sm_90, and packs DIR (default gpu-bundle/): bin/ (unit tests, ringattn,
#       npy compare, benchmarks), lib/ (shared libraries the binaries need
#       beyond glibc and the GPU driver; libstdc++ in lib/fallback/, used only
#       where the machine's is missing or too old), data/ (golden cases),
#       inputs/ (decks), this script, gpu_compare_torch.py and MANIFEST.
#
#   DIR/gpu_check.sh run [--quick]
#       On the GPU machine: needs the NVIDIA driver, and Python with PyTorch
#       (CUDA) for the comparison; no network, no compiler, no MPI. Runs, each
#       under a time limit, the unit tests (Cuda and Serial backends), every
#       golden deck through `ringattn run` (simulated ring at R = 1 and 4, both
#       partitions) against the float64 answers, the kernel benchmark's smoke
#       run, and the comparison with torch.nn.functional.scaled_dot_product_attention
#       (float32, same GPU, same shapes: accuracy on a small shape, then a
#       GFLOP/s table). About 3-5 minutes; --quick does less. Exit 0 when every
#       step passed. Logs and tables go to RINGATTN_GPU_OUT (default a fresh
#       folder under /tmp), whose path is printed.
#
#   RINGATTN_GPU_BUDGET_S   run: wall-clock limit of the whole run (default 540);
#                           each step gets the smaller of its own limit and
#                           what is left
#   RINGATTN_GPU_BUILD_DIR  pack: build folder (default build-cuda-gpu)
#   RINGATTN_GPU_SASS       pack: extra native GPU code, e.g. "90" or "90 86"
#                           (default 90; empty: sm_80 + PTX only, JIT elsewhere)
set -uo pipefail

die() { echo "[gpu] $*" >&2; exit 1; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# --------------------------------------------------------------------------
pack() {
  set -e
  local repo out build prefix jobs sass
  repo=$(cd "$here/.." && pwd)
  [ -f "$repo/CMakeLists.txt" ] && [ -f "$repo/scripts/build_cuda.sh" ] ||
    die "pack runs from the repository (scripts/gpu_check.sh pack)"
  out=${1:-$repo/gpu-bundle}
  build=${RINGATTN_GPU_BUILD_DIR:-$repo/build-cuda-gpu}
  jobs=${RINGATTN_CUDA_JOBS:-$(nproc)}
  sass=${RINGATTN_GPU_SASS-90}

  prefix=$(bash "$repo/scripts/build_cuda.sh" --deps-only | tail -n 1)
  # shellcheck source=build_cuda.sh
  . "$repo/scripts/build_cuda.sh" --env
  local gencode="" a
  for a in $sass; do gencode="$gencode -gencode=arch=compute_$a,code=sm_$a"; done
  # nvcc_wrapper takes one -arch (Kokkos' sm_80); nvcc itself adds these.
  export NVCC_APPEND_FLAGS="${gencode# }"
  echo "[gpu] building the GPU bundle's binaries in $build (sm_80 + PTX${sass:+, sm_${sass// /, sm_}})" >&2
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CXX_COMPILER="$prefix/bin/nvcc_wrapper" \
    -DCMAKE_PROJECT_RingAttn_INCLUDE="$repo/cmake/RingAttnStaticCudart.cmake" \
    -DRingAttn_ENABLE_MPI=OFF -DRingAttn_ENABLE_BLAS=OFF -DRingAttn_ENABLE_PACKAGING_TESTS=OFF \
    -DRingAttn_ENABLE_CUDA_BUILD_TEST=OFF \
    -DRingAttn_TEST_DATA_DIR=data -DRingAttn_TEST_INPUTS_DIR=inputs >&2
  cmake --build "$build" -j "$jobs" --target ringattn_unit_tests ringattn_exe ringattn_npy_compare \
    ringattn_kernel_benchmark ringattn_shapes_benchmark >&2

  rm -rf "$out"
  mkdir -p "$out/bin" "$out/lib/fallback" "$out/data" "$out/inputs"
  local bins=(unit_tests/ringattn_unit_tests src/driver/ringattn unit_tests/ringattn_npy_compare
              perf_tests/ringattn_kernel_benchmark perf_tests/ringattn_shapes_benchmark) b
  for b in "${bins[@]}"; do cp "$build/$b" "$out/bin/"; done
  # Shared libraries beyond glibc and the driver travel along (yaml-cpp, ...);
  # libcudart is linked statically. libstdc++ and libgcc_s go to
  # lib/fallback/, used only where the machine's own are missing or too old
  # (Debian 12's libstdc++ wants glibc 2.36; the binaries themselves less).
  local lib
  for b in "$out"/bin/*; do
    ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
  done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libcuda.so*|libnvidia*) ;;
      libstdc++.so*|libgcc_s.so*) cp -L "$lib" "$out/lib/fallback/" ;;
      libcudart.so*) echo "[gpu] warning: $lib is linked dynamically; packed too" >&2; cp -L "$lib" "$out/lib/" ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
  cp -r "$repo/unit_tests/data/." "$out/data/"
  find "$repo/inputs" -maxdepth 1 -type f -exec cp {} "$out/inputs/" \;
  cp "$repo/scripts/gpu_check.sh" "$repo/scripts/gpu_compare_torch.py" "$out/"

  local glibc glibcxx
  glibc=$(for b in "$out"/bin/* "$out"/lib/*.so*; do objdump -T "$b" 2>/dev/null; done |
          grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
  local glibc_fallback
  glibc_fallback=$(for b in "$out"/lib/fallback/*; do objdump -T "$b" 2>/dev/null; done |
                   grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
  glibcxx=$(for b in "$out"/bin/*; do objdump -T "$b" 2>/dev/null; done |
            grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -n 1)
  {
    echo "RingAttn GPU bundle (scripts/gpu_check.sh pack; run: ./gpu_check.sh run)"
    echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "packed: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "nvcc: $(nvcc --version | grep release)"
    echo "host compiler: $(g++-11 --version | head -n 1)"
    echo "kokkos: 3.4.1, CUDA + Serial, arch AMPERE80; MPI off; CUDA runtime static"
    echo "gpu code: $(cuobjdump --list-elf "$out/bin/ringattn" 2>/dev/null | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')+ PTX $(cuobjdump --list-ptx "$out/bin/ringattn" 2>/dev/null | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')"
    echo "needs: glibc >= ${glibc#GLIBC_}, libstdc++ with ${glibcxx} (else lib/fallback/'s, which needs glibc >= ${glibc_fallback#GLIBC_}), an NVIDIA driver for CUDA 11.8 or later (R520+)"
    echo "files:"
    (cd "$out" && find bin lib -type f | sort | sed 's/^/  /')
  } > "$out/MANIFEST"
  echo "[gpu] packed $(du -sh "$out" | cut -f1) into $out" >&2
  cat "$out/MANIFEST" >&2
  echo "$out"
}

# --------------------------------------------------------------------------
run() {
  local bundle="" quick=0 a
  for a in "$@"; do
    case "$a" in
      --quick) quick=1 ;;
      *) bundle=$a ;;
    esac
  done
  if [ -z "$bundle" ]; then
    if [ -f "$here/MANIFEST" ]; then bundle=$here; else bundle=$(cd "$here/.." && pwd)/gpu-bundle; fi
  fi
  bundle=$(cd "$bundle" 2>/dev/null && pwd) || die "no bundle at ${bundle} (run: scripts/gpu_check.sh pack)"
  [ -f "$bundle/MANIFEST" ] || die "$bundle is not a GPU bundle (no MANIFEST)"
  local out=${RINGATTN_GPU_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/ringattn-gpu-check.XXXXXX")}
  mkdir -p "$out"
  export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # PTX is compiled for GPUs without native code at load; keep the result.
  export CUDA_CACHE_PATH=${CUDA_CACHE_PATH:-${TMPDIR:-/tmp}/ringattn-cuda-cache}
  export CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-4294967296}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  local bin=$bundle/bin start=$SECONDS budget=${RINGATTN_GPU_BUDGET_S:-540}
  local -a results=()
  local failed=0

  echo "== RingAttn GPU check: bundle $bundle, logs in $out"
  sed -n '2,8p' "$bundle/MANIFEST"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/GPU: /'
  else
    echo "GPU: nvidia-smi not found"
  fi
  local missing
  missing=$(for b in "$bin"/*; do ldd "$b" 2>&1 | grep 'not found'; done | sort -u)
  if [ -n "$missing" ]; then # the machine's libstdc++ is missing or too old: the bundled one
    export LD_LIBRARY_PATH="$bundle/lib:$bundle/lib/fallback${LD_LIBRARY_PATH#"$bundle/lib"}"
    echo "libstdc++: the bundle's ($missing)" | tr '\n' ' '; echo
    missing=$(for b in "$bin"/*; do ldd "$b" 2>&1 | grep 'not found'; done | sort -u)
  fi
  if [ -n "$missing" ]; then
    echo "missing shared libraries on this machine:"; echo "$missing"
    die "the bundle cannot run here (see MANIFEST for what it needs)"
  fi

  # step NAME LIMIT_S COMMAND...: runs in the bundle folder, output to $out/NAME.log
  step() {
    local name=$1 limit=$2 t0=$SECONDS rc left
    shift 2
    left=$((budget - (SECONDS - start)))
    if [ "$left" -lt 20 ]; then
      results+=("SKIP  $name (the run's ${budget}s budget is spent)")
      failed=1
      return 0
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    echo "-- $name (limit ${limit}s)"
    (cd "$bundle" && timeout --kill-after=10 "$limit" "$@") > "$out/$name.log" 2>&1
    rc=$?
    local took=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
      results+=("PASS  $name (${took}s)")
    else
      [ $rc -eq 124 ] || [ $rc -eq 137 ] && rc="timeout after ${limit}s" || rc="exit $rc"
      results+=("FAIL  $name (${took}s, $rc, log $out/$name.log)")
      failed=1
      echo "   FAILED ($rc); last lines of $out/$name.log:"
      tail -n 25 "$out/$name.log" | sed 's/^/   | /'
    fi
    return 0
  }

  # 1. Unit tests: every templated case on Kokkos::Cuda and Kokkos::Serial,
  #    the driver's golden runs on the default (Cuda) space.
  step unit_tests 420 "$bin/ringattn_unit_tests"
  grep -E "^(All tests passed|test cases:)" "$out/unit_tests.log" | sed 's/^/   /'

  # 2. The golden decks through the program: O and LSE against float64 answers.
  golden() {
    local case_dir name R part tmp
    tmp=$(mktemp -d)
    for case_dir in data/golden/*/; do
      name=$(basename "$case_dir")
      [ -f "$case_dir/deck.yaml" ] || continue
      for R in 1 4; do
        for part in contiguous zigzag; do
          [ "$R" = 1 ] && [ "$part" = zigzag ] && continue
          echo "== $name R=$R $part"
          "$bin/ringattn" run "$case_dir/deck.yaml" --quiet --set ring.mode=simulated \
            --set ring.size=$R --set ring.partition=$part --set verify.enabled=true \
            --set verify.tolerance=2e-5 --set output.o="$tmp/o.npy" --set output.lse="$tmp/lse.npy" \
            --set output.results="$tmp/results.yaml" || return 1
          "$bin/ringattn_npy_compare" "$tmp/o.npy" "$case_dir/o_ref.npy" 2e-5 || return 1
          "$bin/ringattn_npy_compare" "$tmp/lse.npy" "$case_dir/lse_ref.npy" 2e-5 || return 1
          grep -q "status: ok" "$tmp/results.yaml" || return 1
        done
      done
    done
    rm -rf "$tmp"
    echo "all golden decks passed"
  }
  export -f golden
  export bin
  step golden_decks 240 bash -c golden

  # 3. The kernel benchmark's smoke run (dense, causal, dilated; small).
  step kernel_benchmark_smoke 180 "$bin/ringattn_kernel_benchmark" --smoke
  grep '^|' "$out/kernel_benchmark_smoke.log" | head -n 8 | sed 's/^/   /'

  # 4. PyTorch's scaled_dot_product_attention on the same GPU and shapes.
  local py=${PYTHON:-python3}
  local -a qopt=()
  [ $quick = 1 ] && qopt=(--quick)
  local tb=$((budget - (SECONDS - start) - 30))
  [ "$tb" -gt 270 ] && tb=270
  step torch_comparison 300 "$py" "$bundle/gpu_compare_torch.py" --bin "$bin" --work "$out/torch" \
    --budget-s "$tb" "${qopt[@]}"
  sed -n '/^accuracy/,$p' "$out/torch_comparison.log" | sed 's/^/   /'

  echo "== summary ($((SECONDS - start))s; logs in $out)"
  printf '%s\n' "${results[@]}"
  return $failed
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
