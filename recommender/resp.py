"""HSETs of many fixed-width values as ready RESP bytes, built by a few numpy copies.

redis-py packs each argument in Python (about 4 CPU-µs per member written, two arguments each); here
every (field, value) pair of a group of fields of one length is one row of a uint8 matrix: the
`$len` headers are constants, the names and values whole-column copies.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_CRLF = np.frombuffer(b"\r\n", dtype=np.uint8)


def _constant(text: bytes) -> NDArray[np.uint8]:
    return np.frombuffer(text, dtype=np.uint8)


def hsets(
    keys: list[bytes], group: NDArray[np.int64], fields: list[bytes], values: NDArray[np.uint8]
) -> list[bytes]:
    """`HSET keys[g] field value ...` for every group g present, field i and the row `values[i]`
    going to `keys[group[i]]`: one RESP command per group, in key order. Fields of one byte length
    are laid out together, so a few lengths cost a few passes."""
    width = values.shape[1]
    lengths = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    order = np.argsort(lengths * len(keys) + group, kind="stable")
    bounds = np.flatnonzero(np.diff(lengths[order])) + 1
    value_head = _constant(b"\r\n$%d\r\n" % width)
    pieces: list[list[memoryview]] = [[] for _ in keys]
    for run in np.split(order, bounds):
        if len(run) == 0:
            continue
        length = len(fields[run[0]])
        head = _constant(b"$%d\r\n" % length)
        at = np.cumsum([0, len(head), length, len(value_head), width, len(_CRLF)])
        rows = np.empty((len(run), int(at[-1])), dtype=np.uint8)
        rows[:, at[0] : at[1]] = head
        names = b"".join([fields[i] for i in run.tolist()])
        rows[:, at[1] : at[2]] = np.frombuffer(names, dtype=np.uint8).reshape(len(run), length)
        rows[:, at[2] : at[3]] = value_head
        rows[:, at[3] : at[4]] = values[run]
        rows[:, at[4] : at[5]] = _CRLF
        ends = np.searchsorted(group[run], np.arange(len(keys) + 1)) * rows.shape[1]
        flat = rows.reshape(-1).data
        for g in np.flatnonzero(np.diff(ends)).tolist():
            pieces[g].append(flat[ends[g] : ends[g + 1]])
    counts = np.bincount(group, minlength=len(keys))
    return [
        b"".join([b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (2 + 2 * counts[g], len(key), key), *pieces[g]])
        for g, key in enumerate(keys)
        if counts[g]
    ]
