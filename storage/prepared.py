"""Statements run on every request, compiled once for SQLite and executed on the raw driver.

SQLAlchemy's execution machinery costs more than SQLite's own indexed lookup; for the few statements
on the hot paths (id lookup, list pages) a `Prepared` keeps the compiled SQL, the parameter order and
the result processors (JSON columns), and returns plain named tuples. Other databases (PostgreSQL)
run `Prepared.statement` through SQLAlchemy as usual.
"""
from __future__ import annotations

import sqlite3
from collections import namedtuple
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable


class _Compiled:
    __slots__ = ("sql", "names", "defaults", "bind_processors", "row_type", "result_processors")

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        # Values SQLAlchemy bound itself (e.g. SQLite's "OFFSET 0" after a LIMIT).
        self.defaults = compiled.params
        self.bind_processors = compiled._bind_processors
        columns = compiled._result_columns
        self.row_type = namedtuple("Row", [column.keyname for column in columns], rename=True)
        processors = [column.type._cached_result_processor(dialect, None) for column in columns]
        self.result_processors = processors if any(processors) else None

    def parameters(self, params: dict[str, Any]) -> tuple:
        values = []
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            processor = self.bind_processors.get(name)
            values.append(processor(value) if processor is not None else value)
        return tuple(values)

    def rows(self, raw: list[tuple]) -> list:
        make = self.row_type._make
        processors = self.result_processors
        if processors is None:
            return [make(row) for row in raw]
        return [make(p(v) if p is not None else v for p, v in zip(processors, row)) for row in raw]


class Prepared:
    __slots__ = ("statement", "_compiled")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: _Compiled | None = None

    def execute_sqlite(self, connection: sqlite3.Connection, dialect: Dialect, params: dict[str, Any]) -> int:
        """A write; returns the number of rows it changed."""
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = _Compiled(self.statement, dialect)
        cursor = connection.execute(compiled.sql, compiled.parameters(params))
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    def run_sqlite(self, connection: sqlite3.Connection, dialect: Dialect, params: dict[str, Any], one: bool, plain: bool = False):
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = _Compiled(self.statement, dialect)
        cursor = connection.execute(compiled.sql, compiled.parameters(params))
        try:
            raw = [cursor.fetchone()] if one else cursor.fetchall()
        finally:
            cursor.close()
        if one:
            return None if raw[0] is None else compiled.rows(raw)[0]
        if plain and compiled.result_processors is None:
            return raw  # plain tuples, in the columns' order: no named row per row
        return compiled.rows(raw)
