// GPU kernels for __half (instantiation only; see conv_backprop_gpu_impl.cu.h).
#include "tf_ops/cc/kernels/gpu/conv_backprop_gpu_impl.cu.h"

namespace tf_convgrad {
namespace gpu {
namespace internal {

TF_CONVGRAD_INSTANTIATE_GPU_TYPE(__half)

}  // namespace internal
}  // namespace gpu
}  // namespace tf_convgrad
