"""Start-up: what an experiment imports before it runs, and the digits it reads."""

import subprocess
import sys

import numpy as np
import pytest

from linopt import data


def test_digits_are_scikit_learns_exactly():
    from sklearn.datasets import load_digits

    x, y = data._digits_arrays()  # its CSV, read without importing scikit-learn
    digits = load_digits()
    np.testing.assert_array_equal(x, digits.data)
    np.testing.assert_array_equal(y, digits.target)


@pytest.mark.slow
@pytest.mark.parametrize(
    "module", ["train", "sweep", "gradcheck", "batch_size", "landscape", "reproduce"]
)
def test_an_experiment_imports_no_sklearn_or_matplotlib(module):
    """scikit-learn (1.5 s) and matplotlib (0.5 s) load only when used."""
    code = (
        f"import sys, experiments.{module}; "
        "top = {m.split('.')[0] for m in sys.modules}; "
        "print(sorted(top & {'sklearn', 'matplotlib'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
