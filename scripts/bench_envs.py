"""Random-action throughput (env steps/s) of the environments, through ``gymnasium.make`` (with its wrappers).

python scripts/bench_envs.py [--steps N] [--rounds 3] [ENV_ID ...]
python scripts/bench_envs.py FetchPush-v4 HandManipulateEggRotate-v1   # the Gymnasium-Robotics tasks they build on

By default: the built-in environments (50,000 steps a round) and the paper's robotics tasks (3,000 steps a round),
one process, one torch thread (torch is not used by the environments).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import sb3_metasaclag  # noqa: F401  (registers the environments)
from sb3_metasaclag.envs import BUILTIN_ENV_IDS, ROBOTICS_ENV_IDS

PAPER_SAFETY_GYMNASIUM_IDS = ("SafetyCarCircle2Gymnasium-v0", "SafetyHumanoidVelocityGymnasium-v1")
DEFAULT_IDS = [*BUILTIN_ENV_IDS, *ROBOTICS_ENV_IDS, *PAPER_SAFETY_GYMNASIUM_IDS]


def throughput(env_id: str, steps: int, seed: int = 0) -> float:
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(1000)]
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, info = env.step(actions[i % 1000])
        assert "cost" in info or not env_id.startswith("Safe"), f"{env_id} reports no info['cost']"
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_ids", nargs="*", default=DEFAULT_IDS)
    parser.add_argument("--steps", type=int, default=None, help="steps per round (default: 50,000 built-in, 3,000 others)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if any(not env_id.startswith(("Safe", "Safety")) for env_id in args.env_ids):
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)  # reference tasks such as FetchPush-v4, HandManipulateEggRotate-v1
    print(f"{'environment':40s} {'steps/s (median of ' + str(args.rounds) + ')':>24s}")
    for env_id in args.env_ids:
        steps = args.steps or (50_000 if env_id in BUILTIN_ENV_IDS else 3_000)
        rates = [throughput(env_id, steps) for _ in range(args.rounds)]
        print(f"{env_id:40s} {np.median(rates):24,.0f}")


if __name__ == "__main__":
    main()
