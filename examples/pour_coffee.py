"""Render a scripted pour in SafePourCoffee-v0 to a PNG (four frames: start, arrival, pouring, end).

python examples/pour_coffee.py [--out runs/pour_coffee.png] [--seed 0]
"""

from __future__ import annotations

import argparse
import os

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import sb3_metasaclag  # noqa: F401  (registers the environments)
from sb3_metasaclag.envs.pour_coffee import ScriptedPour


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("runs", "pour_coffee.png"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = gym.make("SafePourCoffee-v0", render_mode="rgb_array")
    controller = ScriptedPour()
    obs, _ = env.reset(seed=args.seed)
    frames = {0: env.render()}
    for step in range(1, 201):
        obs, _, _, truncated, info = env.step(controller(obs))
        if step in (80, 150, 200):
            frames[step] = env.render()
        if truncated:
            break
    figure, axes = plt.subplots(1, len(frames), figsize=(4 * len(frames), 3.2))
    for axis, (step, frame) in zip(axes, frames.items()):
        axis.imshow(frame)
        axis.set_title(f"step {step}")
        axis.axis("off")
    figure.suptitle(
        f"Scripted pour: success {info['success']}, poured {info['poured']:.0%}, spilled {info['spilled_total']:.0%}, "
        f"max acceleration {info['ee_acceleration_max']:.2f} m/s^2"
    )
    figure.tight_layout()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}: success {info['success']}, poured {info['poured']:.0%}, spilled {info['spilled_total']:.0%}")
    env.close()


if __name__ == "__main__":
    main()
