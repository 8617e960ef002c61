"""Random-action throughput (env steps/s) of the environments, through ``gymnasium.make`` (with its wrappers).

python scripts/bench_envs.py [--steps 50000] [ENV_ID ...]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import sb3_metasaclag  # noqa: F401  (registers the environments)

DEFAULT_IDS = ["SafeBandit-v0", "SafeNavigation2D-v0"]


def throughput(env_id: str, steps: int, seed: int = 0) -> float:
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(1000)]
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, info = env.step(actions[i % 1000])
        assert "cost" in info
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_ids", nargs="*", default=DEFAULT_IDS)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'environment':40s} {'steps/s (median of ' + str(args.rounds) + ')':>24s}")
    for env_id in args.env_ids:
        rates = [throughput(env_id, args.steps) for _ in range(args.rounds)]
        print(f"{env_id:40s} {np.median(rates):24,.0f}")


if __name__ == "__main__":
    main()
