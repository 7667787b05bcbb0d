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

// The levels of this build, best first, one X(symbol, name, rank, description)
// each (their flags: CMakeLists.txt and tf_ops/bazel/cpu_cores.bzl). A level
// needs the CPU features of its rank and of every lower rank (kFeatures).
#if defined(TF_CONVGRAD_ISA_SINGLE)
#define TF_CONVGRAD_ISA_LEVELS(X) \
  X(single, TF_CONVGRAD_ISA_SINGLE, kNoCheck, "-march=" TF_CONVGRAD_ISA_SINGLE)
#else
#define TF_CONVGRAD_ISA_LEVELS(X)                                                     \
  X(avx512bf16, "avx512bf16", kAvx512Bf16Rank, "x86-64-v4 + PREFETCHW + AVX512_BF16") \
  X(avx512, "avx512", kAvx512Rank, "x86-64-v4 (AVX-512 F/CD/BW/DQ/VL) + PREFETCHW")   \
  X(avx2, "avx2", kAvx2Rank, "x86-64-v3: AVX2, FMA, F16C")                            \
  X(baseline, "baseline", kBaselineRank, "x86-64-v2 + AVX (TensorFlow 2.21's own requirement)")
#endif

#define TF_CONVGRAD_DECLARE_LEVEL_(symbol, name, rank, description) \
  TF_CONVGRAD_DECLARE_KERNELS_FN(symbol)
TF_CONVGRAD_ISA_LEVELS(TF_CONVGRAD_DECLARE_LEVEL_)
#undef TF_CONVGRAD_DECLARE_LEVEL_

namespace tf_convgrad {
namespace {

// Ranks of the dispatch levels: a level needs the features of its rank and below.
enum Rank { kBaselineRank, kAvx2Rank, kAvx512Rank, kAvx512Bf16Rank, kNoCheck };

// The registers that report the features: cpuid leaf 1 ECX, leaf 7 EBX, leaf 7
// subleaf 1 EAX, leaf 0x80000001 ECX, and XCR0 (the register state the OS saves).
enum Source { kLeaf1Ecx, kLeaf7Ebx, kLeaf7Sub1Eax, kExtLeaf1Ecx, kXcr0, kNumSources };

// One required feature: its name, the bits that report it, and the lowest
// rank that needs it.
struct Feature {
  const char* name;
  Source source;
  uint32_t mask;  // all of these bits set
  Rank rank;
};

const Feature kFeatures[] = {
    {"SSE3", kLeaf1Ecx, 1u << 0, kBaselineRank},
    {"SSSE3", kLeaf1Ecx, 1u << 9, kBaselineRank},
    {"SSE4.1", kLeaf1Ecx, 1u << 19, kBaselineRank},
    {"SSE4.2", kLeaf1Ecx, 1u << 20, kBaselineRank},
    {"POPCNT", kLeaf1Ecx, 1u << 23, kBaselineRank},
    {"CMPXCHG16B", kLeaf1Ecx, 1u << 13, kBaselineRank},
    {"LAHF-SAHF", kExtLeaf1Ecx, 1u << 0, kBaselineRank},
    {"AVX", kLeaf1Ecx, 1u << 28, kBaselineRank},
    {"OS support for ymm state", kXcr0, 0x6u, kBaselineRank},
    {"AVX2", kLeaf7Ebx, 1u << 5, kAvx2Rank},
    {"FMA", kLeaf1Ecx, 1u << 12, kAvx2Rank},
    {"F16C", kLeaf1Ecx, 1u << 29, kAvx2Rank},
    {"BMI1", kLeaf7Ebx, 1u << 3, kAvx2Rank},
    {"BMI2", kLeaf7Ebx, 1u << 8, kAvx2Rank},
    {"LZCNT", kExtLeaf1Ecx, 1u << 5, kAvx2Rank},
    {"MOVBE", kLeaf1Ecx, 1u << 22, kAvx2Rank},
    {"AVX512F", kLeaf7Ebx, 1u << 16, kAvx512Rank},
    {"AVX512CD", kLeaf7Ebx, 1u << 28, kAvx512Rank},
    {"AVX512BW", kLeaf7Ebx, 1u << 30, kAvx512Rank},
    {"AVX512DQ", kLeaf7Ebx, 1u << 17, kAvx512Rank},
    {"AVX512VL", kLeaf7Ebx, 1u << 31, kAvx512Rank},
    {"PREFETCHW", kExtLeaf1Ecx, 1u << 8, kAvx512Rank},
    {"OS support for zmm state", kXcr0, 0xe6u, kAvx512Rank},
    {"AVX512_BF16", kLeaf7Sub1Eax, 1u << 5, kAvx512Bf16Rank},
};

// What cpuid and XCR0 say (zero where the CPU lacks a leaf or XSAVE).
struct CpuFeatures {
  uint32_t reg[kNumSources] = {};
  bool Has(const Feature& f) const { return (reg[f.source] & f.mask) == f.mask; }
};

CpuFeatures DetectCpu() {
  CpuFeatures f;
  unsigned a, b, c, d;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.reg[kLeaf1Ecx] = c;
  if (c & (1u << 27)) {  // OSXSAVE: XCR0 is readable
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    f.reg[kXcr0] = lo;
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.reg[kLeaf7Ebx] = b;
    if (a >= 1) {  // the largest subleaf
      __cpuid_count(7, 1, a, b, c, d);
      f.reg[kLeaf7Sub1Eax] = a;
    }
  }
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000001u) {
    __cpuid(0x80000001u, a, b, c, d);
    f.reg[kExtLeaf1Ecx] = c;
  }
  return f;
}

struct Level {
  const char* name;
  const char* description;
  const CpuKernels* (*kernels)();
  Rank rank;  // kNoCheck: single-level build
};

#define TF_CONVGRAD_LEVEL_ENTRY_(symbol, name, rank, description) \
  {name, description, &TF_CONVGRAD_KERNELS_FN(symbol), rank},
const Level kLevels[] = {TF_CONVGRAD_ISA_LEVELS(TF_CONVGRAD_LEVEL_ENTRY_)};
#undef TF_CONVGRAD_LEVEL_ENTRY_
constexpr int kNumLevels = sizeof(kLevels) / sizeof(kLevels[0]);

std::string Missing(const Level& level, const CpuFeatures& f) {
  std::string missing;
  if (level.rank == kNoCheck) return missing;
  for (const Feature& feature : kFeatures) {
    if (feature.rank <= level.rank && !f.Has(feature)) {
      missing += std::string(missing.empty() ? "" : ", ") + feature.name;
    }
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

// Each core forwards to the chosen level's table.
#define TF_CONVGRAD_FORWARD_CPU_CORE_(Name, short_name)                                 \
  template <typename T>                                                                 \
  bool Name(const ConvGeometry& g, const T* first, const T* out_backprop, T* output,    \
            const ParallelFor& parallel_for) {                                          \
    return Kernels().For<T>().short_name(g, first, out_backprop, output, parallel_for); \
  }                                                                                     \
  TF_CONVGRAD_INSTANTIATE_CPU_CORE(Name)
TF_CONVGRAD_CPU_CORES(TF_CONVGRAD_FORWARD_CPU_CORE_)
#undef TF_CONVGRAD_FORWARD_CPU_CORE_

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
    text += std::string("amx_bf16=") + (s.kernels != nullptr && s.kernels->amx_bf16() ? "1" : "0") +
            "\n";
#if defined(TF_CONVGRAD_ISA_SINGLE)
    text += "isa_dispatch=0\n";
#else
    text += "isa_dispatch=1\n";
#endif
    return new std::string(text);
  }();
  return info->c_str();
}
