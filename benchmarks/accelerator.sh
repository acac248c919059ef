#!/usr/bin/env bash
# The accelerator check, ready for a machine with a GPU (under 5 minutes there):
#
#   bash benchmarks/accelerator.sh            # from the repository root
#
#  1. installs the CUDA extra (pip install -e ".[cuda,test]") where there is a
#     GPU and the package registry can be reached (".[test]" on a CPU machine
#     where linopt is not installed yet); says so and goes on if it fails;
#  2. runs the tests that touch devices (sharding, host syncs, compile once);
#  3. runs `python -m benchmarks.run --quick` on the default device;
#  4. runs one CIFAR-10-shaped 4x4 sweep (`benchmarks.sweep`, synthetic rows);
#  5. prints a markdown table to paste into BENCHMARKS.md.
#
# On a machine without a GPU every step runs on the CPU and the GPU parts say
# they were skipped. Outputs go to $OUT (default: a new folder in /tmp).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d /tmp/linopt-accelerator.XXXX)}
mkdir -p "$OUT"
PY=${PYTHON:-$(command -v python || command -v python3)}
began=$SECONDS
declare -A status seconds

step() {  # step NAME COMMAND...: run, time and record one part
  local name=$1 t0=$SECONDS
  shift
  echo "== $name: $*"
  if "$@" >"$OUT/$name.log" 2>&1; then status[$name]=ok; else status[$name]="FAILED (exit $?)"; fi
  seconds[$name]=$((SECONDS - t0))
  tail -n 15 "$OUT/$name.log"
}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
  if $PY -c "import linopt, jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
    status[install]="skipped: jax already sees the GPU"
    seconds[install]=0
  else
    step install $PY -m pip install -q -e ".[cuda,test]"
  fi
else
  gpu="none (CPU only)"
  if $PY -c "import linopt, pytest" 2>/dev/null; then
    status[install]="skipped: no GPU here"
    seconds[install]=0
  else  # a fresh machine: the CPU install, so that the rest can run
    step install $PY -m pip install -q -e ".[test]"
  fi
fi
if ! backend=$($PY -c "import jax; print(jax.default_backend(), jax.devices()[0].device_kind)" 2>&1 | tail -n 1); then
  echo "accelerator.sh: JAX cannot start with $PY ($backend); install with pip install -e \".[test]\" or set PYTHON" >&2
  exit 1
fi
echo "GPU: $gpu; JAX runs on: $backend"

step device_tests $PY -m pytest -q -p no:cacheprovider -m "slow or not slow" \
  tests/test_sharding.py tests/test_no_host_sync.py \
  "tests/test_long_runs.py::test_chunks_of_any_length_compile_once_and_give_the_same_run"
step benchmarks $PY -m benchmarks.run --quick --json "$OUT/benchmarks.json"
step sweep $PY -m benchmarks.sweep --dataset=cifar10_shaped --num_steps=1500

echo
echo "### Accelerator check: $backend (GPU: $gpu), $(date -u +%Y-%m-%d), $((SECONDS - began)) s"
echo
echo "| part | status | seconds |"
echo "| --- | --- | ---: |"
for name in install device_tests benchmarks sweep; do
  echo "| $name | ${status[$name]} | ${seconds[$name]} |"
done
echo
# the last table with a "numpy s" column: benchmarks.run's summary of all workloads
awk '/^\| workload \| numpy/ {table = ""; inside = 1}
     inside && /^\|/ {table = table $0 "\n"; next}
     {inside = 0}
     END {printf "%s", table}' "$OUT/benchmarks.log"
grep -E '^sweep_4x4' "$OUT/sweep.log" || true
echo
echo "logs: $OUT"
for name in device_tests benchmarks sweep; do
  [[ ${status[$name]} == ok ]] || exit 1
done
