"""Checks shared by the figure tests (tests/test_plots.py, tests/test_model_plots.py)."""

import matplotlib

matplotlib.use("Agg")  # no display in tests or CI; before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_saved_png(fig, path) -> None:
    """``fig`` is a Figure and ``path`` a PNG with a picture in it; closes ``fig``."""
    assert isinstance(fig, plt.Figure)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    plt.close(fig)


def texts(legend) -> list[str]:
    """The entries of a legend, in order."""
    return [text.get_text() for text in legend.get_texts()]


def hex_color(artist_color) -> str:
    """A matplotlib colour (name, hex or RGBA) as lower-case ``#rrggbb``."""
    return matplotlib.colors.to_hex(artist_color, keep_alpha=False).lower()
