"""Optional API keys, shared by both ingresses: `Authorization: Bearer <key>` (REST header, gRPC metadata).

Keys come from a file (one a line, `#` comments, blank lines skipped) and/or an environment variable
(keys separated by commas or whitespace), both named in the app's config (`api_keys_file`,
`api_keys_env`). A presented key is compared with every configured key by `hmac.compare_digest`
(no early exit, so timing tells nothing about which key or how much of one matched), and every
failure (no header, wrong scheme, wrong key) answers the same `Unauthenticated`. Health, readiness and
metrics are not guarded (probes and scrapers carry no keys). No keys configured: nothing is asked.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable
from pathlib import Path

from service.errors import Unauthenticated

MIN_KEY_CHARS = 16  # shorter keys are refused at start (too easy to guess)


class ApiKeys:
    """A set of accepted keys (held as bytes, compared in constant time)."""

    def __init__(self, keys: Iterable[str]) -> None:
        cleaned = [k.strip() for k in keys if k.strip()]
        short = [k for k in cleaned if len(k) < MIN_KEY_CHARS]
        if short:
            raise ValueError(f"{len(short)} API key(s) shorter than {MIN_KEY_CHARS} characters")
        if not cleaned:
            raise ValueError("no API keys given")
        self._keys = tuple(k.encode() for k in cleaned)

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_sources(cls, file: str | Path | None = None, env: str | None = None) -> ApiKeys | None:
        """The keys of `file` and of the environment variable `env`; None when neither is configured.
        A configured source that is missing or empty is an error (a typo must not open the service)."""
        if file is None and env is None:
            return None
        keys: list[str] = []
        if file is not None:
            path = Path(file)
            if not path.is_file():
                raise ValueError("api_keys_file: no such file")  # no path: it would reach the logs of clients
            keys += [line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]
        if env is not None:
            if not os.environ.get(env):
                raise ValueError(f"api_keys_env: the environment variable {env} is not set or empty")
            keys += re.split(r"[,\s]+", os.environ[env])
        return cls(keys)

    def matches(self, presented: str) -> bool:
        """Whether `presented` is one of the keys; every key is compared, whatever the outcome."""
        given = presented.encode()
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(given, key)
        return found

    def check(self, authorization: str | None) -> None:
        """Raise Unauthenticated unless `authorization` is `Bearer <one of the keys>`."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        ok = self.matches(token.strip()) if scheme.lower() == "bearer" else self.matches("")
        if not ok:
            raise Unauthenticated()
