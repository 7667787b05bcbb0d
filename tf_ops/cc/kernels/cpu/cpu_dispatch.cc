// Chooses the instruction-set level of the CPU cores once per process and
// forwards the entry points of conv_backprop_cpu.h to it. Compiled without
// -march flags (it runs before anything is known about the CPU).
//
// Levels (a build with the default TF_CONVGRAD_ARCH has all four; see
// CMakeLists.txt for their compiler flags):
//   avx512bf16  x86-64-v4 (AVX-512 F, CD, BW, DQ, VL) + PREFETCHW + AVX512_BF16
//   avx512      x86-64-v4 + PREFETCHW (which every AVX-512 CPU has)
//   avx2        x86-64-v3 (AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE)
//   baseline    x86-64-v2 + AVX: what TensorFlow 2.21's own wheels need (its
//               import dies with SIGILL on a CPU without AVX)
// A build with TF_CONVGRAD_ARCH=<-march value> (e.g. native) has one level,
// compiled for that -march and used without looking at cpuid.
//
// TF_CONVGRAD_ISA=<level> forces a level; unset, empty or "auto" takes the
// best level the CPU and the OS (XSAVE state for ymm/zmm) support. A forced
// level this CPU lacks, or an unknown name, is an error: CpuIsaError() says
// why, `import tf_convgrad` raises it as an ImportError and the ops fail with
// InvalidArgument. Nothing is ever silently downgraded.
#include <cpuid.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tf_ops/cc/kernels/cpu/conv_backprop_cpu.h"
#include "tf_ops/cc/kernels/cpu/cpu_kernels.h"

#if defined(TF_CONVGRAD_ISA_SINGLE)
extern "C" TF_CONVGRAD_KERNELS_HIDDEN const tf_convgrad::CpuKernels*
tf_convgrad_cpu_kernels_single();
#else
extern "C" TF_CONVGRAD_KERNELS_HIDDEN const tf_convgrad::CpuKernels*
tf_convgrad_cpu_kernels_avx512bf16();
extern "C" TF_CONVGRAD_KERNELS_HIDDEN const tf_convgrad::CpuKernels*
tf_convgrad_cpu_kernels_avx512();
extern "C" TF_CONVGRAD_KERNELS_HIDDEN const tf_convgrad::CpuKernels* tf_convgrad_cpu_kernels_avx2();
extern "C" TF_CONVGRAD_KERNELS_HIDDEN const tf_convgrad::CpuKernels*
tf_convgrad_cpu_kernels_baseline();
#endif

namespace tf_convgrad {
namespace {

// What cpuid and XCR0 say, as far as the levels care.
struct CpuFeatures {
  bool sse3 = false, ssse3 = false, sse41 = false, sse42 = false, popcnt = false, cx16 = false;
  bool lahf = false, avx = false, os_ymm = false;
  bool avx2 = false, fma = false, f16c = false, bmi1 = false, bmi2 = false, lzcnt = false;
  bool movbe = false;
  bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool os_zmm = false, avx512bf16 = false, prfchw = false;
};

CpuFeatures DetectCpu() {
  CpuFeatures f;
  unsigned a, b, c, d;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.sse3 = c & (1u << 0);
  f.ssse3 = c & (1u << 9);
  f.fma = c & (1u << 12);
  f.cx16 = c & (1u << 13);
  f.sse41 = c & (1u << 19);
  f.sse42 = c & (1u << 20);
  f.movbe = c & (1u << 22);
  f.popcnt = c & (1u << 23);
  const bool osxsave = c & (1u << 27);
  f.avx = c & (1u << 28);
  f.f16c = c & (1u << 29);
  if (osxsave) {
    // XCR0: bits 1-2 SSE/AVX state, 5-7 opmask and zmm state, enabled by the OS.
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    f.os_ymm = (lo & 0x6u) == 0x6u;
    f.os_zmm = (lo & 0xe6u) == 0xe6u;
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned max_subleaf = a;
    f.bmi1 = b & (1u << 3);
    f.avx2 = b & (1u << 5);
    f.bmi2 = b & (1u << 8);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512cd = b & (1u << 28);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    if (max_subleaf >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avx512bf16 = a & (1u << 5);
    }
  }
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000001u) {
    __cpuid(0x80000001u, a, b, c, d);
    f.lahf = c & (1u << 0);
    f.lzcnt = c & (1u << 5);
    f.prfchw = c & (1u << 8);
  }
  return f;
}

// One required feature: its name and whether the CPU has it.
struct Need {
  const char* name;
  bool have;
};

struct Level {
  const char* name;
  const char* description;
  const CpuKernels* (*kernels)();
  std::vector<Need> (*needs)(const CpuFeatures&);  // nullptr: no check (single-level build)
};

std::vector<Need> BaselineNeeds(const CpuFeatures& f) {
  return {{"SSE3", f.sse3},      {"SSSE3", f.ssse3},   {"SSE4.1", f.sse41},
          {"SSE4.2", f.sse42},   {"POPCNT", f.popcnt}, {"CMPXCHG16B", f.cx16},
          {"LAHF-SAHF", f.lahf}, {"AVX", f.avx},       {"OS support for ymm state", f.os_ymm}};
}
std::vector<Need> Avx2Needs(const CpuFeatures& f) {
  std::vector<Need> needs = BaselineNeeds(f);
  needs.insert(needs.end(), {{"AVX2", f.avx2},
                             {"FMA", f.fma},
                             {"F16C", f.f16c},
                             {"BMI1", f.bmi1},
                             {"BMI2", f.bmi2},
                             {"LZCNT", f.lzcnt},
                             {"MOVBE", f.movbe}});
  return needs;
}
std::vector<Need> Avx512Needs(const CpuFeatures& f) {
  std::vector<Need> needs = Avx2Needs(f);
  needs.insert(needs.end(), {{"AVX512F", f.avx512f},
                             {"AVX512CD", f.avx512cd},
                             {"AVX512BW", f.avx512bw},
                             {"AVX512DQ", f.avx512dq},
                             {"AVX512VL", f.avx512vl},
                             {"PREFETCHW", f.prfchw},
                             {"OS support for zmm state", f.os_zmm}});
  return needs;
}
std::vector<Need> Avx512Bf16Needs(const CpuFeatures& f) {
  std::vector<Need> needs = Avx512Needs(f);
  needs.push_back({"AVX512_BF16", f.avx512bf16});
  return needs;
}

#if defined(TF_CONVGRAD_ISA_SINGLE)
const Level kLevels[] = {
    {TF_CONVGRAD_ISA_SINGLE, "-march=" TF_CONVGRAD_ISA_SINGLE, &tf_convgrad_cpu_kernels_single,
     nullptr},
};
#else
// Best first.
const Level kLevels[] = {
    {"avx512bf16", "x86-64-v4 + PREFETCHW + AVX512_BF16", &tf_convgrad_cpu_kernels_avx512bf16,
     &Avx512Bf16Needs},
    {"avx512", "x86-64-v4 (AVX-512 F/CD/BW/DQ/VL) + PREFETCHW", &tf_convgrad_cpu_kernels_avx512,
     &Avx512Needs},
    {"avx2", "x86-64-v3: AVX2, FMA, F16C", &tf_convgrad_cpu_kernels_avx2, &Avx2Needs},
    {"baseline", "x86-64-v2 + AVX (TensorFlow 2.21's own requirement)",
     &tf_convgrad_cpu_kernels_baseline, &BaselineNeeds},
};
#endif
constexpr int kNumLevels = sizeof(kLevels) / sizeof(kLevels[0]);

std::string Missing(const Level& level, const CpuFeatures& f) {
  std::string missing;
  if (level.needs == nullptr) return missing;
  for (const Need& need : level.needs(f)) {
    if (!need.have) missing += std::string(missing.empty() ? "" : ", ") + need.name;
  }
  return missing;
}

std::string Join(const std::vector<std::string>& names, const char* sep = ", ") {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : sep) + n;
  return s;
}

struct Selection {
  const Level* level = nullptr;
  const CpuKernels* kernels = nullptr;
  std::string error;  // empty when level is set
  std::string requested;
  std::vector<std::string> supported;  // level names this CPU runs, best first
};

Selection Select() {
  Selection s;
  const CpuFeatures f = DetectCpu();
  for (const Level& level : kLevels) {
    if (Missing(level, f).empty()) s.supported.push_back(level.name);
  }
  const char* env = std::getenv("TF_CONVGRAD_ISA");
  s.requested = env == nullptr ? "" : env;
  std::vector<std::string> all;
  for (const Level& level : kLevels) all.push_back(level.name);
#if defined(TF_CONVGRAD_ISA_SINGLE)
  const std::string help = "this is a single-level build (TF_CONVGRAD_ARCH=" TF_CONVGRAD_ISA_SINGLE
                           "): leave TF_CONVGRAD_ISA unset, or rebuild with the default "
                           "TF_CONVGRAD_ARCH=dispatch for every level";
#else
  const std::string help =
      "use one of " + Join(all) +
      " (or leave TF_CONVGRAD_ISA unset to choose from cpuid); this CPU runs " +
      (s.supported.empty() ? std::string("none of them") : Join(s.supported));
#endif
  if (s.requested.empty() || s.requested == "auto") {
    for (const Level& level : kLevels) {
      if (Missing(level, f).empty()) {
        s.level = &level;
        break;
      }
    }
    if (s.level == nullptr) {
      s.error = "this CPU lacks what the least of tf_convgrad's instruction-set levels (" +
                std::string(kLevels[kNumLevels - 1].name) +
                ") needs: " + Missing(kLevels[kNumLevels - 1], f);
    }
  } else {
    for (const Level& level : kLevels) {
      if (s.requested == level.name) s.level = &level;
    }
    if (s.level == nullptr) {
      s.error = "TF_CONVGRAD_ISA='" + s.requested +
                "' is not an instruction-set level of this build: " + help;
    } else if (const std::string missing = Missing(*s.level, f); !missing.empty()) {
      s.error = "TF_CONVGRAD_ISA=" + s.requested + " (" + s.level->description +
                ") needs CPU features this machine lacks: " + missing + "; " + help;
      s.level = nullptr;
    }
  }
  if (s.level != nullptr) s.kernels = s.level->kernels();
  return s;
}

const Selection& Selected() {
  static const Selection* selection = new Selection(Select());
  return *selection;
}

const CpuKernels& Kernels() {
  const Selection& s = Selected();
  if (s.kernels == nullptr) {
    // Callers check CpuIsaError() first; reaching this is a bug.
    std::fprintf(stderr, "tf_convgrad: %s\n", s.error.c_str());
    std::abort();
  }
  return *s.kernels;
}

const char* Compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace

const char* CpuIsaError() {
  const Selection& s = Selected();
  return s.kernels == nullptr ? s.error.c_str() : nullptr;
}

const char* CpuIsaLevel() {
  const Selection& s = Selected();
  return s.level == nullptr ? "" : s.level->name;
}

void SerialFor(int64_t total, int64_t /*cost_per_unit*/,
               const std::function<void(int64_t, int64_t)>& fn) {
  if (total > 0) fn(0, total);
}

template <typename T>
bool Conv2DBackpropFilterCpu(const ConvGeometry& g, const T* input, const T* out_backprop,
                             T* filter_backprop, const ParallelFor& parallel_for) {
  return Kernels().For<T>().conv2d_backprop_filter(g, input, out_backprop, filter_backprop,
                                                   parallel_for);
}

template <typename T>
bool DepthwiseBackpropFilterCpu(const ConvGeometry& g, const T* input, const T* out_backprop,
                                T* filter_backprop, const ParallelFor& parallel_for) {
  return Kernels().For<T>().depthwise_backprop_filter(g, input, out_backprop, filter_backprop,
                                                      parallel_for);
}

template <typename T>
bool DepthwiseBackpropInputCpu(const ConvGeometry& g, const T* filter, const T* out_backprop,
                               T* input_backprop, const ParallelFor& parallel_for) {
  return Kernels().For<T>().depthwise_backprop_input(g, filter, out_backprop, input_backprop,
                                                     parallel_for);
}

#define TF_CONVGRAD_INSTANTIATE(T)                                                         \
  template bool Conv2DBackpropFilterCpu<T>(const ConvGeometry&, const T*, const T*, T*,    \
                                           const ParallelFor&);                            \
  template bool DepthwiseBackpropFilterCpu<T>(const ConvGeometry&, const T*, const T*, T*, \
                                              const ParallelFor&);                         \
  template bool DepthwiseBackpropInputCpu<T>(const ConvGeometry&, const T*, const T*, T*,  \
                                             const ParallelFor&);
TF_CONVGRAD_INSTANTIATE(Eigen::half)
TF_CONVGRAD_INSTANTIATE(Eigen::bfloat16)
TF_CONVGRAD_INSTANTIATE(float)
TF_CONVGRAD_INSTANTIATE(double)
#undef TF_CONVGRAD_INSTANTIATE

}  // namespace tf_convgrad

// For Python (ctypes; tf_convgrad._loader): "key=value" lines describing the
// build and the chosen level. isa_error is empty when a level was chosen.
extern "C" __attribute__((visibility("default"))) const char* tf_convgrad_info() {
  static const std::string* info = [] {
    const tf_convgrad::Selection& s = tf_convgrad::Selected();
    std::vector<std::string> levels;
    for (const tf_convgrad::Level& level : tf_convgrad::kLevels) levels.push_back(level.name);
    std::string text;
#if defined(TF_CONVGRAD_VERSION)
    text += "version=" TF_CONVGRAD_VERSION "\n";
#endif
#if defined(TF_CONVGRAD_TF_VERSION)
    text += "tf_version=" TF_CONVGRAD_TF_VERSION "\n";
#endif
    text += std::string("compiler=") + tf_convgrad::Compiler() + "\n";
    text += std::string("isa=") + (s.level == nullptr ? "" : s.level->name) + "\n";
    text +=
        std::string("isa_description=") + (s.level == nullptr ? "" : s.level->description) + "\n";
    text += "isa_requested=" + s.requested + "\n";
    text += "isa_error=" + s.error + "\n";
    text += "isa_levels=" + tf_convgrad::Join(levels, ",") + "\n";
    text += "isa_supported=" + tf_convgrad::Join(s.supported, ",") + "\n";
#if defined(TF_CONVGRAD_ISA_SINGLE)
    text += "isa_dispatch=0\n";
#else
    text += "isa_dispatch=1\n";
#endif
    return new std::string(text);
  }();
  return info->c_str();
}
