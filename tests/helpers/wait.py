import time


def wait_until(condition, timeout: float = 5.0, interval: float = 0.005, what: str = "condition"):
    """Poll instead of sleeping a guessed time: these machines are slow and loaded (and more so
    with tests running side by side). Returns the condition's first true value."""
    end = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < end, f"{what} not reached within {timeout} s"
        time.sleep(interval)
    return value
