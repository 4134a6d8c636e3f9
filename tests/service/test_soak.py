"""A short soak (bench/soak.py) against the session fixture: saturating load, nothing lost, only 200/429.

No timing assertions (bench/RESULTS.md has the 10-minute numbers)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.scripts import load_script
from tests.service.conftest import Served


def load_soak() -> Any:
    return load_script("bench/soak.py", "djepa_bench_soak")


def test_short_soak_loses_nothing(served: Served) -> None:
    soak = load_soak()
    main = asyncio.run(soak.soak(served.url, duration_s=10, concurrency=24, warmup_s=2, timeout_s=60))
    limited = asyncio.run(soak.soak(served.limited_url, duration_s=5, concurrency=8, timeout_s=60))
    print(f"\nmain: {main.report()}\nlimited: {limited.report()}")
    for result in (main, limited):
        assert result.lost == 0, result.report()
        assert result.sent == result.answered > 0
        assert set(result.statuses) <= {200, 429}, result.report()
    assert main.statuses[200] > 0 and limited.statuses[429] > 0  # the limited app overflowed and said so
    assert main.rss_after_warmup > 0  # the Ray processes of this run were found
