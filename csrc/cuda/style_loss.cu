// gram_diff on CUDA: D = (Fx Fx^T - Fy Fy^T) / norm (Fx Fx^T / norm without fy), F = the features as
// [B, C, K], K = H*W (or N), norm = C*K ("chw") or K ("hw"); D is [B, C, C], contiguous, in fx's
// dtype, accumulated in float32 (float64 for float64) and rounded once. Backward: S = grad + grad^T,
// grad_fx = S Fx / norm, grad_fy = -S Fy / norm (contiguous, fx's shape; an empty [0] tensor when not
// needed or fy is None). Contract as pygan/ops/style_loss/.
//
// Why hand-written rather than cuBLAS (at::bmm): the output is a tiny C x C per sample and K is huge,
// so the useful structure is (1) symmetry: only the upper triangle of 64x64 output tiles is computed
// (about half the FLOPs of a bmm) and mirrored on the way out; (2) both Grams in one accumulator
// ([Fx|Fy] [Fx|-Fy]^T: one pass, no second C x C buffer and no subtraction kernel); (3) split-K
// over K so that B * tiles * splits blocks fill the GPU even for few samples. Splits go to a
// float32 (float64) workspace, reduced in a fixed order by a second kernel (deterministic, no float
// atomics); with one split the GEMM kernel writes D directly, the diagonal tiles split so that every
// element is written exactly once.
//
// GEMM kernels: 256 threads, 64x64 output tile, 4x4 outputs per thread, K (or the inner dimension)
// in steps of 64 bytes per row, so every thread loads one 16-byte vector per operand tile (when the
// features are K-contiguous, K and the row stride are multiples of the vector width and pointers are
// aligned; scalar loads otherwise). Operands are converted to the accumulation type on their way into
// shared memory and the next step's global loads are issued before the current step's arithmetic.
// Arithmetic is FMA in float32/float64 (no tensor cores: float32 accuracy is part of the contract;
// bf16/fp16 inputs are upcast, so they run at the float32 rate).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include "common.cuh"

#include <algorithm>
#include <optional>
#include <string_view>
#include <tuple>

namespace pygan::cuda {
namespace {

constexpr int BM = 64;   // output tile edge (both dimensions)
constexpr int TM = 4;    // outputs per thread per dimension (16 x 16 threads)
constexpr int PAD = 4;   // shared-memory row padding (keeps 16-byte alignment of 4-wide reads)
constexpr int VPR = 4;   // 16-byte vectors per tile row per step
static_assert(BM * VPR == kThreads, "one vector per thread per operand tile");

template <typename T>
constexpr int step_k() {
  return VPR * Vec<T>::N;  // 64 bytes of T: float 16, bf16/half 32, double 8
}

// Loads the N elements [k, k + N) of a row into registers (zeros outside [0, kend) or when the row
// is out of range). VEC: one 16-byte load (k and kend are multiples of N).
template <typename T, bool VEC>
__device__ __forceinline__ void load_row_piece(const T* row, bool row_ok, int64_t k, int64_t kend,
                                               acc_t<T> (&dst)[Vec<T>::N]) {
  constexpr int N = Vec<T>::N;
  if constexpr (VEC) {
    if (row_ok && k < kend) {
      const Vec<T> v = load_vec(row + k);
#pragma unroll
      for (int j = 0; j < N; ++j) dst[j] = ld(v.v[j]);
    } else {
#pragma unroll
      for (int j = 0; j < N; ++j) dst[j] = 0;
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) dst[j] = (row_ok && k + j < kend) ? ld(row[k + j]) : acc_t<T>(0);
  }
}

// ---- forward: upper-triangle tiles, split-K ------------------------------------------------------------

template <typename T, bool HAS_Y, bool VEC>
__global__ void __launch_bounds__(kThreads)
    gram_fwd_kernel(const T* __restrict__ x, int64_t sxb, int64_t sxc, const T* __restrict__ y, int64_t syb,
                    int64_t syc, int C, int64_t K, int tiles, int n_upper, int64_t k_per_split, int B, double norm,
                    bool direct, T* __restrict__ d, acc_t<T>* __restrict__ ws) {
  using A = acc_t<T>;
  constexpr int N = Vec<T>::N;
  constexpr int BK = step_k<T>();
  __shared__ __align__(16) A xi_s[BK][BM + PAD];
  __shared__ __align__(16) A xj_s[BK][BM + PAD];
  __shared__ __align__(16) A yi_s[HAS_Y ? BK : 1][BM + PAD];
  __shared__ __align__(16) A yj_s[HAS_Y ? BK : 1][BM + PAD];

  const int b = blockIdx.x / n_upper;
  int t = blockIdx.x % n_upper;
  int ti = 0, row_len = tiles;  // upper-triangle tile number t, row-major: (ti, tj), ti <= tj
  while (t >= row_len) {
    t -= row_len;
    ++ti;
    --row_len;
  }
  const int tj = ti + t;
  const int64_t k0 = static_cast<int64_t>(blockIdx.y) * k_per_split;
  const int64_t k1 = std::min(K, k0 + k_per_split);

  // This thread's loads: row lr of the tile, elements [lk, lk + N) of each K step.
  const int lr = threadIdx.x / VPR;
  const int lk = (threadIdx.x % VPR) * N;
  const int gi = ti * BM + lr, gj = tj * BM + lr;
  const bool ok_i = gi < C, ok_j = gj < C;
  const T* xi = x + static_cast<int64_t>(b) * sxb + static_cast<int64_t>(ok_i ? gi : 0) * sxc;
  const T* xj = x + static_cast<int64_t>(b) * sxb + static_cast<int64_t>(ok_j ? gj : 0) * sxc;
  const T* yi = HAS_Y ? y + static_cast<int64_t>(b) * syb + static_cast<int64_t>(ok_i ? gi : 0) * syc : nullptr;
  const T* yj = HAS_Y ? y + static_cast<int64_t>(b) * syb + static_cast<int64_t>(ok_j ? gj : 0) * syc : nullptr;

  // This thread's outputs: rows ty*TM + m, columns tx*TM + n of the tile.
  const int tx = threadIdx.x % (BM / TM), ty = threadIdx.x / (BM / TM);
  A acc[TM][TM];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int n = 0; n < TM; ++n) acc[m][n] = 0;

  A rxi[N], rxj[N], ryi[N], ryj[N];
  auto fetch = [&](int64_t k) {
    load_row_piece<T, VEC>(xi, ok_i, k + lk, k1, rxi);
    load_row_piece<T, VEC>(xj, ok_j, k + lk, k1, rxj);
    if constexpr (HAS_Y) {
      load_row_piece<T, VEC>(yi, ok_i, k + lk, k1, ryi);
      load_row_piece<T, VEC>(yj, ok_j, k + lk, k1, ryj);
    }
  };
  if (k0 < k1) fetch(k0);
  for (int64_t k = k0; k < k1; k += BK) {
    __syncthreads();  // the previous step's reads of shared memory are done
#pragma unroll
    for (int q = 0; q < N; ++q) {
      xi_s[lk + q][lr] = rxi[q];
      xj_s[lk + q][lr] = rxj[q];
      if constexpr (HAS_Y) {
        yi_s[lk + q][lr] = ryi[q];
        yj_s[lk + q][lr] = ryj[q];
      }
    }
    __syncthreads();
    if (k + BK < k1) fetch(k + BK);  // in flight during the arithmetic below
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      A a[TM], c[TM];
#pragma unroll
      for (int m = 0; m < TM; ++m) a[m] = xi_s[kk][ty * TM + m];
#pragma unroll
      for (int n = 0; n < TM; ++n) c[n] = xj_s[kk][tx * TM + n];
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int n = 0; n < TM; ++n) acc[m][n] = fma(a[m], c[n], acc[m][n]);
      if constexpr (HAS_Y) {
#pragma unroll
        for (int m = 0; m < TM; ++m) a[m] = yi_s[kk][ty * TM + m];
#pragma unroll
        for (int n = 0; n < TM; ++n) c[n] = yj_s[kk][tx * TM + n];
#pragma unroll
        for (int m = 0; m < TM; ++m)
#pragma unroll
          for (int n = 0; n < TM; ++n) acc[m][n] = fma(-a[m], c[n], acc[m][n]);
      }
    }
  }

  const int64_t cc = static_cast<int64_t>(C) * C;
  if (direct) {
    const A nrm = static_cast<A>(norm);
    T* db = d + static_cast<int64_t>(b) * cc;
    const bool diag = ti == tj;
#pragma unroll
    for (int m = 0; m < TM; ++m) {
      const int r = ti * BM + ty * TM + m;
#pragma unroll
      for (int n = 0; n < TM; ++n) {
        const int c = tj * BM + tx * TM + n;
        if (r < C && c < C) {
          const T v = st<T>(acc[m][n] / nrm);
          if (!diag || r <= c) db[static_cast<int64_t>(r) * C + c] = v;
          if (!diag || r < c) db[static_cast<int64_t>(c) * C + r] = v;
        }
      }
    }
  } else {
    A* wb = ws + (static_cast<int64_t>(blockIdx.y) * B + b) * cc;
#pragma unroll
    for (int m = 0; m < TM; ++m) {
      const int r = ti * BM + ty * TM + m;
#pragma unroll
      for (int n = 0; n < TM; ++n) {
        const int c = tj * BM + tx * TM + n;
        if (r < C && c < C) wb[static_cast<int64_t>(r) * C + c] = acc[m][n];
      }
    }
  }
}

// D[b, r, c] = sum_s ws[s, b, min(r, c), max(r, c)] / norm, summed in split order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    gram_reduce_kernel(const acc_t<T>* __restrict__ ws, T* __restrict__ d, int64_t B, int C, int splits,
                       double norm) {
  using A = acc_t<T>;
  const int64_t cc = static_cast<int64_t>(C) * C;
  const int64_t total = B * cc;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / cc;
    const int64_t rc = i % cc;
    const int64_t r = rc / C, c = rc % C;
    const int64_t src = (r <= c ? r * C + c : c * C + r) + b * cc;
    A s = 0;
    for (int sp = 0; sp < splits; ++sp) s += ws[sp * total + src];
    d[i] = st<T>(s / static_cast<A>(norm));
  }
}

// ---- backward: out[b] = sign * (G + G^T) F[b] / norm ----------------------------------------------------

template <typename T, bool VEC>
__global__ void __launch_bounds__(kThreads)
    gram_bwd_kernel(const T* __restrict__ g, int64_t sgb, int64_t sgr, int64_t sgc, const T* __restrict__ f,
                    int64_t sfb, int64_t sfc, int C, int64_t K, int64_t k_blocks, double norm, bool negate,
                    T* __restrict__ out) {
  using A = acc_t<T>;
  constexpr int N = Vec<T>::N;
  constexpr int BJ = step_k<T>();  // inner (C) dimension per step
  constexpr int FV = BM / N;       // vectors per F tile row (64 columns of K)
  static_assert(BJ * FV == kThreads, "one F vector per thread per step");
  __shared__ __align__(16) A s_s[BJ][BM + PAD];  // S[r][j] stored as [j][r]
  __shared__ __align__(16) A f_s[BJ][BM + PAD];  // F[j][k]

  const int64_t b = blockIdx.x / k_blocks;
  const int64_t kb = blockIdx.x % k_blocks;
  const int r0 = blockIdx.y * BM;
  const int64_t kc0 = kb * BM;
  const T* gb = g + b * sgb;
  const T* fb = f + b * sfb;

  // S loads: row sr of the tile, inner elements [sj, sj + N) of each step (scalar, strided, grad is
  // small and L2-resident). F loads: row fj of the step, columns [fk, fk + N) of the tile.
  const int sr = threadIdx.x / VPR, sj = (threadIdx.x % VPR) * N;
  const int fj = threadIdx.x / FV, fk = (threadIdx.x % FV) * N;
  const int gr = r0 + sr;

  const int tx = threadIdx.x % (BM / TM), ty = threadIdx.x / (BM / TM);
  A acc[TM][TM];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int n = 0; n < TM; ++n) acc[m][n] = 0;

  A rs[N], rf[N];
  auto fetch = [&](int j0) {
#pragma unroll
    for (int q = 0; q < N; ++q) {
      const int j = j0 + sj + q;
      rs[q] = (gr < C && j < C) ? ld(gb[gr * sgr + j * sgc]) + ld(gb[j * sgr + gr * sgc]) : A(0);
    }
    const int j = j0 + fj;
    load_row_piece<T, VEC>(fb + static_cast<int64_t>(j < C ? j : 0) * sfc, j < C, kc0 + fk, K, rf);
  };
  fetch(0);
  for (int j0 = 0; j0 < C; j0 += BJ) {
    __syncthreads();
#pragma unroll
    for (int q = 0; q < N; ++q) {
      s_s[sj + q][sr] = rs[q];
      f_s[fj][fk + q] = rf[q];
    }
    __syncthreads();
    if (j0 + BJ < C) fetch(j0 + BJ);
#pragma unroll
    for (int jj = 0; jj < BJ; ++jj) {
      A a[TM], c[TM];
#pragma unroll
      for (int m = 0; m < TM; ++m) a[m] = s_s[jj][ty * TM + m];
#pragma unroll
      for (int n = 0; n < TM; ++n) c[n] = f_s[jj][tx * TM + n];
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int n = 0; n < TM; ++n) acc[m][n] = fma(a[m], c[n], acc[m][n]);
    }
  }

  const A nrm = static_cast<A>(negate ? -norm : norm);
  T* ob = out + b * static_cast<int64_t>(C) * K;
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int r = r0 + ty * TM + m;
    if (r >= C) continue;
#pragma unroll
    for (int n = 0; n < TM; ++n) {
      const int64_t k = kc0 + tx * TM + n;
      if (k < K) ob[static_cast<int64_t>(r) * K + k] = st<T>(acc[m][n] / nrm);
    }
  }
}

// ---- host ---------------------------------------------------------------------------------------------

struct Features {
  at::Tensor f;  // [B, C, K] view (or copy) with unit stride along K
  int64_t B, C, K;
};

Features as_bck(const at::Tensor& t, const char* name) {
  check_float_cuda(t, name);
  TORCH_CHECK(t.dim() >= 3, "pygan::gram_diff: ", name, " must be [B, C, H, W] or [B, C, N], got ", t.sizes());
  Features out;
  out.B = t.size(0);
  out.C = t.size(1);
  out.K = 1;
  for (int64_t i = 2; i < t.dim(); ++i) out.K *= t.size(i);
  out.f = t.reshape({out.B, out.C, out.K});
  if (out.K > 1 && out.f.stride(2) != 1) out.f = out.f.contiguous();
  TORCH_CHECK(out.C < (int64_t(1) << 31), "pygan::gram_diff: too many channels");
  return out;
}

int64_t norm_of(const Features& f, std::string_view normalize) {
  TORCH_CHECK(normalize == "chw" || normalize == "hw", "pygan::gram_diff: normalize must be 'chw' or 'hw', got '",
              normalize, "'");
  return normalize == "chw" ? f.C * f.K : f.K;
}

template <typename T>
bool vector_ok(const Features& f) {
  constexpr int N = Vec<T>::N;
  return f.K % N == 0 && f.f.stride(0) % N == 0 && f.f.stride(1) % N == 0 && aligned16(f.f.const_data_ptr<T>());
}

at::Tensor gram_diff(const at::Tensor& fx, const std::optional<at::Tensor>& fy, c10::string_view normalize_) {
  const std::string_view normalize(normalize_.data(), normalize_.size());
  const Features X = as_bck(fx, "fx");
  const bool has_y = fy.has_value() && fy->defined();
  Features Y = X;
  if (has_y) {
    check_same(fx, "fx", *fy, "fy");
    Y = as_bck(*fy, "fy");
  }
  const int64_t norm = norm_of(X, normalize);
  const c10::cuda::CUDAGuard guard(fx.device());
  at::Tensor d = at::empty({X.B, X.C, X.C}, fx.options());
  if (d.numel() == 0) return d;
  const int C = static_cast<int>(X.C);
  const int tiles = static_cast<int>((X.C + BM - 1) / BM);
  const int n_upper = tiles * (tiles + 1) / 2;
  TORCH_CHECK(X.B * n_upper < (int64_t(1) << 31), "pygan::gram_diff: batch too large for the CUDA kernel");
  PYGAN_DISPATCH_FLOATING(fx.scalar_type(), "pygan::gram_diff_cuda", [&] {
    using A = acc_t<scalar_t>;
    constexpr int BK = step_k<scalar_t>();
    // Split K so that the blocks fill ~4 per SM, each split at least 8 steps long.
    const int64_t blocks = X.B * n_upper;
    const int64_t want = (static_cast<int64_t>(sm_count()) * 4 + blocks - 1) / blocks;
    const int64_t steps = (X.K + BK - 1) / BK;
    int64_t splits = std::max<int64_t>(1, std::min({want, (steps + 7) / 8, int64_t(64)}));
    const int64_t k_per_split = std::max<int64_t>(1, (steps + splits - 1) / splits) * BK;
    splits = std::max<int64_t>(1, (X.K + k_per_split - 1) / k_per_split);
    const bool direct = splits == 1;
    at::Tensor ws;
    if (!direct) ws = at::empty({splits, X.B, X.C, X.C}, fx.options().dtype(fx.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
    const bool vec = vector_ok<scalar_t>(X) && (!has_y || vector_ok<scalar_t>(Y));
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(splits));
    auto go = [&](auto y_c, auto vec_c) {
      gram_fwd_kernel<scalar_t, decltype(y_c)::value, decltype(vec_c)::value><<<grid, kThreads, 0, stream()>>>(
          X.f.const_data_ptr<scalar_t>(), X.f.stride(0), X.f.stride(1), Y.f.const_data_ptr<scalar_t>(),
          Y.f.stride(0), Y.f.stride(1), C, X.K, tiles, n_upper, k_per_split, static_cast<int>(X.B),
          static_cast<double>(norm), direct, d.mutable_data_ptr<scalar_t>(), direct ? nullptr : ws.mutable_data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (has_y) {
      vec ? go(std::true_type{}, std::true_type{}) : go(std::true_type{}, std::false_type{});
    } else {
      vec ? go(std::false_type{}, std::true_type{}) : go(std::false_type{}, std::false_type{});
    }
    if (!direct) {
      gram_reduce_kernel<scalar_t><<<grid_1d(d.numel(), kThreads), kThreads, 0, stream()>>>(
          ws.const_data_ptr<A>(), d.mutable_data_ptr<scalar_t>(), X.B, C, static_cast<int>(splits),
          static_cast<double>(norm));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return d;
}

void launch_backward(const at::Tensor& grad, const Features& F, int64_t norm, bool negate, at::Tensor& out) {
  if (out.numel() == 0) return;
  const int64_t k_blocks = (F.K + BM - 1) / BM;
  TORCH_CHECK(F.B * k_blocks < (int64_t(1) << 31), "pygan::gram_diff_backward: input too large for the CUDA kernel");
  TORCH_CHECK((F.C + BM - 1) / BM < 65536, "pygan::gram_diff_backward: too many channels for the CUDA kernel");
  const dim3 grid(static_cast<unsigned>(F.B * k_blocks), static_cast<unsigned>((F.C + BM - 1) / BM));
  PYGAN_DISPATCH_FLOATING(out.scalar_type(), "pygan::gram_diff_backward_cuda", [&] {
    const bool vec = vector_ok<scalar_t>(F);
    auto go = [&](auto vec_c) {
      gram_bwd_kernel<scalar_t, decltype(vec_c)::value><<<grid, kThreads, 0, stream()>>>(
          grad.const_data_ptr<scalar_t>(), grad.stride(0), grad.stride(1), grad.stride(2),
          F.f.const_data_ptr<scalar_t>(), F.f.stride(0), F.f.stride(1), static_cast<int>(F.C), F.K, k_blocks,
          static_cast<double>(norm), negate, out.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    vec ? go(std::true_type{}) : go(std::false_type{});
  });
}

std::tuple<at::Tensor, at::Tensor> gram_diff_backward(const at::Tensor& grad_, const at::Tensor& fx,
                                                      const std::optional<at::Tensor>& fy,
                                                      c10::string_view normalize_, bool need_x, bool need_y) {
  const std::string_view normalize(normalize_.data(), normalize_.size());
  const Features X = as_bck(fx, "fx");
  const bool has_y = fy.has_value() && fy->defined();
  const int64_t norm = norm_of(X, normalize);
  check_float_cuda(grad_, "grad");
  TORCH_CHECK(grad_.dim() == 3 && grad_.size(0) == X.B && grad_.size(1) == X.C && grad_.size(2) == X.C,
              "pygan::gram_diff_backward: grad must have shape [", X.B, ", ", X.C, ", ", X.C, "], got ", grad_.sizes());
  const c10::cuda::CUDAGuard guard(fx.device());
  const at::Tensor grad = grad_.to(fx.scalar_type());
  at::Tensor gx = need_x ? at::empty(fx.sizes(), fx.options()) : at::empty({0}, fx.options());
  at::Tensor gy = (need_y && has_y) ? at::empty(fx.sizes(), fx.options()) : at::empty({0}, fx.options());
  if (need_x) launch_backward(grad, X, norm, false, gx);
  if (need_y && has_y) {
    check_same(fx, "fx", *fy, "fy");
    launch_backward(grad, as_bck(*fy, "fy"), norm, true, gy);
  }
  return {gx, gy};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("gram_diff", &gram_diff);
  m.impl("gram_diff_backward", &gram_diff_backward);
}

}  // namespace pygan::cuda
