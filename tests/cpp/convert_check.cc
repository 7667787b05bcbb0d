// Bitwise check of ConvertFromAcc / ConvertToAcc against Eigen's scalar conversions.
#include <cstdio>
#include <cstring>
#include <random>

#include "tf_ops/cc/kernels/cpu/cpu_common.h"
using namespace tf_convgrad::TF_CONVGRAD_ISA_NS::internal;
template <typename T>
int Check(const char* name) {
  std::mt19937 rng(1);
  const int n = 1 << 20;
  std::vector<float> f(n);
  // The first half: any bit pattern (NaNs, denormals, infinities). The second:
  // finite normal floats only, every fourth a rounding tie, so that whole
  // vectors take AVX512_BF16's instruction (Round16) rather than its fallback.
  for (int i = 0; i < n; ++i) {
    uint32_t b = rng();
    if (i >= n / 2) {
      b = (b & 0x807fffffu) | ((1u + static_cast<uint32_t>(rng() % 254)) << 23);
      if (i % 4 == 0) b = (b & 0xffff0000u) | 0x8000u;
    }
    std::memcpy(&f[i], &b, 4);
  }
  f[0] = 0;
  f[1] = -0.f;
  f[2] = 1e-40f;
  f[3] = -1e-40f;
  f[4] = 3.4e38f;
  f[5] = -3.4e38f;
  std::vector<T> a(n), b(n);
  ConvertFromAcc<T, float>(f.data(), a.data(), n);
  for (int i = 0; i < n; ++i) b[i] = static_cast<T>(f[i]);
  int bad = 0;
  for (int i = 0; i < n; ++i) bad += std::memcmp(&a[i], &b[i], 2) != 0;
  std::vector<float> g(n), h(n);
  ConvertToAcc<T, float>(b.data(), g.data(), n);
  for (int i = 0; i < n; ++i) h[i] = static_cast<float>(b[i]);
  int bad2 = 0;
  for (int i = 0; i < n; ++i) bad2 += std::memcmp(&g[i], &h[i], 4) != 0;
  printf("%s: from-acc mismatches %d, to-acc mismatches %d of %d\n", name, bad, bad2, n);
  return bad + bad2;
}
int main() { return Check<Eigen::half>("half") + Check<Eigen::bfloat16>("bfloat16") ? 1 : 0; }
