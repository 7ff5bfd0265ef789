"""Ctrl-C during fit: the C core polls Python's signal handlers between mini-batches, so a
SIGINT stops training after the current step with KeyboardInterrupt and an intact network."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import sdagd


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_sigint_stops_fit_and_leaves_network_usable():
    rng = np.random.default_rng(0)
    X = rng.random((20000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 20000)
    net = sdagd.MLP([784, 700, 700, 10], activation="sigmoid")
    opt = sdagd.optim.SGD(lr=0.1)
    main = threading.main_thread().ident
    timer = threading.Timer(0.5, lambda: signal.pthread_kill(main, signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, y, opt, epochs=50, progress=False)  # ~minutes if not interrupted
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - start
    # Stopped within a mini-batch (milliseconds) of the signal, not at the end of the epoch:
    # 50 epochs would take minutes; the bound leaves room for a loaded CI machine.
    assert elapsed < 20, f"fit took {elapsed:.1f} s to stop"
    assert 0 < opt.step_count < 50 * 200
    assert net.epochs_trained < 50
    params = net.params
    assert all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in params)
    # Usable afterwards: evaluation and further training work.
    assert np.isfinite(net.evaluate(X[:100], y[:100]).loss)
    net.fit(X[:200], y[:200], opt, epochs=1, progress=False)
