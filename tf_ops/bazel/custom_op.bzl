"""custom_op_library: a TensorFlow custom-op library with optional CUDA sources, built offline.

TF_COPTS (re-exported from @local_config_tf) are the flags that any code including TensorFlow headers must share
with TensorFlow's own build: the C++ ABI flag, the C++ standard and TensorFlow's defines, from tf.sysconfig.
"""

load("@local_config_tf//:build_defs.bzl", _TF_COPTS = "TF_COPTS")

TF_COPTS = _TF_COPTS

_USING_CUDA = "//tf_ops/bazel:using_cuda"

# TensorFlow's headers use their own deprecated APIs (tsl::Status, errors::...), hundreds of warnings per file.
_WARNING_COPTS = ["-Wno-deprecated-declarations"]

# nvcc flags besides TF_COPTS; the -gencode list comes from --define=TF_CONVGRAD_CUDA_ARCHS (.bazelrc).
_NVCC_COPTS = [
    "-x cu",
    "-DGOOGLE_CUDA=1",
    "-DNDEBUG",
    "-O3",
    "--expt-relaxed-constexpr",
    "-Xcompiler=-fPIC",
    "-Xcompiler=-Wno-deprecated-declarations",
    "-isystem external/local_config_tf/include",
    "-I.",
]

# Turns TF_CONVGRAD_CUDA_ARCHS="80,90" into SASS for each architecture plus PTX for the newest one.
_GENCODE = " ".join([
    "archs=\"$(TF_CONVGRAD_CUDA_ARCHS)\"; gencode=; for arch in $${archs//,/ }; do",
    "gencode=\"$$gencode -gencode=arch=compute_$$arch,code=sm_$$arch\"; newest=$$arch; done;",
    "gencode=\"$$gencode -gencode=arch=compute_$$newest,code=compute_$$newest\";",
])

def custom_op_library(
        name,
        srcs,
        cuda_srcs = [],
        cuda_hdrs = [],
        cuda_host_srcs = [],
        deps = [],
        copts = [],
        cuda_copts = [],
        **kwargs):
    """A shared library for tf.load_op_library; CUDA sources are compiled by nvcc under --config=cuda.

    Targets:
      <name>: cc_binary(linkshared = 1). `srcs` (and, under --config=cuda, `cuda_host_srcs`) are compiled with
        TF_COPTS, plus -DGOOGLE_CUDA=1 and the CUDA headers under --config=cuda, and linked against TensorFlow's
        libtensorflow_framework.
      <stem>_gpu (--config=cuda only; <stem> is <name> without ".so"): cc_library(alwayslink = 1) of the nvcc
        objects and the static CUDA runtime, which therefore comes before TensorFlow's library on the link line.
      <stem>_nvcc_<source stem>: one genrule per file of `cuda_srcs`, running nvcc -c -x cu with TF_COPTS.
    The CUDA targets are tagged "manual": `bazel build //pkg/...` builds them only through <name>, that is, only
    under --config=cuda.

    Args:
      name: the library's file name, e.g. "_my_ops.so".
      srcs: C++ sources and headers (kernels guarded by `#if GOOGLE_CUDA` get the define under --config=cuda).
      cuda_srcs: `.cu.cc` files for nvcc; ignored unless --config=cuda.
      cuda_hdrs: headers the CUDA sources and `cuda_host_srcs` include.
      cuda_host_srcs: C++ sources built only under --config=cuda, by the C++ compiler: the OpKernels that
        register DEVICE_GPU kernels and call the launchers in `cuda_srcs`.
      deps: further cc_library dependencies.
      copts: extra C++ flags for `srcs`.
      cuda_copts: extra nvcc flags for `cuda_srcs`.
      **kwargs: passed on to the cc_binary (visibility, tags, ...).
    """
    stem = name[:-len(".so")] if name.endswith(".so") else name
    cuda_objects = []
    for src in cuda_srcs:
        source_stem = src.split("/")[-1].split(".")[0]
        out = "_nvcc/%s/%s.pic.o" % (stem, src[:-len(".cc")] if src.endswith(".cc") else src)
        native.genrule(
            name = "%s_nvcc_%s" % (stem, source_stem),
            srcs = [src] + cuda_hdrs + ["@local_config_tf//:tf_headers"],
            outs = [out],
            cmd = " ".join([_GENCODE, "$(location @local_config_cuda//:nvcc)"] + TF_COPTS + _NVCC_COPTS +
                           cuda_copts + ["$$gencode", "-c $(location %s) -o $@" % src]),
            message = "nvcc %s" % src,
            tags = ["manual"],
            tools = ["@local_config_cuda//:nvcc"],
        )
        cuda_objects.append(out)

    gpu_deps = ["@local_config_cuda//:cuda_headers"]
    if cuda_objects:
        native.cc_library(
            name = stem + "_gpu",
            srcs = cuda_objects,
            alwayslink = 1,
            linkstatic = 1,
            tags = ["manual"],
            deps = ["@local_config_cuda//:cudart_static"],
        )
        gpu_deps = [":%s_gpu" % stem] + gpu_deps

    native.cc_binary(
        name = name,
        srcs = srcs + cuda_hdrs + select({
            _USING_CUDA: cuda_host_srcs,
            "//conditions:default": [],
        }),
        copts = TF_COPTS + _WARNING_COPTS + copts + select({
            _USING_CUDA: ["-DGOOGLE_CUDA=1"],
            "//conditions:default": [],
        }),
        linkshared = 1,
        deps = deps + select({
            _USING_CUDA: gpu_deps,
            "//conditions:default": [],
        }) + [
            "@local_config_tf//:tf_header_lib",
            "@local_config_tf//:libtensorflow_framework",
        ],
        **kwargs
    )
