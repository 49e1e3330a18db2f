// holocron-torch's fused CPU kernels (fused=True): one kernel per rule, each a loop over the elements of one dense
// tensor that updates the parameter and its state in place, allocating nothing of the tensor's size. The equations
// are those of reference/<rule>.py, quoted beside the line that computes them.
//
//   one pass   AdaBelief, Adan, AdEMAMix, AdamP on tensors with < 2 dims
//   two passes LARS, LAMB, RaLars (norms), TAdam (its w_t sums over the tensor), AdamP on >= 2 dims (cosines):
//              pass 1 updates the moments and accumulates the per-tensor (AdamP: per-row) sums, pass 2 applies
//              the step, recomputing the update direction from the state that pass 1 wrote
//
// T is the parameter's dtype (float or double). Element math is in T, as in the default path; sums are accumulated
// in double; per-tensor scalars (bias corrections, norms, ratios) are computed in double from the step count t.
// Each entry point takes the lists of one param group, increments the float64 0-d step count of every tensor it
// handles (CPU, float32/float64, dense, gradient and buffers laid out like the parameter) and returns the indices of
// the others, which the Python side (holocron_torch/optim/_fused/__init__.py) sends down the default path.
// `sign` is -1 under maximize: g_t = sign · grad, read on the fly (no negated copy).

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace {

using at::Tensor;
using Tensors = std::vector<Tensor>;
using Skipped = std::vector<int64_t>;
constexpr int64_t GRAIN = 32768;  // elements per parallel task (ATen's grain size)

// ---- plumbing ----------------------------------------------------------------------------------------------------

// a plain CPU tensor in memory (not a tensor subclass such as DTensor)
bool plain(const Tensor& x) {
  return x.defined() && x.device().is_cpu() && x.layout() == at::kStrided &&
         !x.unsafeGetTensorImpl()->is_python_dispatch();
}

// a tensor the kernels can walk as one flat array: float32/float64, dense, no overlap
bool flat(const Tensor& p) {
  const auto dt = p.scalar_type();
  return plain(p) && (dt == at::kFloat || dt == at::kDouble) && p.is_non_overlapping_and_dense();
}

// x has p's dtype and memory layout, so that element i of one is element i of the other
bool like(const Tensor& p, const Tensor& x) {
  return plain(x) && x.scalar_type() == p.scalar_type() && x.sizes() == p.sizes() && x.strides() == p.strides();
}

bool fits(const Tensor& p, const Tensor& g, std::initializer_list<const Tensor*> buffers, const Tensor& step) {
  if (!flat(p) || !like(p, g)) return false;
  for (const Tensor* b : buffers)
    if (!like(p, *b)) return false;
  return plain(step) && step.scalar_type() == at::kDouble && step.numel() == 1;
}

bool scalar_like(const Tensor& p, const Tensor& x) {  // TAdam's W: a 0-d tensor of p's dtype
  return plain(x) && x.scalar_type() == p.scalar_type() && x.numel() == 1;
}

// t ← t + 1 on the float64 0-d step tensor; returns the new t
double advance(const Tensor& step) { return *step.data_ptr<double>() += 1.0; }

template <typename T>
T* ptr(const Tensor& x) {
  return x.data_ptr<T>();
}

// autograd's version counters, as any in-place op bumps them
void bump(std::initializer_list<const Tensor*> xs) {
  for (const Tensor* x : xs)
    if (x->defined()) torch::autograd::impl::bump_version(*x);
}

// N sums over [0, n): body(begin, end, acc) adds its chunk's partial sums to acc; chunks run in parallel
template <int N, typename F>
std::array<double, N> sums(int64_t n, const F& body) {
  using A = std::array<double, N>;
  return at::parallel_reduce(
      int64_t{0}, n, GRAIN, A{},
      [&](int64_t b, int64_t e, A acc) {
        body(b, e, acc);
        return acc;
      },
      [](A x, const A& y) {
        for (int k = 0; k < N; ++k) x[k] += y[k];
        return x;
      });
}

template <typename F>
void each(int64_t n, const F& body) {
  at::parallel_for(int64_t{0}, n, GRAIN, body);
}

// calls f(std::true_type) or f(std::false_type): a flag that selects which buffers a loop touches is a compile-time
// constant inside it (a loop never reads v_max when amsgrad is off)
template <typename F>
void with_flag(bool flag, const F& f) {
  if (flag)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// max that propagates NaN, as torch.maximum and np.maximum
template <typename T>
inline T maxnan(T a, T b) {
  return ((a > b) | (a != a)) ? a : b;  // (| not ||: no branch, so the loops vectorize)
}

// reference._common.phi: min(max(z, lo), hi)
inline double phi(double z, double lo, double hi) { return std::min(std::max(z, lo), hi); }

// reference._common.trust: num / max(den, tiny), or 1 when either is zero (tiny: double's smallest normal, as the
// reference and the default path's trust_ratio; the ratio is a double whatever T)
inline double trust(double num, double den) {
  // a non-finite norm (NaN or inf): a NaN ratio, as the reference (docs/reliability.md, "Non-finite inputs")
  if (!std::isfinite(num) || !std::isfinite(den)) return std::numeric_limits<double>::quiet_NaN();
  return num != 0.0 && den != 0.0 ? num / std::max(den, std::numeric_limits<double>::min()) : 1.0;
}

// whether a per-tensor scalar can multiply T elements without being rounded away: 0, or within T's normal range
// (outside it, the loops that use it run in double, as the default path's axpy_ does)
template <typename T>
bool in_range(double a) {
  const double x = std::abs(a);
  return x == 0.0 || !std::isfinite(x) ||
         (x >= double(std::numeric_limits<T>::min()) && x <= double(std::numeric_limits<T>::max()));
}

// ‖x‖ from ss = Σ x_i² accumulated in double; for float64, where squares can underflow (|x| < 1e-154) or overflow
// (|x| > 1e154), the reference's scaled form max|x| · ‖x / max|x|‖ (reference._common.norm), from one more read
template <typename T, typename X>
double norm(double ss, int64_t n, const X& x) {
  if (!std::is_same<T, double>::value || (ss >= 1e-250 && std::isfinite(ss))) return std::sqrt(ss);
  const double top = at::parallel_reduce(
      int64_t{0}, n, GRAIN, 0.0,
      [&](int64_t b, int64_t e, double acc) {
        for (int64_t i = b; i < e; ++i) acc = std::max(acc, std::abs(double(x(i))));
        return acc;
      },
      [](double a, double b) { return std::max(a, b); });
  if (!(top > 0.0) || !std::isfinite(top)) return top == 0.0 ? 0.0 : std::sqrt(ss);
  const auto s = sums<1>(n, [&](int64_t b, int64_t e, std::array<double, 1>& acc) {
    for (int64_t i = b; i < e; ++i) acc[0] += (double(x(i)) / top) * (double(x(i)) / top);
  });
  return top * std::sqrt(s[0]);
}

#define BY_DTYPE(x, fn, ...) \
  ((x).scalar_type() == at::kFloat ? fn<float>(__VA_ARGS__) : fn<double>(__VA_ARGS__))

// ---- LARS (reference/lars.py) ------------------------------------------------------------------------------------
// (Σ x², Σ y²) over [b, e). The reductions of pass 1 are functions of their own (noinline, their inputs by value):
// inlined into parallel_reduce's lambda, GCC left them scalar.
template <typename T>
__attribute__((noinline)) std::array<double, 2> squares(const T* x, const T* y, int64_t b, int64_t e) {
  double xx = 0, yy = 0;
#pragma omp simd reduction(+ : xx, yy)
  for (int64_t i = b; i < e; ++i) {
    xx += double(x[i]) * double(x[i]);
    yy += double(y[i]) * double(y[i]);
  }
  return {xx, yy};
}

template <typename T>
void lars_one(const Tensor& P, const Tensor& G, const Tensor& V, double t, double lr, double momentum,
              double dampening, double wd, bool nesterov, double lo, double hi, double sign) {
  T* p = ptr<T>(P);
  const T* g = ptr<T>(G);
  T* v = ptr<T>(V);
  const int64_t n = P.numel();
  const auto s = sums<2>(n, [&](int64_t b, int64_t e, std::array<double, 2>& acc) {
    const auto part = squares(p, g, b, e);  // ‖θ_{t-1}‖², ‖g_t‖²
    acc[0] += part[0];
    acc[1] += part[1];
  });
  const double pn = norm<T>(s[0], n, [&](int64_t i) { return p[i]; });
  const double gn = norm<T>(s[1], n, [&](int64_t i) { return g[i]; });
  // γ_t = φ(‖θ_{t-1}‖) / (‖g_t‖ + λ ‖θ_{t-1}‖)    (γ_t = 1 if either side is 0)
  const double gamma = trust(phi(pn, lo, hi), gn + wd * pn);
  const double damp = t > 1 && momentum != 0 ? 1.0 - dampening : 1.0;
  // γ_t d_t as γ_t g_t + (γ_t λ) θ_{t-1} (λ θ_{t-1} itself may overflow T while γ_t d_t does not), in T; in double
  // when γ_t or γ_t λ is outside T's normal range (a float32 ratio of 1e40 from a subnormal gradient norm)
  auto loop = [&](auto zero) {
    using C = decltype(zero);
    const C gs = C(gamma * sign), gl = C(gamma * wd), m = C(momentum), a = C(lr), dp = C(damp);
    each(n, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) {
        const C gd = gs * C(g[i]) + gl * C(p[i]);  // γ_t d_t,  d_t = g_t + λ θ_{t-1}
        // v_t = m v_{t-1} + (1 - δ) γ_t d_t   (γ_t d_t at t = 1, and with m = 0, where v_{t-1} is not read)
        const C vi = (momentum != 0 ? m * C(v[i]) : C(0)) + dp * gd;
        v[i] = T(vi);
        const C st = nesterov ? gd + m * vi : vi;  // s_t = γ_t d_t + m v_t  if nesterov  else  v_t
        p[i] = T(C(p[i]) - a * st);                // θ_t = θ_{t-1} - α s_t
      }
    });
  };
  if (in_range<T>(gamma) && in_range<T>(gamma * wd))
    loop(T(0));
  else
    loop(double(0));
}

Skipped lars(const Tensors& P, const Tensors& G, const Tensors& V, const Tensors& S, double lr, double momentum,
             double dampening, double wd, bool nesterov, double lo, double hi, double sign) {
  Skipped skipped;
  for (size_t i = 0; i < P.size(); ++i) {
    if (!fits(P[i], G[i], {&V[i]}, S[i])) {
      skipped.push_back(int64_t(i));
      continue;
    }
    const double t = advance(S[i]);
    BY_DTYPE(P[i], lars_one, P[i], G[i], V[i], t, lr, momentum, dampening, wd, nesterov, lo, hi, sign);
    bump({&P[i], &V[i]});
  }
  return skipped;
}

// ---- LAMB (reference/lamb.py) and RaLars (reference/ralars.py) ---------------------------------------------------
// Both: u_t = a_t + λ θ_{t-1}, τ_t = φ(‖θ_{t-1}‖) / ‖u_t‖, θ_t = θ_{t-1} - α τ_t u_t, with LAMB's a_t = m̂/(√v̂ + ε)
// and RaLars' a_t = r_t m̂/(√v̂ + ε) (ρ_t > 4), m̂/(√v̂ + ε) (force_adaptive_momentum) or m̂.
template <typename T>
struct TrustAdam {  // the per-tensor scalars and the per-element math
  T b1, c1, b2, c2, bc1, bc2, ep, r, lam, sg;
  bool adaptive;
  T* m;
  T* v;
  const T* g;
  const T* p;
  // u_t from m_t, v_t and θ_{t-1}
  T u(T mi, T vi, T pi) const {
    const T mh = mi / bc1;                                // m̂_t = m_t / (1 - β1^t)
    const T ad = r * (mh / (std::sqrt(vi) / bc2 + ep));  // r_t m̂_t / (√v̂_t + ε),  √v̂_t = √v_t / √(1 - β2^t)
    return (adaptive ? ad : mh) + lam * pi;               // u_t = a_t + λ θ_{t-1}
  }
  T u(int64_t i) const { return u(m[i], v[i], p[i]); }
  // u_t in double, for a float tensor whose u_t overflowed T (λ θ_{t-1} beyond T's largest value, while θ_t is not)
  double ud(int64_t i) const {
    const double mh = double(m[i]) / double(bc1);
    const double ad = double(r) * (mh / (std::sqrt(double(v[i])) / double(bc2) + double(ep)));
    return (adaptive ? ad : mh) + double(lam) * double(p[i]);
  }
};

// pass 1 over [b, e): the moments, in place, and (Σ θ_{t-1}², Σ u_t²). (Its own function, with the scalars in a
// by-value struct: inlined into the parallel_reduce lambda, GCC left this loop scalar.)
template <typename T>
__attribute__((noinline)) std::array<double, 2> trust_adam_pass1(const TrustAdam<T> k, int64_t b, int64_t e) {
  double pp = 0, uu = 0;
#pragma omp simd reduction(+ : pp, uu)
  for (int64_t i = b; i < e; ++i) {
    const T gi = k.sg * k.g[i];
    const T mi = k.b1 * k.m[i] + k.c1 * gi;       // m_t = β1 m_{t-1} + (1 - β1) g_t
    const T vi = k.b2 * k.v[i] + k.c2 * gi * gi;  // v_t = β2 v_{t-1} + (1 - β2) g_t²
    k.m[i] = mi;
    k.v[i] = vi;
    const T u = k.u(mi, vi, k.p[i]);
    pp += double(k.p[i]) * double(k.p[i]);
    uu += double(u) * double(u);
  }
  return {pp, uu};
}

template <typename T>
void trust_adam_one(const Tensor& P, const Tensor& G, const Tensor& M, const Tensor& V, double t, double lr,
                    double beta1, double beta2, double eps, double wd, bool adaptive, double rect, double lo,
                    double hi, double sign) {
  T* p = ptr<T>(P);
  const int64_t n = P.numel();
  // bc2 holds √(1 - β2^t): √v_t / √(1 - β2^t) does not overflow where v_t / (1 - β2^t) would
  const T bc1 = T(1 - std::pow(beta1, t)), bc2 = T(std::sqrt(1 - std::pow(beta2, t)));
  const TrustAdam<T> k{T(beta1), T(1 - beta1), T(beta2), T(1 - beta2), bc1,       bc2,       T(eps), T(rect),
                       T(wd),    T(sign),      adaptive, ptr<T>(M),    ptr<T>(V), ptr<T>(G), p};
  const auto s = sums<2>(n, [&](int64_t b, int64_t e, std::array<double, 2>& acc) {
    const auto part = trust_adam_pass1(k, b, e);
    acc[0] += part[0];
    acc[1] += part[1];
  });
  // τ_t = φ(‖θ_{t-1}‖) / ‖u_t‖    (τ_t = 1 if either norm is 0)
  const double pn = norm<T>(s[0], n, [&](int64_t i) { return p[i]; });
  double un = norm<T>(s[1], n, [&](int64_t i) { return k.u(i); });
  // a float u_t that overflowed (‖u_t‖ not finite): u_t, its norm and the update in double, where they are finite
  // when the inputs are (non-finite inputs stay non-finite: the non-finite policy is unchanged)
  const bool wide = !std::is_same<T, double>::value && !std::isfinite(un);
  if (wide) {
    const auto w = sums<1>(n, [&](int64_t b, int64_t e, std::array<double, 1>& acc) {
      for (int64_t i = b; i < e; ++i) acc[0] += k.ud(i) * k.ud(i);
    });
    un = std::sqrt(w[0]);
  }
  const double step = -lr * trust(phi(pn, lo, hi), un);
  if (wide) {
    each(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = T(double(p[i]) + step * k.ud(i));
    });
  } else if (in_range<T>(step)) {
    const T st = T(step);
    each(n, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) p[i] = p[i] + st * k.u(i);  // θ_t = θ_{t-1} - α τ_t u_t
    });
  } else {  // α τ_t outside T's range (a float32 τ_t of 1e40): the product in double
    each(n, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) p[i] = T(double(p[i]) + step * double(k.u(i)));
    });
  }
}

Skipped trust_adam(const Tensors& P, const Tensors& G, const Tensors& M, const Tensors& V, const Tensors& S, double lr,
                   double beta1, double beta2, double eps, double wd, bool rectified, bool force_adaptive, double lo,
                   double hi, double sign) {
  Skipped skipped;
  for (size_t i = 0; i < P.size(); ++i) {
    if (!fits(P[i], G[i], {&M[i], &V[i]}, S[i])) {
      skipped.push_back(int64_t(i));
      continue;
    }
    const double t = advance(S[i]);
    bool adaptive = true;
    double rect = 1.0;
    if (rectified) {  // RaLars
      const double rho_inf = 2 / (1 - beta2) - 1;                                   // ρ_∞ = 2 / (1 - β2) - 1
      const double rho = rho_inf - 2 * t * std::pow(beta2, t) / (1 - std::pow(beta2, t));  // ρ_t
      adaptive = rho > 4 || force_adaptive;
      if (rho > 4)  // r_t = √[(ρ_t - 4)(ρ_t - 2) ρ_∞ / ((ρ_∞ - 4)(ρ_∞ - 2) ρ_t)]
        rect = std::sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho));
    }
    BY_DTYPE(P[i], trust_adam_one, P[i], G[i], M[i], V[i], t, lr, beta1, beta2, eps, wd, adaptive, rect, lo, hi,
             sign);
    bump({&P[i], &M[i], &V[i]});
  }
  return skipped;
}

Skipped lamb(const Tensors& P, const Tensors& G, const Tensors& M, const Tensors& V, const Tensors& S, double lr,
             double beta1, double beta2, double eps, double wd, double lo, double hi, double sign) {
  return trust_adam(P, G, M, V, S, lr, beta1, beta2, eps, wd, false, false, lo, hi, sign);
}

Skipped ralars(const Tensors& P, const Tensors& G, const Tensors& M, const Tensors& V, const Tensors& S, double lr,
               double beta1, double beta2, double eps, double wd, bool force_adaptive, double lo, double hi,
               double sign) {
  return trust_adam(P, G, M, V, S, lr, beta1, beta2, eps, wd, true, force_adaptive, lo, hi, sign);
}

// ---- TAdam (reference/tadam.py) ----------------------------------------------------------------------------------
// pass 1 over [b, e): Σ_j (ĝ_{t,j} - m_{t-1,j})² / (v_{t-1,j} + ε), ĝ_t = g_t + λ θ_{t-1} (θ read only if λ != 0)
template <typename T, bool COUPLED>
__attribute__((noinline)) double tadam_distance(const T* p, const T* g, const T* m, const T* v, T sg, T lam, T ep,
                                                int64_t b, int64_t e) {
  double dist = 0;
#pragma omp simd reduction(+ : dist)
  for (int64_t i = b; i < e; ++i) {
    T gh = sg * g[i];
    if constexpr (COUPLED) gh += lam * p[i];
    // in double: a float32 (ĝ - m)² / (v + ε) of finite inputs can overflow, its double cannot (a non-finite sum
    // means a non-finite input, and makes w_t NaN, as the reference)
    const double x = double(gh) - double(m[i]);
    dist += x * x / (double(v[i]) + double(ep));
  }
  return dist;
}

template <typename T>
void tadam_one(const Tensor& P, const Tensor& G, const Tensor& M, const Tensor& V, const Tensor& Wt,
               const Tensor* Vmax, double t, double lr, double beta1, double beta2, double eps, double wd,
               double dof, double sign) {
  T* p = ptr<T>(P);
  const T* g = ptr<T>(G);
  T* m = ptr<T>(M);
  T* v = ptr<T>(V);
  T* vmax = Vmax ? ptr<T>(*Vmax) : nullptr;
  T* W = ptr<T>(Wt);
  const int64_t d = P.numel();
  const double nu = std::isnan(dof) ? double(d) : dof;  // ν = dof, or d when dof is None (NaN here)
  const T sg = T(sign), lam = T(wd), ep = T(eps);
  double w = 1.0;  // w_t = 1 when ν = ∞ (and for an empty tensor)
  if (!std::isinf(nu) && d > 0) {
    std::array<double, 1> s;
    with_flag(wd != 0.0, [&](auto coupled) {  // (θ is read only when λ != 0)
      s = sums<1>(d, [&](int64_t b, int64_t e, std::array<double, 1>& acc) {
        acc[0] += tadam_distance<T, decltype(coupled)::value>(p, g, m, v, sg, lam, ep, b, e);
      });
    });
    // w_t = (ν + d) / (ν + Σ_j ...)   (NaN for a non-finite sum, as the reference: docs/reliability.md)
    w = std::isfinite(s[0]) ? (nu + double(d)) / (nu + s[0]) : std::numeric_limits<double>::quiet_NaN();
  }
  const double Wp = double(*W);
  const T cm = T(Wp / (Wp + w)), cg = T(w / (Wp + w));
  *W = T((2 * beta1 - 1) / beta1 * Wp + w);  // W_t = (2β1 - 1) / β1 · W_{t-1} + w_t
  // sbc2 = √(1 - β2^t): √v_t / √(1 - β2^t) does not overflow where v_t / (1 - β2^t) would
  const T b2 = T(beta2), c2 = T(1 - beta2), bc1 = T(1 - std::pow(beta1, t));
  const T sbc2 = T(std::sqrt(1 - std::pow(beta2, t)));
  const T a = T(lr);
  with_flag(vmax != nullptr, [&](auto amsgrad) {
    each(d, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) {
        const T gh = sg * g[i] + lam * p[i];  // ĝ_t = g_t + λ θ_{t-1}
        const T mi = cm * m[i] + cg * gh;     // m_t = W_{t-1}/(W_{t-1} + w_t) · m_{t-1} + w_t/(W_{t-1} + w_t) · ĝ_t
        const T vi = b2 * v[i] + c2 * gh * gh;  // v_t = β2 v_{t-1} + (1 - β2) ĝ_t²
        m[i] = mi;
        v[i] = vi;
        T vh = vi;
        if constexpr (decltype(amsgrad)::value) vh = vmax[i] = maxnan(vmax[i], vi);  // v^max_t = max(v^max_{t-1}, v_t)
        // θ_t = θ_{t-1} - α m̂_t / (√v̂_t + ε),  m̂_t = m_t / (1 - β1^t),  v̂_t = v_t / (1 - β2^t)  (v^max_t: amsgrad)
        p[i] = p[i] - a * (mi / bc1 / (std::sqrt(vh) / sbc2 + ep));
      }
    });
  });
}

Skipped tadam(const Tensors& P, const Tensors& G, const Tensors& M, const Tensors& V, const Tensors& W,
              const Tensors& Vmax, const Tensors& S, double lr, double beta1, double beta2, double eps, double wd,
              double dof, double sign) {
  Skipped skipped;
  const bool amsgrad = !Vmax.empty();
  for (size_t i = 0; i < P.size(); ++i) {
    const Tensor* vmax = amsgrad ? &Vmax[i] : nullptr;
    if (!(amsgrad ? fits(P[i], G[i], {&M[i], &V[i], vmax}, S[i]) : fits(P[i], G[i], {&M[i], &V[i]}, S[i])) ||
        !scalar_like(P[i], W[i])) {
      skipped.push_back(int64_t(i));
      continue;
    }
    const double t = advance(S[i]);
    BY_DTYPE(P[i], tadam_one, P[i], G[i], M[i], V[i], W[i], vmax, t, lr, beta1, beta2, eps, wd, dof, sign);
    bump({&P[i], &M[i], &V[i], &W[i]});
    if (vmax) bump({vmax});
  }
  return skipped;
}

// ---- AdaBelief (reference/adabelief.py): one pass -----------------------------------------------------------------
template <typename T>
void adabelief_one(const Tensor& P, const Tensor& G, const Tensor& M, const Tensor& Sb, const Tensor* Smax, double t,
                   double lr, double beta1, double beta2, double eps, double wd, double sign) {
  T* p = ptr<T>(P);
  const T* g = ptr<T>(G);
  T* m = ptr<T>(M);
  T* s = ptr<T>(Sb);
  T* smax = Smax ? ptr<T>(*Smax) : nullptr;
  const T b1 = T(beta1), c1 = T(1 - beta1), b2 = T(beta2), c2 = T(1 - beta2), ep = T(eps), lam = T(wd);
  const T sbc2 = T(std::sqrt(1 - std::pow(beta2, t))), sg = T(sign);
  // k = α / (1 - β1^t); α m̂_t / D_t = k m_t / D_t as (k m_t) / D_t when k <= 1, else k (m_t / D_t): neither
  // intermediate overflows T where the update does not (m_t / D_t of 1e39 in float32 with D_t ~ √ε, α = 0.1)
  const double kd = lr / (1 - std::pow(beta1, t));
  const T k = T(kd);
  with_flag(kd <= 1.0, [&](auto scale_first) {
  with_flag(smax != nullptr, [&](auto amsgrad) {
    each(P.numel(), [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) {
        const T gt = sg * g[i] + lam * p[i];  // g̃_t = g_t + λ θ_{t-1}
        const T mi = b1 * m[i] + c1 * gt;     // m_t = β1 m_{t-1} + (1 - β1) g̃_t
        const T dv = gt - mi;
        const T si = b2 * s[i] + c2 * dv * dv + ep;  // s_t = β2 s_{t-1} + (1 - β2) (g̃_t - m_t)² + ε
        m[i] = mi;
        s[i] = si;
        T sh = si;
        if constexpr (decltype(amsgrad)::value) sh = smax[i] = maxnan(smax[i], si);  // s^max_t = max(s^max_{t-1}, s_t)
        // θ_t = θ_{t-1} - α m̂_t / (√ŝ_t + ε),  m̂_t = m_t / (1 - β1^t),  ŝ_t = s_t / (1 - β2^t)  (s^max_t: amsgrad)
        const T den = std::sqrt(sh) / sbc2 + ep;  // D_t = √ŝ_t + ε  (√ŝ_t = √s_t / √(1 - β2^t))
        p[i] = p[i] - (decltype(scale_first)::value ? (k * mi) / den : k * (mi / den));
      }
    });
  });
  });
}

Skipped adabelief(const Tensors& P, const Tensors& G, const Tensors& M, const Tensors& Sb, const Tensors& Smax,
                  const Tensors& S, double lr, double beta1, double beta2, double eps, double wd, double sign) {
  Skipped skipped;
  const bool amsgrad = !Smax.empty();
  for (size_t i = 0; i < P.size(); ++i) {
    const Tensor* smax = amsgrad ? &Smax[i] : nullptr;
    if (!(amsgrad ? fits(P[i], G[i], {&M[i], &Sb[i], smax}, S[i]) : fits(P[i], G[i], {&M[i], &Sb[i]}, S[i]))) {
      skipped.push_back(int64_t(i));
      continue;
    }
    const double t = advance(S[i]);
    BY_DTYPE(P[i], adabelief_one, P[i], G[i], M[i], Sb[i], smax, t, lr, beta1, beta2, eps, wd, sign);
    bump({&P[i], &M[i], &Sb[i]});
    if (smax) bump({smax});
  }
  return skipped;
}

// ---- AdamP (reference/adamp.py) ----------------------------------------------------------------------------------
// < 2 dims (or empty): one pass. >= 2 dims, rows = dim 0 (each row one contiguous block of L elements): pass 1
// updates the moments and sums per row θ·θ, g·g, θ·g and θ·p (p_t the direction); the two views' cosines and
// projections follow from these sums (the whole tensor's are their totals), since with n_i = θ_i / (‖θ_i‖ + ε),
// (n_i · p_i) n_i = (θ_i · p_i) / (‖θ_i‖ + ε)² θ_i. Pass 2 recomputes p_t and applies the step.
template <typename T, bool AMS, bool NEST>
struct AdamPMath {  // the per-tensor scalars and the per-element math (amsgrad, nesterov: which buffers are read)
  T b1, c1, b2, c2, ep, sg, sbc2;
  T* m;
  T* v;
  T* vmax;
  const T* g;
  // D_t = √v_t / √(1 - β2^t) + ε  (√v^max_t with amsgrad)
  // p_t = m_t / D_t  (nesterov: (β1 m_t + (1 - β1) g_t) / D_t)
  T direction(int64_t i, T mi, T vh) const {
    const T num = NEST ? b1 * mi + c1 * (sg * g[i]) : mi;
    return num / (std::sqrt(vh) / sbc2 + ep);
  }
  T direction(int64_t i) const { return direction(i, m[i], AMS ? vmax[i] : v[i]); }
  // the moments of element i, in place; returns p_t
  T moments(int64_t i) const {
    const T gi = sg * g[i];
    const T mi = b1 * m[i] + c1 * gi;       // m_t = β1 m_{t-1} + (1 - β1) g_t
    const T vi = b2 * v[i] + c2 * gi * gi;  // v_t = β2 v_{t-1} + (1 - β2) g_t²
    m[i] = mi;
    v[i] = vi;
    T vh = vi;
    if constexpr (AMS) vh = vmax[i] = maxnan(vmax[i], vi);  // v^max_t = max(v^max_{t-1}, v_t)
    return direction(i, mi, vh);
  }
};

// pass 1 over the rows [rb, re) of length L: the moments, in place, and per row θ·θ, g·g, θ·g, θ·p_t into acc
// (its own function, with the scalars in a by-value struct, so that GCC vectorizes the reduction)
template <typename T, typename K>
__attribute__((noinline)) void adamp_pass1(const K k, const T* p, int64_t rb, int64_t re, int64_t L, double* acc) {
  for (int64_t row = rb; row < re; ++row) {
    double tt = 0, gg = 0, tg = 0, tp = 0;
#pragma omp simd reduction(+ : tt, gg, tg, tp)
    for (int64_t i = row * L; i < (row + 1) * L; ++i) {
      const T pt = k.moments(i);
      const double th = p[i], gi = double(k.sg * k.g[i]);
      tt += th * th, gg += gi * gi, tg += th * gi, tp += th * double(pt);
    }
    acc[4 * row] = tt, acc[4 * row + 1] = gg, acc[4 * row + 2] = tg, acc[4 * row + 3] = tp;
  }
}

template <typename T>
void adamp_one(const Tensor& P, const Tensor& G, const Tensor& M, const Tensor& V, const Tensor* Vmax, double t,
               double lr, double beta1, double beta2, double eps, double wd, double delta, double wd_ratio,
               bool nesterov, double sign) {
  T* p = ptr<T>(P);
  const int64_t n = P.numel();
  const bool project = P.dim() >= 2 && n > 0;
  const int64_t rows = project ? P.size(0) : 1, L = project ? n / rows : n;
  const int64_t row_grain = std::max<int64_t>(1, GRAIN / std::max<int64_t>(L, 1));
  const T step = T(-lr / (1 - std::pow(beta1, t)));
  // θ_t = θ_{t-1} (1 - α λ r) - α / (1 - β1^t) · q_t: its first factor
  auto decay = [&](double r) { return T(1 - lr * wd * r); };
  with_flag(Vmax != nullptr, [&](auto amsgrad) {
    with_flag(nesterov, [&](auto nest) {
      using K = AdamPMath<T, decltype(amsgrad)::value, decltype(nest)::value>;
      const T sbc2 = T(std::sqrt(1 - std::pow(beta2, t)));  // √(1 - β2^t)
      const K k{T(beta1), T(1 - beta1), T(beta2), T(1 - beta2), T(eps), T(sign), sbc2,
                ptr<T>(M), ptr<T>(V),   Vmax ? ptr<T>(*Vmax) : nullptr, ptr<T>(G)};
      if (!project) {  // < 2 dims or empty: q_t = p_t, r = 1, one pass
        const T dec = decay(1.0);
        each(n, [&](int64_t b, int64_t e) {
#pragma omp simd
          for (int64_t i = b; i < e; ++i) p[i] = p[i] * dec + step * k.moments(i);
        });
        return;
      }
      std::vector<double> acc(4 * rows);  // pass 1: per row i, θ_i·θ_i, g_i·g_i, θ_i·g_i, θ_i·p_i
      at::parallel_for(int64_t{0}, rows, row_grain,
                       [&](int64_t rb, int64_t re) { adamp_pass1<T>(k, p, rb, re, L, acc.data()); });
      // cos(x, y) = x·y / (max(‖x‖, ε) max(‖y‖, ε)); a view projects if max_i |cos(g_i, θ_i)| < δ / √(row length)
      auto projects = [&](double tt, double gg, double tg, int64_t len) {
        const double cos = tg / (std::max(std::sqrt(gg), eps) * std::max(std::sqrt(tt), eps));
        return std::abs(cos) < delta / std::sqrt(double(len));
      };
      // (n_i · p_i) / (‖θ_i‖ + ε)  with n_i = θ_i / (‖θ_i‖ + ε): q_i = p_i - coef_i θ_i
      auto coef_of = [&](double tt, double tp) { return tp / ((std::sqrt(tt) + eps) * (std::sqrt(tt) + eps)); };
      bool channels = true;  // view (a): rows = output channels
      for (int64_t row = 0; row < rows && channels; ++row)
        channels = projects(acc[4 * row], acc[4 * row + 1], acc[4 * row + 2], L);
      double tt = 0, gg = 0, tg = 0, tp = 0;  // view (b): the whole tensor as one row
      for (int64_t row = 0; row < rows; ++row)
        tt += acc[4 * row], gg += acc[4 * row + 1], tg += acc[4 * row + 2], tp += acc[4 * row + 3];
      const bool layer = !channels && projects(tt, gg, tg, n);
      std::vector<double> coef(rows);
      for (int64_t row = 0; row < rows; ++row)
        coef[row] = channels ? coef_of(acc[4 * row], acc[4 * row + 3]) : layer ? coef_of(tt, tp) : 0.0;
      const bool projected = channels || layer;  // else q_t = p_t, r = 1
      const T dec = decay(projected ? wd_ratio : 1.0);
      // pass 2: θ_t = θ_{t-1} (1 - α λ r) - α / (1 - β1^t) · q_t,  q_i = p_i - (n_i · p_i) n_i
      at::parallel_for(int64_t{0}, rows, row_grain, [&](int64_t rb, int64_t re) {
        for (int64_t row = rb; row < re; ++row) {
          const T c = T(coef[row]);
#pragma omp simd
          for (int64_t i = row * L; i < (row + 1) * L; ++i) {
            const T pt = k.direction(i);
            p[i] = p[i] * dec + step * (projected ? pt - c * p[i] : pt);
          }
        }
      });
    });
  });
}

Skipped adamp(const Tensors& P, const Tensors& G, const Tensors& M, const Tensors& V, const Tensors& Vmax,
              const Tensors& S, double lr, double beta1, double beta2, double eps, double wd, double delta,
              double wd_ratio, bool nesterov, double sign) {
  Skipped skipped;
  const bool amsgrad = !Vmax.empty();
  for (size_t i = 0; i < P.size(); ++i) {
    const Tensor* vmax = amsgrad ? &Vmax[i] : nullptr;
    const bool ok = amsgrad ? fits(P[i], G[i], {&M[i], &V[i], vmax}, S[i]) : fits(P[i], G[i], {&M[i], &V[i]}, S[i]);
    // rows must be contiguous blocks: dim 0 outermost in memory
    const bool rows_ok = P[i].dim() < 2 || P[i].numel() == 0 || P[i].size(0) == 1 ||
                         P[i].stride(0) == P[i].numel() / P[i].size(0);
    if (!ok || !rows_ok) {
      skipped.push_back(int64_t(i));
      continue;
    }
    const double t = advance(S[i]);
    BY_DTYPE(P[i], adamp_one, P[i], G[i], M[i], V[i], vmax, t, lr, beta1, beta2, eps, wd, delta, wd_ratio, nesterov,
             sign);
    bump({&P[i], &M[i], &V[i]});
    if (vmax) bump({vmax});
  }
  return skipped;
}

// ---- Adan (reference/adan.py): one pass ---------------------------------------------------------------------------
template <typename T>
void adan_one(const Tensor& P, const Tensor& G, const Tensor& M, const Tensor& V, const Tensor& N, const Tensor& Gp,
              const Tensor* Nmax, double t, double lr, double beta1, double beta2, double beta3, double eps,
              double wd, double sign) {
  T* p = ptr<T>(P);
  const T* g = ptr<T>(G);
  T *m = ptr<T>(M), *v = ptr<T>(V), *nb = ptr<T>(N), *gp = ptr<T>(Gp);
  T* nmax = Nmax ? ptr<T>(*Nmax) : nullptr;
  const T b1 = T(beta1), c1 = T(1 - beta1), b2 = T(beta2), c2 = T(1 - beta2), b3 = T(beta3), c3 = T(1 - beta3);
  const T bc1 = T(1 - std::pow(beta1, t)), bc2 = T(1 - std::pow(beta2, t)), sbc3 = T(std::sqrt(1 - std::pow(beta3, t)));
  const T ep = T(eps), sg = T(sign), a = T(lr), prox = T(1 + lr * wd);
  with_flag(nmax != nullptr, [&](auto amsgrad) {
    with_flag(t <= 1, [&](auto first) {
      each(P.numel(), [&](int64_t b, int64_t e) {
#pragma omp simd
        for (int64_t i = b; i < e; ++i) {
          const T gi = sg * g[i];
          const T dl = decltype(first)::value ? T(0) : gi - gp[i];  // Δ_t = g_t - g_{t-1}   (Δ_1 = 0)
          const T mi = b1 * m[i] + c1 * gi;               // m_t = β1 m_{t-1} + (1 - β1) g_t
          const T vi = b2 * v[i] + c2 * dl;               // v_t = β2 v_{t-1} + (1 - β2) Δ_t
          const T z = b2 * dl + gi;
          const T ni = b3 * nb[i] + c3 * z * z;           // n_t = β3 n_{t-1} + (1 - β3) (g_t + β2 Δ_t)²
          m[i] = mi;
          v[i] = vi;
          nb[i] = ni;
          gp[i] = gi;  // remember g_t
          T nh = ni;
          if constexpr (decltype(amsgrad)::value) nh = nmax[i] = maxnan(nmax[i], ni);  // n^max_t = max(n^max, n_t)
          // u_t = (m̂_t + β2 v̂_t) / (√n̂_t + ε),  x̂_t = x_t / (1 - βx^t)   (n^max_t with amsgrad)
          const T u = (mi / bc1 + b2 * (vi / bc2)) / (std::sqrt(nh) / sbc3 + ep);  // √n̂_t = √n_t / √(1 - β3^t)
          p[i] = (p[i] - a * u) / prox;  // θ_t = (θ_{t-1} - α u_t) / (1 + α λ)
        }
      });
    });
  });
}

Skipped adan(const Tensors& P, const Tensors& G, const Tensors& M, const Tensors& V, const Tensors& N,
             const Tensors& Gp, const Tensors& Nmax, const Tensors& S, double lr, double beta1, double beta2,
             double beta3, double eps, double wd, double sign) {
  Skipped skipped;
  const bool amsgrad = !Nmax.empty();
  for (size_t i = 0; i < P.size(); ++i) {
    const Tensor* nmax = amsgrad ? &Nmax[i] : nullptr;
    if (!(amsgrad ? fits(P[i], G[i], {&M[i], &V[i], &N[i], &Gp[i], nmax}, S[i])
                  : fits(P[i], G[i], {&M[i], &V[i], &N[i], &Gp[i]}, S[i]))) {
      skipped.push_back(int64_t(i));
      continue;
    }
    const double t = advance(S[i]);
    BY_DTYPE(P[i], adan_one, P[i], G[i], M[i], V[i], N[i], Gp[i], nmax, t, lr, beta1, beta2, beta3, eps, wd, sign);
    bump({&P[i], &M[i], &V[i], &N[i], &Gp[i]});
    if (nmax) bump({nmax});
  }
  return skipped;
}

// ---- AdEMAMix (reference/ademamix.py): one pass -------------------------------------------------------------------
template <typename T>
void ademamix_one(const Tensor& P, const Tensor& G, const Tensor& M1, const Tensor& M2, const Tensor& Nu, double t,
                  double lr, double beta1, double beta2, double beta3, double alpha, double eps, double wd,
                  int64_t alpha_warmup, int64_t beta3_warmup, double sign) {
  T* p = ptr<T>(P);
  const T* g = ptr<T>(G);
  T *m1 = ptr<T>(M1), *m2 = ptr<T>(M2), *nu = ptr<T>(Nu);
  // α_t = α · t / T_α   if t < T_α  else α
  const double a_t = alpha_warmup > 0 && t < double(alpha_warmup) ? alpha * t / double(alpha_warmup) : alpha;
  // β3_t = exp( ln β1 · ln β3 / ((1 - t/T_β3) ln β3 + (t/T_β3) ln β1) )   if t < T_β3  else β3
  double b3_t = beta3;
  if (beta3_warmup > 0 && t < double(beta3_warmup)) {
    const double l1 = std::log(beta1), l3 = std::log(beta3), f = t / double(beta3_warmup);
    b3_t = std::exp(l1 * l3 / ((1 - f) * l3 + f * l1));
  }
  const T b1 = T(beta1), c1 = T(1 - beta1), b2 = T(beta2), c2 = T(1 - beta2), b3 = T(b3_t), c3 = T(1 - b3_t);
  const T bc1 = T(1 - std::pow(beta1, t)), sbc2 = T(std::sqrt(1 - std::pow(beta2, t))), at = T(a_t), ep = T(eps);
  const T lam = T(wd), sg = T(sign), eta = T(lr);
  each(P.numel(), [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
      const T gi = sg * g[i];
      const T x1 = b1 * m1[i] + c1 * gi;       // m1_t = β1 m1_{t-1} + (1 - β1) g_t
      const T x2 = b3 * m2[i] + c3 * gi;       // m2_t = β3_t m2_{t-1} + (1 - β3_t) g_t
      const T ni = b2 * nu[i] + c2 * gi * gi;  // ν_t  = β2 ν_{t-1} + (1 - β2) g_t²
      m1[i] = x1;
      m2[i] = x2;
      nu[i] = ni;
      // θ_t = θ_{t-1} - η [ (m̂1_t + α_t m2_t) / (√ν̂_t + ε) + λ θ_{t-1} ]
      //   m̂1_t = m1_t / (1 - β1^t),  ν̂_t = ν_t / (1 - β2^t)
      // (√ν̂_t as √ν_t / √(1 - β2^t))
      p[i] = p[i] - eta * ((x1 / bc1 + at * x2) / (std::sqrt(ni) / sbc2 + ep) + lam * p[i]);
    }
  });
}

Skipped ademamix(const Tensors& P, const Tensors& G, const Tensors& M1, const Tensors& M2, const Tensors& Nu,
                 const Tensors& S, double lr, double beta1, double beta2, double beta3, double alpha, double eps,
                 double wd, int64_t alpha_warmup, int64_t beta3_warmup, double sign) {
  Skipped skipped;
  for (size_t i = 0; i < P.size(); ++i) {
    if (!fits(P[i], G[i], {&M1[i], &M2[i], &Nu[i]}, S[i])) {
      skipped.push_back(int64_t(i));
      continue;
    }
    const double t = advance(S[i]);
    BY_DTYPE(P[i], ademamix_one, P[i], G[i], M1[i], M2[i], Nu[i], t, lr, beta1, beta2, beta3, alpha, eps, wd,
             alpha_warmup, beta3_warmup, sign);
    bump({&P[i], &M1[i], &M2[i], &Nu[i]});
  }
  return skipped;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
  mod.doc() = "holocron-torch's fused CPU kernels: each returns the indices of the tensors it left to the caller";
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  mod.def("lars", &lars, nogil);
  mod.def("lamb", &lamb, nogil);
  mod.def("ralars", &ralars, nogil);
  mod.def("tadam", &tadam, nogil);
  mod.def("adabelief", &adabelief, nogil);
  mod.def("adamp", &adamp, nogil);
  mod.def("adan", &adan, nogil);
  mod.def("ademamix", &ademamix, nogil);
}
