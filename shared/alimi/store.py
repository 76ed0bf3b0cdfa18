"""MongoDB access on PyMongo's async API (``AsyncMongoClient``).

Collection names are constants here and nowhere else; the indexes each
collection needs are data, created idempotently at start-up by the service
that owns the collection (:meth:`Store.ensure_indexes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pymongo
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ExecutionTimeout, PyMongoError

from alimi.settings import BaseSettings

T = TypeVar("T")  # what a transaction's work returns

INCIDENTS = "incidents"
NOTICES = "notices"
SUBJECTS = "subjects"
RECEIPTS = "receipts"
OUTBOX = "outbox"
API_KEYS = "api_keys"
AUDIT = "audit"
IDEMPOTENCY = "idempotency"
# Streamed subject imports: one summary per import (versions before jobs), its rejected rows
# in pages, and the rows read but not yet applied (IMPORT_CHUNKS: a chunk of 1,000 each).
IMPORTS = "imports"
IMPORT_ERRORS = "import_errors"
IMPORT_CHUNKS = "import_chunks"
# Long work that leaves the request (imports, replays, purges, previews): state and progress.
JOBS = "jobs"
# Uploaded lists of people (an audience); the members carry the list's id in ``lists``.
LISTS = "lists"
# What happened to each person of a handled batch (alimi.attempts): receipts point here.
ATTEMPTS = "attempts"
# Delivery reports, one per receipt; the requests they came in, until applied (each
# request's reports, and a small inbox entry saying when it is due and who applies it).
DELIVERY_REPORTS = "delivery_reports"
REPORT_REQUESTS = "report_requests"
REPORT_INBOX = "report_inbox"
# A notice's counts of people by channel and status, one document per writer (alimi.counters).
NOTICE_COUNTS = "notice_counts"
# A notice's audience split into phone-hash ranges, each segmented on its own (alimi.partitions).
PARTITIONS = "partitions"
# Named leases: one owner at a time for long work such as the completion tracker (alimi.leases).
LEASES = "leases"
# Delivery workers' signs of life: a claim naming a worker whose beat is over is settled at once.
HEARTBEATS = "heartbeats"


@dataclass(frozen=True)
class Index:
    keys: tuple[tuple[str, int], ...]
    name: str
    unique: bool = False
    sparse: bool = False
    expire_after_s: int | None = None  # a TTL index: documents go once this is past the field

    def model(self) -> IndexModel:
        options: dict[str, Any] = {"name": self.name, "unique": self.unique, "sparse": self.sparse}
        if self.expire_after_s is not None:
            options["expireAfterSeconds"] = self.expire_after_s
        return IndexModel(list(self.keys), **options)


INDEXES: dict[str, tuple[Index, ...]] = {
    SUBJECTS: (
        # _id is the subject's external id: upserts and explicit audiences use it.
        # The segmenter streams an audience sorted by phone hash: duplicates of
        # one number arrive next to each other (constant-memory dedupe) and
        # the last hash published is a resumable checkpoint.
        Index((("phone_hash", ASCENDING), ("_id", ASCENDING)), "phone_hash"),
        Index((("tags", ASCENDING),), "tags"),
        # An uploaded list as audience: its members, already in phone-hash order.
        Index((("lists", ASCENDING), ("phone_hash", ASCENDING), ("_id", ASCENDING)), "lists"),
    ),
    INCIDENTS: (
        Index((("created_at", ASCENDING),), "created_at"),
        # The public status page finds an incident by its public id, and only by it.
        Index((("public_id", ASCENDING),), "public_id_unique", unique=True),
    ),
    NOTICES: (
        Index((("incident_id", ASCENDING), ("seq", ASCENDING)), "incident_seq_unique", unique=True),
    ),
    OUTBOX: (Index((("published", ASCENDING), ("created_at", ASCENDING)), "unpublished"),),
    API_KEYS: (Index((("created_at", ASCENDING),), "created_at"),),
    AUDIT: (
        Index((("at", ASCENDING),), "at"),
        Index((("target", ASCENDING), ("at", ASCENDING)), "target_at"),
    ),
    # Idempotency records expire by themselves at their expires_at.
    IDEMPOTENCY: (Index((("expires_at", ASCENDING),), "ttl", expire_after_s=0),),
    # A receipt is inserted once and updated only when a person is handled again,
    # so its one index (a notice's people: purges, recounts) costs at insert only.
    # Nothing on a hot path filters receipts by status: counts are counters.
    RECEIPTS: (Index((("notice_id", ASCENDING),), "notice"),),
    ATTEMPTS: (
        Index((("notice_id", ASCENDING), ("at", ASCENDING)), "notice_at"),
        # Delivery reports name the provider's request: the attempt that made it.
        Index((("requests", ASCENDING),), "requests"),
    ),
    DELIVERY_REPORTS: (),  # by _id (the receipt id) only
    REPORT_REQUESTS: (),  # by _id (the inbox entry's) only
    REPORT_INBOX: (Index((("due_at", ASCENDING),), "due_at"),),
    NOTICE_COUNTS: (Index((("notice_id", ASCENDING),), "notice_id"),),
    PARTITIONS: (
        Index((("notice_id", ASCENDING), ("run", ASCENDING)), "notice_run"),
        # The tracker looks for unfinished partitions whose owner's lease is over.
        Index((("state", ASCENDING), ("lease.until", ASCENDING)), "state_lease"),
    ),
    LEASES: (),  # by _id (the lease's name) only
    # Read by _id; a process's document goes a day after its last beat.
    HEARTBEATS: (Index((("until", ASCENDING),), "ttl", expire_after_s=86_400),),
    # Chunks an import's job has not applied yet: read in order; those of an import whose
    # job never ran (its process died) go by themselves a day later.
    IMPORT_CHUNKS: (
        Index((("import_id", ASCENDING), ("n", ASCENDING)), "import_n"),
        Index((("created_at", ASCENDING),), "ttl", expire_after_s=86_400),
    ),
    # The sweep finds jobs still queued or running whose owner's lease is over.
    JOBS: (Index((("state", ASCENDING), ("lease.until", ASCENDING)), "state_lease"),),
}

# Indexes earlier versions created and nothing reads any more: every write would still
# pay for them, so the owner drops them at start-up.
RETIRED_INDEXES: dict[str, tuple[str, ...]] = {
    RECEIPTS: ("notice_status", "provider_message_id"),
}


LONG_OPERATION_S = 3600.0


def long_operation() -> contextlib.AbstractContextManager[None]:
    """``with long_operation():`` an hour instead of ``ALIMI_MONGO_TIMEOUT_MS``, for the
    operations off the hot path whose time grows with a whole list (counting or
    unmarking the members of an uploaded list of millions)."""
    return pymongo.timeout(LONG_OPERATION_S)


class Store:
    def __init__(self, url: str, database: str, **client_options: Any) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=5000, **client_options
        )
        self.db: AsyncDatabase[dict[str, Any]] = self.client[database]

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Store:
        """The store a service's settings describe, every operation bounded by
        ``ALIMI_MONGO_TIMEOUT_MS`` (PyMongo's ``timeoutMS``: a hung call raises a timeout
        error that names it, instead of hanging its handler). With it, PyMongo waits
        for a server to select for up to the operation's timeout, not
        ``serverSelectionTimeoutMS``: a shorter outage is ridden out. The few
        operations whose time grows with a whole list run in :func:`long_operation`."""
        return cls(
            settings.mongo_url.get_secret_value(),
            settings.mongo_db,
            timeoutMS=settings.mongo_timeout_ms,
        )

    def __getitem__(self, name: str) -> AsyncCollection[dict[str, Any]]:
        return self.db[name]

    @property
    def incidents(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[INCIDENTS]

    @property
    def notices(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[NOTICES]

    @property
    def subjects(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[SUBJECTS]

    @property
    def receipts(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[RECEIPTS]

    @property
    def outbox(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[OUTBOX]

    @property
    def api_keys(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[API_KEYS]

    @property
    def audit(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[AUDIT]

    @property
    def idempotency(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[IDEMPOTENCY]

    @property
    def imports(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[IMPORTS]

    @property
    def import_errors(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[IMPORT_ERRORS]

    @property
    def import_chunks(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[IMPORT_CHUNKS]

    @property
    def jobs(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[JOBS]

    @property
    def lists(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[LISTS]

    @property
    def attempts(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[ATTEMPTS]

    @property
    def delivery_reports(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[DELIVERY_REPORTS]

    @property
    def report_requests(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[REPORT_REQUESTS]

    @property
    def report_inbox(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[REPORT_INBOX]

    @property
    def notice_counts(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[NOTICE_COUNTS]

    @property
    def partitions(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[PARTITIONS]

    @property
    def leases(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[LEASES]

    @property
    def heartbeats(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[HEARTBEATS]

    async def in_transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run ``work(session)`` in one transaction, all of it or none.

        A write conflict with another writer (say, the progress tracker
        touching the same notice) aborts the transaction with the
        ``TransientTransactionError`` label; PyMongo's ``with_transaction``
        then runs ``work`` again from the start, so ``work`` must read what it
        decides on inside the transaction. A commit whose result is unknown is
        committed again. Any other error aborts and is raised.

        The operation timeout (``ALIMI_MONGO_TIMEOUT_MS``) bounds the whole
        transaction, every run of ``work`` and every commit together, as MongoDB's
        client-side operations timeout specification has it for ``withTransaction``
        (PyMongo applies the client's ``timeoutMS`` to each operation only, and
        would keep retrying for 120 s). A transaction still conflicting, or still
        unsure of its commit, when the bound runs out raises a timeout error that
        names it. One that runs out inside ``work`` is aborted within a bound of
        its own (:func:`_abort_afresh`): at most twice the setting in all.
        """
        bound = self.client.options.timeout
        async with self.client.start_session() as session:
            if bound is None:  # a store built without an operation timeout (some tests)
                return await session.with_transaction(work)

            async def bounded_work(session: AsyncClientSession) -> T:
                try:
                    return await work(session)
                except BaseException:
                    if session.in_transaction:  # with_transaction would abort it past the bound
                        await _abort_afresh(session, bound)
                    raise

            try:
                with pymongo.timeout(bound):
                    return await session.with_transaction(bounded_work)
            except PyMongoError as exc:
                if not exc.timeout:
                    raise
                raise ExecutionTimeout(
                    f"the transaction did not finish within {bound * 1000:g} ms "
                    f"(ALIMI_MONGO_TIMEOUT_MS), its retries included; last error: {exc}",
                    50,  # MaxTimeMSExpired, as PyMongo's own
                ) from exc

    async def ensure_indexes(self, *collections: str) -> None:
        """Create each collection's indexes (idempotent) and drop its retired ones."""
        for name in collections:
            wanted = [ix.model() for ix in INDEXES[name]]
            if wanted:
                await self.db[name].create_indexes(wanted)
            retired = RETIRED_INDEXES.get(name, ())
            if retired:
                present = {ix["name"] async for ix in await self.db[name].list_indexes()}
                for index in retired:
                    if index in present:
                        await self.db[name].drop_index(index)

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.client.close()


async def _abort_afresh(session: AsyncClientSession, bound: float) -> None:
    """Abort ``session``'s transaction within a fresh ``bound``. The transaction's own
    bound may be spent, and PyMongo would then not even send the abort: the transaction
    would hold its writes' locks, blocking other writers, until the server's transaction
    lifetime limit. A new context starts without the spent deadline."""

    async def abort() -> None:
        with pymongo.timeout(bound):
            await session.abort_transaction()

    await asyncio.create_task(abort(), context=contextvars.Context())
