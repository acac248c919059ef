"""How the benchmarks time and what they time against: the machine and its floor.

Every timed call waits for OpenBLAS's spinning threads to go idle, blocks on
JAX's result, and keeps the first (compiling) call out; the floor of a
workload is the larger of its FLOPs at the measured matrix-multiply peak and
one read of ``X`` at the measured bandwidth.
"""

from __future__ import annotations

import datetime
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np


def describe_machine():
    """The machine, the versions, numpy's BLAS kernel and the load, as a dict."""
    import optax

    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {
                k: p.get(k)
                for k in ("internal_api", "version", "architecture", "num_threads")
            }
            for p in threadpool_info()
        ]
    except ImportError:  # numpy.show_config() then says which BLAS it links
        blas = "threadpoolctl not installed"
    env = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        ),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__,
        "numpy": np.__version__,
        "optax": optax.__version__,
        "blas": blas,
        "env": {k: os.environ.get(k) for k in env},
        "load_before": os.getloadavg(),
    }


def measure_peaks(X, Xj, repeats=3):
    """The best matrix-multiply rate (FLOP/s, float32 and float64, numpy or
    jax) and read bandwidth (bytes/s of one pass over ``X``: a matrix-vector
    product, memory-bound in both libraries) seen now."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), np.float32)
    aj, a64 = jnp.asarray(a), a.astype(np.float64)
    v = np.ones(X.shape[1], X.dtype)
    vj = jnp.asarray(v)
    square, gemv = jax.jit(lambda a: a @ a), jax.jit(lambda X, v: X @ v)
    gemm = 2 * 2048**3

    def best(fn):
        timed(fn)
        return min(timed(fn) for _ in range(repeats))

    return {
        "flops": gemm / min(best(lambda: a @ a), best(lambda: square(aj))),
        "flops_float64": gemm / best(lambda: a64 @ a64),
        "bytes_per_s": X.nbytes / min(best(lambda: X @ v), best(lambda: gemv(Xj, vj))),
    }


# OpenBLAS's worker threads spin for about 0.2 s after numpy's last multiply;
# a JAX call started in that window loses a core to them (measured here: the
# full batch took 122 ms right after numpy, 83 ms after a 0.2 s pause; numpy
# is not slowed by JAX's threads). Every timed call waits this long first.
SETTLE_S = 0.5


def timed(fn):
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


_COMPILE_EVENTS = []  # seconds of each JAX compile step (trace, lower, compile)


def interleaved(fns, repeats):
    """Times of each callable over ``repeats`` rounds (order flipped every round),
    and the compile seconds of each linopt one's first call (JAX's own events)."""
    compile_s = {}
    for name, fn in fns.items():
        if name != "numpy":
            _COMPILE_EVENTS.clear()
            timed(fn)
            compile_s[name] = sum(_COMPILE_EVENTS)
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name in list(fns)[:: 1 if r % 2 == 0 else -1]:
            times[name].append(timed(fns[name]))
    return compile_s, times


def on_compile_event(event, duration, **_):
    """A ``jax.monitoring`` listener: records each compile step's seconds."""
    if event.startswith("/jax/core/compile/"):
        _COMPILE_EVENTS.append(duration)
