// C entry points for the standalone harness (run_harness.py loads them with
// ctypes). They forward to the very launchers TensorFlow calls; nothing here
// computes anything. Built by tests/gpu/build.py with nvcc (real GPU) or with
// g++ against emu/cuda_emulation.h (CPU emulation).
#include <cstdint>

#include "tf_ops/cc/kernels/gpu/conv_backprop_gpu.h"

namespace g = tf_convgrad::gpu;

extern "C" {

// Returns a cudaError_t value (0 = success).
int tfcg_launch(int op, int dtype, const tf_convgrad::ConvGeometry* shape, const void* first,
                const void* out_backprop, void* output, void* scratch, size_t scratch_bytes,
                void* stream, const g::LaunchOptions* options) {
  return static_cast<int>(g::Launch(static_cast<tf_convgrad::Op>(op), static_cast<g::DType>(dtype),
                                    *shape, first, out_backprop, output, scratch, scratch_bytes,
                                    static_cast<cudaStream_t>(stream), options));
}

size_t tfcg_scratch_bytes(int op, int dtype, const tf_convgrad::ConvGeometry* shape,
                          const g::LaunchOptions* options) {
  return g::ScratchBytes(static_cast<tf_convgrad::Op>(op), static_cast<g::DType>(dtype), *shape,
                         options);
}

const char* tfcg_describe(int op, int dtype, const tf_convgrad::ConvGeometry* shape,
                          const g::LaunchOptions* options) {
  return g::KernelDescription(static_cast<tf_convgrad::Op>(op), static_cast<g::DType>(dtype),
                              *shape, options);
}

const char* tfcg_error_string(int error) {
  return cudaGetErrorString(static_cast<cudaError_t>(error));
}

int tfcg_shape_bytes() { return static_cast<int>(sizeof(tf_convgrad::ConvGeometry)); }

#if defined(TF_CONVGRAD_CUDA_EMULATION)
int tfcg_emulated() { return 1; }
void tfcg_emu_set_schedule(int mode, unsigned seed) { tf_convgrad_emu::SetSchedule(mode, seed); }
#else
int tfcg_emulated() { return 0; }
void tfcg_emu_set_schedule(int /*mode*/, unsigned /*seed*/) {}
#endif

}  // extern "C"
