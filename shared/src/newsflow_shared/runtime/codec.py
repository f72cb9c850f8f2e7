"""The wire format of every stream entry: one field holding the model's JSON.

The field is FastStream's own (`__data__`), so its subscribers read our entries as they are; the value
is the bare model JSON, readable with `redis-cli XRANGE` and replayable as is. Entries written before
the runtime used FastStream's field name (`data`) are still read, so old dead letters replay.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, TypeVar

from faststream.redis.message import DATA_KEY
from faststream.redis.parser.message import MessageFormat
from pydantic import BaseModel, ValidationError

from newsflow_shared.errors import InvalidMessage

M = TypeVar("M", bound=BaseModel)
DATA_FIELD = DATA_KEY.encode()  # the field as redis-py returns it
_LEGACY_PREFIX = b'{"data":'  # FastStream's rendering of a `data`-field entry; no model has that field


def encode(model: BaseModel) -> dict[bytes, bytes]:
    return {DATA_FIELD: model.model_dump_json().encode("utf-8")}


def decode(model: type[M], body: bytes) -> M:
    """The message in an entry's body, or InvalidMessage saying why not."""
    if body.startswith(_LEGACY_PREFIX):
        # Not a legacy entry after all: validation below says what is wrong.
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            body = json.loads(body)["data"].encode("utf-8")
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise InvalidMessage(f"not a valid {model.__name__}: {_summary(e)}") from e


def _summary(e: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()[:3]]
    more = f" (+{e.error_count() - 3} more)" if e.error_count() > 3 else ""
    return "; ".join(parts) + more


class BareJson(MessageFormat):
    """FastStream message format for entries that carry the body alone, without FastStream's envelope."""

    @classmethod
    async def encode(cls, **kwargs: Any) -> bytes:  # type: ignore[override]
        raise NotImplementedError("Newsflow publishes with newsflow_shared.runtime.Publisher")

    @classmethod
    def parse(cls, data: bytes) -> tuple[bytes, dict[str, Any]]:
        return data, {}
