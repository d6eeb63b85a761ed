"""``lightseg data ...``: the data command group.

Its subcommands live in the modules of ``DATA_COMMAND_MODULES``, each exposing
``register(data_subparsers)``.
"""

from __future__ import annotations

import importlib

DATA_COMMAND_MODULES: tuple[str, ...] = ("lightseg_tf.cli.data_phantom", "lightseg_tf.cli.data_real")


def register(sub) -> None:
    parser = sub.add_parser("data", help="make, read, split, inspect, augment and fetch datasets")
    data_sub = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_sub.required = True
    for module in DATA_COMMAND_MODULES:
        importlib.import_module(module).register(data_sub)
