"""Milliseconds per reset of Safety-Gymnasium tasks, reusing the compiled MuJoCo model (ours) and rebuilding it
(Safety-Gymnasium's own reset), side by side in one process.

    python scripts/bench_resets.py [--resets 10] [ENV_ID ...]

Each task is made twice; one environment resets with model reuse, the other with ``reuse_compiled_model = False``,
alternately, from the same seed, so both see the same layouts. The first reset (which compiles the full model either
way) is not counted. Velocity tasks (MuJoCo locomotion without the builder) have no model to reuse and are timed once.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import sb3_metasaclag  # noqa: F401  (mends and registers Safety-Gymnasium)

DEFAULT_IDS = [
    "SafetyCarCircle2Gymnasium-v0",
    "SafetyPointCircle1Gymnasium-v0",
    "SafetyPointGoal1Gymnasium-v0",
    "SafetyCarPush1Gymnasium-v0",
    "SafetyPointButton1Gymnasium-v0",
    "SafetyHumanoidVelocityGymnasium-v1",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_ids", nargs="*", default=DEFAULT_IDS)
    parser.add_argument("--resets", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'environment':38s} {'reuse (ms)':>11s} {'rebuild (ms)':>13s} {'ratio':>6s}")
    for env_id in args.env_ids:
        envs = {"reuse": gym.make(env_id), "rebuild": gym.make(env_id)}
        times: dict[str, list[float]] = {name: [] for name in envs}
        for name, env in envs.items():
            env.reset(seed=0)
            world = getattr(getattr(env.unwrapped, "task", None), "world", None)
            if world is not None:
                world.reuse_compiled_model = name == "reuse"
        for _ in range(args.resets):
            for name, env in envs.items():
                start = time.perf_counter()
                env.reset()
                times[name].append((time.perf_counter() - start) * 1000)
        reuse, rebuild = np.median(times["reuse"]), np.median(times["rebuild"])
        if not hasattr(envs["reuse"].unwrapped, "task"):
            print(f"{env_id:38s} {'-':>11s} {rebuild:13.1f} {'-':>6s}")
        else:
            print(f"{env_id:38s} {reuse:11.1f} {rebuild:13.1f} {reuse / rebuild:6.2f}")


if __name__ == "__main__":
    main()
