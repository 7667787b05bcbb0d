"""Loading the op library: clear ImportErrors instead of undefined-symbol traces."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _import_in_subprocess(code, **env):
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=300
    )


def test_missing_override_says_to_fix_or_unset_the_variable(tmp_path):
    missing = tmp_path / "nowhere" / "_conv_backprop_ops.so"
    proc = _import_in_subprocess("import tf_convgrad", TF_CONVGRAD_LIBRARY=str(missing))
    assert proc.returncode != 0
    assert f"ImportError: tf_convgrad: TF_CONVGRAD_LIBRARY={missing} is not a file" in proc.stderr
    assert "unset it" in proc.stderr


def test_library_that_does_not_load_says_to_rebuild(tmp_path):
    bogus = tmp_path / "_conv_backprop_ops.so"
    bogus.write_bytes(b"\x7fELF but not really a shared object")
    proc = _import_in_subprocess("import tf_convgrad", TF_CONVGRAD_LIBRARY=str(bogus))
    assert proc.returncode != 0
    assert f"tf_convgrad: loading {bogus} failed" in proc.stderr
    assert "rebuild it" in proc.stderr
    assert "Traceback" in proc.stderr and "NotFoundError" not in proc.stderr.splitlines()[-1]


def test_other_tensorflow_version_is_refused():
    code = "import tensorflow as tf; tf.__version__ = '2.99.0'; import tf_convgrad"
    proc = _import_in_subprocess(code)
    assert proc.returncode != 0
    assert "tf_convgrad was built for tensorflow==2.21.0" in proc.stderr
    assert "2.99.0" in proc.stderr


@pytest.mark.parametrize(
    "name",
    [
        "ConvGrad>Conv2DBackpropFilter",
        "ConvGrad>DepthwiseConv2dNativeBackpropFilter",
        "ConvGrad>DepthwiseConv2dNativeBackpropInput",
    ],
)
def test_cpu_kernels_registered_for_every_dtype(name):
    import tf_convgrad  # noqa: F401
    from tensorflow.python.framework import kernels

    registered = kernels.get_registered_kernels_for_op(name)
    cpu = {
        k.constraint[0].allowed_values.list.type[0]
        for k in registered.kernel
        if k.device_type == "CPU"
    }
    # DT_HALF=19, DT_BFLOAT16=14, DT_FLOAT=1, DT_DOUBLE=2
    assert cpu == {19, 14, 1, 2}
