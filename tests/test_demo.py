"""The main job runs end to end (on a tiny budget) and writes its table, model and plot."""

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.demo import main


def test_demo_writes_summary_model_and_plot(tmp_path, capsys):
    main(["--timesteps", "300", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    for line in ("eval success rate", "training violation rate", "epsilon (initial 1.0)", "alpha (initial 1.0)", "wall time"):
        assert line in out
    png = tmp_path / "training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    model = MetaSACLag.load(tmp_path / "metasaclag_safe_navigation.zip")
    assert model.num_timesteps == 300
