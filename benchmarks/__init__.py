"""Side-by-side timings of linopt against plain numpy references (see BENCHMARKS.md)."""
