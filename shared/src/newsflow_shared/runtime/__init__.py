"""The stream runtime every service runs on (see docs/ARCHITECTURE.md).

- `service`: a process — consumers, tasks, lifespan, health and metrics, graceful stop (FastStream app);
- `delivery`: one message — publish its outputs, then acknowledge, dead-letter, defer or leave pending;
- `publisher`: appends — backpressure, at most once per key, capped notification streams;
- `housekeeping`: Redis — clients, consumer groups, backlog, safe trimming, stale consumers;
- `codec`: the wire format of an entry;
- `context`: `Context`, FastStream's dependency injection without a thread hop per message.
"""

from newsflow_shared.errors import Deferred, InvalidMessage, PermanentError, Stopping
from newsflow_shared.runtime.codec import DATA_FIELD, DATA_KEY, decode, encode
from newsflow_shared.runtime.context import Context
from newsflow_shared.runtime.housekeeping import (
    ensure_groups,
    make_redis,
    remove_stale_consumers,
    safe_trim,
    stream_backlog,
)
from newsflow_shared.runtime.publisher import Publisher
from newsflow_shared.runtime.service import Instance, Runtime, Service, ServiceDefinitionError, load_settings

__all__ = [
    "DATA_FIELD",
    "DATA_KEY",
    "Context",
    "Deferred",
    "Instance",
    "InvalidMessage",
    "PermanentError",
    "Publisher",
    "Runtime",
    "Service",
    "ServiceDefinitionError",
    "Stopping",
    "decode",
    "encode",
    "ensure_groups",
    "load_settings",
    "make_redis",
    "remove_stale_consumers",
    "safe_trim",
    "stream_backlog",
]
