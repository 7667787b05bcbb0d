// GPU kernels for float (instantiation only; see conv_backprop_gpu_impl.cu.h).
#include "tf_ops/cc/kernels/gpu/conv_backprop_gpu_impl.cu.h"

namespace tf_convgrad {
namespace gpu {
namespace internal {

TF_CONVGRAD_INSTANTIATE_GPU_TYPE(float)

}  // namespace internal
}  // namespace gpu
}  // namespace tf_convgrad
