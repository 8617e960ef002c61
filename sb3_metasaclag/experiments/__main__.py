"""Command line of the experiment runner: ``python -m sb3_metasaclag.experiments run|plot ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sb3_metasaclag.experiments.grid import (
    Contender,
    completed_runs,
    grid_cells,
    grid_file_cells,
    load_study,
    open_storage,
    parse_assignments,
    run_grid,
)
from sb3_metasaclag.experiments.plots import plot_runs


def _contenders(algos: Sequence[str], specs: Sequence[Sequence[str]]) -> list[Contender]:
    contenders = [Contender(algo, algo) for algo in algos]
    for spec in specs:
        if len(spec) < 2:
            raise ValueError(f"--contender expects LABEL ALGO [key=value ...], got {' '.join(spec)!r}")
        label, algo, *assignments = spec
        contenders.append(Contender(label, algo, parse_assignments(assignments, f"--contender {label}")))
    if not contenders:
        raise ValueError("Give at least one algorithm (--algos) or contender (--contender)")
    labels = [contender.label for contender in contenders]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Contender labels must differ, got {labels}")
    return contenders


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sb3_metasaclag.experiments", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) a grid of training runs")
    run.add_argument("--algos", nargs="*", default=[], help="RL Zoo algorithm names, each a contender labelled by itself")
    run.add_argument(
        "--contender",
        nargs="+",
        action="append",
        default=[],
        metavar="LABEL ALGO [key=value",
        help="a contender under a label of its own with its own hyperparameters, e.g. "
        "--contender metasaclag-paper metasaclag outer_rule=paper (repeatable)",
    )
    run.add_argument(
        "--grid", default=None, help="a grid file (YAML, e.g. experiments/outer_loop_bandits.yml) instead of the options"
    )
    run.add_argument("--envs", nargs="+", default=[])
    run.add_argument("--seeds", nargs="+", type=int, default=[0])
    run.add_argument("--steps", type=int, default=None, help="training budget (default: n_timesteps of the yml file)")
    run.add_argument("--storage", required=True, help="sqlite:///runs/exp.db, postgresql://user@host/db, ...")
    run.add_argument("--study", required=True, help="name of the Optuna study that holds the grid")
    run.add_argument("--workers", type=int, default=1, help="local worker processes (one torch thread each)")
    run.add_argument("--log-dir", default="runs/experiments", help="RL Zoo log folders go to LOG_DIR/<label>/")
    run.add_argument("--params", nargs="*", default=[], help="key=value hyperparameters for every contender")
    run.add_argument("--env-kwargs", nargs="*", default=[], help="key=value arguments of the environments")
    run.add_argument("--eval-freq", type=int, default=2_000, help="evaluate every this many steps (0: never)")
    run.add_argument("--eval-episodes", type=int, default=10, help="episodes of each evaluation during training")
    run.add_argument("--final-eval-episodes", type=int, default=30, help="episodes of the final evaluation")
    run.add_argument("--heartbeat", type=int, default=60, help="seconds between a worker's heartbeats")
    run.add_argument("--grace-period", type=int, default=None, help="seconds without heartbeat before a run is retried")
    run.add_argument("--verbose", type=int, default=0)
    plot = commands.add_parser("plot", help="draw fig2.png (and fig3.png) and write summary.md from a study")
    plot.add_argument("--storage", required=True)
    plot.add_argument("--study", required=True)
    plot.add_argument("--out", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run" and args.grid is not None:
            if args.algos or args.contender or args.envs:
                raise ValueError("--grid describes the contenders and environments: give --grid or --algos / --envs")
            cells = grid_file_cells(args.grid)
        elif args.command == "run":
            if not args.envs:
                raise ValueError("Give the environments (--envs) or a grid file (--grid)")
            cells = grid_cells(
                _contenders(args.algos, args.contender),
                args.envs,
                args.seeds,
                steps=args.steps,
                params=parse_assignments(args.params),
                env_kwargs=parse_assignments(args.env_kwargs, "--env-kwargs"),
                eval_freq=args.eval_freq,
                eval_episodes=args.eval_episodes,
                final_eval_episodes=args.final_eval_episodes,
            )
        if args.command == "run":
            result = run_grid(
                cells,
                args.storage,
                args.study,
                args.log_dir,
                workers=args.workers,
                heartbeat_interval=args.heartbeat,
                grace_period=args.grace_period,
                verbose=args.verbose,
            )
            return 0 if result["finished"] == result["total"] else 1
        study = load_study(open_storage(args.storage), args.study)
        for path in plot_runs(completed_runs(study), args.out):
            print(f"wrote {path}")
        return 0
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
