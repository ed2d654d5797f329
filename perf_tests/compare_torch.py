#!/usr/bin/env python3
"""RingAttn's host kernel against PyTorch's scaled_dot_product_attention on
the CPU, float32, same shapes and threads, in one run.

    python3 perf_tests/compare_torch.py [--build build] [--threads 1,2]
        [--n 4096,8192,16384] [--d 64,128] [--repeats 10] [--heads H]
        [--dtypes float32,bfloat16,float16] [--quick]
    python3 perf_tests/compare_torch.py --backward [--build build] [--threads 1,2]
        [--n 4096,8192] [--d 64,128] [--repeats 5] [--dtypes float32,bfloat16]

PyTorch comes from PyPI into a virtual environment this script makes once
($HOME/.cache/ringattn/torch-venv, `pip install torch numpy`; the download is
a few GB). When that fails, the script says so and exits 0 without a table.

For every (threads, N, D, causal) the two are timed alternately, one forward
pass each per round (after one warm-up of each), for --repeats rounds; the
table gives the medians. RingAttn: ringattn_shapes_benchmark (forward() of
one member over the whole sequence, OMP_NUM_THREADS = threads). PyTorch:
SDPA in a worker process with torch.set_num_threads(threads). B = 1 and
H = 8 at N = 4,096, H = 2 at 8,192, H = 1 at 16,384 (the same work per shape
up to D), the same H for both. GFLOP/s count the (query, key) pairs kept at
4 D flops each (docs/SPEC.md section 6): N^2 dense, N (N + 1) / 2 causal, for both.
Each storage type in --dtypes is timed the same way: RingAttn stores Q, K, V
and O in it (ringattn_shapes_benchmark --dtype), PyTorch gets tensors of the
same torch dtype The storage types of a shape are timed in the same rounds,
alternately (a drift of the machine's speed touches them alike); the column
"RingAttn speed over <first dtype>" is RingAttn's median time in the first
storage type over its median time in this one (above 1: faster).

Also in the same run, per thread count: the tile-GEMM ceiling of the CBLAS the
kernel uses (ringattn_tile_gemm_probe: the tile loop without softmax, at the
kernel's default tiles for that D) and that provider's large square sgemm
(2048^3, the core's peak); the table gives RingAttn's rate over each.

--backward times the backward pass instead (the storage types of --dtypes,
dense and causal), beside the provider's large sgemm as above:
RingAttn's `backward` (ringattn_backward_benchmark --case, one member over
the whole sequence, after its forward) against PyTorch's SDPA backward
(torch.autograd.grad of the SDPA output with respect to Q, K and V, given a
random dO), alternately, one pass each per round after a warm-up. GFLOP/s
count 10 D flops per kept pair for both (recompute Q K^T, dP, dV, dQ, dK).
"""
import argparse
import os
import re
import subprocess
import sys

VENV = os.path.join(os.path.expanduser("~"), ".cache", "ringattn", "torch-venv")

WORKER = r"""
import sys, time, torch
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
cache = {}
for line in sys.stdin:
    N, H, D, causal, warm, dtype = line.split()
    N, H, D, causal, warm = int(N), int(H), int(D), int(causal), int(warm)
    key = (N, H, D, dtype)
    if key not in cache:
        cache.clear()
        cache[key] = [(torch.rand(1, H, N, D) * 2 - 1).to(getattr(torch, dtype.replace("bwd-", "")))
                      for _ in range(3)]
    q, k, v = cache[key]
    if dtype.startswith("bwd-"):  # the backward alone: grad of SDPA's output
        if len(cache) == 1:
            for x in (q, k, v):
                x.requires_grad_(True)
            cache["do"] = (torch.rand(1, H, N, D) * 2 - 1).to(q.dtype)
        for r in range(warm + 1):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
            t0 = time.perf_counter()
            torch.autograd.grad(out, (q, k, v), cache["do"])
            t = time.perf_counter() - t0
        print(t, flush=True)
        continue
    with torch.no_grad():
        for _ in range(warm):
            F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
        t0 = time.perf_counter()
        F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
        t = time.perf_counter() - t0
    print(t, flush=True)
"""


def ensure_torch():
    """Path of a python with torch, or None (and a message)."""
    py = os.path.join(VENV, "bin", "python")
    probe = [py, "-c", "import torch, numpy"]
    if os.path.exists(py) and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"[compare_torch] installing PyTorch into {VENV} (pip install torch numpy)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "torch", "numpy"], check=True)
        subprocess.run(probe, check=True)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"[compare_torch] SKIPPED: PyTorch could not be installed ({e})")
        return None
    return py


def load_average():
    """The 1-minute load average, or '?' where /proc has none."""
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def thread_env(t):
    """The environment of a run at t threads: OpenMP threads, one BLAS thread each."""
    return dict(os.environ, OMP_NUM_THREADS=str(t), OMP_PROC_BIND="false",
                MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def heads(n):
    return max(1, 8 * 4096 * 4096 // (n * n))


def gflops(n, h, d, causal, seconds):
    pairs = n * (n + 1) / 2 if causal else n * n
    return 4.0 * d * pairs * h / seconds * 1e-9


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def ringattn_once(exe, env, n, h, d, causal, dtype):
    out = subprocess.run([exe, "--warmup", "1", "--repeats", "1", "--dtype", dtype,
                          f"1,{n},{h},{d},{causal}"],
                         env=env, capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if re.match(r"^\d+,", l)][-1]
    return float(line.split(",")[5])


# The kernel's default tiles (default_tiling in RingAttn_BlockKernel.hpp)
TILES = {64: "128,256", 128: "128,1024"}


def probe(exe, env, repeats, tiles, provider):
    """{provider: {'64': tile GFLOP/s, '128': ..., 'peak': ...}} at the tiles given."""
    cmd = [exe, "--repeats", str(repeats), "--tiles", tiles]
    if provider:
        cmd += ["--provider", provider]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    rows = {}
    for l in out.splitlines():
        cells = [c.strip() for c in l.strip().strip("|").split("|")]
        if len(cells) == 6 and all(re.match(r"^[0-9.]+$", c) for c in cells[1:4]):
            rows[cells[0]] = {"64": float(cells[1]), "128": float(cells[2]), "peak": float(cells[3])}
    return rows


def ringattn_backward_once(exe, env, n, h, d, causal, dtype):
    """(forward s, backward s) of one pass of RingAttention::backward after its forward."""
    out = subprocess.run([exe, "--case", f"{n},{h},{d},{causal},1", "--dtype", dtype],
                         env=env, capture_output=True, text=True, check=True).stdout
    cells = [l for l in out.splitlines() if re.match(r"^\d+,", l)][-1].split(",")
    return float(cells[4]), float(cells[5])


def main_backward(a, py):
    exe = os.path.join(a.build, "perf_tests", "ringattn_backward_benchmark")
    if not os.access(exe, os.X_OK):
        sys.exit(f"[compare_torch] {exe} not found: build the target ringattn_backward_benchmark")
    print("| threads | dtype | case | N | H | D | RingAttn backward s | PyTorch backward s | "
          "RingAttn GFLOP/s | PyTorch GFLOP/s | ratio to PyTorch | RingAttn backward / forward | "
          "sgemm 2048^3 GFLOP/s | ratio to sgemm peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    probe_exe = os.path.join(a.build, "perf_tests", "ringattn_tile_gemm_probe")
    for t in [int(x) for x in a.threads.split(",")]:
        env = thread_env(t)
        peak = 0  # the CBLAS provider's large square sgemm at t threads
        if os.access(probe_exe, os.X_OK):
            rows = probe(probe_exe, env, a.repeats, TILES[64], a.provider)
            name = a.provider or ("MKL" if "MKL" in rows else "OpenBLAS")
            peak = rows[name]["peak"] if name in rows else 0
        worker = subprocess.Popen([py, "-c", WORKER, str(t)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        for dtype, n, d, causal in [(dt, n, d, causal) for dt in a.dtypes.split(",")
                                    for n in [int(x) for x in a.n.split(",")]
                                    for d in [int(x) for x in a.d.split(",")] for causal in (0, 1)]:
            h = a.heads or heads(n)
            rf, rb, tb = [], [], []
            for r in range(a.repeats):
                f, b = ringattn_backward_once(exe, env, n, h, d, causal, dtype)
                rf.append(f)
                rb.append(b)
                worker.stdin.write(f"{n} {h} {d} {causal} {1 if r == 0 else 0} bwd-{dtype}\n")
                worker.stdin.flush()
                tb.append(float(worker.stdout.readline()))
            b_r, b_t = median(rb), median(tb)
            g_r = gflops(n, h, d, causal, b_r) * 10 / 4
            g_t = gflops(n, h, d, causal, b_t) * 10 / 4
            cells = [str(t), dtype, "dense causal" if causal else "dense", f"{n}", str(h), str(d),
                     f"{b_r:.3f}", f"{b_t:.3f}", f"{g_r:.1f}", f"{g_t:.1f}", f"{b_t / b_r:.2f}",
                     f"{b_r / median(rf):.2f}", f"{peak:.1f}" if peak else "-",
                     f"{g_r / peak:.2f}" if peak else "-"]
            print("| " + " | ".join(cells) + " |", flush=True)
        worker.stdin.close()
        worker.wait()
    print(f"load average (1 min) at end: {load_average()}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--n", default="4096,8192,16384")
    ap.add_argument("--d", default="64,128")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--heads", type=int, default=0,
                    help="H for every N (default: 8 at 4,096, scaled as 1/N^2, at least 1)")
    ap.add_argument("--provider", default=None,
                    help="CBLAS of the ceiling columns, as the probe names it (default: MKL if "
                         "the probe has it, else OpenBLAS): the one the kernel was built with")
    ap.add_argument("--dtypes", default="float32",
                    help="storage types to time, of float32, bfloat16, float16 (comma separated)")
    ap.add_argument("--quick", action="store_true", help="N 1,024 and 3 repeats (a smoke run)")
    ap.add_argument("--backward", action="store_true",
                    help="time the backward pass against PyTorch's SDPA backward")
    a = ap.parse_args()
    if a.quick:
        a.n, a.repeats = "1024", 3
    if a.backward:
        py = ensure_torch()
        if py is None:
            return 0
        print(f"load average (1 min) at start: {load_average()}")
        return main_backward(a, py)
    exe = os.path.join(a.build, "perf_tests", "ringattn_shapes_benchmark")
    probe_exe = os.path.join(a.build, "perf_tests", "ringattn_tile_gemm_probe")
    if not os.access(exe, os.X_OK):
        sys.exit(f"[compare_torch] {exe} not found: build the target ringattn_shapes_benchmark")
    py = ensure_torch()
    if py is None:
        return 0
    print(f"load average (1 min) at start: {load_average()}")
    dtypes = a.dtypes.split(",")
    for dt in dtypes:
        if dt not in ("float32", "bfloat16", "float16"):
            sys.exit(f"[compare_torch] unknown storage type {dt!r}")
    print("| threads | dtype | case | N | H | D | RingAttn GFLOP/s | PyTorch SDPA GFLOP/s | ratio to "
          f"PyTorch | RingAttn speed over {dtypes[0]} | tile-GEMM ceiling GFLOP/s | "
          "ratio to ceiling | sgemm 2048^3 GFLOP/s | ratio to sgemm peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for t in [int(x) for x in a.threads.split(",")]:
        env = thread_env(t)
        ceil = {}  # D -> (tile-loop GFLOP/s at the kernel's tiles for D, sgemm peak)
        if os.access(probe_exe, os.X_OK):
            for d in [int(x) for x in a.d.split(",")]:
                rows = probe(probe_exe, env, a.repeats, TILES.get(d, "128,512"), a.provider)
                name = a.provider or ("MKL" if "MKL" in rows else "OpenBLAS")
                if name in rows:
                    ceil[d] = (rows[name][str(d)] if str(d) in rows[name] else 0,
                               rows[name]["peak"])
        worker = subprocess.Popen([py, "-c", WORKER, str(t)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        for dtype, n, d, causal in [(dt, n, d, causal) for dt in a.dtypes.split(",")
                                    for n in [int(x) for x in a.n.split(",")]
                                    for d in [int(x) for x in a.d.split(",")] for causal in (0, 1)]:
            h = a.heads or heads(n)
            # every storage type in the same rounds, alternately, so a drift
            # of the machine's speed touches them alike
            rt = {dt: [] for dt in dtypes}
            tt = {dt: [] for dt in dtypes}
            for r in range(a.repeats):
                for dt in dtypes:
                    rt[dt].append(ringattn_once(exe, env, n, h, d, causal, dt))
                    worker.stdin.write(f"{n} {h} {d} {causal} {1 if r == 0 else 0} {dt}\n")
                    worker.stdin.flush()
                    tt[dt].append(float(worker.stdout.readline()))
            for dt in dtypes:
                g_r = gflops(n, h, d, causal, median(rt[dt]))
                g_t = gflops(n, h, d, causal, median(tt[dt]))
                c, p = ceil.get(d, (0, 0))
                cells = [str(t), dt, "dense causal" if causal else "dense", f"{n}", str(h), str(d),
                         f"{g_r:.1f}", f"{g_t:.1f}", f"{g_r / g_t:.2f}",
                         f"{median(rt[dtypes[0]]) / median(rt[dt]):.2f}",
                         f"{c:.1f}" if c else "-", f"{g_r / c:.2f}" if c else "-",
                         f"{p:.1f}" if p else "-", f"{g_r / p:.2f}" if p else "-"]
                print("| " + " | ".join(cells) + " |", flush=True)
        worker.stdin.close()
        worker.wait()
    print(f"load average (1 min) at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
