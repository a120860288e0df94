"Markers of the test suite."

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes; still runs in `make test` and `.ci/run`")
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skips itself without one); `benchmarks/gpu_check.sh` runs them")
