"""Time one gradient step of SB3's SAC and of every algorithm of the package, side by side (MetaSACLag with its
closed-form and with its autograd meta-gradients).

    python scripts/bench_train.py [--threads 1] [--net 256 256] [--batch-size 256] [--steps 100] [--meta-every 5 10]

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
    parser.add_argument(
        "--meta-every",
        type=int,
        nargs="*",
        default=[],
        help="also time MetaSACLag(meta_gradient_every=K) for each K (use --steps that are multiples of K)",
    )
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    common = dict(learning_starts=args.batch_size, batch_size=args.batch_size, policy_kwargs=dict(net_arch=args.net), seed=0)
    models = {
        "SB3 SAC": SAC("MlpPolicy", args.env, **common),
        "MetaSACLag (closed form)": MetaSACLag("MlpPolicy", args.env, **common),
        "MetaSACLag (autograd)": MetaSACLag("MlpPolicy", args.env, meta_gradient_method="autograd", **common),
        **{
            f"MetaSACLag (meta every {k})": MetaSACLag("MlpPolicy", args.env, meta_gradient_every=k, **common)
            for k in args.meta_every
        },
        "SACLag": SACLag("MlpPolicy", args.env, **common),
        "RCPOSAC": RCPOSAC("MlpPolicy", args.env, **common),
        "RCPOMetaSAC": RCPOMetaSAC("MlpPolicy", args.env, **common),
    }
    for model in models.values():
        model.learn(args.batch_size + 10)  # fill the buffers and set up the logger
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.train(gradient_steps=args.steps, batch_size=args.batch_size)
            times[name].append((time.perf_counter() - start) / args.steps * 1000)
    stat = np.median if args.stat == "median" else np.min
    reference = stat(times["SB3 SAC"])
    print(
        f"env={args.env} net={args.net} batch={args.batch_size} threads={args.threads} steps={args.steps}x{args.rounds} "
        f"({args.stat} over rounds)"
    )
    print(f"{'model':28s} {'ms/step':>9s} {'x SAC':>7s}")
    for name, values in times.items():
        print(f"{name:28s} {stat(values):9.2f} {stat(values) / reference:7.2f}")


if __name__ == "__main__":
    main()
