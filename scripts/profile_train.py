"""Where a gradient step's time goes: torch's profiler over ``train()`` of SB3's SAC and of the package's algorithms.

    python scripts/profile_train.py [--algos SAC SACLag] [--net 64 64] [--steps 100] [--rows 18] [--threads 1]

Each model first learns past ``learning_starts`` and takes 20 untimed gradient steps, then ``--steps`` gradient steps
run under ``torch.profiler``; the table lists the operators by their own CPU time.
"""

from __future__ import annotations

import argparse

import torch as th
from stable_baselines3 import SAC

from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag

ALGOS = {"SAC": SAC, "SACLag": SACLag, "RCPOSAC": RCPOSAC, "MetaSACLag": MetaSACLag, "RCPOMetaSAC": RCPOMetaSAC}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=sorted(ALGOS), default=["SAC", "SACLag"])
    parser.add_argument("--net", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rows", type=int, default=18)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--env", default="SafeNavigation2D-v0")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    for name in args.algos:
        model = ALGOS[name](
            "MlpPolicy",
            args.env,
            learning_starts=args.batch_size,
            batch_size=args.batch_size,
            policy_kwargs=dict(net_arch=args.net),
            seed=0,
        )
        model.learn(args.batch_size + 44)
        model.train(gradient_steps=20, batch_size=args.batch_size)
        with th.profiler.profile(activities=[th.profiler.ProfilerActivity.CPU]) as profile:
            model.train(gradient_steps=args.steps, batch_size=args.batch_size)
        print(f"{name}: {args.steps} gradient steps, net={args.net}, batch={args.batch_size}, threads={args.threads}")
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
