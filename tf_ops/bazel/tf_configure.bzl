"""Repository rules that expose the installed TensorFlow and the local CUDA toolkit to Bazel.

Nothing is downloaded: both rules symlink directories that already exist on the machine.

* `tf_configure` (@local_config_tf) reads what ./configure.sh wrote to .tf_configure.bazelrc (as
  --repo_env values) and provides:
    //:tf_header_lib             cc_library with TensorFlow's headers (-isystem .../include)
    //:tf_headers                the same headers as a filegroup (inputs of the nvcc genrules)
    //:libtensorflow_framework   the framework library every op library links against
    //:build_defs.bzl            TF_COPTS (ABI flag, C++ standard, TF's defines), PYTHON_BIN_PATH, TF_VERSION
* `cuda_configure` (@local_config_cuda) finds the CUDA toolkit ($CUDA_HOME, else /usr/local/cuda). It is only
  fetched by `--config=cuda` builds, and a machine without CUDA gets targets that fail with a clear message.
    //:nvcc                      a wrapper that runs the toolkit's nvcc
    //:cuda_headers              cc_library with the toolkit's include/ (for host code that includes cuda_runtime.h)
    //:cudart_static             libcudart_static.a (+ -ldl -lrt -lpthread), linked before TensorFlow's library
"""

_TF_ENV = [
    "TF_HEADER_DIR",
    "TF_SHARED_LIBRARY_DIR",
    "TF_SHARED_LIBRARY_NAME",
    "TF_CXX11_ABI_FLAG",
    "TF_CXX_STANDARD",
    "TF_DEFINES",
    "TF_VERSION",
    "PYTHON_BIN_PATH",
]

def _tf_configure_impl(rctx):
    env = rctx.os.environ
    missing = [name for name in _TF_ENV if name not in env]
    if missing:
        fail(("\ntf_convgrad: TensorFlow is not configured for Bazel (%s unset).\n" +
              "Run ./configure.sh (it reads tf.sysconfig from .venv/bin/python, or from the interpreter\n" +
              "you name: ./configure.sh /path/to/python) and build again.") % ", ".join(missing))
    header_dir = env["TF_HEADER_DIR"]
    library_dir = env["TF_SHARED_LIBRARY_DIR"]
    library_name = env["TF_SHARED_LIBRARY_NAME"]
    library = library_dir + "/" + library_name
    for path in [header_dir + "/tensorflow/core/framework/op_kernel.h", library, env["PYTHON_BIN_PATH"]]:
        if not rctx.path(path).exists:
            fail(("\ntf_convgrad: %s does not exist. The Python environment changed since ./configure.sh " +
                  "ran; run ./configure.sh again.") % path)

    rctx.symlink(header_dir, "include")
    rctx.symlink(library, library_name)

    copts = [
        "-D_GLIBCXX_USE_CXX11_ABI=" + env["TF_CXX11_ABI_FLAG"],
        "-std=" + env["TF_CXX_STANDARD"],
    ] + ["-D" + define for define in env["TF_DEFINES"].split(" ") if define]
    rctx.template("BUILD", rctx.attr._build_tpl, {"%{library_name}": library_name})
    rctx.template("build_defs.bzl", rctx.attr._build_defs_tpl, {
        "%{python_bin_path}": env["PYTHON_BIN_PATH"],
        "%{tf_copts}": repr(copts),
        "%{tf_version}": env["TF_VERSION"],
    })

tf_configure = repository_rule(
    implementation = _tf_configure_impl,
    attrs = {
        "_build_tpl": attr.label(default = "//tf_ops/bazel:BUILD.tf.tpl"),
        "_build_defs_tpl": attr.label(default = "//tf_ops/bazel:build_defs.bzl.tpl"),
    },
    environ = _TF_ENV,
    local = True,
)

def _cuda_configure_impl(rctx):
    cuda_home = rctx.os.environ.get("CUDA_HOME", "") or "/usr/local/cuda"
    nvcc = cuda_home + "/bin/nvcc"
    cudart = cuda_home + "/lib64/libcudart_static.a"
    problems = [path for path in [nvcc, cuda_home + "/include/cuda_runtime.h", cudart] if not rctx.path(path).exists]
    if problems:
        # Fail at build time, not here: this repository is also loaded by `bazel query //...`.
        rctx.file("cuda_missing.txt", ("tf_convgrad: --config=cuda needs the CUDA toolkit (nvcc 13); not found: " +
                                       "%s. Set CUDA_HOME to the toolkit's root directory.\n") % ", ".join(problems))
        rctx.file("BUILD", _CUDA_MISSING_BUILD)
        return
    rctx.symlink(cuda_home + "/include", "include")
    rctx.symlink(cudart, "libcudart_static.a")
    rctx.file("nvcc.sh", "#!/bin/sh\nexec '%s' \"$@\"\n" % nvcc, executable = True)
    rctx.template("BUILD", rctx.attr._build_tpl, {})

_CUDA_MISSING_BUILD = """# CUDA was not found: every target fails to build with the message below.
package(default_visibility = ["//visibility:public"])

genrule(
    name = "cuda_missing_nvcc",
    srcs = ["cuda_missing.txt"],
    outs = ["cuda_missing_nvcc.sh"],
    cmd = "cat $< >&2; exit 1",
)

genrule(
    name = "cuda_missing_lib",
    srcs = ["cuda_missing.txt"],
    outs = ["libcuda_missing.a"],
    cmd = "cat $< >&2; exit 1",
)

sh_binary(
    name = "nvcc",
    srcs = [":cuda_missing_nvcc"],
)

cc_library(
    name = "cuda_headers",
    srcs = [":cuda_missing_lib"],
)

cc_library(
    name = "cudart_static",
    srcs = [":cuda_missing_lib"],
)
"""

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    attrs = {"_build_tpl": attr.label(default = "//tf_ops/bazel:BUILD.cuda.tpl")},
    environ = ["CUDA_HOME"],
    local = True,
)

# Versions this WORKSPACE-based build is known to work with (docs/BAZEL.md). Bazel 7 and later resolve
# their own dependencies through Bzlmod and the Bazel Central Registry, which this offline layout replaces.
_TESTED = ["2.1.0", "4.2.3"]

def check_bazel_version():
    """Fails early, with a clear message, on a Bazel this build does not support."""
    version = native.bazel_version
    parts = version.split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return  # A Bazel built from source (e.g. Debian's 4.2.3) reports no version.
    major, minor = int(parts[0]), int(parts[1])
    if major >= 7 or major < 2 or (major == 2 and minor < 1):
        fail(("\ntf_convgrad: Bazel %s is not supported. This offline, WORKSPACE-based build is tested with " +
              "Bazel %s (.bazelversion names 4.2.3: Debian's `apt-get install bazel-bootstrap`, or bazelisk, " +
              "which reads .bazelversion). Without Bazel, use the pip build: pip install --no-build-isolation -e .") %
             (version, " and ".join(_TESTED)))
    if version.split("-")[0] not in _TESTED:
        # buildifier: disable=print
        print("tf_convgrad: Bazel %s is untested here; tested: %s." % (version, ", ".join(_TESTED)))
