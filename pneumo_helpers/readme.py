"""The README's results block: the run's results table and the shipped model's scorecard,
written between ``<!-- results:start -->`` and ``<!-- results:end -->`` by ``pneumo report``.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import scorecard
from .report import results_markdown, results_table, summarize_run

__all__ = ["readme_block", "replace_readme_block"]

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def readme_block(run_dir, *, readme_dir=None, digits: int = 3, evaluations=None) -> str:
    """Markdown for the README: the run's results table (columns named by split and use),
    the threshold, the test's origin, the shipped model's scorecard (with the receipt in
    ``evaluations`` that names it) and the command that made it (``run_dir`` shown relative
    to ``readme_dir`` when inside it)."""
    run_dir = Path(run_dir).expanduser().resolve()
    summary = summarize_run(run_dir)
    shown = run_dir
    if readme_dir is not None:
        try:
            shown = run_dir.relative_to(Path(readme_dir).resolve())
        except ValueError:
            pass
    table = results_table(run_dir)
    intro = f"Run `{shown}`"
    if summary.model:
        intro += f", model `{summary.model}`"
    if summary.is_sample:
        intro += " (bundled sample: these numbers only show that the pipeline works)"
    lines = [intro + ":", "", results_markdown(run_dir, digits=digits), ""]
    meta = table.attrs["meta"]
    facts = ["Cells: estimate (95 % bootstrap confidence interval)."]
    decision = meta.get("test", {}) if "test" in meta else next(iter(meta.values()), {})
    if decision.get("threshold") is not None:
        facts.append(f"Decision threshold on P(PNEUMONIA): {float(decision['threshold']):.3f}"
                     + (f" (rule `{decision['rule']}`)." if decision.get("rule") else "."))
    if "test" in meta:
        facts.append(f"Test data: {summary.test_source}.")
    lines += [f"- {fact}" for fact in facts]
    shipped = scorecard.shipped_lines(evaluations=evaluations)
    if shipped:
        lines += ["", "The shipped model (`pneumo_helpers/shipped_model/`), from its folder and "
                  "the official split's receipt naming it:", "", scorecard.markdown(shipped)]
    lines += ["", f"Made with `pneumo report {shown}`."]
    return "\n".join(lines)


def replace_readme_block(readme, text: str) -> Path:
    """Replace what lies between ``<!-- results:start -->`` and ``<!-- results:end -->``.

    The markers stay; ``text`` goes between them on its own lines. Raises ValueError naming
    the file when the markers are missing, repeated or out of order.
    """
    readme = Path(readme)
    if not readme.is_file():
        raise FileNotFoundError(f"{readme} not found; pass --readme PATH")
    content = readme.read_text()
    starts, ends = content.count(README_START), content.count(README_END)
    if starts != 1 or ends != 1 or content.index(README_START) > content.index(README_END):
        raise ValueError(f"{readme} needs exactly one '{README_START}' followed by one "
                         f"'{README_END}' (found {starts} and {ends}); add them where the "
                         "results table should go")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    new = pattern.sub(lambda _: f"{README_START}\n{text.strip()}\n{README_END}", content)
    readme.write_text(new)
    return readme
