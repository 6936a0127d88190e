"""Check that a migrated database holds each `sql/<function>.sql` file exactly as written.

Each file is run in a scratch schema of the migrated database (bodies not checked, rolled back),
and PostgreSQL's own rendering of the scratch function (`pg_get_functiondef`) must equal its
rendering of the migrated one: layout-insensitive where PostgreSQL normalises, exact everywhere else.
"""

from __future__ import annotations

import asyncpg

from services.kit.sqlfiles import sql_dir

_DEFINITION = """
SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = $1 AND p.proname = $2
"""


async def mismatched_functions(database_url: str, service: str) -> dict[str, tuple[str | None, str]]:
    """{function: (migrated definition or None, file's definition)} for each file that differs."""
    files = sorted(sql_dir(service).glob("*.sql"))
    assert files, f"{service} has no sql/*.sql files"
    conn = await asyncpg.connect(database_url)
    differ: dict[str, tuple[str | None, str]] = {}
    try:
        for path in files:
            name = path.stem
            migrated = await conn.fetchval(_DEFINITION, "public", name)
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute("CREATE SCHEMA kit_sqlfile_check; SET LOCAL search_path = kit_sqlfile_check, public;")
                await conn.execute("SET LOCAL check_function_bodies = off")
                await conn.execute(path.read_text(encoding="utf-8"))
                from_file = await conn.fetchval(_DEFINITION, "kit_sqlfile_check", name)
            finally:
                await tx.rollback()
            assert from_file is not None, f"{path} does not create a function named {name}"
            expected = from_file.replace("FUNCTION kit_sqlfile_check.", "FUNCTION public.", 1)
            if migrated != expected:
                differ[name] = (migrated, expected)
    finally:
        await conn.close()
    return differ
