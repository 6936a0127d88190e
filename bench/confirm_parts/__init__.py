"""Parts of `bench/timebank_confirm.py` (a folder, so `bench/run.py` does not run them as benchmarks)."""
