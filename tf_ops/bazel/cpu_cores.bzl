"""cpu_cores: the TF-free CPU compute cores once per instruction-set level, as CMakeLists.txt builds them.

With --define=TF_CONVGRAD_ARCH=dispatch (the default, .bazelrc / ./configure.sh) the cores are compiled once per level
of ISA_LEVELS, each in namespace tf_convgrad::<level>; each level's archive is partially linked into one object whose
symbols are all made local except its table tf_convgrad_cpu_kernels_<level> (ld -r --force-group-allocation, objcopy
--keep-global-symbol), so the linker can never merge one level's copy of an Eigen or libstdc++ inline function into
another level (cpu_kernels.h). cpu_dispatch.cc, compiled without -march flags, picks a level per process from cpuid.
Any other TF_CONVGRAD_ARCH is a -march value: one level ("single"), e.g. native for a local build.
"""

load("@local_config_tf//:build_defs.bzl", "TF_COPTS", "TF_VERSION")

# The levels and their flags, best first (keep in step with CMakeLists.txt and cpu_dispatch.cc). -mprfchw and
# -mtune=icelake-server give the AVX-512 levels the instructions of a -march=native build on an AVX-512 Xeon
# (CMakeLists.txt).
ISA_LEVELS = {
    "avx512bf16": ["-march=x86-64-v4", "-mavx512bf16", "-mprfchw", "-mtune=icelake-server"],
    "avx512": ["-march=x86-64-v4", "-mprfchw", "-mtune=icelake-server"],
    "avx2": ["-march=x86-64-v3", "-mtune=generic"],
    "baseline": ["-march=x86-64-v2", "-mavx", "-mtune=generic"],
}

_CORE_COPTS = [
    "-O3",
    # Eigen (TF 2.21's headers) does not compile with AVX512-FP16 on (gcc 12, PacketMathFP16.h).
    "-mno-avx512fp16",
    "-mprefer-vector-width=512",
    "-ffp-contract=fast",
    # Function-local statics of inline functions as ordinary (then local) objects.
    "-fno-gnu-unique",
    "-Wno-deprecated-declarations",
    # gcc 12 flags Eigen's AVX-512 GEMM kernel (_mm512_undefined_pd) ~1,700 times: a false alarm.
    "-Wno-maybe-uninitialized",
    # Below AVX-512 the 64-byte vectors of cpu_common.h are passed differently: only between inlined helpers.
    "-Wno-psabi",
]

# Partial link of a level's archive into $@, every symbol local but the level's table.
_LOCALIZE = " ".join([
    "archive=; for f in $(locations {lib}); do case $$f in *.pic.a) archive=$$f;; *.a) [ -n \"$$archive\" ] ||",
    "archive=$$f;; esac; done;",
    "ld -r --force-group-allocation -o $@.partial --whole-archive $$archive &&",
    "objcopy --keep-global-symbol=tf_convgrad_cpu_kernels_{level} $@.partial $@ && rm -f $@.partial",
])

def _level(name, level, srcs, hdrs, flags):
    """One level: its cc_library (never linked as such) and its localized object; returns the object's label."""
    lib = "%s_%s" % (name, level)
    native.cc_library(
        name = lib,
        srcs = srcs + hdrs,
        copts = TF_COPTS + _CORE_COPTS + flags + ["-DTF_CONVGRAD_ISA_NS=" + level],
        linkstatic = True,
        deps = ["@local_config_tf//:tf_header_lib"],
        tags = ["manual"],
    )
    out = "%s_%s.pic.o" % (name, level)
    native.genrule(
        name = lib + "_localized",
        srcs = [":" + lib],
        outs = [out],
        cmd = _LOCALIZE.format(lib = ":" + lib, level = level),
        message = "Localizing the %s compute cores" % level,
        tags = ["manual"],
    )
    return ":" + out

def cpu_cores(name, srcs, hdrs, dispatch_srcs, **kwargs):
    """The cores of every level (or the one TF_CONVGRAD_ARCH level) and the dispatcher, as one cc_library.

    Args:
      name: the cc_library the op library depends on.
      srcs: the core sources compiled once per level (cpu_level.cc among them).
      hdrs: their headers (conv_backprop_cpu.h is the public one).
      dispatch_srcs: cpu_dispatch.cc, compiled once without -march flags.
      **kwargs: passed on to the cc_library.
    """
    native.config_setting(
        name = name + "_dispatch",
        define_values = {"TF_CONVGRAD_ARCH": "dispatch"},
    )
    level_objects = [_level(name, level, srcs, hdrs, flags) for level, flags in ISA_LEVELS.items()]
    single_object = _level(name, "single", srcs, hdrs, ["-march=$(TF_CONVGRAD_ARCH)"])
    native.cc_library(
        name = name,
        srcs = dispatch_srcs + select({
            ":%s_dispatch" % name: level_objects,
            "//conditions:default": [single_object],
        }),
        hdrs = hdrs,
        copts = TF_COPTS + ["-DTF_CONVGRAD_TF_VERSION=\\\"%s\\\"" % TF_VERSION] + select({
            ":%s_dispatch" % name: [],
            "//conditions:default": ["-DTF_CONVGRAD_ISA_SINGLE=\\\"$(TF_CONVGRAD_ARCH)\\\""],
        }),
        linkstatic = True,
        alwayslink = True,
        **kwargs
    )
