// Shared helpers for pygan's CUDA kernels (csrc/cuda/*.cu, registered in
// TORCH_LIBRARY_IMPL(pygan, CUDA, m) against the schemas of csrc/ops.cpp).
//
// Headers are kept minimal: no <torch/extension.h>, no
// ATen/cuda/CUDAContext.h (it pulls in cuBLAS/cuSPARSE/cuSOLVER headers); each .cu defines
// TORCH_ASSERT_ONLY_METHOD_OPERATORS and includes only the per-op ATen headers it uses.
//
// Conventions shared by every kernel:
// * computation in float32 (float64 for float64 inputs): acc_t<T>;
// * 16-byte vector loads/stores (Vec<T>) where pointers, strides and lengths allow, a scalar path
//   otherwise (chosen on the host: aligned16 / vector_ok);
// * grid-stride loops over a grid of a few waves (grid_1d);
// * reductions are two-stage and deterministic (each block writes one partial, one block combines
//   them in a fixed order): no floating-point atomics, so results are bitwise reproducible;
// * the output-layout rule of the CPU kernels (same_dense_layout): operands with equal sizes and
//   strides that are contiguous / channels_last / channels_last_3d are walked linearly and the
//   output keeps those strides; otherwise contiguous copies and a contiguous output.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <cstdint>
#include <type_traits>

namespace pygan::cuda {

// ---- types ------------------------------------------------------------------------------------
template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
__device__ __forceinline__ acc_t<T> ld(const T& x) {
  return static_cast<acc_t<T>>(x);
}

template <typename T>
__device__ __forceinline__ T st(acc_t<T> x) {
  return static_cast<T>(x);  // c10::Half / c10::BFloat16: round to nearest even
}

// 16 bytes of T.
template <typename T>
struct alignas(16) Vec {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};

template <typename T>
__device__ __forceinline__ Vec<T> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T>*>(p);
}

template <typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T>& v) {
  *reinterpret_cast<Vec<T>*>(p) = v;
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// ---- launch geometry ----------------------------------------------------------------------------
constexpr int kThreads = 256;

inline int sm_count() {
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  static int cached[64] = {0};
  if (device < 64 && cached[device] > 0) return cached[device];
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  if (device < 64) cached[device] = sms;
  return sms;
}

// Blocks for a grid-stride loop over `items` work items of `per_block` each: enough to cover them,
// at most `waves` full waves of the GPU (8 resident 256-thread blocks per SM on Hopper).
inline unsigned grid_1d(int64_t items, int64_t per_block, int waves = 4) {
  const int64_t need = (items + per_block - 1) / per_block;
  const int64_t cap = static_cast<int64_t>(sm_count()) * 8 * waves;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(need, cap)));
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// ---- reductions -----------------------------------------------------------------------------------
template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); the result is valid in thread 0.
// Ends with a barrier, so it can be called again in the same kernel.
template <typename A>
__device__ A block_sum(A v) {
  __shared__ A partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  A total = 0;
  if (warp == 0) {
    total = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : A(0);
    total = warp_sum(total);
  }
  __syncthreads();
  return total;
}

// ---- row index of a flat element (batch-outermost layouts: row = i / D) -----------------------------
// 32-bit magic-number division when every index fits (the common case), 64-bit division otherwise.
struct RowDiv32 {
  uint32_t d, m;
  int s;
  explicit RowDiv32(uint32_t divisor) : d(divisor) {
    s = 0;
    while ((uint64_t(1) << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t operator()(uint32_t i) const {
    const uint32_t t = __umulhi(i, m);
    return (t + i) >> s;  // valid for i, d < 2^31 (t + i < 2^32)
  }
};

struct RowDiv64 {
  int64_t d;
  explicit RowDiv64(int64_t divisor) : d(divisor) {}
  __device__ __forceinline__ int64_t operator()(int64_t i) const { return i / d; }
};

// ---- checks and layout ---------------------------------------------------------------------------
inline void check_float_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "pygan: ", name, " must be a CUDA tensor for the CUDA kernel");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "pygan: ", name, " must be a floating-point tensor, got ",
              t.scalar_type());
}

inline void check_same(const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn) {
  TORCH_CHECK(a.sizes() == b.sizes(), "pygan: ", an, " and ", bn, " must have the same shape, got ", a.sizes(),
              " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "pygan: ", an, " and ", bn, " must have the same dtype, got ",
              a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), "pygan: ", an, " and ", bn, " must be on the same device");
}

// Mirrors csrc/cpu/common.h and pygan/ops/_layout.py.
inline bool same_dense_layout(at::TensorList ts) {
  const at::Tensor& first = ts[0];
  for (const auto& t : ts) {
    if (t.sizes() != first.sizes() || t.strides() != first.strides()) return false;
  }
  if (first.is_contiguous()) return true;
  if (first.dim() == 4) return first.is_contiguous(at::MemoryFormat::ChannelsLast);
  if (first.dim() == 5) return first.is_contiguous(at::MemoryFormat::ChannelsLast3d);
  return false;
}

inline at::Tensor dense_operand(const at::Tensor& t, bool keep) { return keep ? t : t.contiguous(); }

inline at::Tensor empty_like_layout(const at::Tensor& like, bool keep) {
  return keep ? at::empty_strided(like.sizes(), like.strides(), like.options())
              : at::empty(like.sizes(), like.options());
}

}  // namespace pygan::cuda

// float64, float32, bfloat16 and float16.
#define PYGAN_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, TYPE, NAME, __VA_ARGS__)
