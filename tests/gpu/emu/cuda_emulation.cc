// Fiber scheduler behind cuda_emulation.h (see there for the model).
#include "cuda_emulation.h"

#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

namespace tf_convgrad_emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;

// A fiber starts once through setcontext (ucontext) and afterwards switches
// with _setjmp/_longjmp, which, unlike swapcontext, makes no system call.
struct Fiber {
  ucontext_t context;
  jmp_buf resume;
  std::unique_ptr<char[]> stack;
  bool started = false;
  bool done = false;
};

struct State {
  jmp_buf scheduler;
  std::vector<Fiber> fibers;
  int current = -1;
  const std::function<void()>* body = nullptr;
  cudaError_t last_error = cudaSuccess;
  int schedule = 0;
  std::mt19937 rng{0};
  uint64_t launches = 0, rounds = 0;
};

State& S() {
  static State state;
  return state;
}

void SetError(cudaError_t e) {
  if (S().last_error == cudaSuccess) S().last_error = e;
}

void Trampoline() {
  State& s = S();
  (*s.body)();
  s.fibers[s.current].done = true;
  _longjmp(s.scheduler, 1);
}

// Runs fiber t until it reaches a barrier or finishes.
void Resume(State& s, Fiber& f) {
  if (_setjmp(s.scheduler) == 0) {
    if (!f.started) {
      f.started = true;
      setcontext(&f.context);
    }
    _longjmp(f.resume, 1);
  }
}

uint3 ThreadIndex(unsigned t, dim3 block) {
  return uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
}

}  // namespace

void SetSchedule(int mode, unsigned seed) {
  S().schedule = mode;
  S().rng.seed(seed);
}

void GetCounters(uint64_t* launches, uint64_t* rounds) {
  *launches = S().launches;
  *rounds = S().rounds;
}

void LaunchKernel(dim3 grid, dim3 block, cudaStream_t stream, const std::function<void()>& body) {
  State& s = S();
  ++s.launches;
  if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread) {
    std::fprintf(stderr, "cuda_emulation: launch on a default stream\n");
    SetError(cudaErrorInvalidValue);
    return;
  }
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
    std::fprintf(stderr,
                 "cuda_emulation: invalid launch configuration grid=(%u,%u,%u) block=(%u,%u,%u)\n",
                 grid.x, grid.y, grid.z, block.x, block.y, block.z);
    SetError(cudaErrorInvalidConfiguration);
    return;
  }
  gridDim = grid;
  blockDim = block;
  s.body = &body;
  if (s.fibers.size() < threads) s.fibers.resize(threads);
  std::vector<unsigned> order(threads);
  for (unsigned bz = 0; bz < grid.z; ++bz) {
    for (unsigned by = 0; by < grid.y; ++by) {
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = uint3{bx, by, bz};
        for (unsigned t = 0; t < threads; ++t) {
          Fiber& f = s.fibers[t];
          if (!f.stack) f.stack.reset(new char[kStackBytes]);
          getcontext(&f.context);
          f.context.uc_stack.ss_sp = f.stack.get();
          f.context.uc_stack.ss_size = kStackBytes;
          f.context.uc_link = nullptr;
          makecontext(&f.context, &Trampoline, 0);
          f.started = false;
          f.done = false;
        }
        for (uint64_t round = 0;; ++round) {
          ++s.rounds;
          for (unsigned t = 0; t < threads; ++t) order[t] = t;
          if (s.schedule == 1) std::reverse(order.begin(), order.end());
          if (s.schedule == 2) std::shuffle(order.begin(), order.end(), s.rng);
          unsigned finished = 0;
          for (unsigned t : order) {
            Fiber& f = s.fibers[t];
            if (f.done) {
              ++finished;
              continue;
            }
            threadIdx = ThreadIndex(t, block);
            s.current = static_cast<int>(t);
            Resume(s, f);
            if (f.done) ++finished;
          }
          if (finished == threads) break;
          if (finished != 0) {
            std::fprintf(stderr,
                         "cuda_emulation: block (%u,%u,%u): %u of %llu threads exited while the "
                         "others wait at __syncthreads()\n",
                         bx, by, bz, finished, static_cast<unsigned long long>(threads));
            SetError(cudaErrorLaunchFailure);
            return;
          }
        }
      }
    }
  }
}

}  // namespace tf_convgrad_emu

void __syncthreads() {
  tf_convgrad_emu::State& s = tf_convgrad_emu::S();
  if (_setjmp(s.fibers[s.current].resume) == 0) _longjmp(s.scheduler, 1);
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = tf_convgrad_emu::S().last_error;
  tf_convgrad_emu::S().last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return tf_convgrad_emu::S().last_error; }

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
  }
  return "unknown error";
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread) {
    return cudaErrorInvalidValue;
  }
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
