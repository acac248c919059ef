"""Command-line experiments: ``python -m experiments.NAME --helpfull``."""
