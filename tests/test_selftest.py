"""The start-up self-test of the private library APIs the storage and worker hot paths use: it passes
on the locked versions, and fails loudly, naming the library, when one of them is gone."""
from __future__ import annotations

import aiosqlite
import pytest

from storage import prepared
from storage.selftest import LibraryInternalsChanged, check_aiosqlite, check_sqlalchemy, check_storage_internals
from workers.arq_worker import check_arq_internals

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_the_locked_versions_pass():
    await check_storage_internals()
    check_arq_internals()


async def test_aiosqlite_without_its_thread_hand_off_is_refused(monkeypatch):
    monkeypatch.delattr(aiosqlite.Connection, "_execute")
    with pytest.raises(LibraryInternalsChanged, match="aiosqlite.*_execute"):
        await check_aiosqlite()


def test_sqlalchemy_without_the_compiled_processors_is_refused(monkeypatch):
    original = prepared._Compiled.__init__

    def renamed(self, statement, dialect):  # as if SQLAlchemy renamed `_bind_processors`
        compiled = statement.compile(dialect=dialect)
        del compiled.__dict__["_bind_processors"]
        return original(self, type("Renamed", (), {"compile": lambda _self, dialect: compiled})(), dialect)

    monkeypatch.setattr(prepared._Compiled, "__init__", renamed)
    with pytest.raises(LibraryInternalsChanged, match="SQLAlchemy"):
        check_sqlalchemy()


def test_arq_renaming_its_in_progress_key_is_refused(monkeypatch):
    import arq.worker

    monkeypatch.setattr(arq.worker, "in_progress_key_prefix", "arq:running:")
    with pytest.raises(RuntimeError, match="in_progress_key_prefix"):
        check_arq_internals()
