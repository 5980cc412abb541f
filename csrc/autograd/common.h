// Shared pieces of the C++ autograd of the pygan:: ops: csrc/autograd/<op>.cpp, one file per op, each
// with its own TORCH_LIBRARY_IMPL(pygan, Autograd) block, all linked into pygan._C. An op registered
// at the Autograd dispatch key has one autograd for every device: the CPU and CUDA kernels below it
// share it.
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
// Python ones (pygan/ops/<op>/contract.py, register_autograd_rules), which the tests check against
// each other and against the references (gradcheck/gradgradcheck). Sizes used in the double-backward formulas
// are SymInts, so opcheck's dynamic-shape tracing of the backward ops works.
#pragma once

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

// PYGAN_OP(fn, "name", Signature) defines fn(), the typed handle of pygan::name.
#define PYGAN_OP(fn, name, ...)                                  \
  inline const c10::TypedOperatorHandle<__VA_ARGS__>& fn() {     \
    static const auto handle = lookup<__VA_ARGS__>("pygan::" name); \
    return handle;                                               \
  }

// ---- helpers ---------------------------------------------------------------------------------

// Whether a call must record a graph: grad mode on and some argument requires grad.
template <typename... Args>
bool needs_graph(const Args&... args) {
  return torch::autograd::compute_requires_grad(args...);
}

// Nodes are held by c10::intrusive_ptr from torch 2.12/2.13 on (pytorch#181782) and by std::shared_ptr
// before (the lent GPU machine has torch 2.11); both spellings are written below, and the names of
// the one not taken stay dependent (never instantiated).
inline constexpr bool kIntrusiveNodes = std::is_base_of_v<c10::intrusive_ptr_target, Node>;

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

inline std::vector<SavedVariable> save_all(at::TensorList ts) {
  std::vector<SavedVariable> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.emplace_back(t, /*is_output=*/false);
  return out;
}

inline TensorVec unpack_all(const std::vector<SavedVariable>& vs) {
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

}  // namespace pygan::autograd
