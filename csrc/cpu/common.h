// Shared helpers for pygan's CPU kernels.
//
// Every file in csrc/cpu/ is compiled once per CPU capability (DEFAULT, AVX2, AVX512), each time
// into its own shared library (pygan/_cpu_<cap>.*.so); Python loads exactly one of them at run
// time (see pygan/_ext.py). The build defines CPU_CAPABILITY / CPU_CAPABILITY_<CAP>, which is what
// makes at::vec::Vectorized<T> real SIMD code instead of its scalar fallback.
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <tuple>
#include <type_traits>

#ifndef CPU_CAPABILITY
#error "csrc/cpu sources must be compiled with -DCPU_CAPABILITY=<DEFAULT|AVX2|AVX512> (see setup.py)"
#endif

namespace pygan::cpu {

using at::vec::Vectorized;

// Elements per parallel chunk (ATen's own grain size for elementwise kernels).
constexpr int64_t kGrain = 32768;

template <typename T>
using opmath_t = at::opmath_type<T>;

// Load/store of one "step" of T elements as opmath vectors (float for bf16/half, else T).
// Reduced types (bf16/half) occupy two float vectors per step; float/double one.
template <typename T, bool Reduced = at::is_reduced_floating_point_v<T>>
struct VecIO;

template <typename T>
struct VecIO<T, false> {
  using fVec = Vectorized<T>;
  static constexpr int kParts = 1;
  static constexpr int64_t kStep = fVec::size();
  using Pack = std::array<fVec, 1>;
  static inline Pack load(const T* p) { return {fVec::loadu(p)}; }
  static inline Pack load(const T* p, int64_t n) { return {fVec::loadu(p, n)}; }
  static inline void store(T* p, const Pack& v) { v[0].store(p); }
  static inline void store(T* p, const Pack& v, int64_t n) { v[0].store(p, n); }
};

template <typename T>
struct VecIO<T, true> {
  using Vec = Vectorized<T>;
  using fVec = Vectorized<float>;
  static constexpr int kParts = 2;
  static constexpr int64_t kStep = Vec::size();
  using Pack = std::array<fVec, 2>;
  static inline Pack load(const T* p) {
    auto [a, b] = at::vec::convert_to_float<T>(Vec::loadu(p));
    return {a, b};
  }
  static inline Pack load(const T* p, int64_t n) {
    auto [a, b] = at::vec::convert_to_float<T>(Vec::loadu(p, n));
    return {a, b};
  }
  static inline void store(T* p, const Pack& v) { at::vec::convert_from_float<T>(v[0], v[1]).store(p); }
  static inline void store(T* p, const Pack& v, int64_t n) {
    at::vec::convert_from_float<T>(v[0], v[1]).store(p, n);
  }
};

// out[i] = op(in[i]...) over [begin, end) of flat arrays, computed in opmath vectors: full SIMD
// steps, then one partial step for the tail. `op` maps opmath vectors to an opmath vector.
template <typename T, typename Op, typename... In>
inline void vec_map(int64_t begin, int64_t end, const Op& op, T* out, const In*... in) {
  using IO = VecIO<T>;
  constexpr int64_t S = IO::kStep;
  int64_t i = begin;
  for (; i + S <= end; i += S) {
    typename IO::Pack o;
    std::tuple<decltype(IO::load(in))...> args{IO::load(in + i)...};
    for (int p = 0; p < IO::kParts; ++p) {
      o[p] = std::apply([&](const auto&... a) { return op(a[p]...); }, args);
    }
    IO::store(out + i, o);
  }
  if (i < end) {
    const int64_t n = end - i;
    typename IO::Pack o;
    std::tuple<decltype(IO::load(in))...> args{IO::load(in + i, n)...};
    for (int p = 0; p < IO::kParts; ++p) {
      o[p] = std::apply([&](const auto&... a) { return op(a[p]...); }, args);
    }
    IO::store(out + i, o, n);
  }
}

// ---- math -----------------------------------------------------------------------------------
// tanh for float vectors, ~2x faster than Sleef's tanhf (what Vectorized<float>::tanh() and eager
// torch.tanh use) at the same accuracy class: |x| < 0.5 -> the odd Taylor series to x^15 (the
// first omitted term is < 1e-8 relative there); |x| >= 0.5 -> 1 - 2 / (exp(2|x|) + 1) with Sleef's
// 1-ULP exp (no cancellation: the result is >= 0.46), sign restored. exp overflows to inf for large
// |x|, which gives exactly 1. NaN propagates. Measured max error vs float64 tanh: see
// tests/ops/test_residual.py::test_fast_tanh_accuracy. Double uses Sleef's tanh.
template <typename V>
inline V tanh_fast(const V& x) {
  if constexpr (std::is_same_v<V, Vectorized<double>>) {
    return x.tanh();
  } else {
    const V ax = x.abs();
    const V x2 = x * x;
    // Taylor coefficients of tanh: 1, -1/3, 2/15, -17/315, 62/2835, -1382/155925, 21844/6081075,
    // -929569/638512875.
    V p(static_cast<float>(-929569.0 / 638512875.0));
    p = at::vec::fmadd(p, x2, V(static_cast<float>(21844.0 / 6081075.0)));
    p = at::vec::fmadd(p, x2, V(static_cast<float>(-1382.0 / 155925.0)));
    p = at::vec::fmadd(p, x2, V(static_cast<float>(62.0 / 2835.0)));
    p = at::vec::fmadd(p, x2, V(static_cast<float>(-17.0 / 315.0)));
    p = at::vec::fmadd(p, x2, V(static_cast<float>(2.0 / 15.0)));
    p = at::vec::fmadd(p, x2, V(static_cast<float>(-1.0 / 3.0)));
    const V small = at::vec::fmadd(p * x2, x, x);
    const V e = (ax + ax).exp();
    const V big_abs = V(1.0f) - V(2.0f) / (e + V(1.0f));
    const V big = V::blendv(big_abs, V(0.0f) - big_abs, x < V(0.0f));
    return V::blendv(big, small, ax < V(0.5f));
  }
}

// ---- layout -------------------------------------------------------------------------------
// Elementwise kernels walk memory linearly. That is valid when every operand has the same sizes and
// strides and that layout is dense: contiguous, channels_last or channels_last_3d (element k of each
// operand's storage then corresponds). The output then gets exactly those strides; otherwise operands
// are made contiguous and so is the output. pygan/ops/_layout.py mirrors this rule for the fake
// (meta) kernels, which must return the same strides.
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

inline at::Tensor empty_like_layout(const at::Tensor& like, bool keep, at::ScalarType dtype) {
  return keep ? at::empty_strided(like.sizes(), like.strides(), like.options().dtype(dtype))
              : at::empty(like.sizes(), like.options().dtype(dtype));
}

// Checks that hold in every kernel; user-facing validation with named arguments happens in Python
// (pygan/ops/_check.py) before any kernel runs, so these only guard direct torch.ops calls.
inline void check_float_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "pygan: ", name, " must be a CPU tensor for the CPU kernel");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "pygan: ", name,
              " must be a floating-point tensor, got ", t.scalar_type());
}

inline void check_same(const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn) {
  TORCH_CHECK(a.sizes() == b.sizes(), "pygan: ", an, " and ", bn, " must have the same shape, got ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "pygan: ", an, " and ", bn,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

}  // namespace pygan::cpu

// float64, float32, bfloat16 and float16.
#define PYGAN_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, TYPE, NAME, __VA_ARGS__)
