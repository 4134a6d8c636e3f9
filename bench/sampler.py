"""Sampler benchmark: `python bench/sampler.py --help` (the same as `djepa bench sampler`)."""

import sys

from djepa_core.profiling.sampler import main

if __name__ == "__main__":
    sys.exit(main())
