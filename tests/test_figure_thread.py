"""Figures drawn on a worker thread: written by the end of the block, never lost."""

import threading
import time

import numpy as np
import pytest

from linopt import figure_thread, plots


def recorder():
    """A figure writer that records where and with what it ran, slowly."""
    seen = []

    @figure_thread.figure_writer
    def write(path, values, *, label):
        time.sleep(0.05)  # long enough for the caller to have moved on
        seen.append((threading.current_thread().name, path, values.copy(), label))
        path.write_bytes(b"figure")
        return path

    return write, seen


def test_outside_a_block_figures_are_drawn_inline(tmp_path):
    write, seen = recorder()
    assert write(tmp_path / "a.png", np.zeros(2), label="x") == tmp_path / "a.png"
    assert seen[0][0] == threading.current_thread().name
    assert (tmp_path / "a.png").exists()


def test_in_a_block_figures_are_drawn_on_the_worker_and_written_by_its_end(
    tmp_path,
):
    write, seen = recorder()
    paths = [tmp_path / f"{k}.png" for k in range(3)]
    with figure_thread.in_background():
        for p in paths:
            assert write(p, np.arange(3.0), label="x") == p
        assert len(seen) < 3  # the caller did not wait for them
    assert [s[1] for s in seen] == paths  # in order, all written
    assert all(p.exists() for p in paths)
    assert {s[0] for s in seen} != {threading.current_thread().name}


def test_the_caller_may_change_its_arrays_after_asking(tmp_path):
    write, seen = recorder()
    values, curves = np.arange(3.0), {"a": (np.arange(2.0), [np.ones(2)])}
    with figure_thread.in_background():
        write(tmp_path / "a.png", values, label=curves)
        values[:] = -1
        curves["a"][1][0][:] = -1
    np.testing.assert_array_equal(seen[0][2], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(seen[0][3]["a"][1][0], [1.0, 1.0])


def test_an_error_in_the_block_still_writes_the_figures_asked_for(tmp_path):
    write, _ = recorder()
    with pytest.raises(KeyboardInterrupt), figure_thread.in_background():
        write(tmp_path / "a.png", np.zeros(1), label="x")
        raise KeyboardInterrupt
    assert (tmp_path / "a.png").exists()
    assert figure_thread._executor is None  # the worker is gone


def test_a_figures_error_is_raised_at_the_end_of_the_block(tmp_path):
    @figure_thread.figure_writer
    def broken(path):
        raise ValueError("cannot draw this")

    write, _ = recorder()
    with pytest.raises(ValueError, match="cannot draw"), figure_thread.in_background():
        broken(tmp_path / "bad.png")
        write(tmp_path / "good.png", np.zeros(1), label="x")
    assert (tmp_path / "good.png").exists()


def test_a_nested_block_waits_for_its_own_figures(tmp_path):
    write, _ = recorder()
    with figure_thread.in_background():
        with figure_thread.in_background():
            write(tmp_path / "inner.png", np.zeros(1), label="x")
        assert (tmp_path / "inner.png").exists()  # e.g. before a report lists it
        write(tmp_path / "outer.png", np.zeros(1), label="x")
    assert (tmp_path / "outer.png").exists()


def test_a_real_figure_in_the_background_is_a_png(tmp_path):
    x = np.arange(10)
    with figure_thread.in_background():
        plots.line_plot(
            tmp_path / "loss.png",
            {"loss": (x, 1.0 / (1 + x))},
            xlabel="step",
            ylabel="loss",
        )
        plots.loss_curve(tmp_path / "curve.png", 1.0 / (1 + x))  # calls line_plot
    for name in ("loss.png", "curve.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
