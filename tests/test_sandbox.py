"""Tests of pneumo_helpers.sandbox: library start-up noise filtered, library caches kept out of
the home folder."""

import os
import stat
import tempfile

import pytest

from pneumo_helpers import sandbox


def test_library_noise_is_dropped_and_everything_else_replayed(capfd):
    with sandbox.without_library_noise():
        os.write(2, b"I0000 00:00:00.000 12 cpu_feature_guard.cc] This TensorFlow binary\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called\n")
        os.write(2, b"UserWarning: a real warning\n")
    assert capfd.readouterr().err == "UserWarning: a real warning\n"


@pytest.fixture
def fresh_env(tmp_path, monkeypatch):
    for variable in ("KERAS_HOME", "MPLCONFIGDIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / f"pneumo-{os.getuid()}"


def test_library_homes_go_to_a_private_scratch_folder(fresh_env):
    sandbox.private_library_homes()
    assert os.environ["KERAS_HOME"] == str(fresh_env / "keras")
    assert os.environ["MPLCONFIGDIR"] == str(fresh_env / "matplotlib")
    assert stat.S_IMODE(os.lstat(fresh_env).st_mode) == 0o700


def test_a_scratch_name_others_can_write_is_not_used(fresh_env):
    fresh_env.mkdir(mode=0o777)
    fresh_env.chmod(0o777)  # planted in a shared /tmp by someone else
    sandbox.private_library_homes()
    assert not os.environ["KERAS_HOME"].startswith(str(fresh_env))
    assert list(fresh_env.iterdir()) == []


def test_a_home_the_user_chose_is_kept(fresh_env, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "mine"))
    sandbox.private_library_homes()
    assert os.environ["KERAS_HOME"] == str(tmp_path / "mine")
    assert os.environ["MPLCONFIGDIR"] == str(fresh_env / "matplotlib")
