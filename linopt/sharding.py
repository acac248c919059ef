"""Data parallelism: the examples' (row) axis of the data split over devices.

A run on ``k`` devices lays ``X: (N, D)`` and ``y: (N,)`` over a one-axis mesh
(axis ``"batch"``), ``N / k`` rows on each device; the weights and the
strategy's state sit whole on every device. The strategies and the driver do
not change: jit follows the inputs' shardings (GSPMD), so every loss and
gradient over the data is computed ``N / k`` rows per device and summed by one
all-reduce, and a mini-batch sampled inside a step is gathered from the
devices' rows by one all-reduce of the ``(B, D)`` batch. Results equal a
one-device run up to the order of floating-point sums (about 1e-6 relative).

Why the sampled batch is not split further: its gradient is a few
``(B, D) x (D, C)`` products; constraining the batch to the mesh as well
makes XLA add all-gathers to that one all-reduce (seen in the compiled
program on 4 CPU devices), for no saving worth having at ``B`` of a few hundred.

Multi-host: every process runs the same command. :func:`initialize_distributed`
(the experiments call it first) starts ``jax.distributed`` when the
environment asks for it; :func:`make_mesh` then spans the devices of every
process, and :func:`shard_rows` fills each process's devices from its own copy
of the data, so every process loads the same data set and runs the same
program, and the weights come out the same in every process.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from linopt.errors import LinoptError

BATCH_AXIS = "batch"


def initialize_distributed() -> bool:
    """Start ``jax.distributed`` if the environment asks for it; True if so.

    * ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0), ``JAX_NUM_PROCESSES``
      and ``JAX_PROCESS_ID``: any cluster, or several processes on one machine;
    * ``LINOPT_DISTRIBUTED=1``: let jax read SLURM, Open MPI, Cloud TPU or
      Kubernetes variables itself.

    Otherwise nothing happens (one process). Call it before anything else
    touches jax's devices; a second call does nothing.
    """
    if jax.distributed.is_initialized():
        return True
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        try:
            num_processes = int(os.environ["JAX_NUM_PROCESSES"])
            process_id = int(os.environ["JAX_PROCESS_ID"])
        except (KeyError, ValueError):
            raise LinoptError(
                "JAX_COORDINATOR_ADDRESS is set, so JAX_NUM_PROCESSES and "
                "JAX_PROCESS_ID must be integers too"
            ) from None
        jax.distributed.initialize(num_processes=num_processes, process_id=process_id)
        return True
    if os.environ.get("LINOPT_DISTRIBUTED", "").lower() in ("1", "true", "yes"):
        jax.distributed.initialize()
        return True
    return False


def check_num_devices(num_devices: int, num_examples: int | None = None) -> None:
    """Raise :class:`LinoptError` (one line, says what to do) unless
    ``num_devices`` devices exist and split ``num_examples`` rows evenly."""
    available = jax.device_count()
    if num_devices < 1:
        raise LinoptError(f"num_devices must be >= 1, got {num_devices}")
    if num_devices > available:
        raise LinoptError(
            f"num_devices={num_devices} but jax sees {available} device(s) "
            f"({jax.default_backend()}); on CPU, the environment variable "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={num_devices} makes more"
        )
    if jax.process_count() > 1 and num_devices != available:
        raise LinoptError(
            f"a run over {jax.process_count()} processes uses every device: "
            f"num_devices must be {available}"
        )
    if num_examples is not None and num_examples % num_devices:
        usable = num_examples - num_examples % num_devices
        raise LinoptError(
            f"num_devices={num_devices} does not divide the {num_examples:,} "
            f"training examples; use num_train={usable} (a multiple of "
            f"{num_devices}) or another num_devices"
        )


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A one-axis mesh ``("batch",)`` over the first ``num_devices`` devices
    (all of them, across every process, when ``None``)."""
    if num_devices is None:
        num_devices = jax.device_count()
    check_num_devices(num_devices)
    return jax.make_mesh(
        (num_devices,),
        (BATCH_AXIS,),
        axis_types=(AxisType.Auto,),
        devices=jax.devices()[:num_devices],
    )


def shard_rows(array, mesh: Mesh) -> jax.Array:
    """``array`` (``(N, ...)``, the same in every process) with its rows split
    over the mesh's ``"batch"`` axis; each device gets ``N / k`` rows."""
    array = np.asarray(array)
    check_num_devices(mesh.shape[BATCH_AXIS], array.shape[0])
    sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    # Built shard by shard from the host copy: no device ever holds all of N,
    # and in a multi-host run each process fills only its own devices.
    return jax.make_array_from_callback(
        array.shape, sharding, lambda index: array[index]
    )


def shard_data(X, y, num_devices: int = 1):
    """``(X, y)`` split by rows over ``num_devices`` devices.

    With one device the arrays are returned as they are, so a one-device run
    takes exactly the path it took before data parallelism existed.

    Args:
      X: ``(N, D)`` float32 examples. y: ``(N,)`` int32 labels.
      num_devices: devices to split the rows over; must divide ``N``.
    Returns:
      ``(X, y)``: numpy arrays (one device) or row-sharded ``jax.Array`` s.
    """
    check_num_devices(num_devices, int(np.shape(y)[0]))
    if num_devices == 1:
        return X, y
    mesh = make_mesh(num_devices)
    return (
        shard_rows(np.asarray(X, np.float32), mesh),
        shard_rows(np.asarray(y, np.int32), mesh),
    )
