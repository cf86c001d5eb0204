"""The paper's tooling, beside the package and never imported by it: the reproduction's runs, records and tables
(`results.py`), the probes of the latent (`analysis.py`) and the benchmarks' helpers (`benchmarking.py`)."""
