"""The rejected rows of an upload: all counted, the first kept for the answer, pages stored.

Subject imports keep every error up to :data:`MAX_STORED_ERRORS` in
``import_errors``, in pages of :data:`ERRORS_PER_PAGE` under the import's id
(``GET /v1/imports/{id}/errors/{page}``); lists answer with the first only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alimi.store import Store
from alimi_intake.rows import RowError

ANSWER_ERRORS = 1000
ERRORS_PER_PAGE = 1000
MAX_STORED_ERRORS = 100_000


class NothingToImport(Exception):
    """The upload held no row at all (blank lines, or a CSV header alone)."""


@dataclass
class ErrorLog:
    """The errors of one upload: all counted, the first kept for the answer, pages stored."""

    store: Store | None = None  # None: nothing is stored (lists answer with the first only)
    import_id: str = ""
    count: int = 0
    first: list[dict[str, Any]] = field(default_factory=list)
    stored: int = 0
    pages: int = 0
    _page: list[dict[str, Any]] = field(default_factory=list)

    async def add(self, error: RowError) -> None:
        self.count += 1
        entry = error.as_dict()
        if len(self.first) < ANSWER_ERRORS:
            self.first.append(entry)
        if self.store is not None and self.stored < MAX_STORED_ERRORS:
            self.stored += 1
            self._page.append(entry)
            if len(self._page) >= ERRORS_PER_PAGE:
                await self.flush()

    async def flush(self) -> None:
        if self.store is None or not self._page:
            return
        page, self._page = self._page, []
        self.pages += 1
        await self.store.import_errors.insert_one(
            {
                "_id": f"{self.import_id}:{self.pages}",
                "import_id": self.import_id,
                "page": self.pages,
                "errors": sorted(page, key=lambda e: e["row"]),
            }
        )

    async def discard(self) -> None:
        """Forget the stored pages: the upload was refused, and nothing of it is kept."""
        self._page = []
        if self.store is not None:
            await self.store.import_errors.delete_many({"import_id": self.import_id})

    def answer(self) -> dict[str, Any]:
        return {
            "errors": sorted(self.first, key=lambda e: e["row"]),
            "errors_truncated": self.count > len(self.first),
        }


async def find_error_page(store: Store, import_id: str, page: int) -> dict[str, Any] | None:
    found = await store.import_errors.find_one({"_id": f"{import_id}:{page}"})
    if found is None:
        return None
    return {"import_id": import_id, "page": page, "errors": found["errors"]}
