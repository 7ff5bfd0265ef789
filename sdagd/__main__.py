"""Command line: the ``sdagd`` command (or ``python -m sdagd`` outside the source tree).

  sdagd reproduce              the paper's Table I and Figs. 3-4: a reduced protocol (one
                               epoch, about 3 minutes on 2 cores) that shows its two
                               findings; --full for the whole 20-epoch protocol (about 3.5
                               hours on 2 cores; --device cuda for a GPU); --deep for hl-8
                               and hl-10
  sdagd train ...              train one paper network (784-700xL-10) on MNIST and print its
                               test misclassification rate (MCR)
"""
from __future__ import annotations

import argparse
import sys
import time

from sdagd import _core  # the package is imported before its __main__ runs
from sdagd._version import __version__


def _count(low, high=None, high_text=None):
    """argparse type: an integer >= low (and <= high, written ``high_text`` in messages): the
    limits of the core are checked here, before the data is loaded, not at the first use."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high_text or high}, got {value}")
        return value
    return parse


def _seed_list(text):
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if any(not 0 <= s < 2**64 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be in [0, 2**64), got {text!r}")
    if len(set(seeds)) < len(seeds):  # the same run twice, and a spread of 0 taken for two seeds
        raise argparse.ArgumentTypeError(f"each seed may appear once, got {text!r}")
    return seeds


def _fail(message, code=2) -> int:
    """One line on stderr and the exit code: what the user reads instead of a traceback."""
    print(f"error: {message}", file=sys.stderr)
    return code


def _train(args) -> int:
    import sdagd
    from sdagd.datasets import DatasetError, load_mnist
    from sdagd._files import check_writable as _check_writable
    from sdagd.paper.grid import paper_sizes

    if args.device != "cpu":  # before the data is loaded: a missing GPU costs nothing
        usable, why = sdagd.device_available(args.device)
        if not usable:
            return _fail(f"--device {args.device} cannot be used: {why}")
    opt = _optimizer_from_args(args)  # a bad hyperparameter is reported before the data is loaded
    try:
        if args.save:  # before minutes of training, not after them
            _check_writable(args.save)
        (X_train, y_train), (X_test, y_test) = load_mnist(args.data)
    except (DatasetError, OSError) as exc:  # OSError: an unreadable data file, an unwritable --save
        return _fail(exc)
    if args.limit:
        X_train, y_train = X_train[: args.limit], y_train[: args.limit]
    if args.threads:
        sdagd.set_num_threads(args.threads)
    sizes = paper_sizes(args.depth, args.width)
    net = sdagd.MLP(sizes, activation=args.activation, output=args.output, loss=args.loss, seed=args.seed,
                    device=args.device)
    print(f"{net!r} with {opt!r}, {args.epochs} epochs of batch {args.batch_size} "
          f"on {len(X_train)} training images ({args.device})", file=sys.stderr)
    start = time.perf_counter()
    try:
        net.fit(X_train, y_train, opt, epochs=args.epochs, batch_size=args.batch_size,
                validation_data=(X_test, y_test) if args.show_test else None)
    except KeyboardInterrupt:
        if not args.save:
            raise
        # Ctrl-C: the network trained so far is kept (the core stops after a mini-batch).
        _save_run(net, opt, args.save)
        print(f"interrupted: saved the network trained so far ({net.epochs_trained} full epoch(s) and the "
              f"mini-batches of the epoch in progress) to {args.save}", file=sys.stderr)
        return 130
    result = net.evaluate(X_test, y_test)
    print(f"test MCR {100 * result.error:.2f} %  (loss {result.loss:.4f}, "
          f"{time.perf_counter() - start:.0f} s)")
    if args.save:
        _save_run(net, opt, args.save)
        print(f"saved to {args.save}", file=sys.stderr)
    return 0


#: The optimizers of `sdagd train`: every row of the core's table (csrc/tables.h), by lower-case
#: name: (class name, {hyperparameter: default or None for the class's own default}). The CLI
#: sets its own values where a hyperparameter has no default in the table.
_CLI_DEFAULTS = {"SGD": {"lr": 0.5}, "SDAGD": {"radius": 0.3},
                 "SDLM": {"lr": 0.1, "mu": 0.1}}  # SDLM: h << mu here, about SGD with lr 1
_TABLE = _core.optimizer_table()
_OPTIMIZER_OPTIONS = {row["name"].lower(): (row["name"], {h["name"]: _CLI_DEFAULTS.get(row["name"], {}).get(h["name"])
                                                         for h in row["hyperparameters"]})
                      for row in _TABLE}
_HYPERPARAMETERS = sorted({name for _, options in _OPTIMIZER_OPTIONS.values() for name in options})


def _hyperparameter_flags(parser):
    """One option per hyperparameter name of the table, saying which optimizers take it."""
    for name in _HYPERPARAMETERS:
        specs = [(row["name"].lower(), h) for row in _TABLE for h in row["hyperparameters"] if h["name"] == name]
        takers = []
        for opt, h in specs:
            default = _OPTIMIZER_OPTIONS[opt][1][name]
            if default is None and h["type"] != "optional":
                default = h["choices"].split(",")[int(h["default"])] if h["type"] == "choice" else f"{h['default']:g}"
            takers.append(opt + (f" (default {default})" if default is not None else ""))
        spec = specs[0][1]
        kwargs = {"type": float}
        if spec["type"] == "int":
            kwargs["type"] = _count(int(spec["low"]), int(spec["high"]),
                                    "2**31-1" if spec["high"] == 2**31 - 1 else None)
        elif spec["type"] == "choice":
            kwargs = {"choices": spec["choices"].split(",")}
        parser.add_argument("--" + name.replace("_", "-"), default=None, **kwargs,
                            help=f"{', '.join(takers)}: {spec['doc']}")


def _optimizer_from_args(args):
    """The optimizer --optimizer names, with the hyperparameter options given; an option that
    the optimizer does not take is an error, not silently ignored."""
    from sdagd import optim

    name, options = _OPTIMIZER_OPTIONS[args.optimizer]
    given = {key: getattr(args, key) for key in _HYPERPARAMETERS if getattr(args, key) is not None}
    foreign = sorted(set(given) - set(options))
    if foreign:
        flags = ", ".join("--" + key.replace("_", "-") for key in foreign)
        takes = ", ".join("--" + key.replace("_", "-") for key in options)
        raise ValueError(f"{flags} {'does' if len(foreign) == 1 else 'do'} not apply to --optimizer "
                         f"{args.optimizer}, which takes {takes}")
    kwargs = {key: value for key, value in options.items() if value is not None}
    kwargs.update(given)
    if "beta1" in kwargs or "beta2" in kwargs:
        kwargs["betas"] = (kwargs.pop("beta1", 0.9), kwargs.pop("beta2", 0.999))
    return getattr(optim, name)(**kwargs)


def _save_run(net, opt, path):
    """The network with its optimizer state, and its history as JSON beside it."""
    from sdagd.callbacks import history_path

    net.save(path, optimizer=opt)
    if net.history is not None:
        net.history.save_json(history_path(path))


def _reproduce(args) -> int:
    import sdagd
    from sdagd.paper import reproduce
    from sdagd.datasets import DatasetError, load_mnist
    from sdagd._files import check_writable as _check_writable

    protocol = "full" if args.full else "deep" if args.deep else "quick"
    out = args.out or f"sdagd-{protocol}"
    try:  # fail early, before any work: the output folder, then the data (the loader's message)
        _check_writable(out, folder=True)
        load_mnist(args.data)
    except (DatasetError, OSError) as exc:
        return _fail(exc)
    if args.device != "cpu":
        usable, why = sdagd.device_available(args.device)
        if not usable:
            return _fail(f"--device {args.device} cannot be used: {why}")
    written = reproduce.run(out, protocol=protocol, epochs=args.epochs, workers=args.workers, data=args.data,
                            seeds=args.seeds, train_limit=args.train_limit, progress=not args.no_progress,
                            device=args.device)
    ok = written.pop("ok_runs")
    findings = written.pop("findings", None)
    print(f"\nTable I, test MCR % (mean ± std over seeds), {protocol} protocol; details in {out}/protocol.json\n")
    print(written.pop("table"))
    if findings:
        epochs = reproduce.QUICK["epochs"] if args.epochs is None else args.epochs
        seeds = len(args.seeds) if args.seeds else len(reproduce.QUICK["seeds"])
        print(f"\nThe paper's two findings, on this reduced run ({epochs} epoch(s), {seeds} seed(s): the paper's "
              f"own numbers are for longer training;\nthe 20-epoch protocol, `sdagd reproduce --full`, gives the "
              f"Table I of RESULTS.md):")
        print("\n".join(findings))
    print("\nwritten: " + ", ".join(sorted(written.values())))
    if ok == 0:
        print(f"error: no run succeeded; see the 'error' field of the records in {out}/runs.jsonl", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdagd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sdagd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="reproduce Table I and Figs. 3-4 of the paper")
    mode = rep.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="reduced protocol: 1 epoch, 1 seed, about 3 minutes on 2 cores (the default)")
    mode.add_argument("--full", action="store_true",
                      help="the whole protocol: 5 depths x 2 activations x 7 optimizer columns x 3 seeds, "
                           "20 epochs, tuned on a validation split")
    mode.add_argument("--deep", action="store_true",
                      help="deeper than the paper: hl-8 and hl-10, SGD and SDAGD (per-layer norm), tuned and "
                           "trained as --full does (about 6.5 hours on 2 cores; --device cuda for a GPU)")
    rep.add_argument("--epochs", type=_count(0), default=None, help="epochs per run (quick: 1, full and deep: 20)")
    rep.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                     help="where to train (cuda: the networks of each shape train together on the GPU)")
    rep.add_argument("--workers", type=_count(0), default=None, help="worker processes sharing the cores (default 1, with a thread per core; 0: none)")
    rep.add_argument("--out", default=None, help="output directory (default: sdagd-quick, sdagd-full or sdagd-deep)")
    rep.add_argument("--seeds", type=_seed_list, default=None, help="comma-separated seeds (quick: 0, full and deep: 0,1,2)")
    rep.add_argument("--train-limit", type=_count(1), default=None, help="train on the first N images only")
    rep.add_argument("--data", default=None, help="directory of the MNIST IDX files (default: $SDAGD_DATA)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar or per-run lines")
    rep.set_defaults(func=_reproduce)
    train = sub.add_parser("train", help="train one paper network on MNIST and print the test MCR")
    train.add_argument("--depth", type=int, default=5, choices=range(1, 11), metavar="L",
                       help="hidden layers (the paper: 1..5; default 5)")
    train.add_argument("--width", type=_count(1, 2**24, "2**24"), default=700,
                       help="units per hidden layer (default 700)")
    activations = _core.activation_table()  # the core's table (csrc/tables.h)
    train.add_argument("--activation", default="sigmoid", choices=[a["name"] for a in activations if a["hidden"]])
    train.add_argument("--output", default="sigmoid", choices=[a["name"] for a in activations if a["output"]])
    train.add_argument("--loss", default="mse", choices=["mse", "ce"])
    train.add_argument("--optimizer", default="sdagd", choices=list(_OPTIMIZER_OPTIONS),
                       help="the optimizer (default sdagd); its hyperparameters below, each only for the "
                            "optimizers named, defaults those of sdagd.optim unless stated")
    _hyperparameter_flags(train)
    train.add_argument("--epochs", type=_count(0), default=3)
    train.add_argument("--batch-size", type=_count(1, 2**31 - 1, "2**31-1"), default=100)
    train.add_argument("--seed", type=_count(0, 2**64 - 1, "2**64-1"), default=0)
    train.add_argument("--limit", type=_count(0), default=0, help="use only the first N training images")
    train.add_argument("--threads", type=_count(0, 256), default=0, help="CPU threads (default: one per core)")
    train.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train (default cpu)")
    train.add_argument("--data", default=None, help="directory of the MNIST IDX files (default: $SDAGD_DATA)")
    train.add_argument("--show-test", action="store_true", help="print the test error after every epoch")
    train.add_argument("--save", default=None,
                       help="save the trained network with its optimizer (.npz) and its history beside it "
                            "(NAME.history.json); on Ctrl-C, the network trained so far")
    train.set_defaults(func=_train)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from sdagd import DivergenceError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except DivergenceError as exc:
        return _fail(f"training diverged: {exc}", 1)
    except (ValueError, TypeError) as exc:  # bad combinations argparse cannot see
        return _fail(exc)
    except MemoryError as exc:  # e.g. a network too wide for this machine
        return _fail(f"out of memory: {exc}", 1)
    except OSError as exc:  # a file that could not be read or written once work had started
        return _fail(exc, 1)


if __name__ == "__main__":
    sys.exit(main())
