"""CIFAR-10 readers and downloader on small files of both official layouts.

Nothing here touches the network or the real data set: the batches are written
by the helpers below (python 2 style pickles, like the official files, and
3073-byte binary records), the archive is served from a ``file://`` URL.
"""

import hashlib
import http.client
import io
import os
import pickle
import pickletools
import struct
import tarfile

import numpy as np
import pytest

from linopt import cifar10, data, downloads
from linopt.errors import DataError

NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse")
NAMES += ("ship", "truck")
TRAIN_SIZES = (250,) * 5
TEST_SIZE = 100


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with bytes as python 2 ``str`` opcodes, as the official files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj) -> bytes:
    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    # numpy >= 2 names its own module numpy._core; the official files say numpy.core.
    return out.getvalue().replace(
        b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"
    )


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    sizes = (*TRAIN_SIZES, TEST_SIZE)
    xs = [rng.integers(0, 256, (n, 3072), dtype=np.uint8) for n in sizes]
    ys = [rng.integers(0, 10, n) for n in sizes]
    return xs, ys


def batch_names():
    return (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH)


def write_py_layout(root, xs, ys, dump=py2_pickle):
    folder = root / cifar10.PY_DIR
    folder.mkdir(parents=True)
    for name, x, y in zip(batch_names(), xs, ys, strict=True):
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in y],
            b"data": x,
            b"filenames": [f"{i:05d}.png".encode() for i in range(len(y))],
        }
        (folder / name).write_bytes(dump(batch))
    meta = {b"label_names": [n.encode() for n in NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(dump(meta))
    return folder


def write_bin_layout(root, xs, ys):
    folder = root / cifar10.BIN_DIR
    folder.mkdir(parents=True)
    for name, x, y in zip(batch_names(), xs, ys, strict=True):
        records = np.concatenate([np.asarray(y, np.uint8)[:, None], x], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")
    return folder


def expected(xs, ys):
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


@pytest.fixture
def arrays():
    return make_arrays()


def check_raw(raw, xs, ys):
    x_train, y_train, x_test, y_test, names = raw
    for got, want in zip(
        (x_train, y_train, x_test, y_test), expected(xs, ys), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert x_train.dtype == np.uint8 and x_train.shape == (1250, 3072)
    assert y_train.shape == (1250,) and x_test.shape == (100, 3072)
    assert names == NAMES


def test_helper_pickles_look_like_the_official_files(arrays):
    xs, ys = arrays
    dump = py2_pickle({b"data": xs[0], b"labels": [int(v) for v in ys[0]]})
    ops = {(op.name, arg) for op, arg, _ in pickletools.genops(dump)}
    globals_ = {arg for name, arg in ops if "GLOBAL" in name}
    assert globals_ == {
        "numpy.core.multiarray _reconstruct",
        "numpy ndarray",
        "numpy dtype",
    }
    assert ("SHORT_BINSTRING", "data") in ops  # a python 2 str key


def test_both_layouts_load_identical_arrays(tmp_path, arrays):
    xs, ys = arrays
    write_py_layout(tmp_path / "py", xs, ys)
    write_bin_layout(tmp_path / "bin", xs, ys)
    from_py = cifar10.load_raw(tmp_path / "py", download=False)
    from_bin = cifar10.load_raw(tmp_path / "bin", download=False)
    check_raw(from_py, xs, ys)
    check_raw(from_bin, xs, ys)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_python3_pickles_load_too(tmp_path, arrays, protocol):
    xs, ys = arrays
    write_py_layout(tmp_path, xs, ys, lambda obj: pickle.dumps(obj, protocol))
    check_raw(cifar10.load_raw(tmp_path, download=False), xs, ys)


@pytest.mark.parametrize("layout", ["py", "bin"])
def test_data_dir_may_be_the_layout_folder(tmp_path, arrays, layout):
    xs, ys = arrays
    write = write_py_layout if layout == "py" else write_bin_layout
    folder = write(tmp_path, xs, ys)
    check_raw(cifar10.load_raw(folder, download=False), xs, ys)


def test_data_load_keeps_last_1000_training_images_for_validation(tmp_path, arrays):
    xs, ys = arrays
    write_bin_layout(tmp_path, xs, ys)
    ds = data.load("cifar10", data_dir=tmp_path, download=False)
    x_train, y_train, x_test, y_test = expected(xs, ys)
    assert ds.X_train.shape == (250, 3073) and ds.X_val.shape == (1000, 3073)
    assert ds.X_test.shape == (100, 3073) and ds.X_train.dtype == np.float32
    np.testing.assert_array_equal(ds.y_train, y_train[:250])
    np.testing.assert_array_equal(ds.y_val, y_train[250:])
    np.testing.assert_array_equal(ds.y_test, y_test)
    mean = x_train[:250].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(ds.mean_image, mean, rtol=1e-6)
    np.testing.assert_allclose(ds.X_val[:, :-1] + mean, x_train[250:], atol=1e-3)
    np.testing.assert_array_equal(ds.X_val[:, -1], 1.0)
    assert ds.class_names == NAMES and ds.image_shape == (3, 32, 32)


def test_num_val_moves_the_split_and_the_mean(tmp_path, arrays):
    xs, ys = arrays
    write_bin_layout(tmp_path, xs, ys)
    ds = data.load("cifar10", data_dir=tmp_path, download=False, num_val=1100)
    x_train, y_train, _, _ = expected(xs, ys)
    assert ds.X_train.shape == (150, 3073) and ds.X_val.shape == (1100, 3073)
    np.testing.assert_array_equal(ds.y_val, y_train[150:])
    mean = x_train[:150].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(ds.mean_image, mean, rtol=1e-6)
    with pytest.raises(DataError, match="need more than 1250"):
        data.load("cifar10", data_dir=tmp_path, download=False, num_val=1250)


def test_default_data_dir_follows_linopt_data(tmp_path, arrays, monkeypatch):
    xs, ys = arrays
    write_bin_layout(tmp_path, xs, ys)
    monkeypatch.setenv("LINOPT_DATA", str(tmp_path))
    check_raw(cifar10.load_raw(download=False), xs, ys)
    monkeypatch.delenv("LINOPT_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cifar10.default_data_dir() == tmp_path / "home" / ".cache" / "linopt"


class RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class RunsEval:
    def __init__(self, source):
        self.source = source

    def __reduce__(self):
        return eval, (self.source,)


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("where", ["data", "labels", "meta"])
def test_malicious_pickle_is_refused_without_running(tmp_path, arrays, protocol, where):
    xs, ys = arrays
    folder = write_py_layout(tmp_path, xs, ys)
    sentinel = tmp_path / "pwned"
    evil = RunsEval(f"open({str(sentinel)!r}, 'w').close()")
    shell = RunsShell(f"touch {sentinel}")
    if where == "meta":
        target, payload = folder / "batches.meta", {b"label_names": [shell] * 10}
    else:
        target = folder / "data_batch_2"
        payload = {b"data": xs[1], b"labels": [int(v) for v in ys[1]]}
        payload[where.encode()] = evil if where == "data" else [shell]
    dump = py2_pickle(payload) if protocol == 2 else pickle.dumps(payload, protocol)
    target.write_bytes(dump)
    with pytest.raises(DataError) as info:
        cifar10.load_raw(tmp_path, download=False)
    message = str(info.value)
    assert str(target) in message and "refused pickle global" in message
    assert ("eval" if where == "data" else "system") in message
    assert "\n" not in message
    assert not sentinel.exists()
    if where == "data":  # the payload is real: a plain pickle.loads runs it
        pickle.loads(target.read_bytes())
        assert sentinel.exists()


@pytest.mark.parametrize("layout", ["py", "bin"])
def test_missing_batch_is_named(tmp_path, arrays, layout):
    xs, ys = arrays
    folder = (write_py_layout if layout == "py" else write_bin_layout)(tmp_path, xs, ys)
    missing = next(folder.glob("data_batch_3*"))
    missing.unlink()
    with pytest.raises(DataError, match="missing") as info:
        cifar10.load_raw(tmp_path, download=False)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize(
    "layout, name, keep, message",
    [
        ("bin", "data_batch_4.bin", -100, "truncated"),
        ("py", "test_batch", 5000, "truncated or corrupt"),
    ],
)
def test_truncated_batch(tmp_path, arrays, layout, name, keep, message):
    xs, ys = arrays
    folder = (write_py_layout if layout == "py" else write_bin_layout)(tmp_path, xs, ys)
    path = folder / name
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DataError, match=message) as info:
        cifar10.load_raw(tmp_path, download=False)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("layout", ["py", "bin"])
def test_label_ten_is_refused(tmp_path, arrays, layout):
    xs, ys = arrays
    ys[2] = ys[2].copy()
    ys[2][17] = 10
    write = write_py_layout if layout == "py" else write_bin_layout
    folder = write(tmp_path, xs, ys)
    with pytest.raises(DataError, match="label 10 of image 17 is outside 0..9") as info:
        cifar10.load_raw(tmp_path, download=False)
    assert str(next(folder.glob("data_batch_3*"))) in str(info.value)


def test_wrong_pixel_count(tmp_path, arrays):
    xs, ys = arrays
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle({b"data": xs[0][:, :3071], b"labels": [0] * 250}))
    with pytest.raises(DataError, match=r"\(n > 0, 3072\), got uint8 \(250, 3071\)"):
        cifar10.read_pickle_batch(path)
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(3 * (1 + 3071)))
    with pytest.raises(DataError, match="not a whole number of 3073-byte records"):
        cifar10.read_binary_batch(path)


@pytest.mark.parametrize(
    "batch, problem",
    [
        ([1, 2], "expected a dict"),
        ({b"labels": [0]}, "no b'data' entry"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1.0]}, "list of ints"),
        ({b"data": np.zeros((1, 3072), np.float32), b"labels": [1]}, "uint8"),
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, "n > 0"),
    ],
)
def test_wrong_structure(tmp_path, batch, problem):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, 4))
    with pytest.raises(DataError, match=problem) as info:
        cifar10.read_pickle_batch(path)
    assert str(info.value).startswith(f"{path}: ")


def test_no_files_and_no_download_says_what_to_do(tmp_path):
    with pytest.raises(DataError) as info:
        cifar10.load_raw(tmp_path, download=False)
    message = str(info.value)
    for part in (cifar10.PY_DIR, cifar10.BIN_DIR, str(tmp_path), "$LINOPT_DATA"):
        assert part in message
    assert "\n" not in message


def assert_nothing_kept(data_dir):
    assert sorted(p.name for p in data_dir.iterdir()) == []


def test_offline_download_fails_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DataError, match="could not download") as info:
        cifar10.load_raw(tmp_path, download=True)
    for part in (cifar10.PY_DIR, cifar10.BIN_DIR, str(tmp_path), "$LINOPT_DATA"):
        assert part in str(info.value)
    assert_nothing_kept(tmp_path)


def test_download_uses_a_short_timeout(tmp_path, monkeypatch):
    seen = {}

    def unreachable(url, timeout=None):
        seen["timeout"] = timeout
        raise TimeoutError("timed out")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", unreachable)
    with pytest.raises(DataError, match="TimeoutError"):
        cifar10.load_raw(tmp_path, download=True)
    assert 0 < seen["timeout"] <= 10
    assert_nothing_kept(tmp_path)


def make_archive(path, arrays):
    xs, ys = arrays
    staging = path.parent / "staging"
    write_py_layout(staging, xs, ys)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(staging / cifar10.PY_DIR, arcname=cifar10.PY_DIR)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path, arrays, monkeypatch):
    """A small archive at a file:// URL; returns (data_dir, its sha256)."""
    source = tmp_path / "server" / "cifar-10-python.tar.gz"
    source.parent.mkdir()
    digest = make_archive(source, arrays)
    monkeypatch.setattr(cifar10, "URL", source.as_uri())
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return data_dir, digest


def test_download_verifies_then_extracts(served, arrays, monkeypatch):
    data_dir, digest = served
    monkeypatch.setattr(cifar10, "SHA256", digest)
    check_raw(cifar10.load_raw(data_dir, download=True, progress=True), *arrays)
    kept = sorted(p.name for p in data_dir.iterdir())
    assert kept == [cifar10.PY_DIR, cifar10.ARCHIVE]


def download_fails_keeping_nothing(data_dir, message):
    with pytest.raises(DataError, match=message):
        cifar10.load_raw(data_dir, download=True)
    assert_nothing_kept(data_dir)


def test_checksum_mismatch_is_refused(served, monkeypatch):
    data_dir, _ = served
    monkeypatch.setattr(cifar10, "SHA256", "0" * 64)
    download_fails_keeping_nothing(data_dir, "sha256")


def test_interrupted_download_is_not_kept(served, monkeypatch):
    data_dir, digest = served
    monkeypatch.setattr(cifar10, "SHA256", digest)

    class Broken(io.BytesIO):
        headers = {}

        def read(self, size=-1):
            if self.tell():
                raise http.client.IncompleteRead(b"", 100)
            return super().read(size)

    monkeypatch.setattr(
        downloads.urllib.request, "urlopen", lambda url, timeout: Broken(b"x" * 10)
    )
    download_fails_keeping_nothing(data_dir, "IncompleteRead")


def test_part_file_is_never_taken_as_finished(served, monkeypatch):
    data_dir, digest = served
    monkeypatch.setattr(cifar10, "SHA256", digest)
    archive = cifar10.URL.removeprefix("file://")
    part = data_dir / (cifar10.ARCHIVE + ".part")
    part.write_bytes(open(archive, "rb").read())
    with pytest.raises(DataError, match="not found"):
        cifar10.load_raw(data_dir, download=False)
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/")
    with pytest.raises(DataError, match="could not download"):
        cifar10.load_raw(data_dir, download=True)
    assert sorted(p.name for p in data_dir.iterdir()) == [part.name]


def test_verified_archive_on_disk_needs_no_network(served, arrays, monkeypatch):
    data_dir, digest = served
    (data_dir / cifar10.ARCHIVE).write_bytes(
        open(cifar10.URL.removeprefix("file://"), "rb").read()
    )
    monkeypatch.setattr(cifar10, "SHA256", digest)
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/")
    check_raw(cifar10.load_raw(data_dir, download=True), *arrays)


@pytest.mark.parametrize("download", [True, False])
def test_archive_on_disk_failing_its_checksum_is_reported(
    served, monkeypatch, download
):
    data_dir, _ = served
    archive = data_dir / cifar10.ARCHIVE
    archive.write_bytes(b"a partial copy")
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/")  # never fetched
    with pytest.raises(DataError, match="is not the official archive's"):
        cifar10.load_raw(data_dir, download=download)
    assert archive.read_bytes() == b"a partial copy"  # kept, not replaced


def write_tar(path, members):
    """members: (name, tar type, linkname) triples; files hold b'evil'."""
    with tarfile.open(path, "w") as tar:
        for name, kind, linkname in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, linkname
            if kind == tarfile.REGTYPE:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
            else:
                tar.addfile(info)


ESCAPES = {
    "parent": [("../evil.txt", tarfile.REGTYPE, "")],
    "nested parent": [("a/../../evil.txt", tarfile.REGTYPE, "")],
    "absolute": [("{outside}/evil.txt", tarfile.REGTYPE, "")],
    "symlink then file": [
        ("link", tarfile.SYMTYPE, "{outside}"),
        ("link/evil.txt", tarfile.REGTYPE, ""),
    ],
    "relative symlink": [("a/link", tarfile.SYMTYPE, "../../evil.txt")],
    "hard link": [("hard", tarfile.LNKTYPE, "{outside}/evil.txt")],
    "device": [("dev", tarfile.CHRTYPE, "")],
    "fifo": [("fifo", tarfile.FIFOTYPE, "")],
}


@pytest.mark.parametrize("data_filter", [True, False])
@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_extraction_never_writes_outside(tmp_path, monkeypatch, case, data_filter):
    if not data_filter and hasattr(tarfile, "data_filter"):
        monkeypatch.delattr(tarfile, "data_filter")  # our own checks alone
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [("cifar-10-batches-py/ok.txt", tarfile.REGTYPE, "")]
    members += [
        (name.format(outside=outside), kind, link.format(outside=outside))
        for name, kind, link in ESCAPES[case]
    ]
    archive = tmp_path / "evil.tar"
    write_tar(archive, members)
    target = tmp_path / "target"
    with pytest.raises(DataError, match="refused member") as info:
        cifar10.safe_extract(archive, target)
    assert str(archive) in str(info.value)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()
    assert list(target.iterdir()) == []  # checked before anything is written


def test_extraction_of_a_clean_archive(tmp_path):
    archive = tmp_path / "ok.tar"
    write_tar(
        archive,
        [
            ("cifar-10-batches-py", tarfile.DIRTYPE, ""),
            ("cifar-10-batches-py/a.txt", tarfile.REGTYPE, ""),
        ],
    )
    cifar10.safe_extract(archive, tmp_path / "target")
    assert (tmp_path / "target" / "cifar-10-batches-py" / "a.txt").read_bytes() == (
        b"evil"
    )
    assert [p.name for p in (tmp_path / "target").iterdir()] == ["cifar-10-batches-py"]


def test_corrupt_archive(tmp_path):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(b"\x1f\x8b" + bytes(100))
    with pytest.raises(DataError, match="cannot extract"):
        cifar10.safe_extract(archive, tmp_path / "target")
