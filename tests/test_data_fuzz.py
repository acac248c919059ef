"""Fuzzing the CIFAR-10 readers: bad input is a DataError, never another error.

Random bytes, truncated batches of the real formats, foreign pickles and
near-miss batches go through both readers; each either raises
:class:`DataError` or, where the input happens to be a valid batch, returns
exactly what an independent numpy decoding of the bytes gives.
"""

import io
import pickle
import re
import struct
from datetime import timedelta

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from linopt import cifar10
from linopt.errors import DataError

RECORD = 3073
FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with bytes as python 2 ``str`` opcodes, as the official files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        opcode = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else None
        self.write((opcode or pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj) -> bytes:
    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def read(reader, path, content: bytes):
    path.write_bytes(content)
    return reader(path)


def expect_data_error(reader, path, content: bytes):
    with pytest.raises(DataError) as info:
        read(reader, path, content)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    # Which check fired, tallied by pytest --hypothesis-show-statistics.
    check = message.removeprefix(f"{path}: ").split(" (")[0]
    event(re.sub(r"-?\d+", "N", check)[:48])


def binary_oracle(content: bytes):
    """What a valid binary batch decodes to, or None if the bytes are not one."""
    if not content or len(content) % RECORD:
        return None
    records = np.frombuffer(content, np.uint8).reshape(-1, RECORD)
    return None if (records[:, 0] > 9).any() else (records[:, 1:], records[:, 0])


def check_binary(path, content: bytes):
    want = binary_oracle(content)
    if want is None:
        expect_data_error(cifar10.read_binary_batch, path, content)
    else:
        event("a valid batch")
        x, y = read(cifar10.read_binary_batch, path, content)
        np.testing.assert_array_equal(x, want[0])
        np.testing.assert_array_equal(y, want[1])


def whole_records(draw_labels):
    return st.integers(1, 3).flatmap(
        lambda n: st.tuples(
            st.lists(draw_labels, min_size=n, max_size=n),
            st.binary(min_size=n * 3072, max_size=n * 3072),
        ).map(
            lambda t: b"".join(
                bytes([label]) + t[1][i * 3072 : (i + 1) * 3072]
                for i, label in enumerate(t[0])
            )
        )
    )


@FUZZ
@given(st.binary(max_size=600) | st.binary(max_size=600).map(b"\x80\x02".__add__))
def test_random_bytes_as_pickle_batch(scratch, content):
    expect_data_error(cifar10.read_pickle_batch, scratch / "data_batch_1", content)


@FUZZ
@given(st.one_of(st.binary(max_size=7000), whole_records(st.integers(0, 12))))
def test_random_bytes_as_binary_batch(scratch, content):
    check_binary(scratch / "data_batch_1.bin", content)


@FUZZ
@given(st.tuples(st.integers(0, 2), st.integers(1, RECORD - 1)))
def test_binary_size_not_a_multiple_of_the_record(scratch, records_and_rest):
    size = records_and_rest[0] * RECORD + records_and_rest[1]
    content = (bytes([3]) + bytes(range(256)) * 12)[:RECORD] * 3
    expect_data_error(cifar10.read_binary_batch, scratch / "b.bin", content[:size])


def real_batch(n=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    records = np.concatenate([y.astype(np.uint8)[:, None], x], axis=1).tobytes()
    batch = {b"batch_label": b"fuzz", b"labels": [int(v) for v in y], b"data": x}
    batch[b"filenames"] = [b"%05d.png" % i for i in range(n)]
    return py2_pickle(batch), records


PICKLED, RECORDS = real_batch()


def test_untruncated_real_format_batches_load(scratch):
    x, y = read(cifar10.read_pickle_batch, scratch / "whole", PICKLED)
    x_bin, y_bin = read(cifar10.read_binary_batch, scratch / "whole.bin", RECORDS)
    np.testing.assert_array_equal(x, x_bin)
    np.testing.assert_array_equal(y, y_bin)


@FUZZ
@given(st.integers(0, len(PICKLED) - 1))
def test_truncated_pickle_batch(scratch, length):
    expect_data_error(cifar10.read_pickle_batch, scratch / "cut", PICKLED[:length])


@FUZZ
@given(st.sampled_from([0, RECORD, 2 * RECORD]) | st.integers(0, len(RECORDS) - 1))
def test_truncated_binary_batch(scratch, length):
    check_binary(scratch / "cut.bin", RECORDS[:length])


KEYS = st.sampled_from([b"data", b"labels", "data", "labels", b"batch_label", 0])
SMALL_ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(max_len=3)),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=4),
    st.binary(max_size=4),
    SMALL_ARRAYS,
)
FOREIGN = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(KEYS, children, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=8,
)


OUT_OF_RANGE = st.integers(10, 2**70) | st.integers(-(2**70), -1)
NOT_INTS = st.floats() | st.booleans() | st.text(max_size=2)


@st.composite
def near_miss_batches(draw):
    """A batch with one part wrong: the data array or the labels."""
    n = draw(st.integers(1, 3))
    data = np.zeros((n, 3072), np.uint8)
    labels = [draw(st.integers(0, 9)) for _ in range(n)]
    part = draw(st.sampled_from(["data", "labels"]))
    if part == "data":
        wrong_shapes = [(n, 3071), (n, 3073), (n * 3072,), (n, 3, 32, 32), (0, 3072)]
        shape = draw(st.sampled_from([*wrong_shapes, (n, 3072)]))
        dtypes = [np.int8, np.uint16, np.float32, np.int64]
        if shape != (n, 3072):  # a wrong shape is wrong whatever the dtype
            dtypes.append(np.uint8)
        data = np.zeros(shape, draw(st.sampled_from(dtypes)))
    else:
        labels = draw(
            st.one_of(
                st.lists(st.integers(0, 9), max_size=4).filter(lambda v: len(v) != n),
                st.lists(OUT_OF_RANGE, min_size=n, max_size=n),
                st.lists(NOT_INTS, min_size=n, max_size=n),
                st.just(np.zeros(n, np.float64)),
                st.just(np.zeros((n, 1), np.int64)),
                st.just(np.full(n, 10, np.uint8)),
                st.none(),
                st.text(max_size=3),
            )
        )
    return {b"data": data, b"labels": labels}


@FUZZ
@given(
    st.one_of(FOREIGN, near_miss_batches()),
    st.sampled_from(["py2", 2, 3, 4, 5]),
)
def test_foreign_pickles(scratch, obj, protocol):
    content = py2_pickle(obj) if protocol == "py2" else pickle.dumps(obj, protocol)
    expect_data_error(cifar10.read_pickle_batch, scratch / "foreign", content)


NAME_BYTES = st.binary(max_size=3) | st.text(min_size=1, max_size=3).map(str.encode)
NAME_LISTS = st.lists(NAME_BYTES, min_size=10, max_size=10) | st.lists(
    st.text(min_size=1, max_size=3).map(str.encode), min_size=10, max_size=10
)


def META(names):
    return {b"label_names": names, b"num_vis": 3072}


@FUZZ
@given(FOREIGN | NAME_LISTS.map(META))
def test_foreign_pickle_meta(scratch, obj):
    path = scratch / "batches.meta"
    try:
        names = read(cifar10.read_pickle_meta, path, pickle.dumps(obj, 4))
    except DataError as e:
        assert str(e).startswith(f"{path}: ")
    else:  # only ten non-empty UTF-8 names can pass
        event("valid names")
        assert names == tuple(n.decode().strip() for n in obj[b"label_names"])
        assert len(names) == 10 and all(names)


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_bytes_as_text_meta(scratch, content):
    path = scratch / "batches.meta.txt"
    try:
        names = read(cifar10.read_binary_meta, path, content)
    except DataError as e:
        assert str(e).startswith(f"{path}: ")
    else:
        lines = [line.strip() for line in content.decode().splitlines()]
        assert names == tuple(line for line in lines if line)
