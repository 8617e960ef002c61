"""The main job runs end to end (on a tiny budget) and writes its side-by-side table, models and plot."""

import re

import pytest
from stable_baselines3 import SAC

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.demo import main


@pytest.mark.parametrize("env_id, scripted_success", [("SafeCircleSoft-v0", "-"), ("SafeNavigation2DSoft-v0", "100%")])
def test_demo_writes_summary_models_and_plot(tmp_path, capsys, env_id, scripted_success):
    main(["--timesteps", "300", "--eval-every", "150", "--env", env_id, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "Meta SAC-Lag" in line and "stock SB3 SAC" in line)
    assert "scripted safe policy" in header
    cells = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    rows = {row[0]: row[1:] for row in cells if len(row) == 4}
    for line in (
        "eval success rate",
        "training episodes with a violation",
        "final epsilon (initial 1.0)",
        "final alpha (initial 1.0)",
        "final nu (initial 10.0)",
        "wall time (one torch thread)",
    ):
        assert line in rows, line
    # The scripted reference never violates; it reaches the goal of the navigation task (the circle has none).
    assert rows["eval episodes with a violation"][-1] == "0%"
    assert rows["eval success rate"][-1] == scripted_success
    assert rows["final epsilon (initial 1.0)"][1] == "-"  # stock SAC has no epsilon
    png = tmp_path / "training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert MetaSACLag.load(tmp_path / f"metasaclag_{env_id}.zip").num_timesteps == 300
    assert SAC.load(tmp_path / f"sac_{env_id}.zip").num_timesteps == 300
