"""The mutable state of one fake server, shared by its connection threads.

Each piece has its own short lock; no lock is held while sleeping or doing I/O.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from typing import Any

from openrouter_attribution.testing.catalog import Catalog
from openrouter_attribution.testing.faults import FaultQueue
from openrouter_attribution.testing.keys import KeyStore
from openrouter_attribution.testing.recording import RequestLog

__all__ = ["DEFAULT_MANAGEMENT_KEY", "PromptCache", "ServerState"]

DEFAULT_MANAGEMENT_KEY = "sk-or-fake-management-key"
"""The management key of a fake server (creates keys; cannot call models)."""


class PromptCache:
    """Simulated sticky prompt caching, keyed by end-user.

    OpenRouter routes requests of one ``user`` (or ``session_id``) to the same
    provider so that prompt caches hit (https://openrouter.ai/docs/features/prompt-caching).
    Here a request's leading messages count as cached when the same key (the
    server uses ``user`` and the model) already sent that exact message prefix.
    Requests without ``user`` share the account-level identity ``""``. The cache
    is bounded (least recently used prefixes are forgotten first).
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max_entries = max_entries
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def lookup_and_store(self, key: str, messages: list[Any]) -> int:
        """Return how many leading messages were already cached under ``key``, then cache every prefix."""
        keys = []
        digest = hashlib.sha256(key.encode())
        for message in messages:
            digest.update(json.dumps(message, sort_keys=True, ensure_ascii=False).encode())
            keys.append(digest.copy().hexdigest())
        with self._lock:
            cached = 0
            for length, key in enumerate(keys, start=1):
                if key in self._seen:
                    cached = length
                    self._seen.move_to_end(key)
                else:
                    self._seen[key] = None
            while len(self._seen) > self._max_entries:
                self._seen.popitem(last=False)
        return cached

    def clear(self) -> None:
        """Forget every cached prefix."""
        with self._lock:
            self._seen.clear()


class ServerState:
    """Everything a fake server remembers between requests.

    Attributes:
        api_key: The only accepted bearer token.
        latency: Seconds to wait before answering each chat request.
        log: Every request received.
        faults: Queued faults.
        cache: Simulated prompt cache.
        catalog: The models the server knows (``GET /models``; every request is checked against it).
        generation_delay: Seconds after a generation before ``GET /generation`` knows it (404 until then).
        generation_latency: Seconds to wait before answering each ``GET /generation``.
    """

    def __init__(
        self, api_key: str, latency: float, catalog: Catalog | None = None, management_key: str = DEFAULT_MANAGEMENT_KEY
    ) -> None:
        self.api_key = api_key
        self.keys = KeyStore(management_key)
        """The keys the management API created, and its clock."""
        self.catalog = catalog if catalog is not None else Catalog()
        self.latency = latency
        self.initial_latency = latency
        self.log = RequestLog()
        self.faults = FaultQueue()
        self.cache = PromptCache()
        self._lock = threading.Lock()
        self._generations: dict[str, dict[str, Any]] = {}
        self._visible_at: dict[str, float] = {}
        self.generation_delay = 0.0
        self.generation_latency = 0.0
        self._connections = 0
        self._internal_errors: list[str] = []
        self._reset_at = 0.0

    def store_generation(self, generation: dict[str, Any], *, received: float) -> None:
        """Remember a generation for ``GET /generation`` (visible after ``generation_delay`` seconds).

        ``received`` is when its request arrived (``RecordedRequest.time``): a request that arrived before
        the last :meth:`reset` and finished after it (a client that gave up on a slow answer) belongs to
        what the reset forgot, so its generation is not stored.
        """
        with self._lock:
            if received < self._reset_at:
                return
            self._generations[generation["id"]] = generation
            self._visible_at[generation["id"]] = time.monotonic() + self.generation_delay

    def generation(self, generation_id: str) -> dict[str, Any] | None:
        """Return the stored generation ``generation_id`` once it is visible, or ``None``."""
        with self._lock:
            if self._visible_at.get(generation_id, 0.0) > time.monotonic():
                return None
            return self._generations.get(generation_id)

    def forget_generation(self, generation_id: str) -> bool:
        """Forget a generation (``GET /generation`` answers 404 for it); returns whether it was known."""
        with self._lock:
            self._visible_at.pop(generation_id, None)
            return self._generations.pop(generation_id, None) is not None

    def cancel_generation(self, generation_id: str | None) -> None:
        """Mark a generation cancelled (its stream did not reach the client whole)."""
        with self._lock:
            generation = self._generations.get(generation_id or "")
            if generation is not None:
                generation["cancelled"] = True

    def generations(self) -> dict[str, dict[str, Any]]:
        """Return a copy of every stored generation by id."""
        with self._lock:
            return dict(self._generations)

    def total_cost(self) -> float:
        """Return the summed cost of every stored generation."""
        with self._lock:
            return sum(float(g["total_cost"]) for g in self._generations.values())

    def count_connection(self) -> None:
        """Count one accepted TCP connection."""
        with self._lock:
            self._connections += 1

    @property
    def connections(self) -> int:
        """TCP connections accepted since start or the last reset."""
        with self._lock:
            return self._connections

    def add_internal_error(self, text: str) -> None:
        """Remember an unexpected exception raised while serving a request."""
        with self._lock:
            self._internal_errors.append(text)

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions (a bug in the fake server, not in the client)."""
        with self._lock:
            return list(self._internal_errors)

    def reset(self) -> None:
        """Clear records, generations, queued faults, the prompt cache, keys, external users and counters;
        restore latency, the generation delay and latency, and the keys' clock."""
        self.log.clear()
        self.keys.reset()
        self.faults.clear()
        self.cache.clear()
        with self._lock:
            self._reset_at = time.time()
            self._generations.clear()
            self._visible_at.clear()
            self.generation_delay = self.generation_latency = 0.0
            self._connections = 0
            self._internal_errors.clear()
        self.latency = self.initial_latency
