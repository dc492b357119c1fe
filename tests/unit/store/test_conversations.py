"""The conversations store, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from daguerre.store import Store


def test_turns_number_in_order_and_stay_with_their_account(store: Store) -> None:
    alice = store.accounts.create_account("alice", "free", "chat")
    bob = store.accounts.create_account("bob", "free", "chat")
    conv = store.conversations.create(alice.id, "shapes")
    first = store.conversations.add_turn(conv.id, "a red circle", "new", None, "job-1")
    second = store.conversations.add_turn(conv.id, "make it blue", "edit", first.id, "job-2")
    assert (first.index, second.index) == (1, 2)
    assert second.parent_turn_id == first.id
    assert [t.job_id for t in store.conversations.turns(conv.id)] == ["job-1", "job-2"]

    found = store.conversations.get(alice.id, conv.id)
    assert found is not None and found.turn_count == 2 and found.title == "shapes"
    assert store.conversations.get(bob.id, conv.id) is None
    assert not store.conversations.rename(bob.id, conv.id, "mine now")
    assert store.conversations.rename(alice.id, conv.id, "circles")
    assert [c.title for c in store.conversations.list_for(alice.id)] == ["circles"]
    assert store.conversations.list_for(bob.id) == []

    store.conversations.discard_turn(second.id)
    assert [t.index for t in store.conversations.turns(conv.id)] == [1]


def test_concurrent_turns_get_distinct_numbers(store: Store) -> None:
    alice = store.accounts.create_account("alice", "free", "chat")
    conv = store.conversations.create(alice.id, None)
    with ThreadPoolExecutor(4) as pool:
        turns = list(
            pool.map(
                lambda i: store.conversations.add_turn(conv.id, f"p{i}", "new", None, f"j{i}"),
                range(8),
            )
        )
    assert sorted(t.index for t in turns) == list(range(1, 9))
