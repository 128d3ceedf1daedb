"""Reproducible speed measurements of marketlake against the local simulator (not tests).

    uv run python -m benchmarks            # every benchmark, 3 runs each; rewrites RESULTS.md
    uv run python -m benchmarks --quick    # each once on tiny sizes (what the smoke test runs)
    uv run python -m benchmarks --only archive_backfill,chart_queries

One module per benchmark; `benchmarks.__main__` runs them and writes the table.
"""
