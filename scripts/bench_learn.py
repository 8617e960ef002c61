"""Environment steps per second while learning: every algorithm of the package beside SB3's SAC, in one process.

    python scripts/bench_learn.py [--threads 1] [--steps 300] [--rounds 3] [--stat median] [ENV_ID ...]

Default tasks: ``SafeNavigation2D-v0`` (built in, pure numpy) and ``SafetyCarCircle2Gymnasium-v0`` (Safety-Gymnasium,
MuJoCo), default settings of every algorithm (SB3's: [256, 256] networks, batch 256, one gradient step per step).
Each model first learns past ``learning_starts`` untimed, then the models take turns, ``--steps`` environment steps
each per round (``learn(..., reset_num_timesteps=False)``), so that the machine's drift affects them alike. Prints env
steps/s (median over rounds, or the fastest round with ``--stat max``) and the ratio to SAC's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch as th
from stable_baselines3 import SAC

from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag

DEFAULT_IDS = ["SafeNavigation2D-v0", "SafetyCarCircle2Gymnasium-v0"]
MODELS = {"SB3 SAC": SAC, "MetaSACLag": MetaSACLag, "SACLag": SACLag, "RCPOSAC": RCPOSAC, "RCPOMetaSAC": RCPOMetaSAC}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_ids", nargs="*", default=DEFAULT_IDS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stat", choices=["median", "max"], default="median", help="of the rounds' env steps/s")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    stat = np.median if args.stat == "median" else np.max
    for env_id in args.env_ids:
        models = {name: algo("MlpPolicy", env_id, seed=0) for name, algo in MODELS.items()}
        for model in models.values():
            model.learn(model.learning_starts + 50)  # warm-up, untimed: gradient steps run from here on
        rates: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                start = time.perf_counter()
                model.learn(args.steps, reset_num_timesteps=False)
                rates[name].append(args.steps / (time.perf_counter() - start))
        reference = stat(rates["SB3 SAC"])
        print(f"env={env_id} threads={args.threads} steps={args.steps}x{args.rounds} ({args.stat} over rounds)")
        print(f"{'model':28s} {'env steps/s':>12s} {'x SAC':>7s}")
        for name, values in rates.items():
            print(f"{name:28s} {stat(values):12.1f} {stat(values) / reference:7.2f}")
        print()


if __name__ == "__main__":
    main()
