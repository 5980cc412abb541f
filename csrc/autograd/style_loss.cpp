// C++ autograd of gram_diff (gram_matrix / style_loss) (see common.h for why C++, and the rules every
// node follows). The graph nodes' grad_fn.name() is "pygan::<op>Backward".
#include "common.h"

namespace pygan::autograd {
namespace {

PYGAN_OP(gram_op, "gram_diff", Tensor(const Tensor&, const std::optional<Tensor>&, c10::string_view))
PYGAN_OP(gram_bwd_op, "gram_diff_backward",
         std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const std::optional<Tensor>&,
                                    c10::string_view, bool, bool))

// The Gram's divisor (pygan/ops/style_loss/reference.py: gram_norm): C*K ("chw") or K ("hw"), at
// least 1.
c10::SymInt gram_norm(const Tensor& f, bool chw) {
  c10::SymInt k = 1;
  for (int64_t d = 2; d < f.dim(); ++d) k = k * f.sym_size(d);
  c10::SymInt n = chw ? f.sym_size(1) * k : k;
  return n.max(c10::SymInt(1));
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

}  // namespace

TORCH_LIBRARY_IMPL(pygan, Autograd, m) {
  m.impl("gram_diff", &gram_diff_autograd);
  m.impl("gram_diff_backward", &gram_diff_backward_autograd);
}

}  // namespace pygan::autograd
