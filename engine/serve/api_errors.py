"""OpenAI-style error bodies: every failure a client can cause gets one, never a traceback.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "messages", "code": "empty_messages"}}
"""

from __future__ import annotations

from typing import Optional

# status -> the OpenAI error "type" clients switch on
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
               500: "server_error", 503: "server_error"}


class ApiError(Exception):
    """An error answered to the client with `status` and an OpenAI-style body."""

    def __init__(self, status: int, message: str, code: Optional[str] = None, param: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def body(self) -> dict:
        """The JSON body OpenAI's API (and so its clients) use for errors."""
        return error_body(self.status, self.message, self.code, self.param)


def error_body(status: int, message: str, code: Optional[str] = None, param: Optional[str] = None) -> dict:
    """{"error": {...}} for `status`."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}
