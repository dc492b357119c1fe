"""The image list's store, on SQLite and PostgreSQL: owner-scoped keyset pages.

Rows are written straight into the tables, so that jobs can share a creation time to
the microsecond: the tie the page cursor must still break.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from daguerre.store import Store
from daguerre.store.tables import ImageRow, JobRow

T0 = datetime(2025, 3, 25, 12, 0, tzinfo=UTC)


def add_job(
    store: Store,
    account_id: str,
    job_id: str,
    created: datetime,
    images: int,
    client_id: str | None = None,
) -> list[str]:
    """A succeeded job of ``images`` images; their ids, in order."""
    spec = {"prompt": f"prompt of {job_id}", "model": "builtin"}
    ids = [f"img-{job_id}-{i}" for i in range(images)]
    with store.db.begin() as conn:
        conn.execute(
            insert(JobRow).values(
                id=job_id, account_id=account_id, client_id=client_id, pool="chat",
                model="builtin", status="succeeded", spec=spec, created_at=created,
                updated_at=created,
            )
        )  # fmt: skip
        for index, image_id in enumerate(ids):
            conn.execute(
                insert(ImageRow).values(
                    id=image_id, job_id=job_id, index=index, account_id=account_id,
                    blob_key=f"images/{job_id}/{index}.png", media_type="image/png",
                    width=64, height=64, created_at=created + timedelta(seconds=5),
                )
            )  # fmt: skip
    return ids


def walk(store: Store, account_id: str, limit: int) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page = store.images.list_for(account_id, limit, after)
        assert page is not None
        seen += [listed.image.id for listed in page.images]
        if not page.has_more:
            return seen
        after = seen[-1]


def test_pages_break_ties_and_never_repeat(store: Store) -> None:
    alice = store.accounts.create_account("alice", "free", "chat").id
    # Two jobs at the same instant, one older, one newer: newest first, ties by job id
    # (descending), and a job's images in their order.
    old = add_job(store, alice, "job_a", T0 - timedelta(minutes=1), 2)
    tied_low = add_job(store, alice, "job_b", T0, 2)
    tied_high = add_job(store, alice, "job_c", T0, 1, client_id="mine")
    new = add_job(store, alice, "job_d", T0 + timedelta(minutes=1), 1)
    expected = new + tied_high + tied_low + old
    for limit in (1, 2, 3, 6, 100):
        assert walk(store, alice, limit) == expected, limit
    page = store.images.list_for(alice, 100)
    assert page is not None
    first = page.images[1]
    assert (first.job_id, first.prompt, first.conversation_id) == ("mine", "prompt of job_c", None)
    assert first.created_at == (T0 + timedelta(seconds=5)).timestamp()
    assert (first.image.width, first.image.media_type) == (64, "image/png")


def test_only_the_accounts_own_and_no_cursor_into_anothers(store: Store) -> None:
    alice = store.accounts.create_account("alice", "free", "chat").id
    bob = store.accounts.create_account("bob", "free", "chat").id
    hers = add_job(store, alice, "job_a", T0, 2)
    his = add_job(store, bob, "job_b", T0, 1)
    assert walk(store, bob, 10) == his
    assert store.images.list_for(bob, 10, after=hers[0]) is None
    assert store.images.list_for(bob, 10, after="img-nothing") is None
    assert walk(store, alice, 1) == hers


def test_an_image_names_the_conversation_of_its_turn(store: Store) -> None:
    alice = store.accounts.create_account("alice", "free", "chat").id
    conversation = store.conversations.create(alice, "shapes")
    store.conversations.add_turn(conversation.id, "a circle", "new", None, "job_t")
    add_job(store, alice, "job_t", T0, 1)
    add_job(store, alice, "job_api", T0 - timedelta(minutes=1), 1)
    page = store.images.list_for(alice, 10)
    assert page is not None
    assert [i.conversation_id for i in page.images] == [conversation.id, None]
