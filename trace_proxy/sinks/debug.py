"""`--debug`: print every accepted span as one JSON line on stdout."""
from __future__ import annotations

import json
import sys
import threading

from trace_proxy.sinks import Batch


class DebugSink:
    name = "debug"

    def __init__(self, stream=None):
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def accept(self, batch: Batch) -> None:
        lines = "".join(json.dumps(span.v2, default=str) + "\n" for span in batch.spans)
        with self._lock:
            self._stream.write(lines)
            self._stream.flush()

    def close(self) -> None:
        pass
