"""`python -m tf_convgrad bench`: ours against TensorFlow's own CPU kernels.

Method (see docs/PERF.md for results):
* TensorFlow's kernel choice is fixed per process by TF_ENABLE_ONEDNN_OPTS, so the suite runs in
  two worker processes, oneDNN on and oneDNN off. Each worker times ours and TF's on the very same
  inputs, interleaved call by call (the order reshuffled every round), eagerly, after warm-up
  calls. Reported times are medians; "ours" is the lower of the two workers' medians, and TF's
  best is the lower of its oneDNN and native medians.
* The tool measures the machine itself: an SGEMM (tf.matmul, all threads) for the float32 peak
  FLOP rate and a large streaming multiply for the memory bandwidth. The roofline time of a case
  is max(flops / peak, bytes / bandwidth), bytes being the minimum traffic (read both inputs,
  write the output once); "% roofline" = roofline time / measured time.
* Each worker records the CPU time other processes used while a case ran ("fgn", in cores, from
  /proc/stat): timings taken at fgn > 0.3 are not trustworthy on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

OPS = {
    "CBF": "Conv2DBackpropFilter",
    "DBF": "DepthwiseConv2dNativeBackpropFilter",
    "DBI": "DepthwiseConv2dNativeBackpropInput",
}

# (name, op, batch, h, w, c, k, stride, multiplier or out_depth, padding)
_DEPTHWISE = [
    ("mbv2 112x112x32 k3", 16, 112, 112, 32, 3, 1, 1, "SAME"),
    ("mbv2 113x113x96 k3 s2 (pad+VALID)", 16, 113, 113, 96, 3, 2, 1, "VALID"),
    ("mbv2 56x56x144 k3", 16, 56, 56, 144, 3, 1, 1, "SAME"),
    ("mbv2 56x56x144 k3 s2", 16, 56, 56, 144, 3, 2, 1, "SAME"),
    ("mbv2 28x28x192 k3", 32, 28, 28, 192, 3, 1, 1, "SAME"),
    ("mbv2 29x29x192 k3 s2 (pad+VALID)", 32, 29, 29, 192, 3, 2, 1, "VALID"),
    ("mbv2 14x14x384 k3", 32, 14, 14, 384, 3, 1, 1, "SAME"),
    ("mbv2 14x14x576 k3", 32, 14, 14, 576, 3, 1, 1, "SAME"),
    ("mbv2 14x14x576 k3 s2", 32, 14, 14, 576, 3, 2, 1, "SAME"),
    ("mbv2 7x7x960 k3", 32, 7, 7, 960, 3, 1, 1, "SAME"),
    ("effb0 56x56x144 k5 s2", 16, 56, 56, 144, 5, 2, 1, "SAME"),
    ("effb0 28x28x240 k5", 32, 28, 28, 240, 5, 1, 1, "SAME"),
    ("effb0 14x14x672 k5", 32, 14, 14, 672, 5, 1, 1, "SAME"),
    ("effb0 14x14x672 k5 s2", 32, 14, 14, 672, 5, 2, 1, "SAME"),
    ("effb0 7x7x1152 k5", 32, 7, 7, 1152, 5, 1, 1, "SAME"),
    ("k7 28x28x192", 32, 28, 28, 192, 7, 1, 1, "SAME"),
    ("k7 14x14x384 s2", 32, 14, 14, 384, 7, 2, 1, "SAME"),
    ("batch1 112x112x32 k3", 1, 112, 112, 32, 3, 1, 1, "SAME"),
    ("batch1 14x14x672 k5", 1, 14, 14, 672, 5, 1, 1, "SAME"),
    ("mult2 56x56x32 k3", 16, 56, 56, 32, 3, 1, 2, "SAME"),
    ("mult2 28x28x96 k3 s2", 32, 28, 28, 96, 3, 2, 2, "SAME"),
    ("mult2 14x14x192 k5 VALID", 32, 14, 14, 192, 5, 1, 2, "VALID"),
]
_RESNET = [
    ("rn50 stem 230x230x3->64 k7 s2 (pad+VALID)", 8, 230, 230, 3, 7, 2, 64, "VALID"),
    ("rn50 56x56x64->64 k3", 16, 56, 56, 64, 3, 1, 64, "SAME"),
    ("rn50 56x56x64->256 k1", 16, 56, 56, 64, 1, 1, 256, "SAME"),
    ("rn50 56x56x256->64 k1", 16, 56, 56, 256, 1, 1, 64, "SAME"),
    ("rn50 56x56x256->512 k1 s2", 16, 56, 56, 256, 1, 2, 512, "SAME"),
    ("rn50 56x56x128->128 k3 s2", 16, 56, 56, 128, 3, 2, 128, "SAME"),
    ("rn50 28x28x128->128 k3", 16, 28, 28, 128, 3, 1, 128, "SAME"),
    ("rn50 14x14x256->256 k3", 32, 14, 14, 256, 3, 1, 256, "SAME"),
    ("rn50 14x14x1024->256 k1", 32, 14, 14, 1024, 1, 1, 256, "SAME"),
    ("rn50 7x7x512->512 k3", 32, 7, 7, 512, 3, 1, 512, "SAME"),
    ("rn50 7x7x512->2048 k1", 32, 7, 7, 512, 1, 1, 2048, "SAME"),
]
_OTHER_DTYPES = {
    "DBF": ["mbv2 56x56x144 k3", "effb0 14x14x672 k5"],
    "DBI": ["mbv2 56x56x144 k3", "effb0 14x14x672 k5"],
    "CBF": ["rn50 28x28x128->128 k3", "rn50 14x14x1024->256 k1"],
}
_QUICK = {"mbv2 56x56x144 k3", "effb0 14x14x672 k5", "mult2 56x56x32 k3", "rn50 28x28x128->128 k3"}


def suite(quick=False, ops=None, dtypes=None):
    """The benchmark cases, as plain dicts."""
    cases = []
    for op in ("DBF", "DBI", "CBF"):
        table = _RESNET if op == "CBF" else _DEPTHWISE
        for name, n, h, w, c, k, s, mo, pad in table:
            if quick and name not in _QUICK:
                continue
            names = ["float32"] + (
                ["bfloat16", "float16", "float64"] if name in _OTHER_DTYPES[op] else []
            )
            for dt in names:
                if (ops and op not in ops) or (dtypes and dt not in dtypes):
                    continue
                cases.append(
                    dict(op=op, name=name, n=n, h=h, w=w, c=c, k=k, s=s, mo=mo, pad=pad, dtype=dt)
                )
    return cases


def _out(size, k, s, pad):
    return (size + s - 1) // s if pad == "SAME" else (size - k + s) // s


def cost(case):
    """(flops, bytes) of a case: 2 x multiply-adds, and the minimum memory traffic."""
    n, h, w, c, k, s, mo = (case[key] for key in ("n", "h", "w", "c", "k", "s", "mo"))
    oh, ow = _out(h, k, s, case["pad"]), _out(w, k, s, case["pad"])
    item = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}[case["dtype"]]
    if case["op"] == "CBF":
        macs = n * oh * ow * k * k * c * mo
        elems = n * h * w * c + n * oh * ow * mo + k * k * c * mo
    else:
        macs = n * oh * ow * k * k * c * mo
        elems = n * h * w * c + n * oh * ow * c * mo + k * k * c * mo
    return 2 * macs, elems * item


# ----------------------------------------------------------------------------- worker side


def _foreign_jiffies():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    with open("/proc/self/stat") as f:
        own = sum(int(v) for v in f.read().rsplit(")", 1)[1].split()[11:15])
    return busy - own


def _worker(cases, out_path, budget):
    import numpy as np
    import tensorflow as tf

    import tf_convgrad

    hz = os.sysconf("SC_CLK_TCK")
    results = []
    rng = np.random.default_rng(0)
    for idx, case in enumerate(cases):
        n, h, w, c, k, s, mo = (case[key] for key in ("n", "h", "w", "c", "k", "s", "mo"))
        oh, ow = _out(h, k, s, case["pad"]), _out(w, k, s, case["pad"])
        dt = tf.as_dtype(case["dtype"])
        od = mo if case["op"] == "CBF" else c * mo
        x = tf.cast(rng.standard_normal((n, h, w, c), dtype=np.float32), dt)
        dy = tf.cast(rng.standard_normal((n, oh, ow, od), dtype=np.float32), dt)
        f = tf.cast(rng.standard_normal((k, k, c, mo), dtype=np.float32), dt)
        attrs = dict(strides=[1, s, s, 1], padding=case["pad"])
        if case["op"] == "DBI":
            kw = dict(input_sizes=tf.constant([n, h, w, c]), filter=f, out_backprop=dy, **attrs)
            ours, theirs = (
                tf_convgrad.depthwise_conv2d_native_backprop_input,
                (tf.raw_ops.DepthwiseConv2dNativeBackpropInput),
            )
        else:
            kw = dict(input=x, filter_sizes=tf.constant([k, k, c, mo]), out_backprop=dy, **attrs)
            ours, theirs = (
                (tf_convgrad.conv2d_backprop_filter, tf.raw_ops.Conv2DBackpropFilter)
                if case["op"] == "CBF"
                else (
                    tf_convgrad.depthwise_conv2d_native_backprop_filter,
                    tf.raw_ops.DepthwiseConv2dNativeBackpropFilter,
                )
            )
        impls = {
            "ours": lambda fn=ours, kw=kw: fn(**kw),
            "tf": lambda fn=theirs, kw=kw: fn(**kw),
        }
        first = {}
        for name, fn in impls.items():  # first call: kernel creation, primitive caches
            t0 = time.perf_counter()
            fn()
            first[name] = time.perf_counter() - t0
            fn()
            fn()
        est = max(min(first.values()), 1e-5)
        calls = int(min(30, max(5, budget / (2 * est))))
        samples = {name: [] for name in impls}
        j0, w0 = _foreign_jiffies(), time.perf_counter()
        order = list(impls)
        for _ in range(calls):
            random.shuffle(order)
            for name in order:
                t0 = time.perf_counter()
                impls[name]()
                samples[name].append(time.perf_counter() - t0)
        fgn = (_foreign_jiffies() - j0) / hz / (time.perf_counter() - w0)
        results.append(
            {
                "index": idx,
                "ours_ms": 1e3 * float(np.median(samples["ours"])),
                "tf_ms": 1e3 * float(np.median(samples["tf"])),
                "calls": calls,
                "fgn": round(fgn, 2),
            }
        )
        print(f"progress {idx + 1}/{len(cases)}", file=sys.stderr, flush=True)
    with open(out_path, "w") as f:
        json.dump(results, f)


def _measure_machine():
    """Float32 SGEMM rate (GFLOP/s) and streaming bandwidth (GB/s) with all threads."""
    import numpy as np
    import tensorflow as tf

    a = tf.random.normal([2048, 2048])
    tf.matmul(a, a)
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        tf.matmul(a, a).numpy()
        ts.append(time.perf_counter() - t0)
    peak = 2 * 2048**3 / min(ts) / 1e9
    v = tf.ones([64 * 1024 * 1024])  # 256 MiB
    (v * 2.0).numpy()
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        r = v * 2.0
        r = r[:1].numpy()  # forces completion without a full copy
        ts.append(time.perf_counter() - t0)
    bw = 2 * 4 * 64 * 1024 * 1024 / float(np.median(ts)) / 1e9
    return peak, bw


def _run_workers(cases, budget, progress):
    """Runs the suite with oneDNN on and off; returns {setting: results}."""
    out = {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryDirectory() as tmp:
        case_path = os.path.join(tmp, "cases.json")
        with open(case_path, "w") as f:
            json.dump(cases, f)
        for setting in ("onednn", "native"):
            env["TF_ENABLE_ONEDNN_OPTS"] = "1" if setting == "onednn" else "0"
            res_path = os.path.join(tmp, f"{setting}.json")
            cmd = [sys.executable, "-m", "tf_convgrad.bench", "--worker", case_path, res_path,
                   str(budget)]  # fmt: skip
            proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
            for line in proc.stderr:
                if line.startswith("progress "):
                    done, total = line.split()[1].split("/")
                    progress(setting, int(done), int(total))
            if proc.wait() != 0:
                raise RuntimeError(f"bench worker ({setting}) failed with code {proc.returncode}")
            with open(res_path) as f:
                out[setting] = json.load(f)
    return out


def _bar(setting, done, total):
    width = 30
    filled = width * done // total
    line = f"  TF {setting:7s} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if done == total else ""))
    elif done == total or done % 10 == 0:  # a log file gets a line every 10 cases
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def run(args):
    """Entry point of `python -m tf_convgrad bench`."""
    cases = suite(args.quick, args.op, args.dtype)
    if not cases:
        print("bench: no case matches the filters", file=sys.stderr)
        return 2
    print(
        f"bench: {len(cases)} cases; measuring the machine, then two worker processes "
        "(TF oneDNN on, TF native), each timing ours and TF's interleaved",
        file=sys.stderr,
    )
    peak, bw = _measure_machine()
    print(
        f"bench: measured float32 SGEMM {peak:.0f} GFLOP/s, bandwidth {bw:.1f} GB/s",
        file=sys.stderr,
    )
    runs = _run_workers(cases, args.budget, _bar)
    rows = []
    for case, dn, nat in zip(cases, runs["onednn"], runs["native"], strict=True):
        flops, nbytes = cost(case)
        # Peak for 16-bit types: same float32 FMA units after conversion; float64 half the lanes.
        p = peak / 2 if case["dtype"] == "float64" else peak
        roof_ms = 1e3 * max(flops / (p * 1e9), nbytes / (bw * 1e9))
        ours = float(sorted([dn["ours_ms"], nat["ours_ms"]])[0])
        tf_best = min(dn["tf_ms"], nat["tf_ms"])
        rows.append(
            dict(
                case,
                flops=flops,
                bytes=nbytes,
                ours_ms=ours,
                tf_onednn_ms=dn["tf_ms"],
                tf_native_ms=nat["tf_ms"],
                ratio=tf_best / ours,
                ours_gflops=flops / ours / 1e6,
                pct_peak=100 * flops / ours / 1e6 / p,
                pct_roofline=100 * roof_ms / ours,
                fgn=max(dn["fgn"], nat["fgn"]),
            )
        )
    summary = {}
    for op in ("DBF", "DBI", "CBF"):
        ratios = [r["ratio"] for r in rows if r["op"] == op and r["dtype"] == "float32"]
        if ratios:
            summary[op] = {
                "geomean_ratio_f32": math.exp(sum(map(math.log, ratios)) / len(ratios)),
                "min_ratio_f32": min(ratios),
                "cases_f32": len(ratios),
            }
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"sgemm_gflops": peak, "bandwidth_gbs": bw, "cpus": os.cpu_count()},
        "summary": summary,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
    if args.plot:
        plot(report, args.plot)
    return 0


def format_table(report):
    m = report["machine"]
    lines = [
        f"date {report['date']}; {m['cpus']} CPUs; measured SGEMM {m['sgemm_gflops']:.0f} GFLOP/s, "
        f"bandwidth {m['bandwidth_gbs']:.1f} GB/s",
        "ratio = TF's best (faster of oneDNN and native) / ours; >1 means ours is faster. "
        "fgn = other processes' load (cores) while timing.",
        "",
        f"{'op':4s} {'layer':38s} {'dtype':8s} {'ours ms':>8s} {'oneDNN':>8s} {'native':>8s} "
        f"{'ratio':>6s} {'GFLOP/s':>8s} {'%peak':>6s} {'%roof':>6s} {'fgn':>4s}",
    ]
    for r in report["rows"]:
        lines.append(
            f"{r['op']:4s} {r['name']:38s} {r['dtype']:8s} {r['ours_ms']:8.2f} "
            f"{r['tf_onednn_ms']:8.2f} {r['tf_native_ms']:8.2f} {r['ratio']:6.2f} "
            f"{r['ours_gflops']:8.1f} {r['pct_peak']:6.1f} {r['pct_roofline']:6.1f} {r['fgn']:4.1f}"
        )
    lines.append("")
    for op, s in report["summary"].items():
        lines.append(
            f"{op}: float32 geomean ratio {s['geomean_ratio_f32']:.2f} over {s['cases_f32']} "
            f"layers, lowest {s['min_ratio_f32']:.2f}"
        )
    return "\n".join(lines)


def plot(report, path):
    """Writes a PNG bar chart of the ratios (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return
    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(10, 0.22 * len(rows) + 1.5))
    labels = [f"{r['op']} {r['name']} {r['dtype']}" for r in rows]
    colors = [{"DBF": "tab:blue", "DBI": "tab:orange", "CBF": "tab:green"}[r["op"]] for r in rows]
    ax.barh(range(len(rows)), [r["ratio"] for r in rows], color=colors)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("TF best time / ours (log scale; > 1: ours faster)")
    ax.set_title(f"tf_convgrad vs TensorFlow 2.21 CPU kernels, {report['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"bench: wrote {path}", file=sys.stderr)


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="four layers only")
    parser.add_argument("--op", action="append", choices=sorted(OPS), help="repeatable")
    parser.add_argument(
        "--dtype", action="append", choices=["float32", "bfloat16", "float16", "float64"]
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plot", metavar="PNG", help="write a bar chart of the ratios")
    parser.add_argument(
        "--budget", type=float, default=0.6, help="seconds of timed calls per case and worker"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        with open(sys.argv[2]) as f:
            _worker(json.load(f), sys.argv[3], float(sys.argv[4]))
    else:
        p = argparse.ArgumentParser(prog="python -m tf_convgrad.bench")
        add_arguments(p)
        sys.exit(run(p.parse_args()))
