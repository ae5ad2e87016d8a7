"""How Elasticsearch's ingest pipeline renders values, reproduced exactly.

Elastic's CloudTrail pipeline parses the event with the ``json`` processor (every object
becomes a ``java.util.HashMap``) and then stores some objects as strings with Painless
``toString()``: ``{key=value, key2=value2}`` with the keys in HashMap iteration order and
Java number formatting.  Mustache templates (``'{{a.b}}'``) render values the same way.
Matching Elastic field for field means reproducing both.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from operator import itemgetter
from typing import Any

from .common import MISSING

# A JSON object parsed by Jackson into a HashMap starts with 16 buckets and doubles
# whenever it holds more than 0.75 * capacity entries.
_INITIAL_CAPACITY = 16
_LOAD_FACTOR = 0.75


def java_string_hash(text: str) -> int:
    """``String.hashCode()``: s[0]*31^(n-1) + ... over UTF-16 code units, as a 32-bit int."""
    h = 0
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] | data[i + 1] << 8)) & 0xFFFFFFFF
    return h


def hashmap_capacity(size: int) -> int:
    if size <= 12:
        return _INITIAL_CAPACITY
    capacity = _INITIAL_CAPACITY
    while size > capacity * _LOAD_FACTOR:
        capacity *= 2
    return capacity


def hashmap_order(keys: list[str], capacity: int | None = None) -> list[str]:
    """Iteration order of a ``HashMap`` into which ``keys`` were put in this order.

    Buckets are ``(h ^ (h >>> 16)) & (capacity - 1)``; within a bucket entries keep their
    insertion order (resizing preserves it).  Bucket treeification (8+ colliding keys) is
    not modelled.
    """
    if capacity is None:
        capacity = hashmap_capacity(len(keys))
    mask = capacity - 1

    def bucket(key: str) -> int:
        h = java_string_hash(str(key))
        return (h ^ (h >> 16)) & mask

    return [key for _, _, key in sorted((bucket(k), i, k) for i, k in enumerate(keys))]


def java_double(value: float) -> str:
    """``Double.toString``: plain notation between 1e-3 and 1e7, else ``d.dddE[-]n``, with
    the shortest digits that round-trip (what ``repr`` gives too)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0.0"
    _, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int)  # a finite value (NaN and infinities returned above)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + exponent  # position of the decimal point within ``digits``
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{text}"
        whole, frac = text[:point].ljust(point, "0"), text[point:]
        return f"{sign}{whole}.{frac or '0'}"
    return f"{sign}{text[0]}.{text[1:] or '0'}E{point - 1}"


def java_str(value: Any) -> str:
    """``String.valueOf(value)`` for a value parsed from JSON by Jackson into Java types."""
    cls = value.__class__
    if cls is str:
        return value
    render = _RENDER.get(cls)
    if render is not None:
        return render(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, dict):
        return java_map_str(value)
    if isinstance(value, list):
        return _java_list_str(value)
    return str(value)


def _java_list_str(values: list) -> str:
    return "[" + ", ".join([java_str(v) for v in values]) + "]"


def java_map_str(mapping: dict) -> str:
    """``HashMap.toString()`` of a JSON object: ``{k=v, ...}`` in hash order.  For a
    ``Pruned`` map the capacity is the one the map grew to before keys were dropped."""
    size = getattr(mapping, "original_size", None) or len(mapping)
    capacity = _INITIAL_CAPACITY if size <= 12 else hashmap_capacity(size)
    names = tuple(mapping)
    keys = _ORDERS.get((names, capacity))
    if keys is None:
        if len(_ORDERS) >= _ORDERS_MAX:
            _ORDERS.clear()
        keys = _ORDERS[names, capacity] = hashmap_order(list(names), capacity)
    parts = []
    for k in keys:
        value = mapping[k]
        parts.append(f"{k}={value if value.__class__ is str else java_str(value)}")
    return "{" + ", ".join(parts) + "}"


_RENDER: dict[type, Callable[[Any], str]] = {
    type(None): lambda value: "null",
    bool: lambda value: "true" if value else "false",
    int: str,
    float: java_double,
    dict: java_map_str,
    list: _java_list_str,
}


# HashMap orders by key tuple: a file's records repeat a few shapes of requestParameters.
_ORDERS: dict[tuple[tuple, int], list] = {}
_ORDERS_MAX = 4096


# prune_render: by key tuple (2 keys or more), an itemgetter of the positions in HashMap
# order or _SAME; maps of up to 12 keys (16 buckets, the common case) apart, without a
# (keys, capacity) key.
_ORDERS_16: dict[tuple, Any] = {}
_POSITIONS: dict[tuple[tuple, int], Any] = {}
_SAME = object()


def clear_caches() -> None:
    _ORDERS.clear()
    _ORDERS_16.clear()
    _POSITIONS.clear()


class Pruned(dict):
    """A JSON object after empty values were dropped; remembers how many keys it had."""

    __slots__ = ("original_size",)
    original_size: int


_DROP = object()


def _shrunk(kept: dict, original_size: int) -> dict:
    """What is left of a map of ``original_size`` keys: a ``Pruned`` when its HashMap had
    grown beyond 16 buckets (its text depends on that), else the dict itself (16 either way)."""
    if original_size <= 12:
        return kept
    out = Pruned(kept)
    out.original_size = original_size
    return out


# The strings the pipeline's first script drops, like null (aws 7.x on: also "-" and "none").
EMPTY_STRINGS = frozenset(("", "-", "none"))
_EMPTY = EMPTY_STRINGS


def _prune(value: Any) -> Any:
    """``value`` without null/""/"-"/"none" values and empty containers; ``value`` itself
    (no copy) when nothing is dropped, ``_DROP`` when nothing is left."""
    cls = value.__class__
    if cls is str:
        return _DROP if value in _EMPTY else value
    if cls is int or cls is bool or cls is float:
        return value
    if value is None:
        return _DROP
    if cls is dict or (cls is not list and isinstance(value, dict)):
        if not value:
            return _DROP
        out = None
        for key, item in value.items():
            new = _prune(item)
            if out is None:
                if new is item:
                    continue
                out = {}  # first change: copy the entries kept so far
                for kept, kept_item in value.items():
                    if kept is key:
                        break
                    out[kept] = kept_item
            if new is not _DROP:
                out[key] = new
        if out is None:
            return value
        if not out:
            return _DROP
        return _shrunk(out, len(value))
    if cls is list or isinstance(value, list):
        items = list(map(_prune, value))
        if all(new is item for new, item in zip(items, value)):
            return value if value else _DROP
        items = [item for item in items if item is not _DROP]
        return items if items else _DROP
    if isinstance(value, str) and value in _EMPTY:
        return _DROP
    return value


def drop_empty(value: Any) -> Any:
    """The pipeline's first script: remove null, "", "-" and "none" values, then objects and lists left
    empty, recursively.  Returns None when nothing is left."""
    out = _prune(value)
    return None if out is _DROP else out


_DROPPED = (_DROP, None)


def prune_render(value: Any) -> tuple[Any, str | None]:
    """``(drop_empty(value), java_str(drop_empty(value)))`` in one walk (the pipeline's
    flattened objects and their text); ``(_DROP, None)`` when nothing is left."""
    cls = value.__class__
    if cls is dict:
        return _prune_render_map(value) if value else _DROPPED
    if cls is str:
        return _DROPPED if value in _EMPTY else (value, value)
    if cls is int:
        return value, str(value)
    if cls is bool:
        return value, "true" if value else "false"
    if value is None:
        return _DROPPED
    if cls is list:
        return _prune_render_list(value)
    out = _prune(value)  # anything else (floats, subclasses): the two steps
    return _DROPPED if out is _DROP else (out, java_str(out))


def _prune_render_list(value: list) -> tuple[Any, str | None]:
    items = []
    texts = []
    changed = False
    for item in value:
        kind = item.__class__
        if kind is str and item not in _EMPTY:
            items.append(item)
            texts.append(item)
            continue
        if kind is dict and item:
            new, text = _prune_render_map(item)
        else:
            new, text = prune_render(item)
        if new is not item:
            changed = True
        if new is not _DROP:
            items.append(new)
            texts.append(text)
    if not items:
        return _DROPPED
    return (items if changed else value), "[" + ", ".join(texts) + "]"


def _prune_render_map(value: dict) -> tuple[Any, str | None]:
    """``prune_render`` of a non-empty dict: its entries' ``key=text`` parts in insertion
    order, then put in HashMap order (remembered per key tuple).  A copy (``Pruned``) only
    when an entry was dropped or replaced by its own pruned copy."""
    names = []  # the keys kept, their "key=text" parts and values, in insertion order
    parts = []
    kept = []
    changed = False
    for key, item in value.items():
        kind = item.__class__
        if kind is str:
            if item in _EMPTY:
                changed = True
                continue
            parts.append(f"{key}={item}")
        elif kind is int:
            parts.append(f"{key}={item}")
        elif kind is dict:
            if not item:
                changed = True
                continue
            new, text = _prune_render_map(item)
            if new is not item:
                changed = True
                if new is _DROP:
                    continue
                item = new
            parts.append(f"{key}={text}")
        elif item is None:
            changed = True
            continue
        else:
            new, text = _prune_render_list(item) if kind is list else prune_render(item)
            if new is not item:
                changed = True
                if new is _DROP:
                    continue
                item = new
            parts.append(f"{key}={text}")
        names.append(key)
        kept.append(item)
    if not names:
        return _DROPPED
    if changed:
        out = dict(zip(names, kept))
        if len(value) > 12:
            out = _shrunk(out, len(value))
    else:
        out = value
    if len(names) == 1:
        return out, "{" + parts[0] + "}"
    size = len(value)
    if size <= 12:
        order = _ORDERS_16.get(names_ := tuple(names))
        if order is None:
            order = _order(names_, _INITIAL_CAPACITY, _ORDERS_16, names_)
    else:
        capacity = hashmap_capacity(size)
        names_ = tuple(names)
        order = _POSITIONS.get((names_, capacity))
        if order is None:
            order = _order(names_, capacity, _POSITIONS, (names_, capacity))
    if order is _SAME:
        return out, "{" + ", ".join(parts) + "}"
    return out, "{" + ", ".join(order(parts)) + "}"


def _order(names: tuple, capacity: int, cache: dict, key: Any) -> Any:
    """What puts the parts of ``names`` in HashMap order: an ``itemgetter`` of their
    positions, ``_SAME`` when that is insertion order."""
    buckets = _buckets(names, capacity)
    ranked = sorted(range(len(names)), key=lambda i: (buckets[i], i))
    order = _SAME if ranked == list(range(len(names))) else itemgetter(*ranked)
    if len(cache) >= _ORDERS_MAX:
        cache.clear()
    cache[key] = order
    return order


def _buckets(names: tuple, capacity: int) -> list[int]:
    mask = capacity - 1
    out = []
    for name in names:
        h = java_string_hash(str(name))
        out.append((h ^ (h >> 16)) & mask)
    return out


def pruned(value: Any) -> Any:
    """``drop_empty`` of one value read from the record: MISSING when nothing is left."""
    cls = value.__class__
    if cls is str:
        return MISSING if value in _EMPTY else value
    if cls is bool or cls is int or cls is float:
        return value
    out = _prune(value)
    return MISSING if out is _DROP else out
