"""linopt.LinearClassifier against scikit-learn: its own check suite, its
model selection tools, LogisticRegression on the same folds; saved models."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_estimator

import linopt
from linopt import presets
from linopt.estimator import LinearClassifier

# Checks scikit-learn itself skips here, and why.
SKIPPED = {
    # Array API input needs SCIPY_ARRAY_API=1; LinearClassifier takes numpy.
    "check_array_api_input",
    # Needs pandas, which is not a dependency.
    "check_classifier_data_not_an_array",
}


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


def test_check_estimator_passes():
    results = check_estimator(LinearClassifier(num_steps=50), on_fail=None)
    failed = {
        r["check_name"]: r["exception"] for r in results if r["status"] == "failed"
    }
    assert not failed, failed
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= SKIPPED, skipped - SKIPPED
    assert len(results) > 40


@pytest.mark.parametrize(
    "cv", [5, KFold(5, shuffle=True, random_state=0)], ids=["cv5", "shuffled"]
)
def test_softmax_within_a_point_of_logistic_regression(digits, cv):
    X, y = digits
    ours = cross_val_score(LinearClassifier(loss="softmax"), X, y, cv=cv).mean()
    theirs = cross_val_score(LogisticRegression(max_iter=2000), X, y, cv=cv).mean()
    assert abs(ours - theirs) < 0.01, (ours, theirs)


def test_grid_search_over_learning_rate_and_reg(digits):
    X, y = digits
    grid = {"learning_rate": [1e-5, 1e-3], "reg": [1e-3, 10.0]}
    search = GridSearchCV(LinearClassifier(num_steps=300), grid, cv=3).fit(X, y)
    scores = search.cv_results_["mean_test_score"].reshape(2, 2)
    # A step 100x too small, and a reg that crushes W, both lose.
    assert search.best_params_ == {"learning_rate": 1e-3, "reg": 1e-3}
    assert scores.max() > 0.85 and scores.min() < scores.max() - 0.05


def test_in_a_pipeline_and_the_raw_row_identity(digits):
    X, y = digits
    pipe = make_pipeline(FunctionTransformer(np.sqrt), LinearClassifier(num_steps=300))
    assert pipe.fit(X[:1200], y[:1200]).score(X[1200:], y[1200:]) > 0.8
    clf = LinearClassifier(num_steps=300).fit(X[:1200], y[:1200])
    # coef_ and intercept_ act on raw rows: the preprocessing is inside.
    raw = X[1200:] @ clf.coef_.T + clf.intercept_
    np.testing.assert_allclose(raw, clf.decision_function(X[1200:]), atol=1e-3)
    proba = clf.predict_proba(X[1200:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert (clf.classes_[proba.argmax(axis=1)] == clf.predict(X[1200:])).all()
    assert isinstance(clf.predict(X[:3]), np.ndarray)
    assert clf.loss_history_.shape == (300,) and clf.status_ == "completed"


@pytest.mark.parametrize("strategy", ["random_search", "random_local_search", "sgd"])
def test_every_strategy_and_loss_fits(digits, strategy):
    X, y = digits
    for loss in ("svm", "softmax"):
        clf = LinearClassifier(strategy=strategy, loss=loss, num_steps=200)
        assert clf.fit(X[:500], y[:500]).score(X[500:], y[500:]) > 0.15


def test_presets_follow_the_data_scale(digits):
    X, y = digits
    assert presets.dataset_for_scale(4.0) == "digits"
    assert presets.dataset_for_scale(60.0) == "cifar10"
    assert presets.dataset_for_scale(1.0) == "synthetic"
    clf = LinearClassifier(num_steps=10).fit(X, y)
    assert clf.preset_dataset_ == "digits"
    digits_row = presets.lookup("digits", "softmax", "minibatch")[0]
    assert clf.hyperparameters_["learning_rate"] == digits_row["learning_rate"]
    big = LinearClassifier(num_steps=10).fit(X * 16, y)  # pixels of 0-255
    assert big.preset_dataset_ == "cifar10"
    cifar_row = presets.lookup("cifar10", "softmax", "minibatch")[0]
    assert big.hyperparameters_["learning_rate"] == cifar_row["learning_rate"]
    with pytest.raises(ValueError, match="batch_size changes nothing"):
        LinearClassifier(strategy="sgd", batch_size=10).fit(X, y)


def test_notebook_functions_take_the_preset_of_their_data(digits):
    """strategies.minibatch on digits: digits' learning rate, not CIFAR-10's 1e-7."""
    import jax

    from linopt import data, strategies

    ds = data.load("digits")
    r = strategies.minibatch(ds.X_train, ds.y_train, key=jax.random.key(0))
    lr, reg = r.state.hparams.learning_rate, r.state.hparams.reg
    row = presets.lookup("digits", "svm", "minibatch", "assignment")[0]
    assert (float(lr), float(reg)) == pytest.approx((row["learning_rate"], row["reg"]))
    assert r.losses[-1] < 0.3 * r.losses[0]
    tries = strategies.random_search(ds.X_train * 16, ds.y_train, key=jax.random.key(0))
    cifar = presets.lookup("cifar10", "svm", "random_search", "assignment")[0]
    assert float(tries.state.hparams.scale) == pytest.approx(cifar["search_scale"])


def test_cs231n_train_returns_the_loss_history(digits):
    X, y = digits
    clf = LinearClassifier(loss="svm")
    history = clf.train(
        X, y, learning_rate=1e-3, reg=1e-3, num_iters=100, batch_size=50
    )
    assert history.shape == (100,) and history[-1] < history[0]
    assert clf.hyperparameters_["batch_size"] == 50
    assert clf.predict(X).shape == y.shape


def test_saved_model_predicts_raw_rows_in_a_fresh_process(digits, tmp_path):
    X, y = digits
    labels = np.array(["zero one two three four five six seven eight nine".split()])[0][
        y
    ]
    clf = LinearClassifier(num_steps=200).fit(X[:1200], labels[:1200])
    path = clf.save(tmp_path / "model.npz")
    np.save(tmp_path / "X.npy", X[1200:])
    code = (
        "import sys, numpy as np, linopt\n"
        f"m = linopt.load_model({str(path)!r})\n"
        f"p = m.predict(np.load({str(tmp_path / 'X.npy')!r}))\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, p)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    predicted = np.load(tmp_path / "p.npy", allow_pickle=False)
    np.testing.assert_array_equal(predicted, clf.predict(X[1200:]))
    model = linopt.load_model(path)
    assert model.hyperparameters_ == clf.hyperparameters_
    np.testing.assert_allclose(model.predict_proba(X[:5]), clf.predict_proba(X[:5]))


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", W=np.zeros(3))
    with pytest.raises(linopt.errors.DataError, match="lacks"):
        linopt.load_model(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(linopt.errors.DataError, match="not a linopt model"):
        linopt.load_model(tmp_path / "junk.npz")


def test_a_model_written_by_train_predicts_raw_test_images(tmp_path):
    """experiments.train's model.npz, loaded in a fresh process, on the raw
    8x8 images of the test split: summary.json's accuracy exactly."""
    import json

    from experiments import train
    from linopt import configs, data

    workdir = tmp_path / "run"
    config = configs.TrainConfig(num_steps=300, seed=3)
    summary = train.run(config, workdir)
    assert (workdir / "confusion.png").is_file()
    counts = np.array(summary["confusion_matrix"])
    assert counts.sum() == summary["num_test"]
    assert np.trace(counts) / counts.sum() == pytest.approx(summary["test_accuracy"])
    raw, labels = load_digits(return_X_y=True)
    test = data.split_indices(len(labels), (0.1, 0.2), seed=3)[2]
    np.save(tmp_path / "X.npy", raw[test])
    code = (
        "import sys, numpy as np, linopt\n"
        "m = linopt.load_model(sys.argv[1])\n"
        "np.save(sys.argv[3], m.predict(np.load(sys.argv[2])))\n"
    )
    args = [str(workdir / "model.npz"), str(tmp_path / "X.npy"), str(tmp_path / "p")]
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=120)
    predicted = np.load(tmp_path / "p.npy", allow_pickle=False)
    on_disk = json.loads((workdir / "summary.json").read_text())
    # summary's accuracy is a float32 mean: compare the count of right answers.
    right = round(on_disk["test_accuracy"] * on_disk["num_test"])
    assert np.sum(predicted == labels[test]) == right


def test_the_confusion_matrix_is_scikit_learns():
    from sklearn.metrics import confusion_matrix

    from linopt import evaluation

    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 6)).astype(np.float32)
    W = rng.standard_normal((4, 6)).astype(np.float32)
    y = rng.integers(0, 4, 500)
    y[y == 3] = 2  # a class with no examples: its row is 0s, its accuracy None
    got = evaluation.confusion(W, X, y, ["a", "b", "c", "d"])
    pred = evaluation.predictions(W, X)
    want = confusion_matrix(y, pred, labels=range(4))
    np.testing.assert_array_equal(got["confusion_matrix"], want)
    assert got["per_class_accuracy"]["d"] is None
    assert got["per_class_accuracy"]["a"] == np.mean(pred[y == 0] == 0)
