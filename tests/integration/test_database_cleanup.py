"""A test's database goes afterwards even when a process died inside a transaction.

The chaos tests SIGKILL services that may be in the middle of a transaction; the
transaction stays open on the server, and a drop of the database behind it never ended
(it hung a whole CI run). ``support.remove_database`` is what the ``store`` fixture
runs after each test.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid

from alimi.store import Store
from support import remove_database

DIES_IN_A_TRANSACTION = textwrap.dedent(
    """
    import os, sys
    import pymongo
    client = pymongo.MongoClient(sys.argv[1])
    db = client[sys.argv[2]]
    db.counters.insert_one({"_id": "n", "sent": 0})
    session = client.start_session()
    session.start_transaction()
    db.counters.update_one({"_id": "n"}, {"$inc": {"sent": 1}}, session=session)
    db.attempts.insert_one({"_id": "a1"}, session=session)
    os._exit(0)  # as SIGKILL would: no abort, no endSessions
    """
)


async def test_a_database_written_by_a_process_killed_mid_transaction_is_still_dropped(
    mongo_url: str,
) -> None:
    name = f"t{uuid.uuid4().hex[:10]}"
    dies = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DIES_IN_A_TRANSACTION, mongo_url, name
    )
    assert await asyncio.wait_for(dies.wait(), timeout=60) == 0

    store = Store(mongo_url, name)
    try:
        await asyncio.wait_for(remove_database(store.client, name), timeout=30)

        assert name not in await store.client.list_database_names()
        # The server writes again at once: nothing is left waiting behind the transaction.
        await asyncio.wait_for(store.db.counters.insert_one({"_id": "n"}), timeout=10)
        await remove_database(store.client, name)
    finally:
        await store.close()
