"""The main job (``make demo``): train MetaSACLag on ``SafeNavigation2D-v0``, print a summary, save the model and a plot.

    python -m sb3_metasaclag.demo [--timesteps N] [--seed S] [--out runs/demo]

Writes ``<out>/metasaclag_safe_navigation.zip`` and ``<out>/training.png`` (return, violation rate, ``epsilon``
and ``alpha`` over training: the rows of the paper's Fig. 2).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch as th

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.common.callbacks import SafetyHistoryCallback
from sb3_metasaclag.common.evaluation import evaluate_safe_policy

# Small networks keep the demo at a few minutes on one core; every other setting is a MetaSACLag default.
DEMO_HYPERPARAMS: dict[str, Any] = dict(policy_kwargs=dict(net_arch=[64, 64]))


def evaluate(model: MetaSACLag, n_episodes: int = 50) -> dict[str, float]:
    """Deterministic evaluation on fixed seeds: mean return, success rate, fraction of episodes with a violation."""
    return evaluate_safe_policy(model, "SafeNavigation2D-v0", n_episodes)


def plot(history: dict[str, list[float]], path: str) -> None:
    """Return, violation rate, epsilon and alpha against timesteps, one row each (the paper's Fig. 2 layout)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray(history["timestep"])
    returns = np.asarray(history["return"])
    smooth = np.convolve(returns, np.ones(20) / 20, mode="valid") if len(returns) >= 20 else returns
    rows = [
        ("episode return", returns, smooth),
        ("violation rate (last 100 episodes)", np.asarray(history["violation_rate"]), None),
        ("epsilon (safety threshold)", np.asarray(history["epsilon"]), None),
        ("alpha (entropy temperature)", np.asarray(history["alpha"]), None),
    ]
    figure, axes = plt.subplots(len(rows), 1, figsize=(7, 9), sharex=True)
    for axis, (label, values, smoothed) in zip(axes, rows):
        axis.plot(steps, values, lw=0.8, alpha=0.5 if smoothed is not None else 1.0)
        if smoothed is not None and len(smoothed) < len(values):
            axis.plot(steps[len(steps) - len(smoothed) :], smoothed, lw=1.5, color="C1", label="mean of 20 episodes")
            axis.legend(loc="lower right", fontsize=8)
        if label.startswith("epsilon"):
            axis.plot(steps, history["violation_rate"], ls="--", lw=0.8, color="grey", label="violation rate")
        axis.set_ylabel(label, fontsize=8)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("environment steps")
    figure.suptitle("Meta SAC-Lag on SafeNavigation2D-v0")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=os.path.join("runs", "demo"))
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    model = MetaSACLag("MlpPolicy", "SafeNavigation2D-v0", seed=args.seed, **DEMO_HYPERPARAMS)
    before = evaluate(model)
    history = SafetyHistoryCallback()
    start = time.perf_counter()
    model.learn(args.timesteps, callback=history, progress_bar=True)
    wall = time.perf_counter() - start
    after = evaluate(model)
    model_path = os.path.join(args.out, "metasaclag_safe_navigation.zip")
    model.save(model_path)
    plot_path = os.path.join(args.out, "training.png")
    plot(history.history, plot_path)

    window = history.history["violation_rate"][-1] if history.history["violation_rate"] else float("nan")
    rows = [
        ("environment steps", f"{args.timesteps}"),
        ("episodes", f"{len(history.history['return'])}"),
        ("eval return (50 episodes, deterministic)", f"{before['return']:.1f} -> {after['return']:.1f}"),
        ("eval success rate", f"{before['success']:.0%} -> {after['success']:.0%}"),
        ("eval episodes with a violation", f"{before['violation']:.0%} -> {after['violation']:.0%}"),
        ("training violation rate (last 100 episodes)", f"{window:.2f}"),
        ("epsilon (initial 1.0)", f"{model.epsilon.item():.3f}"),
        ("alpha (initial 1.0)", f"{model.alpha.item():.4f}"),
        ("nu (initial 10.0)", f"{model.nu.item():.2f}"),
        ("wall time", f"{wall:.0f} s ({args.timesteps / wall:.0f} steps/s, {args.threads} torch thread)"),
        ("model", model_path),
        ("plot", plot_path),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nMeta SAC-Lag on SafeNavigation2D-v0 (seed {args.seed})")
    print("-" * (width + 30))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
