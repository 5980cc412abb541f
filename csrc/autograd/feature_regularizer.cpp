// C++ autograd of feature_regularizer (see common.h for why C++, and the rules every
// node follows). The graph nodes' grad_fn.name() is "pygan::<op>Backward".
#include "common.h"

namespace pygan::autograd {
namespace {

PYGAN_OP(fr_op, "feature_regularizer",
         Tensor(at::TensorList, at::TensorList, int64_t, c10::string_view, at::ArrayRef<double>))
PYGAN_OP(fr_bwd_op, "feature_regularizer_backward",
         std::tuple<TensorVec, TensorVec>(const Tensor&, at::TensorList, at::TensorList, int64_t,
                                          c10::string_view, at::ArrayRef<double>, bool, bool))

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

}  // namespace

TORCH_LIBRARY_IMPL(pygan, Autograd, m) {
  m.impl("feature_regularizer", &feature_regularizer_autograd);
  m.impl("feature_regularizer_backward", &feature_regularizer_backward_autograd);
}

}  // namespace pygan::autograd
