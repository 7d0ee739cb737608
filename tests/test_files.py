"""Tests of pneumo_helpers.files: a file's sha256, atomic writes, and the output policy."""

import hashlib
import os
import stat

import pytest

from pneumo_helpers import files


def test_sha256_is_the_digest_of_the_bytes(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00pneumo" * 100_000)
    assert files.sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_atomic_write_replaces_and_keeps_the_mode(tmp_path):
    target = tmp_path / "deep" / "out.csv"
    with files.atomic_write(target) as handle:
        handle.write("a,b\r\n1,é\n")
    assert target.read_bytes() == "a,b\r\n1,é\n".encode()  # UTF-8, newlines as written
    target.chmod(0o600)
    with files.atomic_write(target, "wb") as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(os.listdir(target.parent)) == ["out.csv"]  # no temporary left


def test_a_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(UnicodeEncodeError):
        with files.atomic_write(target) as handle:
            handle.write("file,probability\n")
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "boom")
    assert list(tmp_path.iterdir()) == []
    target.write_text("previous\n")
    with pytest.raises(RuntimeError):
        with files.atomic_write(target) as handle:
            handle.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "previous\n" and list(tmp_path.iterdir()) == [target]


def test_written_files_are_readable_by_others(tmp_path):
    # A shipped val_metrics.json written private (mkstemp's 0600) cannot be read by the
    # users of a system-wide install: the model then has no threshold.
    with files.atomic_write(tmp_path / "m.json") as handle:
        handle.write("{}")
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644


def test_neither_function_writes_through_a_link_a_folder_or_a_fifo(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("keep me\n")
    (tmp_path / "link.csv").symlink_to(real)
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "adir").mkdir()
    for name, message in (("link.csv", "symbolic link"), ("pipe.csv", "FIFO"),
                          ("adir", "is a folder")):
        with pytest.raises(files.OutputError, match=message):
            files.check_output(tmp_path / name)
        with pytest.raises(files.OutputError, match=message):
            with files.atomic_write(tmp_path / name) as handle:
                handle.write("x")
    assert real.read_text() == "keep me\n" and (tmp_path / "link.csv").is_symlink()


def test_check_output_refuses_inputs_read_only_files_and_long_names(tmp_path):
    given = tmp_path / "scan.jpeg"
    given.write_bytes(b"film")
    (tmp_path / "alias.jpeg").hardlink_to(given)
    with pytest.raises(files.OutputError, match="is an input"):
        files.check_output(tmp_path / "alias.jpeg", inputs=[given])
    locked = tmp_path / "locked.csv"
    locked.write_text("x")
    locked.chmod(0o444)
    with pytest.raises(files.OutputError, match="read-only"):
        files.check_output(locked)
    with pytest.raises(files.OutputError, match="longer than 255 bytes"):
        files.check_output(tmp_path / ("n" * 256))


def test_check_output_makes_the_folder_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "new" / ("n" * 250)  # fits 255 bytes, though its temporary is cut
    assert files.check_output(str(target)) == target
    assert target.parent.is_dir() and list(target.parent.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_output_refuses_a_folder_it_cannot_write(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(files.OutputError, match="cannot write there"):
            files.check_output(folder / "out.csv")
    finally:
        folder.chmod(0o755)
