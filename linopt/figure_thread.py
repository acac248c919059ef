"""Figures drawn on one worker thread while the caller goes on.

Drawing a figure takes 0.1-0.4 s of Python; JAX releases the interpreter
while it compiles and runs, so a figure drawn meanwhile costs no wall time.
:func:`figure_writer` marks a function that writes one figure;
:func:`in_background` is the block inside which such functions are queued
on the worker instead of run inline.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from concurrent import futures

import numpy as np

_THREAD = "linopt-figures"
_executor = None  # the worker, inside in_background()
_futures = []  # the figures asked for in the innermost in_background() block


@contextlib.contextmanager
def in_background():
    """Draw every figure on one worker thread while the caller goes on.

    ``experiments.reproduce`` draws 44 figures between its compiles. Every
    figure is drawn on that one thread, so matplotlib is never used from two
    at once (figures made here must go through :func:`figure_writer` too). On
    leaving a block, every figure asked for in it has been written, even on
    an error or Ctrl-C, and the first figure's error, if any, is raised.
    Nested blocks share the outer one's thread.
    """
    global _executor, _futures
    outer = _executor is None
    if outer:
        _executor = futures.ThreadPoolExecutor(1, thread_name_prefix=_THREAD)
    saved, _futures = _futures, []
    mine = _futures
    try:
        yield
    finally:
        _futures = saved
        futures.wait(mine)
        if outer:
            executor, _executor = _executor, None
            executor.shutdown(wait=True)
    for future in mine:
        future.result()


def figure_writer(fn):
    """Decorates ``fn(path, ...)``, which writes one figure, to run on the
    worker thread inside :func:`in_background` (its array arguments copied,
    so the caller may reuse them) and inline elsewhere; returns ``path``."""

    @functools.wraps(fn)
    def write(path, *args, **kwargs):
        on_worker = threading.current_thread().name.startswith(_THREAD)
        if _executor is None or on_worker:
            return fn(path, *args, **kwargs)
        _futures.append(_executor.submit(fn, path, *_copy(args), **_copy(kwargs)))
        return path

    return write


def _copy(value):
    """``value`` with its numpy arrays and containers copied."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple):
        items = [_copy(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value
