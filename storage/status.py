"""The compare-and-set on a row's status, for objects two parties write (the API and a job).

`UPDATE table SET status, … WHERE id = ? AND status IN (expected…)`: run first in a guarded
`Database.write`, it changes one row or none, so a job's write never lands on an object the API has just
moved (a cancel), and the loser re-reads and reacts. The expected statuses are a fixed number of
equalities rather than an expanding IN list, which a `Prepared` statement cannot hold; fewer are padded
with the last.
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Table, bindparam, or_, update

from storage.prepared import Prepared

EXPECT_AT_MOST = 4


def guarded_update(table: Table, columns: Iterable[str]) -> Prepared:
    """The compare-and-set writing `status` and `columns` of one row of `table` (keyed by `id`)."""
    values = {name: bindparam("b_" + name) for name in ("status", *columns)}  # a SET column's own name is reserved
    expected = or_(*(table.c.status == bindparam(f"b_expect{i}") for i in range(EXPECT_AT_MOST)))
    return Prepared(update(table).where(table.c.id == bindparam("b_id"), expected).values(values))


def guarded_params(row_id: str, values: dict[str, Any], expect: str | Iterable[str]) -> dict[str, Any]:
    """The parameters of a `guarded_update`: the row's id, the new `values` by column (status among
    them) and the status or statuses the row must be in."""
    expected = (expect,) if isinstance(expect, str) else tuple(expect)
    if not 0 < len(expected) <= EXPECT_AT_MOST:
        raise ValueError(f"a status compare-and-set expects 1 to {EXPECT_AT_MOST} statuses, not {len(expected)}")
    params = {"b_id": row_id, **{"b_" + name: value for name, value in values.items()}}
    for i in range(EXPECT_AT_MOST):
        params[f"b_expect{i}"] = expected[min(i, len(expected) - 1)]
    return params
