"""The one training loop: K networks of one shape through the core's Trainer, K = 1 for
:meth:`sdagd.MLP.fit` (whose ``train_step`` uses a Trainer of one too) and any K for
:func:`sdagd.fit_many`.

The callers check their arguments and report (history, progress lines, callbacks, how a
divergence ends the call); the binding, the scheduling of the epochs, the validation and the
epoch records are here, once.
"""
from __future__ import annotations

import time

from . import _core
from .history import epoch_record


class Training:
    """K networks and their optimizers bound to one core Trainer, which checks that they can
    train together (same shape and device, compatible Hessian schedules) when made."""

    def __init__(self, nets, optimizers):
        self.nets, self.optimizers = list(nets), list(optimizers)
        # A rejected group (e.g. Hessian schedules that cannot share a pass) leaves every
        # optimizer as it was: those bound here for the first time are unbound again.
        fresh = [opt.bound_net is None for opt in self.optimizers]
        try:
            self._core_opts = [opt.core_optimizer(net.core_net) for net, opt in zip(self.nets, self.optimizers)]
            self._trainer = _core.Trainer([net.core_net for net in self.nets], self._core_opts)
        except BaseException:
            for opt, was_fresh in zip(self.optimizers, fresh):
                if was_fresh:
                    opt.reset()
            raise

    def _current_trainer(self):
        """The trainer for the optimizers' current core objects: assigning a hyperparameter
        (``opt.lr = ...``) makes a new one, which applies from the next epoch."""
        current = [opt.core_optimizer(net.core_net) for net, opt in zip(self.nets, self.optimizers)]
        if any(a is not b for a, b in zip(current, self._core_opts)):
            self._core_opts = current
            self._trainer = _core.Trainer([net.core_net for net in self.nets], current)
        return self._trainer

    def epochs(self, data, val_data, epochs, batch_size, seeds, batch_progress=None):
        """Trains ``epochs`` epochs on the core Dataset ``data``; a generator that yields after
        each epoch ``(seconds, results)``: the epoch's wall time and, per network, None when it
        stopped before, ``("diverged", message)`` when it diverged in this epoch (it stops; the
        epoch is not counted), else ``("trained", record)``, the epoch's history record (its
        ``time`` includes the network's validation on ``val_data``), the epoch counted in
        ``net.epochs_trained``. Every network's state is updated before the yield. Ends when
        every network has stopped. ``batch_progress(epoch)``, when given, makes the epoch's
        per-batch reporter (a callable with ``close()``, or None)."""
        stopped = [False] * len(self.nets)
        for _ in range(int(epochs)):
            start = time.perf_counter()
            trainer = self._current_trainer()
            bar = batch_progress(self.nets[0].epochs_trained + 1) if batch_progress is not None else None
            try:
                stats = trainer.epoch(data, int(batch_size), seeds, [net.epochs_trained for net in self.nets],
                                      stopped, on_batch=bar)
            finally:
                if bar is not None:
                    bar.close()
            seconds = time.perf_counter() - start
            results = []
            for k, (net, opt, s) in enumerate(zip(self.nets, self.optimizers, stats)):
                if stopped[k]:
                    results.append(None)
                    continue
                epoch = net.epochs_trained + 1
                if s["diverged"]:
                    stopped[k] = True
                    results.append(("diverged", str(net.divergence_error(s["message"], opt, epoch))))
                    continue
                validated = time.perf_counter()
                val = net.evaluate_dataset(val_data) if val_data is not None else None
                net.epochs_trained = epoch
                record = epoch_record(epoch, s, val, seconds + time.perf_counter() - validated,
                                      net.config["activation"], net.sizes)
                results.append(("trained", record))
            yield seconds, results
            if all(stopped):
                return
