"""Optuna's study storage: open an RDB URL safely when many workers start at once, and print it
without its secrets.

Optuna creates its tables the first time a storage URL is opened. Workers started together on an
empty PostgreSQL database would all run that `CREATE TABLE`/`CREATE TYPE` at once, and all but
one die on a duplicate key in PostgreSQL's catalogue. A session-level advisory lock makes the
creation one worker at a time; the others then find the tables and go on.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from src import UserError
from src.outputs.files import mask_secrets, without_secrets_of

HEARTBEAT_S = 5  # a trial whose process died is marked failed after GRACE_S without a beat
GRACE_S = 20
SCHEMA_LOCK = zlib.crc32(b"digit_recogniser: optuna schema")  # any fixed 64-bit key


def with_driver(url: str) -> str:
    """`url` with psycopg 3 named as the driver of a plain `postgresql://` URL when psycopg2 is
    not installed: SQLAlchemy 2.1 picks psycopg 3 for it by itself, 2.0 (the Kaggle notebook
    image's) looks for psycopg2."""
    try:
        parsed = make_url(url)
    except Exception:  # not a URL: open_storage says so
        return url
    if parsed.drivername != "postgresql" or importlib.util.find_spec("psycopg2") is not None:
        return url
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def sql_engine(url: str) -> sqlalchemy.Engine:
    """An engine on `url` (the driver named as `with_driver` names it) that keeps no idle
    connections: each one is closed when its block ends."""
    return sqlalchemy.create_engine(with_driver(url), poolclass=sqlalchemy.pool.NullPool)


@contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """Hold a database-wide lock while Optuna creates its schema (PostgreSQL; else a no-op).

    SQLite serialises writers on its own, and a file database is created by one machine.
    """
    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = sql_engine(url)
    try:
        with engine.connect() as connection:
            key = {"key": SCHEMA_LOCK}
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)
    finally:
        engine.dispose()  # the lock's connection is closed, not pooled


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at `url`, its tables created once however many workers start.

    A URL that cannot be opened (bad syntax, missing driver, unreachable server, wrong password)
    is a UserError naming `--storage`, with the password masked.
    """
    driven = with_driver(url)
    try:
        with schema_lock(driven), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
            return optuna.storages.RDBStorage(
                driven, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
    except Exception as e:  # bad URL, missing driver, unreachable server
        reason = without_secrets_of(url, str(e).splitlines()[0][:200])
        raise UserError(
            f"--storage {mask_secrets(url)}: cannot open ({reason});"
            " pass an SQLAlchemy URL such as sqlite:///runs/optuna.db"
        ) from None


def check_writable(url: str) -> None:
    """UserError unless the storage at `url` takes a write: a table of this process's own is
    made and dropped again (one transaction on PostgreSQL; SQLite's driver commits each)."""
    table = f"digit_recogniser_probe_{os.getpid()}_{secrets.token_hex(4)}"
    engine = sql_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE TABLE {table} (x INTEGER)"))
            connection.execute(sqlalchemy.text(f"DROP TABLE {table}"))
    except sqlalchemy.exc.SQLAlchemyError as e:
        reason = without_secrets_of(url, str(e.orig or e).splitlines()[0][:200])
        raise UserError(
            f"--storage {mask_secrets(url)}: cannot write there ({reason}); the search records"
            " its trials in it: give a writable storage"
        ) from None
    finally:
        engine.dispose()
