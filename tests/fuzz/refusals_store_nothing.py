"""Schemathesis hooks: a refused request stores nothing.

Loaded through :mod:`tests.fuzz.hooks`. Before each call the
row count of every table of the test database is taken (``ROWS_DB``, the live server's
database); after a refusal (400, 401, 403, 404, 405, 413, 415) every count must be the same:
validation happens before the first side effect. Counts catch rows added or removed, the
side effects refusals had (a job started before ``?wait=abc`` was refused, a subject made
before its photo was found unreadable).
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
import schemathesis

REFUSALS = {400, 401, 403, 404, 405, 413, 415}
# Rows that a refused request may leave: the log of failed logins and bad tokens
# (throttling counts them), and sessions.
IGNORED = {"django_session", "accounts_failedattempt"}
_before: dict[int, dict[str, int]] = {}


def _counts() -> dict[str, int]:
    with psycopg.connect(os.environ["ROWS_DB"], autocommit=True) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            if name not in IGNORED
        ]
        counts = {}
        for table in tables:
            row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: Any) -> None:
    if "ROWS_DB" in os.environ:  # PostgreSQL only: the counts read the live database
        _before[id(case)] = _counts()


@schemathesis.check
def refusals_store_nothing(ctx: Any, response: Any, case: Any) -> None:
    before = _before.pop(id(case), None)
    if before is None or response.status_code not in REFUSALS:
        return
    after = _counts()
    changed = {t: (before.get(t, 0), n) for t, n in after.items() if before.get(t, 0) != n}
    if changed:
        raise AssertionError(
            f"{response.status_code} answered, yet rows changed (before, after): {changed}"
        )
