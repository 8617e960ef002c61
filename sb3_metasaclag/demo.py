"""The main job (``make demo``): Meta SAC-Lag beside stock SB3 SAC on a task where SAC violates the constraint.

    python -m sb3_metasaclag.demo [--timesteps N] [--seed S] [--env ENV_ID] [--out runs/demo]

Both agents train at the same time in two processes (one torch thread each) on ``SafeCircleSoft-v0`` by default: the
reward is for running along a circle whose sides lie beyond two walls, and a violation does not end the episode, so
stock SAC runs the whole circle and crosses the walls twice per lap (``--env SafeNavigation2DSoft-v0``: a hazard on
the straight line to a goal). The demo prints a side-by-side table (evaluation return,
success and violations of the deterministic policy, violations during training, final ``epsilon``, ``alpha``, ``nu``)
with the scripted safe policy as the reference, and writes ``<out>/training.png`` (the rows of the paper's Fig. 2 plus
``nu``, both agents) and the two models.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# Small networks keep the demo at a few minutes on two cores; every other setting is each algorithm's default.
DEMO_HYPERPARAMS: dict[str, Any] = dict(policy_kwargs=dict(net_arch=[64, 64]))
ALGORITHMS = {"metasaclag": "Meta SAC-Lag", "sac": "stock SB3 SAC"}
N_EVAL_EPISODES = 30


def reference_policy(env_id: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The scripted safe controller of a built-in task (None for other tasks)."""
    from sb3_metasaclag.envs import scripted_circle_policy, scripted_safe_policy

    if env_id.startswith("SafeNavigation2D"):
        return scripted_safe_policy
    if env_id.startswith("SafeCircle"):
        return scripted_circle_policy
    return None


class _Scripted:
    """SB3's ``predict`` around a scripted controller, for :func:`evaluate_safe_policy`."""

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray]) -> None:
        self.policy = policy

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return self.policy(obs), None


def train(algorithm: str, env_id: str, timesteps: int, seed: int, out: str, eval_every: int) -> dict[str, Any]:
    """Train one agent with one torch thread; return its training history, evaluations and final values."""
    import gymnasium as gym
    import torch as th
    from stable_baselines3 import SAC

    from sb3_metasaclag import MetaSACLag
    from sb3_metasaclag.common.callbacks import SafetyHistoryCallback
    from sb3_metasaclag.common.evaluation import evaluate_safe_policy
    from sb3_metasaclag.common.wrappers import CostMonitor

    th.set_num_threads(1)
    algo = MetaSACLag if algorithm == "metasaclag" else SAC
    # CostMonitor gives stock SAC's episodes their cost and violation counts too.
    model = algo("MlpPolicy", CostMonitor(gym.make(env_id)), seed=seed, **DEMO_HYPERPARAMS)
    history = SafetyHistoryCallback()
    evaluations = [{"timestep": 0, **evaluate_safe_policy(model, env_id, N_EVAL_EPISODES)}]
    start = time.perf_counter()
    while model.num_timesteps < timesteps:
        model.learn(min(eval_every, timesteps - model.num_timesteps), callback=history, reset_num_timesteps=False)
        evaluations.append({"timestep": model.num_timesteps, **evaluate_safe_policy(model, env_id, N_EVAL_EPISODES)})
    wall = time.perf_counter() - start
    path = os.path.join(out, f"{algorithm}_{env_id}.zip")
    model.save(path)
    last = {key: values[-1] if values else float("nan") for key, values in history.history.items()}
    return {
        "algorithm": algorithm,
        "history": history.history,
        "evaluations": evaluations,
        "training_violating_episodes": int(sum(v > 0 for v in history.history["violations"])),
        "training_episodes": len(history.history["violations"]),
        "last": last,
        "wall": wall,
        "model": path,
    }


def _train_star(args: tuple) -> dict[str, Any]:
    return train(*args)


def plot(results: dict[str, dict[str, Any]], reference: dict[str, float] | None, env_id: str, path: str) -> None:
    """Evaluation return, training violation rate, epsilon, alpha and nu against environment steps, both agents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        ("eval return\n(deterministic)", "return"),
        ("training violating steps\nper episode (last 100)", "violations_mean"),
        ("epsilon\n(safety threshold)", "epsilon"),
        ("alpha\n(entropy temperature)", "alpha"),
        ("nu\n(Lagrange multiplier)", "nu"),
    ]
    figure, axes = plt.subplots(len(rows), 1, figsize=(7, 11), sharex=True)
    for index, (algorithm, result) in enumerate(results.items()):
        color, label = f"C{index}", ALGORITHMS[algorithm]
        history = result["history"]
        for axis, (_, key) in zip(axes, rows):
            if key == "return":
                evaluations = result["evaluations"]
                axis.plot(
                    [e["timestep"] for e in evaluations], [e["return"] for e in evaluations], "o-", color=color, label=label
                )
            elif not np.all(np.isnan(np.asarray(history[key], dtype=float))):
                axis.plot(history["timestep"], history[key], color=color, lw=1.2, label=label)
    if reference is not None:
        axes[0].axhline(reference["return"], color="grey", ls="--", lw=1, label="scripted safe policy")
    for axis, (label, key) in zip(axes, rows):
        axis.set_ylabel(label, fontsize=8)
        axis.grid(alpha=0.3)
        if key == "alpha":
            axis.set_yscale("log")
        axis.legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("environment steps")
    figure.suptitle(f"{env_id}: Meta SAC-Lag and stock SAC (SAC has no epsilon or nu)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _percent(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.0%}"


def summary_rows(results: dict[str, dict[str, Any]], reference: dict[str, float] | None) -> list[tuple[str, ...]]:
    """The side-by-side table: one row per quantity, one column per agent (and the scripted reference)."""

    def column(result: dict[str, Any] | None, name: str) -> str:
        if result is None:  # the scripted reference
            if reference is None:
                return "-"
            values = {"return": f"{reference['return']:.1f}", "success": _percent(reference["success"])}
            values.update(violation=f"{reference['violation']:.0%}", cost=f"{reference['cost']:.1f}")
            return values.get(name, "-")
        final, last = result["evaluations"][-1], result["last"]
        values = {
            "return": f"{final['return']:.1f}",
            "success": _percent(final["success"]),
            "violation": f"{final['violation']:.0%}",
            "cost": f"{final['cost']:.1f}",
            "training": f"{result['training_violating_episodes']} of {result['training_episodes']}",
            "window": f"{last['violations_mean']:.2f}",
            "epsilon": "-" if np.isnan(last["epsilon"]) else f"{last['epsilon']:.3f}",
            "alpha": f"{last['alpha']:.2g}",
            "nu": "-" if np.isnan(last["nu"]) else f"{last['nu']:.2f}",
            "wall": f"{result['wall']:.0f} s",
        }
        return values[name]

    names = [
        ("return", f"eval return ({N_EVAL_EPISODES} episodes, deterministic)"),
        ("success", "eval success rate"),
        ("violation", "eval episodes with a violation"),
        ("cost", "eval violating steps per episode"),
        ("training", "training episodes with a violation"),
        ("window", "training violating steps per episode, last 100"),
        ("epsilon", "final epsilon (initial 1.0)"),
        ("alpha", "final alpha (initial 1.0)"),
        ("nu", "final nu (initial 10.0)"),
        ("wall", "wall time (one torch thread)"),
    ]
    header = ("", *(ALGORITHMS[a] for a in results), "scripted safe policy")
    return [header] + [(label, *(column(r, key) for r in results.values()), column(None, key)) for key, label in names]


def main(argv: list[str] | None = None) -> None:
    from sb3_metasaclag.common.evaluation import evaluate_safe_policy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default="SafeCircleSoft-v0")
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--out", default=os.path.join("runs", "demo"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    jobs = [(algorithm, args.env, args.timesteps, args.seed, args.out, args.eval_every) for algorithm in ALGORITHMS]
    print(f"Training Meta SAC-Lag and stock SAC on {args.env} for {args.timesteps:,} steps each, in two processes ...")
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        results = {result["algorithm"]: result for result in pool.map(_train_star, jobs)}
    scripted = reference_policy(args.env)
    reference = evaluate_safe_policy(_Scripted(scripted), args.env, N_EVAL_EPISODES) if scripted is not None else None
    plot_path = os.path.join(args.out, "training.png")
    plot(results, reference, args.env, plot_path)

    rows = summary_rows(results, reference)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\n{args.env}, {args.timesteps:,} steps, seed {args.seed}")
    for index, row in enumerate(rows):
        print(
            "  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths)))
        )
        if index == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    print(f"\nplot: {plot_path}\nmodels: " + ", ".join(result["model"] for result in results.values()))
    print("Results differ between machines and library versions for the same seed; compare the columns, not the digits.")


if __name__ == "__main__":
    main()
