"""RunConfig helpers: how paths are shown to a reader."""

from pneumo_helpers.config import project_root, shown_path


def test_paths_are_shown_relative_to_the_project_never_absolute(tmp_path):
    root = project_root()
    assert shown_path(root / "runs" / "full") == "runs/full"
    assert shown_path(root.parent / "shared" / "data" / "chest_xray") == \
        "../shared/data/chest_xray"
    far = tmp_path.joinpath("a", "b", "c", "d")
    assert not shown_path(far).startswith("/") and shown_path(far).endswith("c/d")
