"""Migrations and models agree, and the chain goes down and up again cleanly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from db.base import Base
from db.session import get_engine
from settings import to_sqlalchemy_url
from tests.celery_workers import REPO_ROOT
from tests.servers import TestServers, create_database, drop_database, replace_database


def _index_names(differences: list[Any], operation: str) -> set[str]:
    return {d[1].name for d in differences if isinstance(d, tuple) and d[0] == operation}


def significant(differences: list[Any]) -> list[Any]:
    """Alembic cannot compare expression indexes: one present on both sides shows up as a
    remove plus an add of the same name. Those pairs are dropped; everything else counts."""
    compared_by_name = _index_names(differences, "add_index") & _index_names(
        differences, "remove_index"
    )
    return [
        d
        for d in differences
        if not (
            isinstance(d, tuple)
            and d[0] in ("add_index", "remove_index")
            and d[1].name in compared_by_name
        )
    ]


def test_the_models_match_the_migrated_schema() -> None:
    import db.models  # noqa: F401  (every table on Base.metadata)

    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert significant(differences) == []


@pytest.fixture
def fresh_database_url(test_servers: TestServers) -> Iterator[str]:
    admin_url, _ = test_servers.admin_database
    name = f"taxlien_migrations_{uuid.uuid4().hex[:8]}"
    create_database(admin_url, name)
    yield replace_database(admin_url, name)
    drop_database(admin_url, name)


def test_every_migration_downgrades_and_upgrades_again(fresh_database_url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = fresh_database_url
    config.attributes["configure_logging"] = False

    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = create_engine(to_sqlalchemy_url(fresh_database_url))
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        engine.dispose()
        command.upgrade(config, "head")
        assert "parcels" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
