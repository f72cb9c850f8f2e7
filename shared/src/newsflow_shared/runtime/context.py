"""`Context`: FastStream's dependency from the app's context, resolved on the event loop.

fast_depends runs a custom field's synchronous `use` in a worker thread (anyio's `to_thread`), once per
message and per `Context(...)` parameter: a thread hop and two hand-overs of the GIL for a dictionary
look-up. On a busy machine each hop waits for the thread and the GIL to come back; the notifier, which
handles two messages per alert, spent about a fifth of its samples in those hand-overs (py-spy, the alert
burst of benchmarks/bench_notifier.py). An async `use` is awaited where it is, on the loop.
"""

from __future__ import annotations

from typing import Any

# The class behind `faststream.Context(...)` (a factory function); internal to FastStream, so the test
# tests/shared/test_runtime_unit.py checks both that it still resolves and where.
from faststream._internal.context import Context as _FastStreamContext


class Context(_FastStreamContext):
    """Used as `faststream.Context`: `Annotated[Planner, Context("planner")]`."""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)
