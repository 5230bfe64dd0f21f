"""Reproducible benchmarks. Each is ``uv run python -m bench.NAME [options]``.

Convention: human-readable progress goes to stderr; the **last line of stdout is one
JSON object** with the keys documented in the module's docstring and docs/benchmarks.md.
"""
