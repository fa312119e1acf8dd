"""`weft datasets`: list the catalog, where each set resolves and whether it is present."""

from __future__ import annotations

import argparse

__all__ = ["HELP", "add_arguments", "run"]

HELP = "List the data set catalog: where each set resolves and whether it is present."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog",
        action="append",
        default=[],
        metavar="FILE",
        help="read this catalog file first (repeatable); otherwise $WEFT_CATALOG, ./Data.toml, "
        "~/.config/weft/Data.toml and the built-in catalog",
    )


def run(args: argparse.Namespace) -> int:
    from weft.datasets import Catalog, DataError, default_catalog

    try:
        catalog = default_catalog()
        for path in reversed(args.catalog):
            catalog = Catalog.read(path) + catalog
    except DataError as err:
        print(f"weft datasets: {err}")
        return 1
    rows = []
    for entry in sorted(catalog, key=lambda e: e.name):
        try:
            location = entry.location()
            where = "generated, no files" if location is None else str(location)
            status = "present" if entry.present() else "download" if entry.files else "missing"
        except DataError as err:
            where, status = str(err), "error"
        rows.append((entry.name, status, entry.format, ", ".join(entry.splits), where))
    headers = ("name", "status", "format", "splits", "location")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(4)]
    for row in [headers, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[4])
    print(f"\ncatalogs: {', '.join(catalog.files)}")
    print(
        "status: present = on disk; download = fetched from its URL on first load; "
        "missing = not on disk (for the built-in local-only sets, set $WEFT_DATA to a folder "
        "holding them)"
    )
    return 0
