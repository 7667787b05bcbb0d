// TF-free timing harness for the CPU compute cores (tf_ops/cc/kernels/cpu/),
// for profiling them without TensorFlow in the picture: perf sees our code
// and nothing else. Built and run by tools/profile_cores.sh.
//
//   cpu_cores_bench OP N H W C K STRIDE M|COUT [SAME|VALID] [REPS]
//     (REPS default: enough timed calls to fill about 2 s, at least 20)
//     OP: dbi | dbf | cbf (NHWC); M is the depth multiplier for the
//     depthwise ops and the output depth for cbf.
//   Environment: CORES_BENCH_THREADS=1 runs on the calling thread only
//   (default: two threads pulling tasks, as TF's pool does here);
//   CORES_BENCH_DTYPE=bfloat16|float16 times that type instead of float32;
//   TF_CONVGRAD_ISA=<level> forces an instruction-set level, as in the library.
// Prints the median and minimum time of REPS calls after 3 warm-up calls.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "Eigen/Core"
#include "tf_ops/cc/kernels/cpu/conv_backprop_cpu.h"

namespace {

using tf_convgrad::ConvGeometry;

void TwoThreads(int64_t total, int64_t /*cost*/, const std::function<void(int64_t, int64_t)>& fn) {
  const char* env = std::getenv("CORES_BENCH_THREADS");
  if (env != nullptr && std::strcmp(env, "1") == 0) {
    fn(0, total);
    return;
  }
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (int64_t t; (t = next++) < total;) fn(t, t + 1);
  };
  std::thread helper(work);
  work();
  helper.join();
}

// 64-byte aligned buffer with deterministic contents.
template <typename T>
struct Buffer {
  explicit Buffer(size_t n) : n(n) {
    p = static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64));
    for (size_t i = 0; i < n; ++i) {
      p[i] = static_cast<T>(static_cast<float>((i * 2654435761u) % 1000) / 500 - 1);
    }
  }
  ~Buffer() { std::free(p); }
  T* p;
  size_t n;
};

template <typename T>
int Run(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
  if (const char* error = tf_convgrad::CpuIsaError()) {
    std::fprintf(stderr, "cpu_cores_bench: %s\n", error);
    return 2;
  }
  // stderr: stdout's one line per layer is what tools/limits.py and tools/isa_ab.sh read.
  std::fprintf(stderr, "cpu_cores_bench: instruction set %s\n", tf_convgrad::CpuIsaLevel());
  const char* dtype = std::getenv("CORES_BENCH_DTYPE");
  const std::string name = dtype == nullptr ? "float32" : dtype;
  if (name == "bfloat16") return Run<Eigen::bfloat16>(argc, argv);
  if (name == "float16") return Run<Eigen::half>(argc, argv);
  if (name != "float32") {
    std::fprintf(stderr, "CORES_BENCH_DTYPE: float32, bfloat16 or float16, not %s\n", dtype);
    return 2;
  }
  return Run<float>(argc, argv);
}

namespace {

template <typename T>
int Run(int argc, char** argv) {
  if (argc < 9) {
    std::fprintf(stderr, "usage: %s dbi|dbf|cbf N H W C K STRIDE M|COUT [SAME|VALID] [REPS]\n",
                 argv[0]);
    return 2;
  }
  const std::string op = argv[1];
  const int64_t n = std::atoll(argv[2]), h = std::atoll(argv[3]), w = std::atoll(argv[4]);
  const int64_t c = std::atoll(argv[5]), k = std::atoll(argv[6]), s = std::atoll(argv[7]);
  const int64_t m = std::atoll(argv[8]);
  const bool same = argc <= 9 || std::string(argv[9]) != "VALID";
  int reps = argc > 10 ? std::atoi(argv[10]) : 0;  // 0: as many as fill about 2 s
  if (op != "dbi" && op != "dbf" && op != "cbf") {
    std::fprintf(stderr, "unknown op %s\n", op.c_str());
    return 2;
  }
  ConvGeometry g;
  g.batch = n;
  g.in_rows = h;
  g.in_cols = w;
  g.in_depth = c;
  g.filter_rows = g.filter_cols = k;
  g.stride_rows = g.stride_cols = s;
  if (op == "cbf") {
    g.out_depth = m;
  } else {
    g.depth_multiplier = m;
    g.out_depth = c * m;
  }
  if (same) {
    g.out_rows = (h + s - 1) / s;
    g.out_cols = (w + s - 1) / s;
    g.pad_top = std::max<int64_t>(0, (g.out_rows - 1) * s + k - h) / 2;
    g.pad_left = std::max<int64_t>(0, (g.out_cols - 1) * s + k - w) / 2;
  } else {
    g.out_rows = (h - k) / s + 1;
    g.out_cols = (w - k) / s + 1;
  }
  Buffer<T> x(n * h * w * c), dy(n * g.out_rows * g.out_cols * g.out_depth);
  Buffer<T> f(k * k * c * m);
  std::vector<double> ms;
  for (int r = 0; r < reps + 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    bool ok = false;
    if (op == "dbi") {
      ok = tf_convgrad::DepthwiseBackpropInputCpu<T>(g, f.p, dy.p, x.p, TwoThreads);
    } else if (op == "dbf") {
      ok = tf_convgrad::DepthwiseBackpropFilterCpu<T>(g, x.p, dy.p, f.p, TwoThreads);
    } else {
      ok = tf_convgrad::Conv2DBackpropFilterCpu<T>(g, x.p, dy.p, f.p, TwoThreads);
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (!ok) {
      std::fprintf(stderr, "scratch allocation failed\n");
      return 1;
    }
    const double call_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    if (r == 2 && reps <= 0) reps = std::max(20, static_cast<int>(2000 / std::max(call_ms, 1e-3)));
    if (r >= 3) ms.push_back(call_ms);
  }
  std::sort(ms.begin(), ms.end());
  const double macs =
      static_cast<double>(n) * g.out_rows * g.out_cols * k * k * (op == "cbf" ? c * m : c * m);
  std::printf(
      "%s N%lld %lldx%lldx%lld k%lld s%lld %s%lld %s: median %.3f ms, min %.3f ms, %.1f GFLOP/s\n",
      op.c_str(), static_cast<long long>(n), static_cast<long long>(h), static_cast<long long>(w),
      static_cast<long long>(c), static_cast<long long>(k), static_cast<long long>(s),
      op == "cbf" ? "cout" : "m", static_cast<long long>(m), same ? "SAME" : "VALID",
      ms[ms.size() / 2], ms[0], 2 * macs / ms[ms.size() / 2] / 1e6);
  return 0;
}

}  // namespace
