"""Trainer benchmark: `python bench/train.py --help` (the same as `djepa bench train`)."""

import sys

from djepa_core.profiling.train import main

if __name__ == "__main__":
    sys.exit(main())
