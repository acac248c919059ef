"""benchmarks.run at a tiny size: it runs, and scales what it times on a subset."""

import json

import pytest

from benchmarks import run, timing


@pytest.mark.slow
def test_local_search_row_scales_the_subset_it_times(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "SETTLE_S", 0.0)  # the pause is for real timings
    out = tmp_path / "bench.json"
    sizes = ["N=200", "D=65", "tries=40", "subset_tries=10"]
    run.main(
        ["--quick", "--only=local_search", f"--json={out}"]
        + [f"--set={s}" for s in sizes]
    )
    (row,) = json.loads(out.read_text())
    assert row["workload"] == "local_search"
    assert row["subset_tries_timed"] == 10
    # numpy's loop and the readable path ran on 10 tries and were scaled to 40;
    # each one's time for twice the tries was measured beside.
    assert set(row["linearity"]) == {"numpy", "readable"}
    assert all(k > 0 for k in row["linearity"].values())
    repeats = run.QUICK["slow_repeats"]
    assert len(row["times"]["numpy"]) == len(row["times"]["linopt"]) == repeats
    assert row["ratio"] > 0 and row["floor_s"] > 0


@pytest.mark.slow
def test_without_a_subset_nothing_is_scaled(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "SETTLE_S", 0.0)
    out = tmp_path / "bench.json"
    sizes = ["N=200", "D=65", "tries=10", "subset_tries=10"]
    run.main(
        ["--quick", "--only=random_search", f"--json={out}"]
        + [f"--set={s}" for s in sizes]
    )
    (row,) = json.loads(out.read_text())
    assert row["subset_tries_timed"] is None and row["linearity"] == {}
