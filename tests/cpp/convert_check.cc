// Bitwise check of ConvertFromAcc / ConvertToAcc against Eigen's scalar conversions.
#include <cstdio>
#include <cstring>
#include <random>

#include "tf_ops/cc/kernels/cpu/cpu_common.h"
using namespace tf_convgrad::internal;
template <typename T>
int Check(const char* name) {
  std::mt19937 rng(1);
  const int n = 1 << 20;
  std::vector<float> f(n);
  for (int i = 0; i < n; ++i) {
    uint32_t b = rng();
    std::memcpy(&f[i], &b, 4);
  }  // every bit pattern kind
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
