"""Time one gradient step of SB3's SAC and of every algorithm of the package, side by side (MetaSACLag under both of
its outer rules).

    python scripts/bench_train.py [--threads 1] [--net 256 256] [--batch-size 256] [--steps 100] [--rounds 3]

Prints milliseconds per gradient step and ratios to SAC. All models are timed in the same process, interleaved,
so that the machine's drift affects them alike.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch as th
from stable_baselines3 import SAC

from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag


def make_models(env: str, net: list[int], batch_size: int) -> dict:
    """SB3's SAC and every algorithm of the package on ``env``, named as in the output table, each past
    ``learning_starts`` (buffers filled, logger set up) and ready for ``train()``."""
    common = dict(learning_starts=batch_size, batch_size=batch_size, policy_kwargs=dict(net_arch=net), seed=0)
    models = {
        "SB3 SAC": SAC("MlpPolicy", env, **common),
        "MetaSACLag (averaged rule)": MetaSACLag("MlpPolicy", env, **common),
        "MetaSACLag (paper's rule)": MetaSACLag("MlpPolicy", env, outer_rule="paper", **common),
        "SACLag": SACLag("MlpPolicy", env, **common),
        "RCPOSAC": RCPOSAC("MlpPolicy", env, **common),
        "RCPOMetaSAC": RCPOMetaSAC("MlpPolicy", env, **common),
    }
    for model in models.values():
        model.learn(batch_size + 10)
    return models


def time_models(models: dict, steps: int, rounds: int, batch_size: int) -> dict[str, list[float]]:
    """Milliseconds per gradient step of each model, one value per round; the models take turns within each round so
    that the machine's drift affects them alike."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.train(gradient_steps=steps, batch_size=batch_size)
            times[name].append((time.perf_counter() - start) / steps * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--net", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", default="SafeNavigation2D-v0")
    parser.add_argument(
        "--stat", choices=["median", "min"], default="median", help="over rounds; min resists a loaded machine's stalls"
    )
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    models = make_models(args.env, args.net, args.batch_size)
    times = time_models(models, args.steps, args.rounds, args.batch_size)
    stat = np.median if args.stat == "median" else np.min
    reference = stat(times["SB3 SAC"])
    print(
        f"env={args.env} net={args.net} batch={args.batch_size} threads={args.threads} steps={args.steps}x{args.rounds} "
        f"({args.stat} over rounds)"
    )
    print(f"{'model':32s} {'ms/step':>9s} {'x SAC':>7s}")
    for name, values in times.items():
        print(f"{name:32s} {stat(values):9.2f} {stat(values) / reference:7.2f}")


if __name__ == "__main__":
    main()
