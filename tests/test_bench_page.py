"""`make bench` rewrites the sections of docs/benchmarks.md it ran and keeps everything else:
the other sections' tables (their results are not in a fresh clone's bench/out) and the
notes written by hand under any section (dated runs on other machines, what they meant)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import run_all  # noqa: E402

WHAT = {name: what for name, _, what in run_all.BENCHES}
HAND_NOTE = "Run on 2026-12-07, `python bench/bench_hierarchy.py`, AMD EPYC: 379x."


def page_of_yesterday() -> str:
    """A page as sessions leave it: every section with a table, one with a note by hand."""
    page = run_all.rewrite("", {name: {"x_realtime": 1.0} for name in WHAT}, "2026-12-06",
                           "cpu A")
    preamble, sections = run_all.split_page(page)
    sections["hierarchy"] = sections["hierarchy"].rstrip("\n") + f"\n\n{HAND_NOTE}\n"
    return preamble + "".join(f"\n## {name}\n{body}" for name, body in sections.items())


def sections_of(page: str) -> dict:
    return run_all.split_page(page)[1]


def test_rerunning_one_bench_rewrites_its_section_and_keeps_the_rest():
    before = page_of_yesterday()
    after = run_all.rewrite(before, {"hierarchy": {"x_realtime": 2.0}}, "2026-12-07", "cpu B")
    old, new = sections_of(before), sections_of(after)

    assert list(new) == list(WHAT)
    assert all(new[name] == old[name] for name in WHAT if name != "hierarchy")
    rerun = new["hierarchy"]
    assert rerun.count("| x_realtime | 2.0 |") == 1 and "| x_realtime | 1.0 |" not in rerun
    assert f"{run_all.RUN_LINE}2026-12-07; cpu B." in rerun and "cpu A" not in rerun
    assert rerun.index(WHAT["hierarchy"]) < rerun.index("| x_realtime") \
        < rerun.index(run_all.EARLIER) < rerun.index(HAND_NOTE)


def test_rerunning_twice_keeps_the_notes_once():
    once = run_all.rewrite(page_of_yesterday(), {"hierarchy": {"x": 1}}, "2026-12-07", "cpu B")
    twice = run_all.rewrite(once, {"hierarchy": {"x": 3}}, "2026-12-08", "cpu C")
    rerun = sections_of(twice)["hierarchy"]

    assert rerun.count(HAND_NOTE) == 1 and rerun.count(run_all.EARLIER) == 1
    assert rerun.count(run_all.RUN_LINE) == 1 and rerun.count("| --- | --- |") == 1
    assert run_all.rewrite(twice, {}, "2026-12-09", "cpu D") == twice


def test_a_first_page_says_which_benches_have_not_run():
    page = run_all.rewrite("", {"pqmf": {"x": 1}}, "2026-12-07", "cpu A")
    sections = sections_of(page)

    assert page.startswith("# Benchmarks")
    assert sections["convert"].strip() == f"{WHAT['convert']}\n\n(not run yet)"
    assert "| x | 1 |" in sections["pqmf"]
