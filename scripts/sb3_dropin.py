"""Run SB3's own tests with its SAC replaced by one of the package's algorithms, and print what passes and fails.

    python scripts/sb3_dropin.py [--algo SACLag] [--files test_save_load test_run ...] [--workers 1]

Downloads the source distribution of the installed stable-baselines3 from the package registry (``pip download
--no-binary``), copies its test files into a temporary directory with a ``conftest.py`` that (1) makes
``stable_baselines3.SAC`` the chosen algorithm and (2) adds ``info["cost"] = 0.0`` to every environment that
``gymnasium.make`` or SB3's test environments (``stable_baselines3.common.envs``) build, then runs the tests whose
id names SAC. A custom environment that a test defines itself keeps reporting no cost. Prints one line per failing test
with the last line of its error, and the counts.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap

FILES = ["test_save_load", "test_run", "test_predict", "test_callbacks", "test_train_eval_mode", "test_deterministic"]

CONFTEST = """
import gymnasium as gym
import stable_baselines3
import stable_baselines3.sac
from stable_baselines3.common import envs as sb3_envs

import sb3_metasaclag

ALGORITHM = getattr(sb3_metasaclag, {algo!r})
stable_baselines3.SAC = ALGORITHM
stable_baselines3.sac.SAC = ALGORITHM


class ZeroCost(gym.Wrapper):
    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation, reward, terminated, truncated, {{**info, "cost": info.get("cost", 0.0)}}


_make = gym.make


def make(*args, **kwargs):
    return ZeroCost(_make(*args, **kwargs))


gym.make = make
for _cls in vars(sb3_envs).values():
    if isinstance(_cls, type) and issubclass(_cls, gym.Env) and "step" in vars(_cls):
        _step = _cls.step

        def _with_cost(self, action, _step=_step):
            observation, reward, terminated, truncated, info = _step(self, action)
            return observation, reward, terminated, truncated, {{**info, "cost": info.get("cost", 0.0)}}

        _cls.step = _with_cost
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="SACLag", help="an algorithm of sb3_metasaclag (SACLag, MetaSACLag, ...)")
    parser.add_argument("--files", nargs="+", default=FILES)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    import stable_baselines3

    version = stable_baselines3.__version__
    with tempfile.TemporaryDirectory(prefix="sb3-dropin-") as root:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "-d", root,
             f"stable-baselines3=={version}"],
            check=True,
        )  # fmt: skip
        (archive,) = glob.glob(os.path.join(root, "stable_baselines3-*.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
        source = glob.glob(os.path.join(root, "stable_baselines3-*", "tests"))[0]
        tests = os.path.join(root, "run")
        os.mkdir(tests)
        for name in args.files:
            with open(os.path.join(source, f"{name}.py")) as file, open(os.path.join(tests, f"{name}.py"), "w") as out:
                out.write(file.read())
        with open(os.path.join(tests, "conftest.py"), "w") as file:
            file.write(textwrap.dedent(CONFTEST.format(algo=args.algo)))
        command = [sys.executable, "-m", "pytest", tests, "-k", "SAC", "-q", "-rf", "-p", "no:cacheprovider", "--tb=line"]
        if args.workers > 1:
            command += ["-n", str(args.workers)]
        result = subprocess.run(
            command, cwd=tests, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
        )
    lines = result.stdout.splitlines()
    print(f"SB3 {version}'s tests {', '.join(args.files)} with SAC = sb3_metasaclag.{args.algo} (tests whose id names SAC)")
    for line in lines:
        if line.startswith("FAILED"):
            print(" ", line[len("FAILED ") :][:300])
    print(lines[-1] if lines else result.stderr[-2000:])


if __name__ == "__main__":
    main()
