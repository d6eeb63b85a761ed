"""The ``lightseg`` command line.

Each command group lives in its own module under ``lightseg_tf.cli`` and exposes
``register(subparsers)``, adding its parsers with ``set_defaults(func=handler)``; a handler
takes the parsed ``args`` and returns an exit code (None = 0). Heavy imports (TensorFlow)
happen inside handlers so ``lightseg --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from lightseg_tf import __version__
from lightseg_tf.core.log import quiet_native_stderr
from lightseg_tf.errors import LightsegError

# Command-group modules, in the order --help lists them.
COMMAND_MODULES = ("demo", "pipeline", "data", "train", "distill", "models", "quant", "deploy", "clinic")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """``--config``, the ``key.sub=value`` overrides and ``--run-dir``, as every config-driven command takes."""
    p.add_argument("--config", default=None, help="YAML file of overrides (default: built-in defaults)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides (after the options)")
    p.add_argument("--run-dir", default=None, help="run directory (default: {run_root}/{name})")


def config_from_args(args):
    """The resolved config; Keras prints one line per epoch instead of a progress bar when piped."""
    from lightseg_tf.config import load_config

    cfg = load_config(args.config, args.overrides)
    if not sys.stdout.isatty():
        cfg.train.verbose = 2 if cfg.train.verbose == 1 else cfg.train.verbose
    return cfg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightseg",
        description="Lightweight fetal-ultrasound segmentation: train, distil, quantize, deploy.",
    )
    parser.add_argument("--version", action="version", version=f"lightseg_tf {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"lightseg_tf.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lightseg`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with quiet_native_stderr(enabled=not args.debug):
        return _run(args)


def _run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except LightsegError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"lightseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lightseg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure is still one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"lightseg: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
