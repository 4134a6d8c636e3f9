"""What the REST routes answering one media file do the same way (POST /v1/videos, POST /v1/speech): the
model's card, the request checked against it, one item generated under the request's deadline, metrics
recorded, the bytes answered with their content type, and every error through errors.py's one mapping
(501 `not_deployed` when the app has no model of that modality)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic

from fastapi import Request, Response

from service.errors import ServiceError, to_answer
from service.ingress.common import BackendT, ItemT, ResultT, generate_one
from service.metrics import ServiceMetrics
from service.types import ModelInfo

log = logging.getLogger("djepa.service")
# (bytes, content type, extra headers) of a result
Rendered = tuple[bytes, str, dict[str, str]]


class MediaRoute(Generic[BackendT]):
    """One modality's route logic over `backend` (None: no model of that modality)."""

    def __init__(self, modality: str, backend: BackendT | None, stats: ServiceMetrics,
                 deadline_of: Callable[[Request], float], request_id_of: Callable[[Request], str]) -> None:
        self.modality, self.backend, self.stats = modality, backend, stats
        self.deadline_of, self.request_id_of = deadline_of, request_id_of
        self.label = modality  # the model label of metrics, its id once it answered

    def _seen(self, info: ModelInfo) -> None:
        self.label = info.id

    def error_response(self, exc: BaseException, request_id: str) -> Response:
        answer = to_answer(exc, request_id)
        if not isinstance(exc, ServiceError):
            log.error("request %s failed", request_id, exc_info=exc)
        self.stats.reject(self.label, answer.reason)
        return Response(answer.body, status_code=answer.http_status, headers=answer.headers,
                        media_type="application/json")

    async def answer(self, request: Request, expand: Callable[[ModelInfo], ItemT],
                     generate: Callable[[BackendT, ItemT, float], Awaitable[ResultT]],
                     render: Callable[[ModelInfo, ResultT], Rendered]) -> Response:
        """`expand(info)`: the item (errors name their field); `generate(backend, item, timeout)`: its result;
        `render(info, result)`: what to answer."""
        request_id = self.request_id_of(request)
        try:
            info, result = await generate_one(self.backend, self.modality, expand, generate,
                                              lambda: self.deadline_of(request), self.stats, self._seen)
        except Exception as e:
            return self.error_response(e, request_id)
        data, media_type, headers = render(info, result)
        return Response(data, media_type=media_type, headers={"X-Request-Id": request_id, **headers})
