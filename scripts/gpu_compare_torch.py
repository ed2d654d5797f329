#!/usr/bin/env python3
"""RingAttn against PyTorch's scaled_dot_product_attention, float32, on one GPU.

Run by gpu_check.sh on the GPU machine (docs/gpu.md); needs only Python and
PyTorch with CUDA (numpy and PyYAML are optional).

1. Accuracy, on one small shape (B=1, N=1024, H=8, D=64; causal and not):
   the same float32 inputs go to `ringattn run` (as .npy files; simulated ring
   at R = 1, and R = 4 zigzag) and to torch's SDPA; both outputs are compared
   with each other and with a float64 computation of the same attention.
2. Speed: dense attention, causal and not, at B=1, H=8, D=64/128 and
   N=4096..16384. RingAttn's time is RingAttention::forward on device Views
   (ringattn_shapes_benchmark), torch's is SDPA timed with CUDA events, both
   as the median of a few repeats after warm-up. GFLOP/s count only the
   (query, key) pairs kept (4 D flops per pair; causal keeps N (N + 1) / 2).

The whole run keeps within --budget-s seconds: a shape is skipped when the
time of the last smaller one, scaled by N^2, says it would not finish in what
is left. Exit 0 when the accuracy checks pass and no run failed (a skipped or
timed-out shape is reported, not failed).
"""
import argparse
import ast
import math
import os
import re
import struct
import subprocess
import sys
import time

TOLERANCE = 1e-4  # max abs error of O (and LSE) against float64 and SDPA


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="folder with ringattn and ringattn_shapes_benchmark")
    ap.add_argument("--work", required=True, help="scratch and result folder")
    ap.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    ap.add_argument("--budget-s", type=float, default=240.0, help="wall-clock budget (seconds)")
    ap.add_argument("--device", default="cuda",
                    help="torch device (cpu: a dry run of this script against a CPU build)")
    return ap.parse_args()


# ---- .npy without numpy (v1.0 header, little-endian float32/float64, C order)
def write_npy(path, tensor):
    import torch

    t = tensor.detach().to("cpu", torch.float32).contiguous()
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (tuple(t.shape),)
    pad = (64 - (10 + len(header) + 1) % 64) % 64
    header = (header + " " * pad + "\n").encode("latin1")
    try:
        data = t.numpy().tobytes()
    except Exception:  # torch built without numpy
        import array

        data = array.array("f", t.flatten().tolist()).tobytes()
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data)


def read_npy(path):
    import torch

    with open(path, "rb") as f:
        raw = f.read()
    if raw[:6] != b"\x93NUMPY":
        raise ValueError(path + ": not a .npy file")
    major = raw[6]
    if major == 1:
        hlen, start = struct.unpack("<H", raw[8:10])[0], 10
    else:
        hlen, start = struct.unpack("<I", raw[8:12])[0], 12
    header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
    if header["fortran_order"]:
        raise ValueError(path + ": Fortran order")
    dtype = {"<f4": torch.float32, "<f8": torch.float64}[header["descr"]]
    body = bytearray(raw[start + hlen:])
    return torch.frombuffer(body, dtype=dtype).reshape(header["shape"]).clone()


# ---- RingAttn -------------------------------------------------------------
DECK = """\
problem: {{batch: {B}, seq_len: {N}, heads: {H}, kv_heads: {H}, head_dim: {D}, dtype: float32}}
attention: {{kind: dense, causal: {causal}}}
ring: {{mode: simulated, size: {R}, partition: {partition}}}
input: {{source: npy, q: q.npy, k: k.npy, v: v.npy}}
verify: {{enabled: true, rows: 16, tolerance: {tol}}}
benchmark: {{warmup: 0, repeats: 1}}
output: {{results: results.yaml, o: o.npy, lse: lse.npy}}
"""


class Budget:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()


def run(cmd, timeout):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=max(1.0, timeout))


def pairs(N, causal):
    return N * (N + 1) / 2 if causal else float(N) * N


# ---- 1. accuracy ------------------------------------------------------------
def accuracy(args, torch, F, budget):
    B, N, H, D = 1, 1024, 8, 64
    work = os.path.join(args.work, "accuracy")
    os.makedirs(work, exist_ok=True)
    gen = torch.Generator().manual_seed(20240601)
    q, k, v = (torch.rand(B, N, H, D, generator=gen) * 2 - 1 for _ in range(3))  # [B, N, H, D]
    for name, t in (("q", q), ("k", k), ("v", v)):
        write_npy(os.path.join(work, name + ".npy"), t)
    dev = torch.device(args.device)
    qg, kg, vg = (t.to(dev).transpose(1, 2).contiguous() for t in (q, k, v))  # [B, H, N, D]
    scale = 1.0 / math.sqrt(D)

    print("accuracy: B=%d N=%d H=%d D=%d, float32 inputs uniform in [-1, 1), tolerance %g"
          % (B, N, H, D, TOLERANCE))
    print("| causal | ring | max abs(O - SDPA) | max abs(O - fp64) | max abs(SDPA - fp64) "
          "| max abs(LSE - fp64) | ok |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ok = True
    for causal in (False, True):
        sdpa = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
        s = (qg.double() @ kg.double().transpose(-1, -2)) * scale
        if causal:
            s.masked_fill_(torch.ones(N, N, dtype=torch.bool, device=dev).triu(1), float("-inf"))
        lse64 = torch.logsumexp(s, dim=-1)  # [B, H, N]
        o64 = torch.exp(s - lse64[..., None]) @ vg.double()
        del s
        sdpa_o = sdpa.transpose(1, 2).double().cpu()  # [B, N, H, D]
        o64_o = o64.transpose(1, 2).cpu()
        for R, partition in ((1, "contiguous"), (4, "zigzag")):
            with open(os.path.join(work, "deck.yaml"), "w") as f:
                f.write(DECK.format(B=B, N=N, H=H, D=D, causal=str(causal).lower(), R=R,
                                    partition=partition, tol=TOLERANCE))
            for out in ("o.npy", "lse.npy", "results.yaml"):
                if os.path.exists(os.path.join(work, out)):
                    os.remove(os.path.join(work, out))
            r = run([os.path.join(args.bin, "ringattn"), "run", os.path.join(work, "deck.yaml"),
                     "--quiet"], min(120.0, budget.left()))
            ring = "R=%d %s" % (R, partition)
            if r.returncode != 0:
                print("| %s | %s | ringattn failed (exit %d) | | | | no |"
                      % (causal, ring, r.returncode))
                print(r.stdout[-2000:])
                ok = False
                continue
            o = read_npy(os.path.join(work, "o.npy")).double()
            lse = read_npy(os.path.join(work, "lse.npy")).double()
            e_sdpa = (o - sdpa_o).abs().max().item()
            e_64 = (o - o64_o).abs().max().item()
            e_s64 = (sdpa_o - o64_o).abs().max().item()
            e_lse = (lse - lse64.cpu()).abs().max().item()
            good = max(e_sdpa, e_64, e_lse) <= TOLERANCE
            ok = ok and good
            print("| %s | %s | %.3e | %.3e | %.3e | %.3e | %s |"
                  % (causal, ring, e_sdpa, e_64, e_s64, e_lse, "yes" if good else "NO"))
    return ok


# ---- 2. speed ---------------------------------------------------------------
def time_sdpa(torch, F, device, B, N, H, D, causal, warmup, repeats):
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    q, k, v = (torch.rand(B, H, N, D, device=dev) * 2 - 1 for _ in range(3))
    for _ in range(warmup):
        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        if cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop) * 1e-3)
        else:
            t0 = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            times.append(time.perf_counter() - t0)
    del q, k, v
    if cuda:
        torch.cuda.empty_cache()
    times.sort()
    return times[len(times) // 2]


def time_ringattn(args, B, N, H, D, causal, warmup, repeats, timeout):
    r = run([os.path.join(args.bin, "ringattn_shapes_benchmark"), "--warmup", str(warmup),
             "--repeats", str(repeats), "%d,%d,%d,%d,%d" % (B, N, H, D, int(causal))], timeout)
    if r.returncode != 0:
        raise RuntimeError("ringattn_shapes_benchmark exit %d:\n%s" % (r.returncode, r.stdout[-2000:]))
    for line in r.stdout.splitlines():
        m = re.match(r"^(\d+),(\d+),(\d+),(\d+),([01]),([^,]+),", line)
        if m:
            return float(m.group(6))
    raise RuntimeError("no result line in:\n" + r.stdout[-2000:])


def speed(args, torch, F, budget):
    B, H = 1, 8
    Ns = (4096, 16384) if args.quick else (4096, 8192, 16384)
    Ds = (64, 128)
    warmup, repeats = (1, 2) if args.quick else (1, 3)
    print()
    print("speed: dense attention, float32, B=%d H=%d; median of %d after %d warm-up; "
          "GFLOP/s on kept (query, key) pairs" % (B, H, repeats, warmup))
    print("| N | D | causal | RingAttn ms | RingAttn GFLOP/s | SDPA ms | SDPA GFLOP/s "
          "| RingAttn / SDPA |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    sys.stdout.flush()
    rows, ok = [], True
    last = {}  # (D, causal) -> (N, wall seconds) of the last RingAttn run there
    for N in Ns:  # small shapes of every kind first
        for D in Ds:
            for causal in (False, True):
                flops = 4.0 * D * B * H * pairs(N, causal)
                limit = min(150.0, budget.left() - 10)
                # work grows as N^2: skip what would not finish in time
                prev = last.get((D, causal))
                guess = prev[1] * (N / prev[0]) ** 2 if prev else 0.0
                if limit < 10 or guess > limit:
                    print("| %d | %d | %s | skipped (%s) | | | | |"
                          % (N, D, causal, "budget spent" if limit < 10 else
                             "would take about %.0f s" % guess))
                    continue
                try:
                    t0 = time.monotonic()
                    ra = time_ringattn(args, B, N, H, D, causal, warmup, repeats, limit)
                    last[(D, causal)] = (N, time.monotonic() - t0)
                except subprocess.TimeoutExpired:
                    print("| %d | %d | %s | timed out after %.0f s | | | | |" % (N, D, causal, limit))
                    last[(D, causal)] = (N, 1e9)
                    continue
                except Exception as e:  # noqa: BLE001 - report and go on
                    print("| %d | %d | %s | failed | | | | |" % (N, D, causal))
                    print(str(e))
                    ok = False
                    last[(D, causal)] = (N, 1e9)
                    continue
                sd = time_sdpa(torch, F, args.device, B, N, H, D, causal, 2, 5)
                rows.append((N, D, causal, ra, flops / ra * 1e-9, sd, flops / sd * 1e-9))
                print("| %d | %d | %s | %.2f | %.0f | %.2f | %.0f | %.3f |"
                      % (N, D, causal, ra * 1e3, flops / ra * 1e-9, sd * 1e3, flops / sd * 1e-9,
                         sd / ra))
                sys.stdout.flush()
    with open(os.path.join(args.work, "speed.csv"), "w") as f:
        f.write("N,D,causal,ringattn_s,ringattn_gflops,sdpa_s,sdpa_gflops\n")
        for r in rows:
            f.write("%d,%d,%d,%.6e,%.3f,%.6e,%.3f\n" % (r[0], r[1], int(r[2]), r[3], r[4], r[5], r[6]))
    return ok


def main():
    args = parse_args()
    os.makedirs(args.work, exist_ok=True)
    budget = Budget(args.budget_s)
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001
        print("torch: not importable (%s); no comparison" % e)
        return 3
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("torch %s: CUDA not available; no comparison" % torch.__version__)
        return 3
    if not hasattr(F, "scaled_dot_product_attention"):
        print("torch %s has no scaled_dot_product_attention (needs 2.0+)" % torch.__version__)
        return 3
    bk = torch.backends.cuda
    print("torch %s, CUDA %s, %s; SDPA backends enabled: flash %s, mem_efficient %s, math %s "
          "(float32 rules out flash); matmul TF32 %s"
          % (torch.__version__, torch.version.cuda,
             torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device,
             bk.flash_sdp_enabled(), bk.mem_efficient_sdp_enabled(), bk.math_sdp_enabled(),
             bk.matmul.allow_tf32))
    good = accuracy(args, torch, F, budget)
    fast_ok = speed(args, torch, F, budget)
    print()
    print("accuracy %s; speed runs %s" % ("passed" if good else "FAILED",
                                          "without errors" if fast_ok else "FAILED"))
    return 0 if good and fast_ok else 1


if __name__ == "__main__":
    sys.exit(main())
