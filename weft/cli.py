"""The `weft` command line: one table of subcommands, each implemented in its own module.

Extending: a command module exposes `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`; add its import path to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "main"]

# name -> module implementing it; modules are imported only when their command runs or --help
# lists them, so `weft --help` stays fast and torch-free commands stay torch-free.
COMMANDS: dict[str, str] = {
    "demo": "weft.commands.demo",
    "train": "weft.commands.train",
    "datasets": "weft.commands.datasets",
    "export": "weft.commands.export",
    "onnx-info": "weft.commands.onnx_info",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weft", description="weft: train models on PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
