"""Command line: ``python -m sdagd train ...`` (also installed as the ``sdagd`` command).

``train`` trains one of the paper's networks (784-700xL-10) on MNIST and prints the test
misclassification rate (MCR).
"""
from __future__ import annotations

import argparse
import sys
import time


def _train(args) -> int:
    import sdagd
    from sdagd.datasets import DatasetError, load_mnist

    try:
        (X_train, y_train), (X_test, y_test) = load_mnist(args.data)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        X_train, y_train = X_train[: args.limit], y_train[: args.limit]
    if args.threads:
        sdagd.set_num_threads(args.threads)
    sizes = [784] + [args.width] * args.depth + [10]
    net = sdagd.MLP(sizes, activation=args.activation, output=args.output, loss=args.loss, seed=args.seed)
    if args.optimizer == "sdagd":
        opt = sdagd.optim.SDAGD(radius=args.radius, norm=args.norm)
    else:
        opt = sdagd.optim.SGD(lr=args.lr)
    print(f"{net!r} with {opt!r}, {args.epochs} epochs of batch {args.batch_size} "
          f"on {len(X_train)} training images", file=sys.stderr)
    start = time.perf_counter()
    net.fit(X_train, y_train, opt, epochs=args.epochs, batch_size=args.batch_size,
            validation_data=(X_test, y_test) if args.show_test else None)
    result = net.evaluate(X_test, y_test)
    print(f"test MCR {100 * result.error:.2f} %  (loss {result.loss:.4f}, "
          f"{time.perf_counter() - start:.0f} s)")
    if args.save:
        net.save(args.save, optimizer=opt)
        print(f"saved to {args.save}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdagd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train one paper network on MNIST and print the test MCR")
    train.add_argument("--depth", type=int, default=5, choices=range(1, 11), metavar="L",
                       help="hidden layers (the paper: 1..5; default 5)")
    train.add_argument("--width", type=int, default=700, help="units per hidden layer (default 700)")
    train.add_argument("--activation", default="sigmoid", choices=["sigmoid", "relu", "tanh", "leaky_relu"])
    train.add_argument("--output", default="sigmoid", choices=["sigmoid", "linear", "softmax"])
    train.add_argument("--loss", default="mse", choices=["mse", "ce"])
    train.add_argument("--optimizer", default="sdagd", choices=["sdagd", "sgd"])
    train.add_argument("--radius", type=float, default=0.3, help="SDAGD radius R (default 0.3)")
    train.add_argument("--norm", default="layer", choices=["layer", "global"], help="SDAGD norm (default layer)")
    train.add_argument("--lr", type=float, default=0.5, help="SGD learning rate (default 0.5)")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=100)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    train.add_argument("--threads", type=int, default=0, help="BLAS threads (default: OpenBLAS's choice)")
    train.add_argument("--data", default=None, help="directory of the MNIST IDX files (default: $SDAGD_DATA)")
    train.add_argument("--show-test", action="store_true", help="print the test error after every epoch")
    train.add_argument("--save", default=None, help="save the trained network (.npz)")
    train.set_defaults(func=_train)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
