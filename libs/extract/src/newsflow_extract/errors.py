"""Why a page could not become an article.

The reason strings are the dead-letter reasons operators filter on (`newsflow dlq`), so they are a
small fixed vocabulary rather than free text.
"""

from __future__ import annotations

from typing import Literal

Reason = Literal["timeout", "too-large", "no-content", "not-an-article", "binary", "broken-html"]


class ExtractionError(Exception):
    """Raised by the extraction when retrying the same page can never succeed.

    A plain exception with two string arguments so that it crosses the worker-process boundary
    (pickling) intact; the service turns it into the runtime's PermanentError.
    """

    def __init__(self, reason: Reason, message: str = "") -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}" if self.message else self.reason
