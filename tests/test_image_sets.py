"""MNIST, Fashion-MNIST and CIFAR-100 on tiny files of their official formats.

Nothing here touches the network or the real data sets: the IDX files and the
CIFAR-100 pickles are written by the helpers below (the IDX header by hand,
not by linopt, so the reader is checked against the format, not itself), and
downloads come from ``file://`` URLs or fail on purpose.
"""

import dataclasses
import gzip
import hashlib
import io
import json
import pickle
import struct
import tarfile

import numpy as np
import pytest

from experiments import train
from linopt import cifar100, configs, data, downloads, idx, mnist, presets
from linopt.errors import DataError

N_TRAIN, N_TEST = 60, 20


# --- IDX files, written by hand --------------------------------------------


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, *, gz: bool = True):
    content = idx_bytes(np.asarray(array))
    if gz:
        content = gzip.compress(content, mtime=0)
    path = path.with_name(path.name + (".gz" if gz else ""))
    path.write_bytes(content)
    return path


def make_mnist(folder, *, seed=0, gz=True, n_train=N_TRAIN, n_test=N_TEST):
    """The four files in ``folder``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for images, labels, n in (
        (mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS, n_train),
        (mnist.TEST_IMAGES, mnist.TEST_LABELS, n_test),
    ):
        arrays[images] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[labels] = rng.integers(0, 10, n, dtype=np.uint8)
    for name, array in arrays.items():
        write_idx(folder / name, array, gz=gz)
    return arrays


def one_line_error(info, *parts):
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert str(part) in message, (part, message)
    return message


def test_idx_reads_every_type_code(tmp_path):
    for code, dtype in idx.DTYPES.items():
        array = np.arange(24).reshape(2, 3, 4).astype(dtype.newbyteorder("="))
        path = tmp_path / f"a{code}"
        path.write_bytes(idx_bytes(array, code))
        got = idx.read(path)
        np.testing.assert_array_equal(got, array)
        assert got.dtype == array.dtype and got.dtype.isnative


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_loads_exact_pixels_labels_and_names(tmp_path, gz, name):
    arrays = make_mnist(tmp_path / mnist.SOURCES[name].folder, gz=gz)
    x_train, y_train, x_test, y_test, names = mnist.load_raw(
        name, tmp_path, download=False
    )
    np.testing.assert_array_equal(x_train, arrays[mnist.TRAIN_IMAGES])
    np.testing.assert_array_equal(y_train, arrays[mnist.TRAIN_LABELS])
    np.testing.assert_array_equal(x_test, arrays[mnist.TEST_IMAGES])
    np.testing.assert_array_equal(y_test, arrays[mnist.TEST_LABELS])
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int32
    expected = (
        tuple("0123456789")
        if name == "mnist"
        else ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal")
        + ("Shirt", "Sneaker", "Bag", "Ankle boot")
    )
    assert names == expected


def test_data_load_mnist_splits_the_last_training_images(tmp_path):
    arrays = make_mnist(tmp_path / "mnist")
    ds = data.load("mnist", data_dir=tmp_path, download=False, num_val=15)
    x = arrays[mnist.TRAIN_IMAGES].reshape(N_TRAIN, 784).astype(np.float64)
    y = arrays[mnist.TRAIN_LABELS]
    assert ds.X_train.shape == (45, 785) and ds.X_val.shape == (15, 785)
    assert ds.X_test.shape == (N_TEST, 785) and ds.image_shape == (28, 28)
    np.testing.assert_array_equal(ds.y_train, y[:45])
    np.testing.assert_array_equal(ds.y_val, y[45:])
    np.testing.assert_array_equal(ds.y_test, arrays[mnist.TEST_LABELS])
    np.testing.assert_allclose(ds.mean_image, x[:45].mean(0), rtol=1e-12)
    np.testing.assert_allclose(ds.X_val[:, :-1] + ds.mean_image, x[45:], atol=1e-3)
    assert ds.num_classes == 10 and np.all(ds.X_train[:, -1] == 1)
    with pytest.raises(DataError, match="need more than 5000"):
        data.load("mnist", data_dir=tmp_path, download=False)  # default 5,000


def test_data_dir_may_be_the_folder_of_the_files(tmp_path):
    arrays = make_mnist(tmp_path / "my-digits", gz=False)
    raw = mnist.load_raw("mnist", tmp_path / "my-digits", download=False)
    np.testing.assert_array_equal(raw[0], arrays[mnist.TRAIN_IMAGES])


def test_a_folder_named_mnist_in_the_working_directory_is_not_own_arrays(
    tmp_path, monkeypatch
):
    make_mnist(tmp_path / "mnist")
    monkeypatch.chdir(tmp_path)
    ds = data.load("mnist", data_dir=tmp_path, download=False, num_val=10)
    assert ds.image_shape == (28, 28)
    assert presets.table_dataset("mnist") == "cifar10"
    configs.TrainConfig(dataset="mnist")  # the name, not the folder


def test_mnist_and_fashion_mnist_keep_their_own_subfolders(tmp_path):
    digits = make_mnist(tmp_path / "mnist", seed=1)
    fashion = make_mnist(tmp_path / "fashion_mnist", seed=2)
    a = mnist.load_raw("mnist", tmp_path, download=False)
    b = mnist.load_raw("fashion_mnist", tmp_path, download=False)
    np.testing.assert_array_equal(a[0], digits[mnist.TRAIN_IMAGES])
    np.testing.assert_array_equal(b[0], fashion[mnist.TRAIN_IMAGES])


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("keep", [3, 10, 16 + 28 * 28 * N_TRAIN - 1])
def test_truncated_idx_is_refused(tmp_path, gz, keep):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / mnist.TRAIN_IMAGES
    content = path.read_bytes()[:keep]
    if gz:
        path.unlink()
        path = path.with_name(path.name + ".gz")
        content = gzip.compress(content)
    path.write_bytes(content)
    with pytest.raises(DataError, match="truncated") as info:
        mnist.load_raw("mnist", tmp_path, download=False)
    one_line_error(info, path)


def test_gzip_stream_cut_short_is_refused(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / (mnist.TEST_IMAGES + ".gz")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        mnist.load_raw("mnist", tmp_path, download=False)
    one_line_error(info, path)


def test_a_huge_header_costs_nothing(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**31, 2**16, 2**16))
    with pytest.raises(DataError, match="truncated") as info:
        idx.read(path)
    one_line_error(info, path)


@pytest.mark.parametrize(
    "magic",
    [b"\x00\x00\x08", b"\x00\x00\x08\x00", b"\x00\x00\x07\x03", b"\x01\x00\x08\x03"],
)
def test_wrong_magic_is_refused(tmp_path, magic):
    make_mnist(tmp_path)
    path = tmp_path / (mnist.TRAIN_LABELS + ".gz")
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(magic + content[4:]))
    with pytest.raises(DataError, match="magic number|truncated") as info:
        mnist.load_raw("mnist", tmp_path, download=False)
    one_line_error(info, path)


def test_trailing_bytes_are_refused(tmp_path):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / mnist.TEST_LABELS
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match="longer than its header") as info:
        mnist.load_raw("mnist", tmp_path, download=False)
    one_line_error(info, path)


def test_label_and_image_count_mismatch_is_refused(tmp_path):
    make_mnist(tmp_path)
    labels = tmp_path / mnist.TRAIN_LABELS
    write_idx(labels, np.zeros(N_TRAIN - 1, np.uint8))
    with pytest.raises(DataError, match=f"{N_TRAIN - 1} labels for the {N_TRAIN}"):
        mnist.load_raw("mnist", tmp_path, download=False)


@pytest.mark.parametrize(
    "name, array, problem",
    [
        (mnist.TRAIN_LABELS, np.full(N_TRAIN, 10, np.uint8), "label 10 of image 0"),
        (mnist.TRAIN_IMAGES, np.zeros((N_TRAIN, 784), np.uint8), "rows, cols"),
        (mnist.TEST_IMAGES, np.zeros((N_TEST, 14, 14), np.uint8), "different data"),
    ],
)
def test_wrong_contents_are_refused(tmp_path, name, array, problem):
    make_mnist(tmp_path)
    write_idx(tmp_path / name, array)
    with pytest.raises(DataError, match=problem) as info:
        mnist.load_raw("mnist", tmp_path, download=False)
    one_line_error(info)


def test_no_files_and_no_download_says_where_to_put_them(tmp_path):
    with pytest.raises(DataError, match="MNIST not found") as info:
        mnist.load_raw("mnist", tmp_path, download=False)
    one_line_error(info, tmp_path / "mnist", "train-images-idx3-ubyte.gz")
    one_line_error(info, "$LINOPT_DATA")
    make_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / (mnist.TEST_LABELS + ".gz")).unlink()
    with pytest.raises(DataError, match="incomplete") as info:
        mnist.load_raw("mnist", tmp_path, download=False)
    one_line_error(info, mnist.TEST_LABELS)


def unreachable(url, timeout=None):
    raise OSError("Network is unreachable")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_offline_mnist_fails_at_once_saying_where_to_put_files(
    tmp_path, monkeypatch, name
):
    monkeypatch.setattr(downloads.urllib.request, "urlopen", unreachable)
    with pytest.raises(DataError, match="could not download") as info:
        mnist.load_raw(name, tmp_path, download=True)
    folder = tmp_path / mnist.SOURCES[name].folder
    one_line_error(info, folder, "$LINOPT_DATA", "t10k-labels-idx1-ubyte.gz")
    assert list(tmp_path.iterdir()) == []  # the empty subfolder is not kept


@pytest.fixture
def served_mnist(tmp_path, monkeypatch):
    """The four .gz files behind a dead mirror and a file:// one."""
    server = tmp_path / "server"
    arrays = make_mnist(server)
    digests = {n: downloads.sha256_of(server / f"{n}.gz") for n in mnist.FILES}
    source = dataclasses.replace(
        mnist.MNIST,
        urls=("http://127.0.0.1:9/", server.as_uri() + "/"),
        sha256=digests,
    )
    monkeypatch.setitem(mnist.SOURCES, "mnist", source)
    return arrays, source


def test_mnist_download_tries_the_mirror_and_verifies(tmp_path, served_mnist):
    arrays, _ = served_mnist
    data_dir = tmp_path / "data"
    raw = mnist.load_raw("mnist", data_dir, download=True)
    np.testing.assert_array_equal(raw[2], arrays[mnist.TEST_IMAGES])
    kept = sorted(p.name for p in (data_dir / "mnist").iterdir())
    assert kept == sorted(f"{n}.gz" for n in mnist.FILES)


def test_mnist_download_with_a_wrong_checksum_keeps_nothing(
    tmp_path, served_mnist, monkeypatch
):
    _, source = served_mnist
    wrong = dict(source.sha256, **{mnist.TRAIN_LABELS: "0" * 64})
    monkeypatch.setitem(
        mnist.SOURCES, "mnist", dataclasses.replace(source, sha256=wrong)
    )
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="sha256") as info:
        mnist.load_raw("mnist", data_dir, download=True)
    one_line_error(info)
    kept = sorted(p.name for p in (data_dir / "mnist").iterdir())
    assert kept == [mnist.TRAIN_IMAGES + ".gz"]  # fetched before, and checked


# --- CIFAR-100 --------------------------------------------------------------


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with bytes as python 2 ``str`` opcodes, as the official files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        opcode = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else None
        opcode = opcode or pickle.BINSTRING + struct.pack("<i", n)
        self.write(opcode + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj) -> bytes:
    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    return out.getvalue().replace(
        b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"
    )


FINE = tuple(f"fine_{i:02d}" for i in range(100))
COARSE = tuple(f"coarse_{i:02d}" for i in range(20))


def make_cifar100(root, seed=0, n_train=30, n_test=10):
    """``root/cifar-100-python`` with train, test and meta; returns the arrays."""
    rng = np.random.default_rng(seed)
    folder = root / cifar100.PY_DIR
    folder.mkdir(parents=True)
    arrays = {}
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n)
        coarse = fine // 5
        arrays[name] = x, fine, coarse
        batch = {
            b"filenames": [f"{i}.png".encode() for i in range(n)],
            b"batch_label": f"{name} batch".encode(),
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) for v in coarse],
            b"data": x,
        }
        (folder / name).write_bytes(py2_pickle(batch))
    meta = {
        b"fine_label_names": [n.encode() for n in FINE],
        b"coarse_label_names": [n.encode() for n in COARSE],
    }
    (folder / "meta").write_bytes(py2_pickle(meta))
    return arrays


@pytest.mark.parametrize("labels", ["fine", "coarse"])
def test_cifar100_loads_exact_pixels_labels_and_names(tmp_path, labels):
    arrays = make_cifar100(tmp_path)
    x_train, y_train, x_test, y_test, names = cifar100.load_raw(
        tmp_path, labels=labels, download=False
    )
    which = 1 if labels == "fine" else 2
    np.testing.assert_array_equal(x_train, arrays["train"][0])
    np.testing.assert_array_equal(y_train, arrays["train"][which])
    np.testing.assert_array_equal(x_test, arrays["test"][0])
    np.testing.assert_array_equal(y_test, arrays["test"][which])
    assert names == (FINE if labels == "fine" else COARSE)


@pytest.mark.parametrize("name, classes", [("cifar100", 100), ("cifar100_coarse", 20)])
def test_data_load_cifar100(tmp_path, name, classes):
    arrays = make_cifar100(tmp_path)
    ds = data.load(name, data_dir=tmp_path, download=False, num_val=10)
    assert ds.X_train.shape == (20, 3073) and ds.X_val.shape == (10, 3073)
    assert ds.image_shape == (3, 32, 32) and ds.num_classes == classes
    y = arrays["train"][1 if classes == 100 else 2]
    np.testing.assert_array_equal(ds.y_val, y[20:])
    with pytest.raises(DataError, match="need more than 1000"):
        data.load(name, data_dir=tmp_path / cifar100.PY_DIR, download=False)


def test_cifar100_fine_label_out_of_range_is_refused(tmp_path):
    make_cifar100(tmp_path)
    path = tmp_path / cifar100.PY_DIR / "test"
    x = np.zeros((2, 3072), np.uint8)
    batch = {b"data": x, b"fine_labels": [3, 100], b"coarse_labels": [0, 0]}
    path.write_bytes(py2_pickle(batch))
    with pytest.raises(DataError, match=r"label 100 of image 1 is outside 0..99"):
        cifar100.load_raw(tmp_path, download=False)


class RunsEval:
    def __reduce__(self):
        return eval, ("1",)


def test_cifar100_malicious_pickle_is_refused(tmp_path):
    make_cifar100(tmp_path)
    path = tmp_path / cifar100.PY_DIR / "meta"
    path.write_bytes(py2_pickle({b"fine_label_names": RunsEval()}))
    with pytest.raises(DataError, match="refused pickle global") as info:
        cifar100.load_raw(tmp_path, download=False)
    one_line_error(info, path, "eval")


def cifar100_archive(path, root):
    make_cifar100(root)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root / cifar100.PY_DIR, arcname=cifar100.PY_DIR)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cifar100_download_verifies_then_extracts(tmp_path, monkeypatch):
    source = tmp_path / "server" / cifar100.ARCHIVE
    source.parent.mkdir()
    digest = cifar100_archive(source, tmp_path / "staging")
    monkeypatch.setattr(cifar100, "URL", source.as_uri())
    monkeypatch.setattr(cifar100, "SHA256", digest)
    data_dir = tmp_path / "data"
    raw = cifar100.load_raw(data_dir, download=True)
    assert raw[0].shape == (30, 3072) and raw[4] == FINE
    kept = sorted(p.name for p in data_dir.iterdir())
    assert kept == [cifar100.PY_DIR, cifar100.ARCHIVE]
    (data_dir / cifar100.PY_DIR / "meta").unlink()
    with pytest.raises(DataError, match="meta: missing file"):
        cifar100.load_raw(data_dir, download=True)


def test_cifar100_archive_on_disk_failing_its_checksum_is_kept(tmp_path):
    archive = tmp_path / cifar100.ARCHIVE
    archive.write_bytes(b"a partial copy")
    with pytest.raises(DataError, match="is not the official archive's") as info:
        cifar100.load_raw(tmp_path, download=False)
    one_line_error(info, archive)
    assert archive.read_bytes() == b"a partial copy"


EVIL = {
    "parent": lambda outside: [("../evil", tarfile.REGTYPE, "")],
    "absolute": lambda outside: [(f"{outside}/evil", tarfile.REGTYPE, "")],
    "symlink": lambda outside: [
        (f"{cifar100.PY_DIR}/link", tarfile.SYMTYPE, str(outside)),
        (f"{cifar100.PY_DIR}/link/evil", tarfile.REGTYPE, ""),
    ],
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_cifar100_archive_with_a_malicious_member_is_refused(
    tmp_path, monkeypatch, case
):
    outside = tmp_path / "outside"
    outside.mkdir()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive = data_dir / cifar100.ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        members = [(f"{cifar100.PY_DIR}/meta", tarfile.REGTYPE, "")]
        for name, kind, link in members + EVIL[case](outside):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = 4 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"evil") if info.size else None)
    monkeypatch.setattr(cifar100, "SHA256", downloads.sha256_of(archive))
    monkeypatch.setattr(downloads.urllib.request, "urlopen", unreachable)
    with pytest.raises(DataError, match="refused member") as info:
        cifar100.load_raw(data_dir, download=False)  # an archive there: extracted
    one_line_error(info, archive)
    assert list(outside.iterdir()) == [] and not (tmp_path / "evil").exists()
    assert sorted(p.name for p in data_dir.iterdir()) == [cifar100.ARCHIVE]


def test_offline_cifar100_fails_at_once_saying_where_to_put_files(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(downloads.urllib.request, "urlopen", unreachable)
    with pytest.raises(DataError, match="could not download") as info:
        cifar100.load_raw(tmp_path, download=True)
    one_line_error(info, tmp_path, cifar100.PY_DIR, cifar100.ARCHIVE, "$LINOPT_DATA")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="CIFAR-100 not found") as info:
        cifar100.load_raw(tmp_path, download=False)
    one_line_error(info, tmp_path, cifar100.PY_DIR)


# --- configs, presets, one run ----------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar100_coarse"])
def test_configs_accept_the_names_and_take_cifar10_rows(name):
    config = configs.TrainConfig(dataset=name, num_val=100)
    resolved, sources = presets.resolve(config)
    cifar = presets.resolve(dataclasses.replace(config, dataset="cifar10"))[0]
    assert resolved.learning_rate == cifar.learning_rate and resolved.reg == cifar.reg
    assert sources["learning_rate"].startswith("cifar10/")
    assert presets.table_dataset(name) == "cifar10"
    with pytest.raises(ValueError, match="dataset must be one of"):
        configs.TrainConfig(dataset="mnist2")
    with pytest.raises(ValueError, match="num_val changes nothing for digits"):
        configs.TrainConfig(dataset="digits", num_val=100)


def test_train_runs_end_to_end_on_a_tiny_mnist(tmp_path):
    make_mnist(tmp_path / "data" / "mnist", n_train=300, n_test=50)
    config = configs.TrainConfig(
        dataset="mnist",
        data_dir=str(tmp_path / "data"),
        download=False,
        num_val=50,
        num_steps=30,
        batch_size=50,
    )
    out = tmp_path / "run"
    summary = train.run(config, out)
    assert summary["status"] in ("completed", "diverged"), summary
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert np.load(out / "params.npy").shape == (10, 785)
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["dataset"] == "mnist"
    assert saved["from_preset"]["learning_rate"].startswith("cifar10/")
    assert (out / "templates.png").stat().st_size > 0
