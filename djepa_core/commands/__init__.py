"""Subcommands of `djepa`: each module here defines `register(subparsers)`; found automatically."""
