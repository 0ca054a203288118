"""Train the built-in digits CNN with other settings from the command line, as the evolution view does.

    python -m compute.train --epochs 5 --lr 0.01 --width 0.5 --seed 1     # prints progress, then the run's name
    python -m compute.train --list                                          # the runs trained so far

The run keeps one checkpoint per epoch in the cache (``--cache-dir``, else $FEATURESCOPE_CACHE_DIR), where the
dashboard's evolution view lists it beside the default run, ready to compare.
"""
from __future__ import annotations

import argparse
import sys

from compute import training


def _print_progress(fraction: float, text: str, _partial=None) -> None:
    print(f"\r{fraction:6.1%}  {text[:70]:<70}", end="", flush=True)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    defaults = training.DEFAULT_SETTINGS
    parser = argparse.ArgumentParser(prog="python -m compute.train", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=defaults["epochs"], help=f"default {defaults['epochs']}")
    parser.add_argument("--lr", type=float, default=defaults["lr"], help=f"Adam's learning rate, default {defaults['lr']:g}")
    parser.add_argument("--width", type=float, default=defaults["width"],
                        help="channels as a multiple of the built-in model's, default 1")
    parser.add_argument("--seed", type=int, default=defaults["seed"], help="initialisation and shuffling, default 0")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--cache-dir", help="where runs are kept (default: $FEATURESCOPE_CACHE_DIR or ~/.cache/featurescope)")
    parser.add_argument("--list", action="store_true", help="list the completed runs and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.cache_dir:
        from compute.cache import set_cache_dir

        set_cache_dir(args.cache_dir)
    if args.list:
        for run in training.runs():
            accuracy = f"{run.test_accuracy[-1]:.1%}" if run.test_accuracy else "—"
            print(f"{run.name}\t{run.settings}\ttest accuracy after the last epoch: {accuracy}")
        return 0
    try:
        settings = training.check_settings(args.epochs, args.lr, args.width, args.seed)
    except ValueError as error:
        print(f"featurescope: {error}", file=sys.stderr)
        return 2
    name = training.train_run(**settings, progress=_print_progress, device=args.device)
    run = next(r for r in training.runs() if r.name == name)
    print(f"\nrun {name}: {len(run.test_accuracy)} checkpoints, test accuracy {run.test_accuracy[-1]:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
