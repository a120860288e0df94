"Markers of the test suite."

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes; still runs in `make test` and `.ci/run`")
