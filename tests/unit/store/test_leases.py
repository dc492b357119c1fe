"""Named leases (store/leases.py) on SQLite and PostgreSQL: one holder at a time, renewed
by its holder, taken over once it runs out or is released."""

from __future__ import annotations

import time

from daguerre.store import Store


def test_one_holder_at_a_time_until_the_lease_runs_out(store: Store) -> None:
    leases = store.leases
    assert leases.hold("queue-metrics", "gw-a", ttl_s=2.0)
    assert not leases.hold("queue-metrics", "gw-b", ttl_s=2.0)  # gw-a's is still valid
    assert leases.hold("queue-metrics", "gw-a", ttl_s=2.0)  # its holder renews it
    assert leases.hold("other-chore", "gw-b", ttl_s=2.0)  # leases are independent
    time.sleep(2.1)
    assert leases.hold("queue-metrics", "gw-b", ttl_s=30)  # gw-a stopped renewing
    assert not leases.hold("queue-metrics", "gw-a", ttl_s=30)


def test_a_released_lease_is_taken_at_once_and_only_its_holder_releases_it(
    store: Store,
) -> None:
    leases = store.leases
    assert leases.hold("queue-metrics", "gw-a", ttl_s=30)
    leases.release("queue-metrics", "gw-b")  # not gw-b's to give up
    assert not leases.hold("queue-metrics", "gw-b", ttl_s=30)
    leases.release("queue-metrics", "gw-a")
    assert leases.hold("queue-metrics", "gw-b", ttl_s=30)
