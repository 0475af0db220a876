"""A mapping bounded by entries and by bytes, least recently used out first: caches whose keys come
from clients (API keys) must not grow with what clients send."""
from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Hashable, Iterator, TypeVar

V = TypeVar("V")
_OVERHEAD = 200  # per entry: the dict slot, the key and value objects (measured ~180 bytes for a str key and a small tuple)


def _size(value) -> int:
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, tuple):
        return sum(_size(v) for v in value)
    return 8


class LRU(Generic[V]):
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self.bytes = 0

    def get(self, key: Hashable) -> V | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        self._items.move_to_end(key)
        return entry[0]

    def __setitem__(self, key: Hashable, value: V) -> None:
        self.pop(key)
        cost = _OVERHEAD + _size(key) + _size(value)
        self._items[key] = (value, cost)
        self.bytes += cost
        while self._items and (len(self._items) > self.max_entries or self.bytes > self.max_bytes):
            _, (_, dropped) = self._items.popitem(last=False)
            self.bytes -= dropped

    def pop(self, key: Hashable, default: V | None = None) -> V | None:
        entry = self._items.pop(key, None)
        if entry is None:
            return default
        self.bytes -= entry[1]
        return entry[0]

    def items(self) -> Iterator[tuple[Hashable, V]]:
        return ((key, value) for key, (value, _) in list(self._items.items()))

    def __len__(self) -> int:
        return len(self._items)
