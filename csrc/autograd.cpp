// Autograd of every pygan:: op, in C++ at the Autograd dispatch key (one registration for every
// device: the CPU and CUDA kernels below it share it).
//
// Why C++: at the models' sizes a Python autograd formula (torch.library.register_autograd, i.e. an
// autograd.Function with setup_context run for every call, and a Python backward) cost more host
// time than the work, so a fused op was slower than the plain PyTorch expression it replaces
// (pygan issue 13; bench/overhead.py). Here each op is wired like PyTorch's own generated autograd
// kernels (VariableType): the kernel runs below autograd, and when a graph is needed one
// hand-written Node (saved tensors as SavedVariables, the backward in apply()) is attached to the
// outputs. (torch::autograd::Function, the documented C++ route, cost ~2 us more per call: its
// generic context, saved_data map and output wrapping.) A call that needs no graph (grad mode off,
// or no input that can receive a gradient requires one) goes straight to the kernel.
//
// Every backward is made of registered ops (called through the dispatcher, so their own autograd
// below records a graph under create_graph) or ATen ops, so gradients of any order are exact: the
// backward ops have their own formulas here too. The formulas are the same as the Triton ops'
// Python ones (pygan/ops/<op>/contract.py, register_autograd_rules), which the tests check against each other
// and against the references (gradcheck/gradgradcheck). Sizes used in the double-backward formulas
// are SymInts, so opcheck's dynamic-shape tracing of the backward ops works.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/library.h>

#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace pygan::autograd {
namespace {

using at::Tensor;
using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;
using TensorVec = std::vector<Tensor>;

// ---- op handles (looked up once) -------------------------------------------------------------

template <typename Sig>
c10::TypedOperatorHandle<Sig> lookup(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

#define PYGAN_OP(fn, name, ...)                                  \
  const c10::TypedOperatorHandle<__VA_ARGS__>& fn() {            \
    static const auto handle = lookup<__VA_ARGS__>("pygan::" name); \
    return handle;                                               \
  }

PYGAN_OP(residual_op, "residual_add", Tensor(const Tensor&, const Tensor&, c10::string_view, bool))
PYGAN_OP(residual_bwd_op, "residual_add_backward", Tensor(const Tensor&, const Tensor&, c10::string_view))
PYGAN_OP(fr_op, "feature_regularizer",
         Tensor(at::TensorList, at::TensorList, int64_t, c10::string_view, at::ArrayRef<double>))
PYGAN_OP(fr_bwd_op, "feature_regularizer_backward",
         std::tuple<TensorVec, TensorVec>(const Tensor&, at::TensorList, at::TensorList, int64_t,
                                          c10::string_view, at::ArrayRef<double>, bool, bool))
PYGAN_OP(gram_op, "gram_diff", Tensor(const Tensor&, const std::optional<Tensor>&, c10::string_view))
PYGAN_OP(gram_bwd_op, "gram_diff_backward",
         std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const std::optional<Tensor>&,
                                    c10::string_view, bool, bool))
PYGAN_OP(interp_op, "interpolate", Tensor(const Tensor&, const Tensor&, const Tensor&))
PYGAN_OP(interp_bwd_op, "interpolate_backward",
         std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, bool, bool))
PYGAN_OP(gnp_op, "grad_norm_penalty", std::tuple<Tensor, Tensor>(const Tensor&, double, double, bool))
PYGAN_OP(gnp_bwd_op, "grad_norm_penalty_backward",
         Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, double, double, bool))
#undef PYGAN_OP

// ---- helpers ---------------------------------------------------------------------------------

// Sum over every non-batch dim: [B, ...] -> [B] (rank 1: the tensor itself, in `dtype` if given).
Tensor row_sum(const Tensor& t, std::optional<at::ScalarType> dtype = std::nullopt) {
  if (t.dim() == 1) return dtype ? t.to(*dtype) : t;
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < t.dim(); ++d) dims.push_back(d);
  return t.sum(dims, /*keepdim=*/false, dtype);
}

// The Gram's divisor (pygan/ops/style_loss/reference.py: gram_norm): C*K ("chw") or K ("hw"), at least 1.
c10::SymInt gram_norm(const Tensor& f, bool chw) {
  c10::SymInt k = 1;
  for (int64_t d = 2; d < f.dim(); ++d) k = k * f.sym_size(d);
  c10::SymInt n = chw ? f.sym_size(1) * k : k;
  return n.max(c10::SymInt(1));
}

// Whether a call must record a graph: grad mode on and some argument requires grad.
template <typename... Args>
bool needs_graph(const Args&... args) {
  return torch::autograd::compute_requires_grad(args...);
}

// Nodes are held by c10::intrusive_ptr from torch 2.12/2.13 on (pytorch#181782) and by std::shared_ptr
// before (the lent GPU machine has torch 2.11); both spellings are written below, and the names of
// the one not taken stay dependent (never instantiated).
constexpr bool kIntrusiveNodes = std::is_base_of_v<c10::intrusive_ptr_target, Node>;

// A fresh node of type N whose next edges are the gradient edges of `inputs` (one per tensor, in
// order; an undefined tensor or nullopt gives an invalid edge, which never receives a gradient).
template <class N, class... Inputs>
auto make_node(const Inputs&... inputs) {
  auto node = [] {
    if constexpr (kIntrusiveNodes) {
      return c10::make_intrusive<N>();
    } else {
      // deleteNode (found by argument-dependent lookup) frees long chains without deep recursion.
      return std::shared_ptr<N>(new N(), [](N* n) { deleteNode(n); });
    }
  }();
  node->set_next_edges(torch::autograd::collect_next_edges(inputs...));
  return node;
}

// The owning pointer to `node` itself (for unpacking saved outputs).
template <class N>
auto self_ptr(N* node) {
  if constexpr (kIntrusiveNodes) {
    return node->getptr();
  } else {
    return node->shared_from_this();
  }
}

// Makes `node` the grad_fn of the outputs (its inputs 0, 1, ... in this order).
template <class Ptr>
void attach(const Ptr& node, std::initializer_list<const Tensor*> outs) {
  for (const Tensor* t : outs) torch::autograd::set_history(*t, node);
}

template <class Ptr>
void attach(const Ptr& node, const TensorVec& outs) {
  for (const Tensor& t : outs) torch::autograd::set_history(t, node);
}

std::vector<SavedVariable> save_all(at::TensorList ts) {
  std::vector<SavedVariable> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.emplace_back(t, /*is_output=*/false);
  return out;
}

TensorVec unpack_all(const std::vector<SavedVariable>& vs) {
  TensorVec out;
  out.reserve(vs.size());
  for (const auto& v : vs) out.push_back(v.unpack());
  return out;
}

// Common parts of every node: a name (grad_fn.name()) and the lock PyTorch's nodes take around
// their saved variables.
template <class Self>
struct PyganNode : Node {
  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<Self*>(this)->backward(grads);
  }
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    static_cast<Self*>(this)->release();
  }
  std::string name() const override { return Self::kName; }
};

}  // namespace

// The graph nodes; grad_fn.name() is "pygan::<op>Backward" (the node of the op <op>).

// ---- residual_add ----------------------------------------------------------------------------

// out = act(base + residual); the gradient grad * act'(out), the same for both inputs (none to base
// with detach_base: its edge is left invalid), from the saved output.
struct ResidualAddNode : PyganNode<ResidualAddNode> {
  static constexpr const char* kName = "pygan::residual_addBackward";
  SavedVariable out_;
  std::string act_;

  variable_list backward(const variable_list& grads) {
    variable_list r(2);
    if (!grads[0].defined()) return r;
    const Tensor g = act_ == "none" ? grads[0] : residual_bwd_op().call(grads[0], out_.unpack(self_ptr(this)), act_);
    if (task_should_compute_output(0)) r[0] = g;
    if (task_should_compute_output(1)) r[1] = g;
    return r;
  }
  void release() { out_.reset_data(); }
};

Tensor residual_add_autograd(const Tensor& base, const Tensor& residual, c10::string_view act,
                             bool detach_base) {
  // With detach_base the base never receives a gradient: only the residual decides.
  const Tensor& base_in = detach_base ? Tensor() : base;
  const bool graph = needs_graph(base_in, residual);
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = residual_op().call(base, residual, act, detach_base);
  }
  if (graph) {
    auto node = make_node<ResidualAddNode>(base_in, residual);
    node->act_ = std::string(act);
    attach(node, {&out});
    if (act != "none") node->out_ = SavedVariable(out, /*is_output=*/true);
  }
  return out;
}

// grad_in = grad * act'(out). d/d grad is the same op on gg; d/d out is -2 out grad gg for tanh
// (tanh' = 1 - out^2) and 0 for clamp (hardtanh' is piecewise constant) and none.
struct ResidualAddBackwardNode : PyganNode<ResidualAddBackwardNode> {
  static constexpr const char* kName = "pygan::residual_add_backwardBackward";
  SavedVariable grad_, out_;
  std::string act_;

  variable_list backward(const variable_list& gg) {
    variable_list r(2);
    if (!gg[0].defined()) return r;
    if (task_should_compute_output(0)) r[0] = residual_bwd_op().call(gg[0], out_.unpack(), act_);
    if (task_should_compute_output(1) && act_ == "tanh") {
      r[1] = gg[0].mul(grad_.unpack()).mul(out_.unpack()).mul(-2.0);
    }
    return r;
  }
  void release() {
    grad_.reset_data();
    out_.reset_data();
  }
};

Tensor residual_add_backward_autograd(const Tensor& grad, const Tensor& out, c10::string_view act) {
  const bool graph = needs_graph(grad, out);
  Tensor gin;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    gin = residual_bwd_op().call(grad, out, act);
  }
  if (graph) {
    auto node = make_node<ResidualAddBackwardNode>(grad, out);
    node->act_ = std::string(act);
    node->grad_ = SavedVariable(grad, false);
    node->out_ = SavedVariable(out, false);
    attach(node, {&gin});
  }
  return gin;
}

// ---- feature_regularizer ---------------------------------------------------------------------

struct FrArgs {
  int64_t p = 2;
  std::string reduction;
  std::vector<double> weights;
};

// Edges: a_0..a_{k-1}, b_0..b_{k-1}. One call of the backward op writes the gradients of both sides.
struct FeatureRegularizerNode : PyganNode<FeatureRegularizerNode> {
  static constexpr const char* kName = "pygan::feature_regularizerBackward";
  std::vector<SavedVariable> a_, b_;
  FrArgs args_;

  variable_list backward(const variable_list& grads) {
    const size_t k = a_.size();
    variable_list r(2 * k);
    bool need_a = false, need_b = false;
    for (size_t i = 0; i < k; ++i) {
      need_a = need_a || task_should_compute_output(i);
      need_b = need_b || task_should_compute_output(k + i);
    }
    if (!grads[0].defined() || !(need_a || need_b)) return r;
    auto [ga, gb] = fr_bwd_op().call(grads[0], unpack_all(a_), unpack_all(b_), args_.p, args_.reduction,
                                     args_.weights, need_a, need_b);
    for (size_t i = 0; i < k; ++i) {
      if (need_a) r[i] = std::move(ga[i]);
      if (need_b) r[k + i] = std::move(gb[i]);
    }
    return r;
  }
  void release() {
    a_.clear();
    b_.clear();
  }
};

Tensor feature_regularizer_autograd(at::TensorList a, at::TensorList b, int64_t p, c10::string_view reduction,
                                    at::ArrayRef<double> weights) {
  const bool graph = needs_graph(a, b);
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = fr_op().call(a, b, p, reduction, weights);
  }
  if (graph) {
    auto node = make_node<FeatureRegularizerNode>(a, b);
    node->a_ = save_all(a);
    node->b_ = save_all(b);
    node->args_ = {p, std::string(reduction), weights.vec()};
    attach(node, {&out});
  }
  return out;
}

// The backward op computes ga_k = grad * c_k * phi'(d_k) and gb_k = -ga_k with d_k = a_k - b_k,
// c_k = w_k * s_k (s_k = 1/numel for "mean"). With u_k = gg_a[k] - gg_b[k] (a missing one counts as
// 0): d/d grad = sum_k c_k <phi'(d_k), u_k> (accumulated in float32, float64 for float64),
// d/d a_k = grad * c_k * phi''(d_k) * u_k and d/d b_k = -d/d a_k; phi' = 2d, phi'' = 2 for p=2,
// phi' = sign(d), phi'' = 0 for p=1. Edges: grad, a_0.., b_0..; inputs: ga (k or none), gb (k or none).
struct FeatureRegularizerBackwardNode : PyganNode<FeatureRegularizerBackwardNode> {
  static constexpr const char* kName = "pygan::feature_regularizer_backwardBackward";
  SavedVariable grad_;
  std::vector<SavedVariable> a_, b_;
  FrArgs args_;
  bool need_a_ = false, need_b_ = false;

  variable_list backward(const variable_list& gg) {
    const int64_t k = static_cast<int64_t>(a_.size());
    variable_list r(1 + 2 * k);
    const Tensor grad = grad_.unpack();
    const bool mean = args_.reduction == "mean";
    const bool need_grad = task_should_compute_output(0);
    const auto acc = grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    Tensor d_grad;
    for (int64_t i = 0; i < k; ++i) {
      const Tensor ga = need_a_ ? gg[i] : Tensor();
      const Tensor gb = need_b_ ? gg[(need_a_ ? k : 0) + i] : Tensor();
      if (!ga.defined() && !gb.defined()) continue;
      const Tensor u = !gb.defined() ? ga : (!ga.defined() ? gb.neg() : ga - gb);
      const Tensor ai = a_[i].unpack(), bi = b_[i].unpack();
      const c10::SymInt n = ai.sym_numel();
      const bool empty = n == 0;
      const double w = args_.weights[i];
      const c10::SymFloat c = (mean && !empty) ? w / n : c10::SymFloat(w);
      if (need_grad && !empty) {
        const Tensor d = ai - bi;
        const Tensor dphi = args_.p == 2 ? d.mul(2.0) : d.sign();
        const Tensor term = dphi.mul(u).sum(acc).mul(c10::Scalar(c));
        d_grad = d_grad.defined() ? d_grad + term : term;
      }
      const bool want_a = task_should_compute_output(1 + i), want_b = task_should_compute_output(1 + k + i);
      if (args_.p == 2 && (want_a || want_b)) {
        const Tensor da = grad.to(u.scalar_type()).mul(u).mul(c10::Scalar(c * c10::SymFloat(2.0)));
        if (want_a) r[1 + i] = da;
        if (want_b) r[1 + k + i] = da.neg();
      }
    }
    if (d_grad.defined()) {
      r[0] = d_grad.to(grad.scalar_type());
    } else if (need_grad) {
      r[0] = at::zeros_like(grad);
    }
    return r;
  }
  void release() {
    grad_.reset_data();
    a_.clear();
    b_.clear();
  }
};

std::tuple<TensorVec, TensorVec> feature_regularizer_backward_autograd(const Tensor& grad, at::TensorList a,
                                                                      at::TensorList b, int64_t p,
                                                                      c10::string_view reduction,
                                                                      at::ArrayRef<double> weights,
                                                                      bool need_a, bool need_b) {
  const bool graph = needs_graph(grad, a, b);
  std::tuple<TensorVec, TensorVec> out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = fr_bwd_op().call(grad, a, b, p, reduction, weights, need_a, need_b);
  }
  if (graph) {
    auto node = make_node<FeatureRegularizerBackwardNode>(grad, a, b);
    node->grad_ = SavedVariable(grad, false);
    node->a_ = save_all(a);
    node->b_ = save_all(b);
    node->args_ = {p, std::string(reduction), weights.vec()};
    node->need_a_ = need_a;
    node->need_b_ = need_b;
    attach(node, std::get<0>(out));
    attach(node, std::get<1>(out));
  }
  return out;
}

// ---- gram_diff -------------------------------------------------------------------------------

// Edges: fx, fy (invalid without fy). grad is dL/dD (with style_loss: 2 D s / (B C^2), formed by
// autograd from the returned D); the backward op turns it into the feature gradients in one pass.
struct GramDiffNode : PyganNode<GramDiffNode> {
  static constexpr const char* kName = "pygan::gram_diffBackward";
  SavedVariable fx_, fy_;
  bool has_y_ = false;
  std::string normalize_;

  variable_list backward(const variable_list& grads) {
    variable_list r(2);
    const bool need_x = task_should_compute_output(0);
    const bool need_y = has_y_ && task_should_compute_output(1);
    if (!grads[0].defined() || !(need_x || need_y)) return r;
    std::optional<Tensor> fy;
    if (has_y_) fy = fy_.unpack();
    auto [gx, gy] = gram_bwd_op().call(grads[0], fx_.unpack(), fy, normalize_, need_x, need_y);
    if (need_x) r[0] = std::move(gx);
    if (need_y) r[1] = std::move(gy);
    return r;
  }
  void release() {
    fx_.reset_data();
    fy_.reset_data();
  }
};

Tensor gram_diff_autograd(const Tensor& fx, const std::optional<Tensor>& fy, c10::string_view normalize) {
  const bool graph = needs_graph(fx, fy);
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = gram_op().call(fx, fy, normalize);
  }
  if (graph) {
    auto node = make_node<GramDiffNode>(fx, fy);
    node->fx_ = SavedVariable(fx, false);
    node->has_y_ = fy.has_value();
    if (fy.has_value()) node->fy_ = SavedVariable(*fy, false);
    node->normalize_ = std::string(normalize);
    attach(node, {&out});
  }
  return out;
}

// The backward is bilinear in (grad, features): with S = grad + grad^T and n the norm,
// (gx, gy) = (S Fx / n, -S Fy / n), so for incoming gg_x, gg_y
//   d/d grad = (gg_x Fx^T + Fx gg_x^T - gg_y Fy^T - Fy gg_y^T) / n,  d/d Fx = S gg_x / n,
//   d/d Fy = -S gg_y / n.
// The last two are the backward op itself (differentiable again); the first is formed from ATen ops.
// An output that was not computed (need_x/need_y false: an empty tensor) contributes nothing.
// Edges: grad, fx, fy (invalid without fy).
struct GramDiffBackwardNode : PyganNode<GramDiffBackwardNode> {
  static constexpr const char* kName = "pygan::gram_diff_backwardBackward";
  SavedVariable grad_, fx_, fy_;
  bool has_y_ = false, need_x_ = false, need_y_ = false;
  std::string normalize_;

  variable_list backward(const variable_list& gg) {
    variable_list r(3);
    const bool use_x = need_x_ && gg[0].defined();
    const bool use_y = need_y_ && gg[1].defined();
    if (!use_x && !use_y) return r;
    const Tensor grad = grad_.unpack(), fx = fx_.unpack();
    if (task_should_compute_output(0)) {
      Tensor prod;
      if (use_x) prod = at::bmm(gg[0].flatten(2), fx.flatten(2).transpose(1, 2));
      if (use_y) {
        const Tensor q = at::bmm(gg[1].flatten(2), fy_.unpack().flatten(2).transpose(1, 2));
        prod = prod.defined() ? prod - q : q.neg();
      }
      r[0] = (prod + prod.transpose(1, 2)).div(c10::Scalar(gram_norm(fx, normalize_ == "chw")));
    }
    const bool want_x = use_x && task_should_compute_output(1);
    const bool want_y = use_y && task_should_compute_output(2);
    if (want_x || want_y) {
      std::optional<Tensor> y_arg;
      if (want_y) y_arg = gg[1];
      // fx's slot only carries the shape when want_x is false (its values are then not read).
      auto [a, b] = gram_bwd_op().call(grad, want_x ? gg[0] : fx, y_arg, normalize_, want_x, want_y);
      if (want_x) r[1] = std::move(a);
      if (want_y) r[2] = std::move(b);
    }
    return r;
  }
  void release() {
    grad_.reset_data();
    fx_.reset_data();
    fy_.reset_data();
  }
};

std::tuple<Tensor, Tensor> gram_diff_backward_autograd(const Tensor& grad, const Tensor& fx,
                                                       const std::optional<Tensor>& fy,
                                                       c10::string_view normalize, bool need_x, bool need_y) {
  const bool graph = needs_graph(grad, fx, fy);
  std::tuple<Tensor, Tensor> out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = gram_bwd_op().call(grad, fx, fy, normalize, need_x, need_y);
  }
  if (graph) {
    auto node = make_node<GramDiffBackwardNode>(grad, fx, fy);
    node->grad_ = SavedVariable(grad, false);
    node->fx_ = SavedVariable(fx, false);
    node->has_y_ = fy.has_value();
    if (fy.has_value()) node->fy_ = SavedVariable(*fy, false);
    node->need_x_ = need_x;
    node->need_y_ = need_y && fy.has_value();
    node->normalize_ = std::string(normalize);
    attach(node, {&std::get<0>(out), &std::get<1>(out)});
  }
  return out;
}

// ---- interpolate -----------------------------------------------------------------------------

// out = real + alpha_b (fake - real): d real = (1 - alpha_b) g and d fake = alpha_b g in one call of
// the backward op; d alpha_b = sum over the row of g (fake - real) in ATen ops, only when alpha
// requires grad (real and fake are saved only then). Edges: real, fake, alpha.
struct InterpolateNode : PyganNode<InterpolateNode> {
  static constexpr const char* kName = "pygan::interpolateBackward";
  SavedVariable real_, fake_, alpha_;
  bool need_alpha_ = false;

  variable_list backward(const variable_list& grads) {
    variable_list r(3);
    const Tensor& grad = grads[0];
    if (!grad.defined()) return r;
    const bool need_real = task_should_compute_output(0), need_fake = task_should_compute_output(1);
    if (need_real || need_fake) {
      auto [gr, gf] = interp_bwd_op().call(grad, alpha_.unpack(), need_real, need_fake);
      if (need_real) r[0] = std::move(gr);
      if (need_fake) r[1] = std::move(gf);
    }
    if (need_alpha_ && task_should_compute_output(2)) {
      r[2] = row_sum(grad * (fake_.unpack() - real_.unpack()));
    }
    return r;
  }
  void release() {
    real_.reset_data();
    fake_.reset_data();
    alpha_.reset_data();
  }
};

Tensor interpolate_autograd(const Tensor& real, const Tensor& fake, const Tensor& alpha) {
  const bool graph = needs_graph(real, fake, alpha);
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = interp_op().call(real, fake, alpha);
  }
  if (graph) {
    auto node = make_node<InterpolateNode>(real, fake, alpha);
    node->alpha_ = SavedVariable(alpha, false);
    node->need_alpha_ = alpha.requires_grad();
    if (node->need_alpha_) {
      node->real_ = SavedVariable(real, false);
      node->fake_ = SavedVariable(fake, false);
    }
    attach(node, {&out});
  }
  return out;
}

// (gr, gf) = ((1 - alpha_b) g, alpha_b g): linear in g and in alpha. Edges: grad, alpha.
struct InterpolateBackwardNode : PyganNode<InterpolateBackwardNode> {
  static constexpr const char* kName = "pygan::interpolate_backwardBackward";
  SavedVariable grad_, alpha_;
  bool need_real_ = false, need_fake_ = false;

  variable_list backward(const variable_list& gg) {
    variable_list r(2);
    // Outputs that were not requested are empty [0] tensors: their incoming gradient is ignored.
    const Tensor ggr = need_real_ ? gg[0] : Tensor();
    const Tensor ggf = need_fake_ ? gg[1] : Tensor();
    const Tensor alpha = alpha_.unpack();
    if (task_should_compute_output(0)) {
      // d/dg of (1 - a) g . ggr + a g . ggf  =  ggr + a (ggf - ggr): interpolate itself.
      if (ggr.defined() && ggf.defined()) {
        r[0] = interp_op().call(ggr, ggf, alpha);
      } else if (ggr.defined()) {
        r[0] = std::get<0>(interp_bwd_op().call(ggr, alpha, true, false));
      } else if (ggf.defined()) {
        r[0] = std::get<1>(interp_bwd_op().call(ggf, alpha, false, true));
      }
    }
    const Tensor grad = grad_.unpack();
    if (task_should_compute_output(1) && grad.defined() && (ggr.defined() || ggf.defined())) {
      Tensor d_alpha = at::zeros_like(alpha);
      if (ggf.defined()) d_alpha = d_alpha + row_sum(grad * ggf);
      if (ggr.defined()) d_alpha = d_alpha - row_sum(grad * ggr);
      r[1] = d_alpha;
    }
    return r;
  }
  void release() {
    grad_.reset_data();
    alpha_.reset_data();
  }
};

std::tuple<Tensor, Tensor> interpolate_backward_autograd(const Tensor& grad, const Tensor& alpha, bool need_real,
                                                         bool need_fake) {
  const bool graph = needs_graph(grad, alpha);
  std::tuple<Tensor, Tensor> out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = interp_bwd_op().call(grad, alpha, need_real, need_fake);
  }
  if (graph) {
    auto node = make_node<InterpolateBackwardNode>(grad, alpha);
    if (alpha.requires_grad()) node->grad_ = SavedVariable(grad, false);
    node->alpha_ = SavedVariable(alpha, false);
    node->need_real_ = need_real;
    node->need_fake_ = need_fake;
    attach(node, {&std::get<0>(out), &std::get<1>(out)});
  }
  return out;
}

// ---- grad_norm_penalty -----------------------------------------------------------------------

struct PenaltyArgs {
  double target = 1.0, weight = 10.0;
  bool one_sided = false;
};

// Outputs (penalty, norms); edge: grads. A missing incoming gradient counts as zeros.
struct GradNormPenaltyNode : PyganNode<GradNormPenaltyNode> {
  static constexpr const char* kName = "pygan::grad_norm_penaltyBackward";
  SavedVariable grads_, norms_;
  PenaltyArgs args_;

  variable_list backward(const variable_list& grads) {
    variable_list r(1);
    if (!task_should_compute_output(0) || !(grads[0].defined() || grads[1].defined())) return r;
    const Tensor g = grads_.unpack(), norms = norms_.unpack(self_ptr(this));
    const Tensor gp = grads[0].defined() ? grads[0] : at::zeros({}, g.options());
    const Tensor gn = grads[1].defined() ? grads[1] : at::zeros_like(norms);
    r[0] = gnp_bwd_op().call(gp, gn, g, norms, args_.target, args_.weight, args_.one_sided);
    return r;
  }
  void release() {
    grads_.reset_data();
    norms_.reset_data();
  }
};

std::tuple<Tensor, Tensor> grad_norm_penalty_autograd(const Tensor& grads, double target, double weight,
                                                      bool one_sided) {
  const bool graph = needs_graph(grads);
  std::tuple<Tensor, Tensor> out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = gnp_op().call(grads, target, weight, one_sided);
  }
  if (graph) {
    auto node = make_node<GradNormPenaltyNode>(grads);
    node->args_ = {target, weight, one_sided};
    attach(node, {&std::get<0>(out), &std::get<1>(out)});
    node->grads_ = SavedVariable(grads, false);
    node->norms_ = SavedVariable(std::get<1>(out), /*is_output=*/true);
  }
  return out;
}

// out_b = c_b(gp, gn, n) * g_b with c_b = gp * 2w h(n_b - t) / (B n_b) + gn_b / n_b (0 where n_b == 0).
// Edges: grad_penalty, grad_norms, grads, norms.
struct GradNormPenaltyBackwardNode : PyganNode<GradNormPenaltyBackwardNode> {
  static constexpr const char* kName = "pygan::grad_norm_penalty_backwardBackward";
  SavedVariable gp_, gn_, grads_, norms_;
  PenaltyArgs args_;

  variable_list backward(const variable_list& grads_in) {
    variable_list r(4);
    const Tensor& gg = grads_in[0];
    if (!gg.defined()) return r;
    const Tensor gp = gp_.unpack(), gn = gn_.unpack(), grads = grads_.unpack(), norms = norms_.unpack();
    const bool need_gp = task_should_compute_output(0), need_gn = task_should_compute_output(1);
    const bool need_n = task_should_compute_output(3);
    // c does not depend on g: d/dg = c * gg, the same op applied to gg.
    if (task_should_compute_output(2)) {
      r[2] = gnp_bwd_op().call(gp, gn, gg, norms, args_.target, args_.weight, args_.one_sided);
    }
    if (need_gp || need_gn || need_n) {
      // s_b = <gg_b, g_b>, then the chain through c_b (every factor 0 where n_b == 0).
      const Tensor s = row_sum(gg * grads, norms.scalar_type());
      const Tensor zero = norms.eq(0);
      const Tensor n = at::where(zero, at::ones_like(norms), norms);
      const Tensor gap = norms - args_.target;
      const Tensor h = args_.one_sided ? gap.clamp_min(0) : gap;
      const c10::SymFloat scale = (2.0 * args_.weight) / grads.sym_size(0).max(c10::SymInt(1));
      if (need_gp) {
        r[0] = (s * at::where(zero, 0.0, h.mul(c10::Scalar(scale)) / n)).sum().to(gp.scalar_type());
      }
      if (need_gn) r[1] = at::where(zero, 0.0, s / n).to(gn.scalar_type());
      if (need_n) {
        const Tensor dh = args_.one_sided ? gap.ge(0).to(norms.scalar_type()) : at::ones_like(norms);
        const Tensor n2 = n.square();
        const Tensor dc_dn =
            gp.to(norms.scalar_type()).mul(c10::Scalar(scale)) * (dh * n - h) / n2 - gn / n2;
        r[3] = at::where(zero, 0.0, s * dc_dn);
      }
    }
    return r;
  }
  void release() {
    gp_.reset_data();
    gn_.reset_data();
    grads_.reset_data();
    norms_.reset_data();
  }
};

Tensor grad_norm_penalty_backward_autograd(const Tensor& grad_penalty, const Tensor& grad_norms,
                                           const Tensor& grads, const Tensor& norms, double target, double weight,
                                           bool one_sided) {
  const bool graph = needs_graph(grad_penalty, grad_norms, grads, norms);
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = gnp_bwd_op().call(grad_penalty, grad_norms, grads, norms, target, weight, one_sided);
  }
  if (graph) {
    auto node = make_node<GradNormPenaltyBackwardNode>(grad_penalty, grad_norms, grads, norms);
    node->gp_ = SavedVariable(grad_penalty, false);
    node->gn_ = SavedVariable(grad_norms, false);
    node->grads_ = SavedVariable(grads, false);
    node->norms_ = SavedVariable(norms, false);
    node->args_ = {target, weight, one_sided};
    attach(node, {&out});
  }
  return out;
}

TORCH_LIBRARY_IMPL(pygan, Autograd, m) {
  m.impl("residual_add", &residual_add_autograd);
  m.impl("residual_add_backward", &residual_add_backward_autograd);
  m.impl("feature_regularizer", &feature_regularizer_autograd);
  m.impl("feature_regularizer_backward", &feature_regularizer_backward_autograd);
  m.impl("gram_diff", &gram_diff_autograd);
  m.impl("gram_diff_backward", &gram_diff_backward_autograd);
  m.impl("interpolate", &interpolate_autograd);
  m.impl("interpolate_backward", &interpolate_backward_autograd);
  m.impl("grad_norm_penalty", &grad_norm_penalty_autograd);
  m.impl("grad_norm_penalty_backward", &grad_norm_penalty_backward_autograd);
}

}  // namespace pygan::autograd
