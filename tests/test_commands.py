"""Tests of pneumo_helpers.commands' text helpers; the subcommands themselves are tested through
``pneumo`` (tests/test_cli.py, tests/test_cli_hostile.py)."""

import os

from pneumo_helpers import commands


def test_shown_escapes_what_would_forge_or_break_a_line():
    assert commands.shown("scan 1.jpeg") == "scan 1.jpeg"
    assert commands.shown("bad\nskipped x.jpeg") == "bad\\nskipped x.jpeg"
    assert commands.shown(os.fsdecode(b"caf\xe9.jpeg")) == "caf\\xe9.jpeg"


def test_spreadsheet_safe_defuses_formulas_only():
    for text in ("=cmd|x", "+1+1", "-2", "@SUM(1)", "\tx", "\rx"):
        assert commands.spreadsheet_safe(text) == "'" + text
    assert commands.spreadsheet_safe("scan.jpeg") == "scan.jpeg"
    assert commands.spreadsheet_safe("") == ""
