"""The GPU build (scripts/build_gpu.sh) and the rules its CUDA sources follow.

* Registration: with ``TF_CONVGRAD_GPU_LIBRARY=/path/to/_conv_backprop_ops.so`` (a library built
  with ``-DTF_CONVGRAD_WITH_CUDA=ON``), the library loads on this machine, GPU or not, and
  registers a DEVICE_GPU kernel for every op x dtype with the sizes input in host memory, next
  to the CPU kernels. Loaded in a subprocess: an op library can be loaded once per process, and
  this process has already loaded the library under test. Skipped without the variable.
* Linking: that library carries its own CUDA runtime (static cudart, linked before TF so that
  TF's cudart stub is not used, and not re-exported).
* Sources (always run): the only ``<<<`` under tf_ops/ is inside the checked launch macro, and
  the kernels use no atomics and no synchronous or default-stream CUDA calls, so every launch
  is checked and the results are deterministic by construction.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GPU_DIR = ROOT / "tf_ops" / "cc" / "kernels" / "gpu"
GPU_LIBRARY = os.environ.get("TF_CONVGRAD_GPU_LIBRARY")
needs_gpu_library = pytest.mark.skipif(
    not GPU_LIBRARY, reason="set TF_CONVGRAD_GPU_LIBRARY to a GPU build (scripts/build_gpu.sh)"
)

OPS = {
    "ConvGrad>Conv2DBackpropFilter": "filter_sizes",
    "ConvGrad>DepthwiseConv2dNativeBackpropFilter": "filter_sizes",
    "ConvGrad>DepthwiseConv2dNativeBackpropInput": "input_sizes",
}
DTYPES = {"float16", "bfloat16", "float32", "float64"}

_REGISTRY_SCRIPT = r"""
import json, sys
import tensorflow as tf
from tensorflow.python.framework import kernels
tf.load_op_library(sys.argv[1])
out = {}
for op in sys.argv[2:]:
    entries = []
    for k in kernels.get_registered_kernels_for_op(op).kernel:
        types = [tf.dtypes.as_dtype(t).name
                 for c in k.constraint if c.name == "T" for t in c.allowed_values.list.type]
        entries.append({"device": k.device_type, "types": types,
                        "host_memory": list(k.host_memory_arg)})
    out[op] = entries
print("REGISTRY=" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def registry() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", _REGISTRY_SCRIPT, GPU_LIBRARY, *OPS],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, f"loading {GPU_LIBRARY} failed:\n{result.stderr[-4000:]}"
    line = [x for x in result.stdout.splitlines() if x.startswith("REGISTRY=")]
    assert line, result.stdout + result.stderr
    return json.loads(line[-1][len("REGISTRY=") :])


@needs_gpu_library
@pytest.mark.parametrize("device", ["GPU", "CPU"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_kernels_registered(registry, op, device):
    entries = [e for e in registry[op] if e["device"] == device]
    types = sorted(t for e in entries for t in e["types"])
    assert types == sorted(DTYPES), f"{op} on {device}: registered for {types}"
    for e in entries:
        want = [OPS[op]] if device == "GPU" else []
        assert e["host_memory"] == want, f"{op} on {device} {e['types']}: {e['host_memory']}"


def _nm(args: list[str]) -> list[str]:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not installed")
    result = subprocess.run([nm, *args, GPU_LIBRARY], capture_output=True, text=True, check=True)
    return result.stdout.split()


@needs_gpu_library
def test_library_carries_its_own_cuda_runtime():
    undefined = [s for s in _nm(["-D", "--undefined-only"]) if re.match(r"_*cuda", s)]
    assert not undefined, f"cudart symbols left to TF's stub: {undefined[:10]}"
    exported = [s for s in _nm(["-D", "--defined-only"]) if re.match(r"_*cuda[A-Z]", s)]
    assert not exported, f"static cudart symbols re-exported: {exported[:10]}"
    defined = [s for s in _nm(["--defined-only"]) if s == "cudaLaunchKernel"]
    assert defined, "static cudart is not linked in"


def _cuda_sources() -> list[Path]:
    files = sorted(GPU_DIR.glob("*.cu.*")) + sorted(GPU_DIR.glob("*.h"))
    assert len(files) >= 6, files
    return files


def _code(path: Path) -> str:
    """The file without // comments (so prose may mention what code must not do)."""
    return "\n".join(line.split("//")[0] for line in path.read_text().splitlines())


def test_every_launch_goes_through_the_checked_macro():
    launches = []
    for path in sorted((ROOT / "tf_ops").rglob("*")):
        if path.is_file() and path.suffix in (".cc", ".h", ".cu"):
            launches += [(path.name, m.start()) for m in re.finditer(r"<<<", _code(path))]
    assert [name for name, _ in launches] == ["gpu_common.cu.h"], launches
    macro = _code(GPU_DIR / "gpu_common.cu.h")
    definition = macro[macro.index("#define TF_CONVGRAD_LAUNCH_OR_RETURN") :][:600]
    assert "<<<" in definition
    assert re.search(
        r"cudaGetLastError\(\);\s*\\\s*if \(launch_error_ != cudaSuccess\) return", definition
    )
    uses = sum(_code(p).count("TF_CONVGRAD_LAUNCH_OR_RETURN(") for p in _cuda_sources())
    assert uses >= 6, f"only {uses} uses of the launch macro"


@pytest.mark.parametrize(
    "pattern, why",
    [
        (r"\batomic[A-Z]\w*\s*\(", "atomics make sums order-dependent"),
        (r"\bcudaMemset\s*\(|\bcudaMemcpy\s*\(", "synchronous calls block the stream"),
        (r"\bcudaDeviceSynchronize\b|\bcudaStreamSynchronize\b", "kernels must not block"),
        (r"<<<[^>]*,\s*0\s*>>>|cudaStreamDefault\b", "never the default stream"),
    ],
)
def test_kernel_sources_avoid(pattern, why):
    hits = [(p.name, m.group(0)) for p in _cuda_sources() for m in re.finditer(pattern, _code(p))]
    assert not hits, f"{why}: {hits}"
