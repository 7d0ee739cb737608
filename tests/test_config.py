"""RunConfig: profiles, the environment, and how paths are shown to a reader."""

import pytest

from pneumo_helpers.config import RunConfig, project_root, shown_path


def test_paths_are_shown_relative_to_the_project_never_absolute(tmp_path):
    root = project_root()
    assert shown_path(root / "runs" / "full") == "runs/full"
    assert shown_path(root.parent / "shared" / "data" / "chest_xray") == \
        "../shared/data/chest_xray"
    far = tmp_path.joinpath("a", "b", "c", "d")
    assert not shown_path(far).startswith("/") and shown_path(far).endswith("c/d")


def test_run_config_profiles_and_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PNEUMO_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("PNEUMO_EPOCHS", "7")
    cfg = RunConfig.from_params()
    assert cfg.profile == "sample" and cfg.epochs == 7 and cfg.run_dir == str(tmp_path / "run")
    full = RunConfig.from_params(data_dir=str(tmp_path), epochs=None)
    assert full.profile == "full" and full.image_size == 112
    monkeypatch.setenv("PNEUMO_CANDIDATES", "five_block-none, baseline-class_weight")
    assert RunConfig.from_params().candidates == ("five_block-none", "baseline-class_weight")
    with pytest.raises(TypeError, match="unknown run parameters"):
        RunConfig.from_params(imagesize=3)
