"""Figures and tables of a grid: the paper's Fig. 2 and Fig. 3 from the runs of an Optuna study, and a summary table."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["plot_runs", "summary_table"]

#: Rows of the summary table: (column title, outcome key, number format).
SUMMARY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("eval return", "eval_return", ".2f"),
    ("eval success", "eval_success", ".2f"),
    ("eval violation rate", "eval_violation_rate", ".2f"),
    ("training violating episodes", "training_violating_episodes", ".0f"),
    ("final epsilon", "final_epsilon", ".3f"),
    ("final alpha", "final_alpha", ".2g"),
    ("final nu", "final_nu", ".2f"),
    ("epsilon range, last quarter", "epsilon_range_last_quarter", ".3f"),
    ("greedy distance to a*", "greedy_distance", ".3f"),
    ("minutes", "wall_seconds", ".1f"),
    ("env steps/s", "steps_per_second", ".0f"),
)
#: Episodes of the windowed training violation rate (the paper's "specific window of episodes").
WINDOW = 100
POUR_COFFEE = "SafePourCoffee-v0"


def _mean_std(values: Sequence[Any], fmt: str, scale: float = 1.0) -> str:
    numbers = np.asarray([float(v) * scale for v in values if v is not None], dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    if numbers.size == 0:
        return "-"
    return f"{numbers.mean():{fmt}} ± {numbers.std():{fmt}}"


def _group_label(run: dict[str, Any]) -> str:
    """Contender label, with the environment settings when a study holds several (e.g. ``setting=2``)."""
    extra = ", ".join(f"{key}={value}" for key, value in sorted(run["env_kwargs"].items()))
    return f"{run['label']} ({extra})" if extra else run["label"]


def summary_table(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown: one table per environment, one row per contender, mean ± std over seeds of every outcome."""
    lines = [
        "# Summary",
        "",
        "Mean ± standard deviation over seeds. Final evaluation: deterministic policy, fixed seeds (violation rate: share "
        "of episodes with at least one violating step). Training violating episodes: episodes with a violating step, "
        "summed over training. `epsilon`, `alpha`, `nu` at the end of training (`-`: the algorithm has none); `epsilon`'s "
        "range over the last quarter of training; the greedy action's mean distance to the constrained optimum `a*` on "
        "tasks that know it in closed form (the bandits).",
    ]
    by_env: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        by_env[run["env"]][_group_label(run)].append(run)
    for env in sorted(by_env):
        steps = sorted({run.get("steps") or 0 for group in by_env[env].values() for run in group})
        lines += ["", f"## {env}", ""]
        if steps and steps != [0]:
            lines += [f"Budget: {', '.join(f'{s:,}' for s in steps)} environment steps.", ""]
        header = ["contender", "seeds", *(title for title, _, _ in SUMMARY_COLUMNS)]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for label in sorted(by_env[env]):
            group = sorted(by_env[env][label], key=lambda run: run["seed"])
            cells = [label, ", ".join(str(run["seed"]) for run in group)]
            for _, key, fmt in SUMMARY_COLUMNS:
                scale = 1 / 60 if key == "wall_seconds" else 1.0
                cells.append(_mean_std([run.get(key) for run in group], fmt, scale))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _read_csv(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        return {}
    with open(path) as file:
        header = file.readline().strip().split(",")
        rows = [line.strip().split(",") for line in file if line.strip()]
    if not rows:
        return {column: np.zeros(0) for column in header}
    data = np.asarray(rows, dtype=float)
    return {column: data[:, index] for index, column in enumerate(header)}


def run_curves(log_path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The curves a run left next to its logs, each as ``(environment steps, values)``."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    evaluations = os.path.join(log_path, "evaluations.npz")
    if os.path.exists(evaluations):
        with np.load(evaluations) as data:
            steps = np.asarray(data["timesteps"], dtype=float)
            if steps.size:
                curves["eval_return"] = (steps, np.asarray(data["results"], dtype=float).mean(axis=1))
                if "costs" in data:
                    curves["eval_cost"] = (steps, np.asarray(data["costs"], dtype=float).mean(axis=1))
    episodes = _read_csv(os.path.join(log_path, "episodes.csv"))
    if episodes.get("timestep") is not None and episodes["timestep"].size:
        steps = episodes["timestep"]
        columns = [("violations", "violations_mean"), ("success", "success"), ("is_success", "success")]
        columns += [(name, name) for name in ("ee_jerk_mean", "ee_acceleration_mean")]
        for column, name in columns:
            if column in episodes and name not in curves:
                curves[name] = (steps, _trailing_mean(episodes[column], WINDOW))
    outer = _read_csv(os.path.join(log_path, "outer_values.csv"))
    if outer.get("timestep") is not None and outer["timestep"].size:
        for name in ("epsilon", "alpha", "nu"):
            if np.isfinite(outer[name]).any():
                curves[name] = (outer["timestep"], outer[name])
    return curves


def _trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and the ``window - 1`` before it (fewer at the start)."""
    sums = np.convolve(values, np.ones(window), mode="full")[: values.size]
    return sums / np.minimum(np.arange(1, values.size + 1), window)


def _aggregate(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 200) -> tuple[np.ndarray, ...] | None:
    """Mean and min/max over runs, on a common grid of steps (each run interpolated within its own range)."""
    curves = [(x, y) for x, y in curves if x.size > 0]
    if not curves:
        return None
    end = min(float(x[-1]) for x, _ in curves)
    start = max(float(x[0]) for x, _ in curves)
    if end <= start:
        grid = np.asarray([end])
    else:
        grid = np.linspace(start, end, points)
    values = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def _draw(axis: Any, runs: Sequence[dict[str, Any]], name: str, colors: dict[str, Any], log: bool = False) -> None:
    by_label: dict[str, list] = defaultdict(list)
    for run in runs:
        curve = run["curves"].get(name)
        if curve is not None:
            by_label[_group_label(run)].append(curve)
    for label, curves in sorted(by_label.items()):
        aggregate = _aggregate(curves)
        if aggregate is None:
            continue
        grid, mean, low, high = aggregate
        axis.plot(grid, mean, color=colors[label], label=f"{label} ({len(curves)} seeds)")
        if len(curves) > 1:
            axis.fill_between(grid, low, high, color=colors[label], alpha=0.2, linewidth=0)
    if log and by_label:
        axis.set_yscale("log")


def _colors(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    labels = sorted({_group_label(run) for run in runs})
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[index % len(cycle)] for index, label in enumerate(labels)}


def plot_fig2(runs: Sequence[dict[str, Any]], path: str) -> None:
    """The paper's Fig. 2 rows (evaluation return, windowed violation rate, ``epsilon``, ``alpha``) against environment
    steps: one column per environment, one line per contender (mean over seeds, shaded min to max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({run["env"] for run in runs})
    colors = _colors(runs)
    rows = (
        ("eval_return", "evaluation return", False),
        ("violations_mean", f"violating steps per episode\n(last {WINDOW} training episodes)", False),
        ("epsilon", "epsilon", False),
        ("alpha", "alpha", True),
    )
    figure, axes = plt.subplots(len(rows), len(envs), figsize=(4.5 * len(envs), 2.6 * len(rows)), squeeze=False)
    for column, env in enumerate(envs):
        env_runs = [run for run in runs if run["env"] == env]
        for row, (name, title, log) in enumerate(rows):
            axis = axes[row][column]
            _draw(axis, env_runs, name, colors, log)
            axis.set_ylabel(title)
            axis.grid(alpha=0.3)
            if row == 0:
                axis.set_title(env)
            if row == len(rows) - 1:
                axis.set_xlabel("environment steps")
        if axes[0][column].get_legend_handles_labels()[0]:
            axes[0][column].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_fig3(runs: Sequence[dict[str, Any]], path: str) -> None:
    """The paper's Fig. 3 for ``SafePourCoffee-v0``: training success rate, end-effector jerk and acceleration (means
    over the last 100 training episodes), one line per contender and Table 2 setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _colors(runs)
    rows = (
        ("success", "success rate"),
        ("ee_jerk_mean", "end-effector jerk (m/s³)"),
        ("ee_acceleration_mean", "end-effector acceleration (m/s²)"),
    )
    figure, axes = plt.subplots(1, len(rows), figsize=(4.8 * len(rows), 3.4), squeeze=False)
    for column, (name, title) in enumerate(rows):
        axis = axes[0][column]
        _draw(axis, runs, name, colors)
        axis.set_title(title)
        axis.set_xlabel("environment steps")
        axis.grid(alpha=0.3)
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    figure.suptitle(f"{POUR_COFFEE}: means over the last {WINDOW} training episodes")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_runs(runs: Sequence[dict[str, Any]], out: str) -> list[str]:
    """Write ``summary.md``, ``fig2.png`` and, for Pour Coffee runs, ``fig3.png`` into ``out``; return their paths."""
    if not runs:
        raise ValueError("The study has no finished run yet: nothing to plot")
    os.makedirs(out, exist_ok=True)
    runs = [{**run, "curves": run_curves(run["log_path"]) if run.get("log_path") else {}} for run in runs]
    written = [os.path.join(out, "summary.md")]
    with open(written[0], "w") as file:
        file.write(summary_table(runs))
    written.append(os.path.join(out, "fig2.png"))
    plot_fig2(runs, written[-1])
    coffee = [run for run in runs if run["env"] == POUR_COFFEE]
    if coffee:
        written.append(os.path.join(out, "fig3.png"))
        plot_fig3(coffee, written[-1])
    return written
