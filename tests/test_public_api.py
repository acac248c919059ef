"""The public surface: what ``import linopt`` offers is every module, and only those."""

import importlib
from pathlib import Path

import linopt


def test_every_module_is_listed_and_imports():
    root = Path(linopt.__file__).parent
    files = {p.stem for p in root.glob("*.py")} - {"__init__"}
    files |= {p.parent.name for p in root.glob("*/__init__.py")}  # packages
    assert set(linopt.__all__) == files
    for name in linopt.__all__:
        assert getattr(linopt, name) is importlib.import_module(f"linopt.{name}")


def test_dir_lists_the_modules():
    assert set(linopt.__all__) <= set(dir(linopt))


def test_the_classifier_and_load_model_are_top_level():
    from linopt import estimator, model_io

    assert linopt.LinearClassifier is estimator.LinearClassifier
    assert linopt.load_model is model_io.load_model
    assert {"LinearClassifier", "load_model"} <= set(dir(linopt))


def test_the_library_names_no_command_line_flag():
    """Messages name arguments (``num_devices``), never ``--num_devices``."""
    root = Path(linopt.__file__).parent
    for path in root.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            assert '"--' not in stripped and "'--" not in stripped, (
                f"{path.name}:{number}: {stripped}"
            )
