"""Damaged model and replay-buffer files: a clear error that names the file and what is wrong, nothing changed."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag

ALGORITHMS = [MetaSACLag, SACLag, RCPOSAC, RCPOMetaSAC]
SMALL = dict(
    learning_starts=20, batch_size=8, n_initial_states=4, initial_state_batch_size=4, policy_kwargs=dict(net_arch=[8])
)


def _without(source, target, member: str) -> None:
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as copy:
        for name in archive.namelist():
            if name != member:
                copy.writestr(name, archive.read(name))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One saved model and replay buffer per algorithm, and damaged copies of them."""
    root = tmp_path_factory.mktemp("damaged")
    files = {}
    for cls in ALGORITHMS:
        model = cls("MlpPolicy", "SafeBandit-v0", seed=0, **SMALL)
        model.learn(40)
        good = root / f"{cls.__name__}.zip"
        model.save(good)
        model.save_replay_buffer(root / f"{cls.__name__}_buffer.pkl")
        raw = good.read_bytes()
        damaged = {
            "truncated": raw[: len(raw) // 2],
            "empty": b"",
            "not a zip": b"this is not a model\n" * 20,
        }
        paths = {}
        for kind, content in damaged.items():
            path = root / f"{cls.__name__}_{kind.replace(' ', '_')}.zip"
            path.write_bytes(content)
            paths[kind] = path
        for member in ("policy.pth", "data"):
            path = root / f"{cls.__name__}_no_{member.replace('.', '_')}.zip"
            _without(good, path, member)
            paths[f"no {member}"] = path
        buffer_raw = (root / f"{cls.__name__}_buffer.pkl").read_bytes()
        for kind, content in {"truncated": buffer_raw[: len(buffer_raw) // 2], "empty": b"", "not a pickle": b"text"}.items():
            path = root / f"{cls.__name__}_buffer_{kind.replace(' ', '_')}.pkl"
            path.write_bytes(content)
            paths[f"buffer {kind}"] = path
        files[cls] = (model, paths)
    return files


MESSAGES = {
    "truncated": "truncated",
    "empty": "the file is empty",
    "not a zip": "not a zip archive",
    "no policy.pth": "no 'policy.pth' \\(the network parameters\\)",
    "no data": "no 'data' \\(the hyperparameters\\)",
}


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("kind", list(MESSAGES))
def test_load_of_a_damaged_model_names_the_file_and_the_problem(saved, cls, kind):
    _, paths = saved[cls]
    path = paths[kind]
    with pytest.raises(ValueError, match=MESSAGES[kind]) as error:
        cls.load(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("kind", ["truncated", "empty", "not a pickle"])
def test_load_replay_buffer_of_a_damaged_file_names_it_and_keeps_the_buffer(saved, cls, kind):
    model, paths = saved[cls]
    buffer = model.replay_buffer
    size, observations = buffer.size(), buffer.observations.copy()
    path = paths[f"buffer {kind}"]
    with pytest.raises(ValueError, match="Cannot load a replay buffer from") as error:
        model.load_replay_buffer(path)
    assert str(path) in str(error.value)
    assert model.replay_buffer is buffer and buffer.size() == size
    np.testing.assert_array_equal(buffer.observations, observations)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No model file at .*nothing\.zip"):
        SACLag.load(tmp_path / "nothing")
