#include "tf_ops/cc/kernels/conv_backprop_common.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tensorflow {
namespace convgrad {
namespace {

// Every size, pad and intermediate the cores use must stay below this, so
// their int64 index arithmetic cannot overflow.
constexpr __int128 kMaxSize = static_cast<__int128>(1) << 62;

const char* OpLabel(OpKind kind) {
  switch (kind) {
#define TF_CONVGRAD_OP_LABEL_(kind, name, sizes, a, b) \
  case OpKind::kind:                                   \
    return name;
    TF_CONVGRAD_OPS(TF_CONVGRAD_OP_LABEL_, , )
#undef TF_CONVGRAD_OP_LABEL_
  }
  return "ConvGrad";
}

std::string Str128(__int128 v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  std::string s;
  while (v != 0) {
    const int digit = static_cast<int>(v % 10);
    s.insert(s.begin(), static_cast<char>('0' + (neg ? -digit : digit)));
    v /= 10;
  }
  return neg ? "-" + s : s;
}

// Index of N, H, W, C in a 4-D tensor of the given format.
struct Dims4 {
  int n, h, w, c;
};
Dims4 DimsOf(bool nchw) { return nchw ? Dims4{0, 2, 3, 1} : Dims4{0, 1, 2, 3}; }

// Output size and leading pad of one spatial dimension (TF's
// GetWindowedOutputSizeVerbose with a dilation, in 128-bit).
absl::Status WindowedOutputSize(const std::string& label, __int128 in, __int128 k,
                                __int128 dilation, __int128 stride, PaddingKind padding,
                                __int128 pad_before, __int128 pad_after, __int128* out,
                                __int128* pad_top) {
  if (stride <= 0) {
    return errors::InvalidArgument(label, ": Stride must be > 0, but got ", Str128(stride));
  }
  if (dilation < 1) {
    return errors::InvalidArgument(label, ": Dilation rate must be >= 1, but got ",
                                   Str128(dilation));
  }
  const __int128 eff = k > 0 ? (k - 1) * dilation + 1 : 0;
  if (eff >= kMaxSize) {
    return errors::InvalidArgument(label, ": effective filter size (", Str128(eff),
                                   ") is too large");
  }
  switch (padding) {
    case PaddingKind::kValid:
      *out = (in - eff + stride) / stride;
      *pad_top = 0;
      break;
    case PaddingKind::kSame: {
      *out = (in + stride - 1) / stride;
      __int128 needed = (*out - 1) * stride + eff - in;
      if (needed < 0) needed = 0;
      *pad_top = needed / 2;
      break;
    }
    case PaddingKind::kExplicit:
      if (in + pad_before + pad_after >= kMaxSize) {
        return errors::InvalidArgument(label, ": explicit padding is too large: input size ",
                                       Str128(in), " + padding ", Str128(pad_before), " + ",
                                       Str128(pad_after), " must stay below 2**62");
      }
      *out = (in + pad_before + pad_after - eff + stride) / stride;
      *pad_top = pad_before;
      break;
  }
  if (*out < 0) {
    return errors::InvalidArgument(
        label, ": Computed output size would be negative: ", Str128(*out),
        " [input_size: ", Str128(in), ", effective_filter_size: ", Str128(eff),
        ", stride: ", Str128(stride), "]");
  }
  return absl::OkStatus();
}

absl::Status CheckPaddingAttrs(const ConvBackpropAttrs& a) {
  const Dims4 d = DimsOf(a.nchw);
  if (a.padding == PaddingKind::kExplicit) {
    if (a.explicit_paddings.size() != 8) {
      return errors::InvalidArgument(
          a.label, ": explicit_paddings attribute must contain 8 values, but got: ",
          a.explicit_paddings.size());
    }
    for (int64_t p : a.explicit_paddings) {
      if (p < 0) {
        return errors::InvalidArgument(
            a.label, ": All elements of explicit_paddings must be nonnegative, got [",
            absl::StrJoin(a.explicit_paddings, ", "), "]");
      }
    }
    if (a.explicit_paddings[2 * d.n] != 0 || a.explicit_paddings[2 * d.n + 1] != 0 ||
        a.explicit_paddings[2 * d.c] != 0 || a.explicit_paddings[2 * d.c + 1] != 0) {
      return errors::InvalidArgument(
          a.label,
          ": Nonzero explicit padding in the batch or depth dimensions is not supported, got [",
          absl::StrJoin(a.explicit_paddings, ", "), "]");
    }
  } else if (!a.explicit_paddings.empty()) {
    return errors::InvalidArgument(
        a.label,
        ": explicit_paddings attribute must be empty if the padding attribute is not "
        "EXPLICIT, got [",
        absl::StrJoin(a.explicit_paddings, ", "), "]");
  }
  return absl::OkStatus();
}

std::string ShapeStr(const TensorShape& s) { return s.DebugString(); }

}  // namespace

absl::Status ParseConvBackpropAttrs(OpKernelConstruction* ctx, OpKind kind, ConvBackpropAttrs* a) {
  a->kind = kind;
  a->label = OpLabel(kind);
  std::string data_format, padding;
  TF_RETURN_IF_ERROR(ctx->GetAttr("data_format", &data_format));
  if (data_format != "NHWC" && data_format != "NCHW") {
    return errors::InvalidArgument(a->label, ": Invalid data format: ", data_format);
  }
  a->nchw = data_format == "NCHW";
  const Dims4 d = DimsOf(a->nchw);

  TF_RETURN_IF_ERROR(ctx->GetAttr("strides", &a->strides));
  if (a->strides.size() != 4) {
    return errors::InvalidArgument(a->label,
                                   ": Sliding window strides field must specify 4 dimensions, got ",
                                   a->strides.size());
  }
  if (a->strides[d.n] != 1 || a->strides[d.c] != 1) {
    return errors::InvalidArgument(
        a->label,
        ": Current implementation does not yet support strides in the batch and depth "
        "dimensions. strides = [",
        absl::StrJoin(a->strides, ", "), "]");
  }
  if (kind == OpKind::kConv2DBackpropFilter && (a->strides[d.h] <= 0 || a->strides[d.w] <= 0)) {
    return errors::InvalidArgument(a->label, ": Row and column strides should be larger than 0.",
                                   " strides = [", absl::StrJoin(a->strides, ", "), "]");
  }

  TF_RETURN_IF_ERROR(ctx->GetAttr("padding", &padding));
  if (padding == "VALID") {
    a->padding = PaddingKind::kValid;
  } else if (padding == "SAME") {
    a->padding = PaddingKind::kSame;
  } else if (padding == "EXPLICIT") {
    a->padding = PaddingKind::kExplicit;
  } else {
    return errors::InvalidArgument(a->label, ": Invalid padding: ", padding);
  }
  TF_RETURN_IF_ERROR(ctx->GetAttr("explicit_paddings", &a->explicit_paddings));
  TF_RETURN_IF_ERROR(CheckPaddingAttrs(*a));

  TF_RETURN_IF_ERROR(ctx->GetAttr("dilations", &a->dilations));
  if (a->dilations.size() != 4) {
    return errors::InvalidArgument(
        a->label, ": Sliding window dilations field must specify 4 dimensions, got ",
        a->dilations.size());
  }
  if (a->dilations[d.n] != 1 || a->dilations[d.c] != 1) {
    return errors::InvalidArgument(
        a->label,
        ": Current implementation does not yet support dilations in the batch and depth "
        "dimensions. dilations = [",
        absl::StrJoin(a->dilations, ", "), "]");
  }
  if (a->dilations[d.h] <= 0 || a->dilations[d.w] <= 0) {
    return errors::InvalidArgument(a->label, ": Dilated rates should be larger than 0.",
                                   " dilations = [", absl::StrJoin(a->dilations, ", "), "]");
  }
  return absl::OkStatus();
}

absl::Status ShapeFromSizesTensor(const ConvBackpropAttrs& a, const char* name, const Tensor& sizes,
                                  TensorShape* shape) {
  if (sizes.dims() != 1) {
    return errors::InvalidArgument(a.label, ": ", name, " input must be 1-dim, not ", sizes.dims());
  }
  const auto v = sizes.vec<int32_t>();
  *shape = TensorShape();
  int64_t elements = 1;
  for (int64_t i = 0; i < v.size(); ++i) {
    if (v(i) < 0) {
      return errors::InvalidArgument(a.label, ": Dimension ", i, " of ", name,
                                     " must be >= 0, got ", v(i));
    }
    if (__builtin_mul_overflow(elements, static_cast<int64_t>(v(i)), &elements)) {
      return errors::InvalidArgument(a.label, ": ", name,
                                     " would have more than 2**63 - 1 elements");
    }
    TF_RETURN_IF_ERROR(shape->AddDimWithStatus(v(i)));
  }
  return absl::OkStatus();
}

absl::Status ComputeConvBackpropGeometry(const ConvBackpropAttrs& a, const TensorShape& input,
                                         const TensorShape& filter, const TensorShape& out_backprop,
                                         tf_convgrad::ConvGeometry* g) {
  const std::string& L = a.label;
  const bool depthwise = a.kind != OpKind::kConv2DBackpropFilter;
  if (input.dims() != 4) {
    return errors::InvalidArgument(L, ": input must be 4-dimensional, got shape ", ShapeStr(input));
  }
  if (filter.dims() != 4) {
    return errors::InvalidArgument(L, ": filter must be 4-dimensional, got shape ",
                                   ShapeStr(filter));
  }
  if (out_backprop.dims() != 4) {
    return errors::InvalidArgument(L, ": out_backprop must be 4-dimensional, got shape ",
                                   ShapeStr(out_backprop));
  }
  const Dims4 d = DimsOf(a.nchw);
  const int64_t batch = input.dim_size(d.n);
  if (batch != out_backprop.dim_size(d.n)) {
    return errors::InvalidArgument(
        L, ": input and out_backprop must have the same batch size. Input batch: ", batch,
        ", outbackprop batch: ", out_backprop.dim_size(d.n), ", batch_dim: ", d.n);
  }
  const int64_t in_depth = input.dim_size(d.c);
  const int64_t out_depth = out_backprop.dim_size(d.c);
  g->groups = 1;
  g->depth_multiplier = 1;
  if (!depthwise) {
    const int64_t filter_in = filter.dim_size(2);
    if (filter_in <= 0) {
      return errors::InvalidArgument(L, ": filter depth must be strictly greater than zero, got ",
                                     filter_in);
    }
    if (in_depth % filter_in != 0) {
      return errors::InvalidArgument(L, ": input depth must be evenly divisible by filter depth: ",
                                     in_depth, " vs ", filter_in);
    }
    if (filter.dim_size(3) != out_depth) {
      return errors::InvalidArgument(L, ": filter and out_backprop must have the same out_depth: ",
                                     filter.dim_size(3), " vs ", out_depth);
    }
    g->groups = in_depth / filter_in;
    if (g->groups == 0) {  // in_depth == 0: no grouping reaches a filter depth > 0
      return errors::InvalidArgument(L, ": input depth (", in_depth,
                                     ") must be a positive multiple of filter depth (", filter_in,
                                     ")");
    }
    if (out_depth % g->groups != 0) {
      return errors::InvalidArgument(
          L, ": output depth must be evenly divisible by number of groups: ", out_depth, " vs ",
          g->groups);
    }
  } else {
    if (in_depth != filter.dim_size(2)) {
      return errors::InvalidArgument(L,
                                     ": input and filter must have the same in_depth: ", in_depth,
                                     " vs ", filter.dim_size(2));
    }
    const int64_t multiplier = filter.dim_size(3);
    int64_t expected = 0;
    if (__builtin_mul_overflow(in_depth, multiplier, &expected) || expected != out_depth) {
      return errors::InvalidArgument(L, ": depth_multiplier * in_depth not equal to out_depth: ",
                                     multiplier, " * ", in_depth, " vs ", out_depth);
    }
    g->depth_multiplier = multiplier;
  }

  const int spatial_dims[2] = {d.h, d.w};
  __int128 outs[2], pads[2];
  for (int s = 0; s < 2; ++s) {
    const int dim = spatial_dims[s];
    const __int128 in = input.dim_size(dim), k = filter.dim_size(s);
    const __int128 stride = a.strides[dim], dilation = a.dilations[dim];
    __int128 before = 0, after = 0;
    if (a.padding == PaddingKind::kExplicit) {
      before = a.explicit_paddings[2 * dim];
      after = a.explicit_paddings[2 * dim + 1];
    }
    TF_RETURN_IF_ERROR(WindowedOutputSize(L, in, k, dilation, stride, a.padding, before, after,
                                          &outs[s], &pads[s]));
    const int64_t actual = out_backprop.dim_size(dim);
    if (outs[s] != actual) {
      if (depthwise) {
        return errors::InvalidArgument(L, ": Number of ", s == 0 ? "rows" : "cols",
                                       " of out_backprop doesn't match computed: actual = ", actual,
                                       ", computed = ", Str128(outs[s]));
      }
      return errors::InvalidArgument(
          L, ": Size of out_backprop doesn't match computed: actual = ", actual,
          ", computed = ", Str128(outs[s]), " spatial_dim: ", dim, " input: ", Str128(in),
          " filter: ", Str128(k), " output: ", actual, " stride: ", Str128(stride),
          " dilation: ", Str128(dilation));
    }
    if (pads[s] >= kMaxSize) {
      return errors::InvalidArgument(L, ": padding ", Str128(pads[s]), " is too large");
    }
  }

  g->batch = batch;
  g->in_rows = input.dim_size(d.h);
  g->in_cols = input.dim_size(d.w);
  g->in_depth = in_depth;
  g->filter_rows = filter.dim_size(0);
  g->filter_cols = filter.dim_size(1);
  g->out_rows = static_cast<int64_t>(outs[0]);
  g->out_cols = static_cast<int64_t>(outs[1]);
  g->out_depth = out_depth;
  g->stride_rows = a.strides[d.h];
  g->stride_cols = a.strides[d.w];
  g->dilation_rows = a.dilations[d.h];
  g->dilation_cols = a.dilations[d.w];
  g->pad_top = static_cast<int64_t>(pads[0]);
  g->pad_left = static_cast<int64_t>(pads[1]);
  g->nchw = a.nchw;
  return absl::OkStatus();
}

absl::Status PrepareConvBackprop(OpKernelContext* ctx, const ConvBackpropAttrs& attrs,
                                 int64_t element_bytes, PreparedConvBackprop* prepared) {
  const bool input_grad = attrs.kind == OpKind::kDepthwiseBackpropInput;
  const Tensor& sizes = ctx->input(input_grad ? 0 : 1);
  prepared->data = &ctx->input(input_grad ? 1 : 0);
  prepared->out_backprop = &ctx->input(2);
  TensorShape sized;
  TF_RETURN_IF_ERROR(
      ShapeFromSizesTensor(attrs, input_grad ? "input_sizes" : "filter_sizes", sizes, &sized));
  const TensorShape& input_shape = input_grad ? sized : prepared->data->shape();
  const TensorShape& filter_shape = input_grad ? prepared->data->shape() : sized;
  TF_RETURN_IF_ERROR(ComputeConvBackpropGeometry(
      attrs, input_shape, filter_shape, prepared->out_backprop->shape(), &prepared->geometry));
  constexpr int64_t kMaxBytes = int64_t{1} << 62;
  if (sized.num_elements() > kMaxBytes / element_bytes) {
    return errors::ResourceExhausted(attrs.label, ": output of shape ", sized.DebugString(),
                                     " is too large to allocate");
  }
  return ctx->allocate_output(0, sized, &prepared->output);
}

}  // namespace convgrad
}  // namespace tensorflow
