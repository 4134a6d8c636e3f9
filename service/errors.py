"""Service errors and their one mapping onto HTTP (and gRPC) answers, shared by every ingress."""

from __future__ import annotations

import json
import re
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
    """A body that is not JSON (400), or not UTF-8."""

    code = "malformed_request"


class PayloadTooLarge(ServiceError):
    """A body over the configured `max_body_bytes` (413)."""

    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    """A request body whose content type is not JSON (415)."""

    code = "unsupported_media_type"


class Unauthenticated(ServiceError):
    """A missing or wrong API key (401 with `WWW-Authenticate: Bearer`). One message for every
    cause: the answer never says which part failed."""

    code = "unauthorized"

    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(message)


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
    """No model of the asked modality is deployed (an app without a `speech` or `video` block)."""

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
    PayloadTooLarge: (413, "INVALID_ARGUMENT", "invalid"),  # gRPC: Ray's proxy bounds message size itself
    UnsupportedMediaType: (415, "INVALID_ARGUMENT", "invalid"),
    Unauthenticated: (401, "UNAUTHENTICATED", "unauthorized"),
    QueueFull: (429, "RESOURCE_EXHAUSTED", "queue_full"),
    DeadlineExceeded: (504, "DEADLINE_EXCEEDED", "deadline"),
    NotReady: (503, "UNAVAILABLE", "not_ready"),
    NotDeployed: (501, "UNIMPLEMENTED", "not_deployed"),
    InternalError: (500, "INTERNAL", "internal"),
}


# Ray's errors of a replica that died or cannot be reached (by class name: this file imports no Ray):
# the request failed fast and may be retried once Ray has restarted the replica
RAY_UNAVAILABLE = frozenset({"RayActorError", "ActorDiedError", "ActorUnavailableError", "ActorUnschedulableError",
                             "WorkerCrashedError", "NodeDiedError", "DeploymentUnavailableError"})


def translate(exc: BaseException) -> BaseException:
    """`exc` as the service error it stands for: a ServiceError raised in another Ray process (wrapped
    in Ray's RayTaskError, which keeps it as `cause`) is itself; Ray's dead-or-unreachable replica
    errors are NotReady (503 / UNAVAILABLE); anything else is unchanged."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ServiceError):
        return cause
    if any(c.__name__ in RAY_UNAVAILABLE for c in type(exc).__mro__):
        return NotReady("the generator replica is unavailable (it is being restarted); retry shortly")
    return exc


_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:|\.{1,2}|~)?(?:[/\\][^\s'\"`,;:()\[\]{}<>/\\]+)+[/\\]?")


def redact_paths(text: str, limit: int = 300) -> str:
    """`text` with filesystem paths replaced by `<path>` and cut to `limit` characters (for reasons
    that reach clients, such as a model that failed to load)."""
    return _PATH.sub("<path>", text)[:limit]


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def to_answer(exc: BaseException, request_id: str) -> ErrorAnswer:
    """The answer for `exc`. Anything not a ServiceError is a 500 whose message hides the cause
    (the caller logs it with `request_id`)."""
    exc = translate(exc)
    if not isinstance(exc, ServiceError):
        exc = InternalError(f"internal error (request id {request_id})")
    http, grpc, reason = next(v for k, v in _TABLE.items() if isinstance(exc, k))
    error: dict[str, object] = {"code": exc.code, "message": exc.message, "request_id": request_id}
    if exc.field is not None:
        error["field"] = exc.field
    headers = {"X-Request-Id": request_id}
    if isinstance(exc, QueueFull):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return ErrorAnswer(http, grpc, reason, json.dumps({"error": error}).encode(), headers)
