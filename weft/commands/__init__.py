"""Implementations of the `weft` subcommands, one module each (see `weft.cli`)."""
