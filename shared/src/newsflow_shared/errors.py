"""How a handler tells the runtime what became of a message, besides returning its outputs; and the
error every wait raises once the service is shutting down."""

from __future__ import annotations


class PermanentError(Exception):
    """Input that can never succeed (not HTML, too large, a mapping error): dead-lettered at once."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class InvalidMessage(PermanentError):
    """The entry does not hold a valid message of the stream's model: no retry can fix it."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid-message", message)


class Deferred(Exception):
    """Not now, and not a failure: the entry goes back to the end of its stream (a busy host's page).

    Unlike a failure it counts no delivery, so a page that waits its turn is never dead-lettered for it.
    """


class Stopping(Exception):
    """Raised while waiting (for room downstream, for a busy server) once the service is shutting down:
    the input stays pending for redelivery."""
