"""Service errors and their one mapping onto HTTP (and gRPC) answers, shared by every ingress."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass


class ServiceError(Exception):
    """Base of the errors a client may see."""

    code = "internal_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidRequest(ServiceError):
    """An invalid field, unknown class or model, n too big (422)."""

    code = "invalid_request"


class MalformedRequest(ServiceError):
    """A body that is not JSON (400)."""

    code = "malformed_request"


class QueueFull(ServiceError):
    """The generator's queue is at its configured maximum (429 with Retry-After)."""

    code = "queue_full"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ServiceError):
    code = "deadline_exceeded"


class NotReady(ServiceError):
    code = "not_ready"


class NotDeployed(ServiceError):
    """No model of the asked modality is deployed (speech and video until their generators exist)."""

    code = "not_deployed"


class InternalError(ServiceError):
    code = "internal_error"


@dataclass(frozen=True)
class ErrorAnswer:
    http_status: int
    grpc_status: str  # grpc.StatusCode name
    reason: str  # label of djepa_rejected_total
    body: bytes
    headers: dict[str, str]


# condition -> (HTTP, gRPC, reason): the table of service.md
_TABLE: dict[type[ServiceError], tuple[int, str, str]] = {
    MalformedRequest: (400, "INVALID_ARGUMENT", "invalid"),
    InvalidRequest: (422, "INVALID_ARGUMENT", "invalid"),
    QueueFull: (429, "RESOURCE_EXHAUSTED", "queue_full"),
    DeadlineExceeded: (504, "DEADLINE_EXCEEDED", "deadline"),
    NotReady: (503, "UNAVAILABLE", "not_ready"),
    NotDeployed: (501, "UNIMPLEMENTED", "not_deployed"),
    InternalError: (500, "INTERNAL", "internal"),
}


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def to_answer(exc: BaseException, request_id: str) -> ErrorAnswer:
    """The answer for `exc`. Anything not a ServiceError is a 500 whose message hides the cause
    (the caller logs it with `request_id`)."""
    if not isinstance(exc, ServiceError):
        exc = InternalError(f"internal error (request id {request_id})")
    http, grpc, reason = next(v for k, v in _TABLE.items() if isinstance(exc, k))
    error: dict[str, object] = {"code": exc.code, "message": exc.message, "request_id": request_id}
    if exc.field is not None:
        error["field"] = exc.field
    headers = {"X-Request-Id": request_id}
    if isinstance(exc, QueueFull):
        headers["Retry-After"] = str(exc.retry_after_s)
    return ErrorAnswer(http, grpc, reason, json.dumps({"error": error}).encode(), headers)
