"""Run folders: a folder holding a run is never mixed up with another."""

import json
import os
import subprocess
import sys
import time

import pytest

from linopt import runs
from linopt.errors import LinoptError


def make_run(path, extra=()):
    runs.make_workdir(path, "test")
    (path / "config.json").write_text("{}")
    for name in extra:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("old")


def test_a_folder_holding_a_run_is_refused_unless_told(tmp_path):
    out = tmp_path / "run"
    make_run(out)
    with pytest.raises(LinoptError, match="already holds a run; pass overwrite"):
        runs.make_workdir(out, "test")
    assert runs.make_workdir(out, "test", resume=True) == out
    assert (out / "config.json").exists()


def test_overwrite_clears_every_old_output(tmp_path):
    out = tmp_path / "run"
    make_run(out, ["comparison.md", "sgd/summary.json"])
    runs.make_workdir(out, "test", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [runs.LOCK]


def test_a_folder_of_other_files_is_never_deleted(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LinoptError, match="not empty and holds no run"):
        runs.make_workdir(tmp_path, "test", overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_without_a_run_creates_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(LinoptError, match="holds no run to continue"):
        runs.make_workdir(out, "test", resume=True)
    assert not out.exists()


def test_a_folder_another_process_runs_in_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(out / runs.LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LinoptError, match="in use by another run"):
            runs.make_workdir(out, "test")
    finally:
        holder.kill()
        holder.wait()
    deadline = time.time() + 10  # a killed holder's lock is gone with it
    while time.time() < deadline:
        try:
            runs.make_workdir(out, "test")
            break
        except LinoptError:
            time.sleep(0.1)
    else:
        pytest.fail("the lock outlived its process")


def test_files_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        runs.write_json(tmp_path / "summary.json", {"a": 1})
        runs.save_array(tmp_path / "params.npy", [1.0])
    finally:
        os.umask(old)
    for name in ("summary.json", "params.npy"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_json_keeps_one_type_per_field(tmp_path):
    runs.write_json(tmp_path / "s.json", {"loss": float("inf"), "x": float("nan")})
    assert json.loads((tmp_path / "s.json").read_text()) == {"loss": None, "x": None}
