// Conv2DBackpropFilter on CPU: chunked im2col + GEMM. (bfloat16 tries AMX tile products
// first, conv2d_backprop_filter_amx_cpu.h.)
//
// With P = batch * out_rows * out_cols patch rows, K_g = fh * fw * Cf columns per
// group and Cg = out_depth / groups,
//   dW_g[K_g, Cg] = sum over patch rows p of col[p, g, :]^T * dy[p, g * Cg : (g + 1) * Cg].
// Patch rows are processed in chunks whose size depends only on the geometry;
// each chunk is expanded (im2col, in the accumulator type, zeros for padding)
// and then every (group, K tile, Cout tile) block of dW is updated by one
// single-threaded Eigen GEMM. Tiles are up to 1024 x 256 (thin tiles would
// re-pack their operands once each). With 8 or more tiles, chunks (at most
// 8 MiB or 64 rows) are expanded by all threads and then applied one tile per
// task, in chunk order. With fewer, `splits` fixed tasks each take every
// splits-th cache-sized chunk (256 KiB or 256 rows), expand it and apply all
// tiles into their own partial dW; the partials are summed in order at the end.
// Either way each element of dW sees the same sequence of operations whatever
// the number of threads. Scratch: the im2col and converted out_backprop chunks
// (one set, or one per running split task), up to 7 partial dWs (at most
// 8 MiB in all), plus a dW-sized accumulator when T is not the accumulator
// type or the filter is grouped.
#include <atomic>
#include <string>
#include <type_traits>
#include <vector>

#include "tf_ops/cc/kernels/cpu/conv2d_backprop_filter_amx_cpu.h"
#include "tf_ops/cc/kernels/cpu/cpu_common.h"

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {

using internal::AccType;
using internal::CeilDiv;
using internal::Layout4;
using internal::RoundUp;
using internal::Scratch;
using internal::ToAcc;

namespace {
constexpr int64_t kChunkBudgetBytes = int64_t{8} << 20;
constexpr int64_t kMinChunkRows = 64;
constexpr int64_t kSplitChunkBytes = int64_t{256} << 10;  // im2col + dy chunk per split task
constexpr int64_t kSplitMinRows = 256;
constexpr int64_t kMinBlocks = 8;  // independent GEMM blocks per chunk, for the threads
constexpr int64_t kPartialBudgetBytes = int64_t{8} << 20;

// One (group, K tile, Cout tile) block of dW.
struct Tile {
  int64_t group, k0, k_len, c0, c_len;
};

std::vector<Tile> MakeTiles(int64_t groups, int64_t k_per_group, int64_t c_per_group) {
  // Tiles stay large (thin tiles would re-pack out_backprop once per tile); small
  // filters get their parallelism from splitting the patch rows instead.
  const int64_t kt = std::min<int64_t>(k_per_group, 1024);
  const int64_t ct = c_per_group <= 256 ? c_per_group : 128;
  std::vector<Tile> tiles;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t k = 0; k < k_per_group; k += kt) {
      for (int64_t c = 0; c < c_per_group; c += ct) {
        tiles.push_back({g, k, std::min(kt, k_per_group - k), c, std::min(ct, c_per_group - c)});
      }
    }
  }
  return tiles;
}
// How cbf runs one (non-empty) geometry: every decision, made by PlanCbf
// before anything runs, then executed by Conv2DBackpropFilterCpu.
struct CbfPlan {
  // dW accumulated in place, laid out [G][Kg][Cg]: for one group that is HWIO
  // itself (T is the accumulator type).
  bool direct_out = false;
  std::vector<Tile> tiles;  // the GEMM blocks of dW
  // Fewer than kMinBlocks tiles: the patch rows are split between `splits`
  // fixed tasks, each accumulating into its own partial dW.
  int64_t splits = 1;
  // A 1x1, stride-1, unpadded NHWC input is its own im2col matrix (any G: the
  // [G][Cf] column order is the channel order).
  bool direct_x = false;
  bool direct_dy = false;  // NHWC out_backprop of the accumulator type, used as it is
  // NHWC, one group, tap spacing 1: a filter row's taps are adjacent in memory.
  bool contiguous_taps = false;
  int64_t chunk = 0;  // patch rows expanded at a time

  // e.g. "cbf tiles=4 splits=8 chunk=512 direct_out"; for logs.
  std::string Describe() const {
    return "cbf tiles=" + std::to_string(tiles.size()) + " splits=" + std::to_string(splits) +
           " chunk=" + std::to_string(chunk) + (direct_out ? " direct_out" : "") +
           (direct_x ? " direct_x" : "") + (direct_dy ? " direct_dy" : "") +
           (contiguous_taps ? " contiguous_taps" : "");
  }
};

template <typename T>
CbfPlan PlanCbf(const ConvGeometry& g) {
  using A = typename AccType<T>::type;
  constexpr bool kSameType = std::is_same<T, A>::value;
  const int64_t G = g.groups, C = g.in_depth, Cf = C / G, Cout = g.out_depth, Cg = Cout / G;
  const int64_t taps = g.filter_rows * g.filter_cols;
  const int64_t Kg = taps * Cf, Ktot = taps * C;
  const int64_t out_elems = taps * Cf * Cout;
  const int64_t P = g.batch * g.out_rows * g.out_cols;
  CbfPlan plan;
  plan.direct_out = kSameType && G == 1;
  plan.tiles = MakeTiles(G, Kg, Cg);
  // The partials are summed in order s = 0, 1, ... at the end (thread-count
  // independent). Up to kMinBlocks tasks within the partials' budget, an even
  // number when more than one (so that two threads get equal shares).
  if (static_cast<int64_t>(plan.tiles.size()) < kMinBlocks) {
    // No more splits than split-sized chunks: a split without rows would only cost its partial
    // dW's clearing and summing.
    const int64_t split_rows =
        std::max(kSplitMinRows, kSplitChunkBytes / ((Ktot + Cout) * int64_t{sizeof(A)}));
    plan.splits = std::min<int64_t>({kMinBlocks, CeilDiv(P, split_rows),
                                     1 + kPartialBudgetBytes / (out_elems * int64_t{sizeof(A)})});
    if (plan.splits > 2) plan.splits -= plan.splits % 2;
  }
  plan.direct_x = kSameType && !g.nchw && taps == 1 && g.stride_rows == 1 && g.stride_cols == 1 &&
                  g.pad_top == 0 && g.pad_left == 0 && g.out_rows == g.in_rows &&
                  g.out_cols == g.in_cols;
  plan.direct_dy = kSameType && !g.nchw;
  plan.contiguous_taps = !g.nchw && G == 1 && g.dilation_cols == 1;
  if (plan.splits > 1) {
    // Split tasks: at least kSplitMinRows rows, so that each GEMM's reduction
    // is deep compared with its read and write of the dW tile; one range per
    // task when nothing needs expanding.
    plan.chunk =
        plan.direct_x && plan.direct_dy
            ? CeilDiv(P, plan.splits)
            : std::min(P, std::max(kSplitMinRows,
                                   kSplitChunkBytes / ((Ktot + Cout) * int64_t{sizeof(A)})));
  } else {
    plan.chunk =
        std::min(P, std::max(kMinChunkRows, kChunkBudgetBytes / (Ktot * int64_t{sizeof(A)})));
  }
  return plan;
}

}  // namespace

template <typename T>
bool Conv2DBackpropFilterCpu(const ConvGeometry& g, const T* input, const T* out_backprop,
                             T* filter_backprop, const ParallelFor& parallel_for) {
  using A = typename AccType<T>::type;
  using RowMat = Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;

  const int64_t G = g.groups, C = g.in_depth, Cf = C / G, Cout = g.out_depth, Cg = Cout / G;
  const int64_t taps = g.filter_rows * g.filter_cols;
  const int64_t Kg = taps * Cf, Ktot = taps * C;
  const int64_t out_elems = taps * Cf * Cout;
  if (out_elems == 0) return true;
  const int64_t P = g.batch * g.out_rows * g.out_cols;
  if constexpr (std::is_same<T, Eigen::bfloat16>::value) {
    // AMX tile products where the CPU has them (conv2d_backprop_filter_amx_cpu.h).
    if (P > 0 && g.in_rows > 0 && g.in_cols > 0) {
      switch (internal::Conv2DBackpropFilterAmx(g, input, out_backprop, filter_backprop,
                                                parallel_for)) {
        case internal::AmxRun::kDone:
          return true;
        case internal::AmxRun::kOutOfMemory:
          return false;
        case internal::AmxRun::kNotUsed:
          break;
      }
    }
  }
  const CbfPlan plan = PlanCbf<T>(g);
  const bool direct_out = plan.direct_out;
  Scratch<A> acc_buf(direct_out ? 1 : out_elems);
  if (!acc_buf.ok()) return false;
  A* acc = direct_out ? reinterpret_cast<A*>(filter_backprop) : acc_buf.get();
  std::fill(acc, acc + out_elems, A(0));
  const std::vector<Tile>& tiles = plan.tiles;
  const int64_t splits = plan.splits;
  Scratch<A> partial_buf(splits > 1 ? (splits - 1) * out_elems : 1);
  if (!partial_buf.ok()) return false;
  if (splits > 1) std::fill(partial_buf.get(), partial_buf.get() + (splits - 1) * out_elems, A(0));
  // Split 0 accumulates into acc itself, split s > 0 into partial s - 1.
  auto split_base = [&](int64_t sp) {
    return sp == 0 ? acc : partial_buf.get() + (sp - 1) * out_elems;
  };

  if (P > 0 && g.in_rows > 0 && g.in_cols > 0) {
    const bool direct_x = plan.direct_x, direct_dy = plan.direct_dy;
    const Layout4 xl{g.in_rows, g.in_cols, C, g.nchw != 0};
    const int64_t out_hw = g.out_rows * g.out_cols;
    const bool contiguous_taps = plan.contiguous_taps;

    // im2col of patch rows [p_first, p_first + n) into dst[n][Ktot].
    auto im2col = [&](int64_t p_first, int64_t n, A* dst_rows) {
      for (int64_t r = 0; r < n; ++r) {
        const int64_t p = p_first + r, b = p / out_hw, ho = (p % out_hw) / g.out_cols,
                      wo = p % g.out_cols;
        A* dst_row = dst_rows + r * Ktot;
        for (int64_t i = 0; i < g.filter_rows; ++i) {
          const int64_t h = ho * g.stride_rows - g.pad_top + i * g.dilation_rows;
          const int64_t w0 = wo * g.stride_cols - g.pad_left;
          if (contiguous_taps && h >= 0 && h < g.in_rows && w0 >= 0 &&
              w0 + g.filter_cols <= g.in_cols) {
            // The row's taps are one contiguous run of filter_cols * C inputs.
            internal::ConvertToAcc(input + xl.Offset(b, h, w0, 0), dst_row + i * g.filter_cols * C,
                                   g.filter_cols * C);
            continue;
          }
          for (int64_t j = 0; j < g.filter_cols; ++j) {
            const int64_t w = wo * g.stride_cols - g.pad_left + j * g.dilation_cols;
            const int64_t tap = i * g.filter_cols + j;
            const bool inside = h >= 0 && h < g.in_rows && w >= 0 && w < g.in_cols;
            for (int64_t grp = 0; grp < G; ++grp) {
              A* dst = dst_row + grp * Kg + tap * Cf;
              if (!inside) {
                std::fill(dst, dst + Cf, A(0));
              } else if (!g.nchw) {
                const T* src = input + xl.Offset(b, h, w, grp * Cf);
                for (int64_t c = 0; c < Cf; ++c) dst[c] = ToAcc<T, A>(src[c]);
              } else {
                const int64_t plane = g.in_rows * g.in_cols;
                const T* src = input + xl.Offset(b, h, w, grp * Cf);
                for (int64_t c = 0; c < Cf; ++c) dst[c] = ToAcc<T, A>(src[c * plane]);
              }
            }
          }
        }
      }
    };
    // out_backprop patch rows [p_first, p_first + n) into dst[n][Cout], in A.
    auto convert_dy = [&](int64_t p_first, int64_t n, A* dst_rows) {
      for (int64_t r = 0; r < n; ++r) {
        const int64_t p = p_first + r, b = p / out_hw, hw = p % out_hw;
        A* dst = dst_rows + r * Cout;
        if (!g.nchw) {
          internal::ConvertToAcc(out_backprop + p * Cout, dst, Cout);
        } else {
          const T* src = out_backprop + b * Cout * out_hw + hw;
          for (int64_t c = 0; c < Cout; ++c) dst[c] = ToAcc<T, A>(src[c * out_hw]);
        }
      }
    };
    // One GEMM: base[tile] += colp[0:n, tile k]^T * dyp[0:n, tile c].
    auto gemm = [&](const Tile& tl, const A* colp, const A* dyp, int64_t n, A* base) {
      Eigen::Map<const RowMat, 0, Stride> lhs(colp + tl.group * Kg + tl.k0, n, tl.k_len,
                                              Stride(Ktot));
      Eigen::Map<const RowMat, 0, Stride> rhs(dyp + tl.group * Cg + tl.c0, n, tl.c_len,
                                              Stride(Cout));
      A* dst =
          direct_out ? base + tl.k0 * Cout + tl.c0 : base + (tl.group * Kg + tl.k0) * Cg + tl.c0;
      Eigen::Map<RowMat, 0, Stride> out(dst, tl.k_len, tl.c_len, Stride(direct_out ? Cout : Cg));
      out.noalias() += lhs.transpose() * rhs;
    };

    if (splits > 1) {
      // Small filter: `splits` fixed tasks; task s takes the cache-sized chunks
      // s, s + splits, ... and does their im2col and every tile's GEMM itself
      // (the chunk is still in its core's cache when the GEMM packs it).
      const int64_t chunk = plan.chunk;
      const int64_t n_chunks = CeilDiv(P, chunk);
      std::atomic<bool> failed{false};
      parallel_for(
          splits, CeilDiv(n_chunks, splits) * chunk * Kg * Cg, [&](int64_t s_begin, int64_t s_end) {
            Scratch<A> col(direct_x ? 1 : chunk * Ktot);
            Scratch<A> dyc(direct_dy ? 1 : chunk * Cout);
            if (!col.ok() || !dyc.ok()) {
              failed = true;
              return;
            }
            for (int64_t sp = s_begin; sp < s_end; ++sp) {
              for (int64_t ci = sp; ci < n_chunks; ci += splits) {
                const int64_t p0 = ci * chunk, n = std::min(chunk, P - p0);
                if (!direct_x) im2col(p0, n, col.get());
                if (!direct_dy) convert_dy(p0, n, dyc.get());
                const A* colp = direct_x ? reinterpret_cast<const A*>(input) + p0 * C : col.get();
                const A* dyp =
                    direct_dy ? reinterpret_cast<const A*>(out_backprop) + p0 * Cout : dyc.get();
                for (const Tile& tl : tiles) gemm(tl, colp, dyp, n, split_base(sp));
              }
            }
          });
      if (failed) return false;
    } else {
      // Enough tiles: chunks in order, each expanded by all threads, then one
      // task per tile.
      const int64_t chunk = plan.chunk;
      Scratch<A> col(direct_x ? 1 : chunk * Ktot);
      Scratch<A> dyc(direct_dy ? 1 : chunk * Cout);
      if (!col.ok() || !dyc.ok()) return false;
      for (int64_t p0 = 0; p0 < P; p0 += chunk) {
        const int64_t rows = std::min(chunk, P - p0);
        if (!direct_x) {
          internal::ForRanges(parallel_for, rows, internal::kMaxTasks, Ktot,
                              [&](int64_t r_begin, int64_t r_end) {
                                im2col(p0 + r_begin, r_end - r_begin, col.get() + r_begin * Ktot);
                              });
        }
        if (!direct_dy) {
          internal::ForRanges(
              parallel_for, rows, internal::kMaxTasks, Cout, [&](int64_t r_begin, int64_t r_end) {
                convert_dy(p0 + r_begin, r_end - r_begin, dyc.get() + r_begin * Cout);
              });
        }
        const A* colp = direct_x ? reinterpret_cast<const A*>(input) + p0 * C : col.get();
        const A* dyp = direct_dy ? reinterpret_cast<const A*>(out_backprop) + p0 * Cout : dyc.get();
        parallel_for(static_cast<int64_t>(tiles.size()), rows * 256 * 128,
                     [&](int64_t t_begin, int64_t t_end) {
                       for (int64_t t = t_begin; t < t_end; ++t) {
                         gemm(tiles[t], colp, dyp, rows, acc);
                       }
                     });
      }
    }
  }

  if (splits > 1) {
    internal::ForRanges(parallel_for, out_elems, internal::kMaxTasks, splits,
                        [&](int64_t e_begin, int64_t e_end) {
                          for (int64_t sp = 1; sp < splits; ++sp) {
                            const A* part = split_base(sp);
                            for (int64_t e = e_begin; e < e_end; ++e) acc[e] += part[e];
                          }
                        });
  }
  if (!direct_out) {
    // [G][tap][ci][co_g] -> HWIO [tap][ci][g * Cg + co_g], rounded once.
    internal::ForRanges(parallel_for, Kg, internal::kMaxTasks, Cout * G,
                        [&](int64_t k_begin, int64_t k_end) {
                          for (int64_t k = k_begin; k < k_end; ++k) {
                            for (int64_t grp = 0; grp < G; ++grp) {
                              const A* src = acc + (grp * Kg + k) * Cg;
                              T* dst = filter_backprop + k * Cout + grp * Cg;
                              for (int64_t c = 0; c < Cg; ++c)
                                dst[c] = internal::FromAcc<T, A>(src[c]);
                            }
                          }
                        });
  }
  return true;
}

TF_CONVGRAD_INSTANTIATE_CPU_CORE(Conv2DBackpropFilterCpu)

}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad
