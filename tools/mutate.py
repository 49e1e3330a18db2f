"""Break each rule on purpose and check that the suite catches it (`python tools/mutate.py [filter]`).

Each mutation replaces one snippet in one file (a sign, a beta, a bias correction, a norm, a weight-decay
placement), runs the reference tests and the rule's step-for-step tests, and restores the file. A mutation the
suite does not catch is reported as SURVIVED. Run from the repository root with the project's .venv.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

# (file, snippet, replacement, pytest -k expression)
MUTATIONS = [
    ("reference/lars.py", "(1.0 - dampening) * gamma", "(1.0 + dampening) * gamma", "lars"),
    ("reference/lars.py", "d = g + weight_decay * theta", "d = g - weight_decay * theta", "lars"),
    ("reference/lars.py", "s = gamma * d + momentum * v", "s = d + momentum * v", "lars"),
    ("holocron_torch/optim/lars.py", "axpy_(params, v, -lr)", "axpy_(params, v, lr)", "lars"),
    (
        "holocron_torch/optim/lars.py",
        "scale_(v, momentum)",
        "scale_(v, momentum**2)",
        "lars",
    ),
    ("holocron_torch/optim/lars.py", "[c * weight_decay for c in k]", "[c for c in k]", "lars"),
    ("reference/lamb.py", "m_hat = m / (1 - beta1**t)", "m_hat = m", "lamb"),
    (
        "reference/lamb.py",
        "tau = trust(phi(norm(theta), clip_), norm(u))",
        "tau = trust(phi(norm(theta), clip_), norm(r))",
        "lamb",
    ),
    ("holocron_torch/optim/lamb.py", "ema_sq_(v, grads, beta2)", "ema_sq_(v, grads, beta1)", "lamb"),
    (
        "holocron_torch/optim/lamb.py",
        "    return scaled(params, weight_decay)",
        "    return scaled(params, -weight_decay)",
        "lamb",
    ),
    ("reference/ralars.py", "if rho_t > 4:", "if rho_t >= 5:", "ralars"),
    ("holocron_torch/optim/ralars.py", "where(r > 4, c * ki,", "where(r > 4, ki,", "ralars"),
    ("reference/tadam.py", "W = (2 * beta1 - 1) / beta1 * W + w", "W = beta1 * W + w", "tadam"),
    ("reference/tadam.py", "v = beta2 * v + (1 - beta2) * g_hat**2", "v = beta2 * v + (1 - beta1) * g_hat**2", "tadam"),
    (
        "holocron_torch/optim/tadam.py",
        "torch._foreach_div_(dist, torch._foreach_add(up(v), eps))",
        "torch._foreach_div_(dist, torch._foreach_add(up(v), 2 * eps))",
        "tadam",
    ),
    (
        "holocron_torch/optim/tadam.py",
        "torch._foreach_mul_(W, (2 * beta1 - 1) / beta1)",
        "torch._foreach_mul_(W, beta1)",
        "tadam",
    ),
    ("reference/adabelief.py", "(1 - beta2) * (g - m) ** 2 + eps", "(1 - beta2) * (g - m) ** 2", "adabelief"),
    ("holocron_torch/optim/adabelief.py", "torch._foreach_sub_(g, m)", "torch._foreach_add_(g, m)", "adabelief"),
    (
        "holocron_torch/optim/adabelief.py",
        "adam_step_(params, m, s_max if amsgrad else s,",
        "adam_step_(params, m, s,",
        "adabelief",
    ),
    ("reference/adamp.py", "np.max(np.abs(cosine(gv, th, eps)))", "np.max(cosine(gv, th, eps))", "adamp"),
    ("reference/adamp.py", "lr / (1 - beta1**t) * q", "lr * q", "adamp"),
    (
        "holocron_torch/optim/adamp.py",
        "[1 - lr * weight_decay * r for r in rs]",
        "[1 - lr * weight_decay for r in rs]",
        "adamp",
    ),
    (
        "holocron_torch/optim/adamp.py",
        "return tuple(range(1, theta.dim())), tuple(range(theta.dim()))",
        "return (tuple(range(theta.dim())),)",
        "adamp",
    ),
    ("holocron_torch/optim/adamp.py", "return cos.abs().amax(),", "return cos.abs().amin(),", "adamp"),
    ("holocron_torch/optim/adamp.py", "cos_layer = abs(dot_layer) /", "cos_layer = dot_layer /", "adamp"),
    ("reference/adan.py", "delta = g - g_prev if t > 1 else np.zeros_like(g)", "delta = g - g_prev", "adan"),
    ("reference/adan.py", "u = (m_hat + beta2 * v_hat)", "u = (m_hat + (1 - beta2) * v_hat)", "adan"),
    ("holocron_torch/optim/adan.py", "copy_(g_prev, grads)  # remember", "pass  # remember", "adan"),
    ("holocron_torch/optim/adan.py", "1 / (1 + lr * weight_decay)", "1 / (1 + 2 * lr * weight_decay)", "adan"),
    ("reference/ademamix.py", " + weight_decay * theta))", "))", "ademamix"),
    ("reference/ademamix.py", "return alpha * t / alpha_warmup", "return alpha * (t - 1) / alpha_warmup", "ademamix"),
    ("holocron_torch/optim/ademamix.py", "ema_sq_(nu, grads, beta2)", "ema_sq_(nu, grads, beta3)", "ademamix"),
    ("holocron_torch/optim/ademamix.py", "lincomb(m1, m2, [a * b", "lincomb(m1, m1, [a * b", "ademamix"),
    (
        "holocron_torch/optim/ademamix.py",
        "exp(l1 * l3 / ((1 - f) * l3 + f * l1))",
        "exp(l1 * l3 / ((1 - f) * l1 + f * l3))",
        "ademamix",
    ),
    # the shared helpers the rules' math is written with (holocron_torch/optim/_base.py)
    ("holocron_torch/optim/_base.py", "add_(denom, [eps * sqrt(b) for b in bc2])", "add_(denom, eps)", "adabelief"),
    (
        "holocron_torch/optim/_base.py",
        "torch._foreach_lerp_(xs, ys, 1 - beta)",
        "torch._foreach_lerp_(xs, ys, beta)",
        "adan",
    ),
    (
        "holocron_torch/optim/_base.py",
        "[-lr * sqrt(b2) / b1 for b1, b2 in zip(bc1, bc2)])",
        "[-lr / b1 for b1, b2 in zip(bc1, bc2)])",
        "tadam",
    ),
    (
        "holocron_torch/optim/_base.py",
        "n / max(d, tiny) if n != 0 and d != 0 else 1.0",
        "n / max(d, tiny) if d != 0 else 1.0",
        "lamb",
    ),
    ("holocron_torch/optim/_base.py", "y.add_(x, alpha=ai)", "y.add_(x, alpha=-ai)", "ralars"),
    ("reference/lookahead.py", "p + sync_rate * (th - p)", "th + sync_rate * (p - th)", "lookahead"),
    ("holocron_torch/optim/wrapper.py", "        copy_(params, phi)", "        pass", "lookahead or scout"),
    ("reference/scout.py", "s = D.std(axis=0, ddof=1)", "s = D.std(axis=0, ddof=0)", "scout"),
    ("holocron_torch/optim/wrapper.py", "torch.maximum(1 - C, rate)", "torch.minimum(1 - C, rate)", "scout"),
]


def main(selector: str = "") -> int:
    survived = 0
    for path, old, new, k in MUTATIONS:
        if selector and selector not in path and selector not in k:
            continue
        f = pathlib.Path(path)
        text = f.read_text()
        assert text.count(old) == 1, f"{path}: snippet not found once: {old!r}"
        f.write_text(text.replace(old, new))
        try:
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-x",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "tests/reference",
                    "tests/test_step_for_step.py",
                    "-k",
                    k,
                ],
                capture_output=True,
                text=True,
                env={"HYPOTHESIS_PROFILE": "ci", "PATH": "/usr/bin:/bin"},
            )
        finally:
            f.write_text(text)
        caught = run.returncode != 0
        survived += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'}  {path}: {old!r} -> {new!r}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
