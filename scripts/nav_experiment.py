"""MetaSACLag on SafeNavigation2D-v0 with evaluations every 5,000 steps (the issue-3 experiments in the README).

python scripts/nav_experiment.py NAME [--steps 20000] [--descent] [key=value ...]

``key=value`` pairs are MetaSACLag arguments (numbers or strings), e.g. ``alpha_learning_rate=0.0003``
``epsilon_objective=nonlinear``, ``epsilon_batch=mixed``. ``--descent`` flips the epsilon optimiser to descent on its
objective (an experiment, not a supported option). Networks are [64, 64], one torch thread; each line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch as th

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.common.evaluation import evaluate_safe_policy


def parse_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("kwargs", nargs="*", help="MetaSACLag arguments as key=value")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--descent", action="store_true")
    args = parser.parse_intermixed_args()
    th.set_num_threads(1)
    kwargs = {key: parse_value(value) for key, value in (pair.split("=", 1) for pair in args.kwargs)}
    model = MetaSACLag("MlpPolicy", "SafeNavigation2D-v0", seed=args.seed, policy_kwargs=dict(net_arch=[64, 64]), **kwargs)
    if args.descent:
        for group in model.epsilon_optimizer.param_groups:
            group["maximize"] = False
    start = time.time()
    for _ in range(args.steps // 5000):
        model.learn(5000, reset_num_timesteps=False)
        evaluation = evaluate_safe_policy(model, "SafeNavigation2D-v0", 30)
        record = {
            "name": args.name,
            "steps": model.num_timesteps,
            "seconds": round(time.time() - start),
            "epsilon": round(float(model.epsilon.detach()), 3),
            "nu": round(float(model.nu.detach()), 3),
            "alpha": round(float(model.alpha.detach()), 4),
            **{key: round(float(value), 3) for key, value in evaluation.items()},
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
