"""Flood control: repeats of one account within the window are one review item."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from safestream.actions.base import ActionEnv, ActionEvent
from safestream.actions.registry import ACTIONS
from safestream.actions.runner import ActionRunner
from safestream.engine.policy import DEFAULT_FLOOD_WINDOW_S, KNOWN_ACTIONS, Policy
from safestream.errors import ConfigError
from safestream.store.db import Store, make_engine
from safestream.store.jobs import JobRepository
from safestream.store.models import utcnow
from safestream.store.reviews import ReviewRepository
from webhook_support import store_url


def _add(reviews: ReviewRepository, content_id: str, account: str | None, **kw: Any) -> Any:
    return reviews.add(
        content_id=content_id,
        account_id=account,
        verdict="block",
        rule="known material",
        matches=[{"bank": "known", "distance_bits": 0}],
        context={"account_id": account},
        **kw,
    )


def test_repeats_within_window_are_one_incident(store: Store) -> None:
    reviews = ReviewRepository(store)
    t0 = utcnow()
    results = [
        _add(reviews, f"c{i}", "acct-1", window_s=60, now=t0 + timedelta(seconds=50 * i))
        for i in range(5)
    ]
    assert [r.created for r in results] == [True, False, False, False, False]
    assert {r.item.id for r in results} == {results[0].item.id}
    item = reviews.get(results[0].item.id)
    assert item.match_count == 5
    assert item.content_ids == [f"c{i}" for i in range(5)]
    assert (item.first_content_id, item.last_content_id) == ("c0", "c4")
    # 61 s after the last repeat the window has passed: a new incident.
    later = _add(reviews, "c5", "acct-1", window_s=60, now=t0 + timedelta(seconds=200 + 61))
    assert later.created and later.item.id != item.id and later.item.match_count == 1
    # Other accounts, and checks without an account, are never grouped with it.
    other = _add(reviews, "c6", "acct-2", window_s=60, now=t0)
    assert other.created
    anon = [_add(reviews, f"a{i}", None, window_s=60, now=t0) for i in range(2)]
    assert all(a.created for a in anon)
    assert reviews.count() == 5
    assert [i.account_id for i in reviews.list(account_id="acct-1")] == ["acct-1", "acct-1"]


def test_window_zero_turns_flood_control_off(store: Store) -> None:
    reviews = ReviewRepository(store)
    assert all(_add(reviews, f"c{i}", "acct-1", window_s=0).created for i in range(3))


def test_concurrent_repeats_still_make_one_incident(store: Store) -> None:
    url = store_url(store)
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def report(n: int) -> None:
        own = Store(make_engine(url))
        try:
            barrier.wait()
            for i in range(4):
                _add(ReviewRepository(own), f"c{n}-{i}", "acct-flood", window_s=3600)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=report, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    [item] = ReviewRepository(store).list(account_id="acct-flood")
    assert item.match_count == 20 and len(item.content_ids) == 20


def test_policy_window_setting_and_registry() -> None:
    assert Policy.from_dict({}).flood_window_s == DEFAULT_FLOOD_WINDOW_S
    assert Policy.from_dict({"flood_window_s": 600}).flood_window_s == 600
    with pytest.raises(ConfigError, match="flood_window_s must be a number of seconds"):
        Policy.from_dict({"flood_window_s": "1h"})
    with pytest.raises(ConfigError, match="flood_window_s must be a number of seconds"):
        Policy.from_dict({"flood_window_s": -1})
    # The registry is the source of truth for action names.
    assert set(KNOWN_ACTIONS) == set(ACTIONS) == {"block", "enqueue_review", "obscure", "webhook"}
    with pytest.raises(ConfigError, match="unknown actions"):
        Policy.from_dict({"rule": [{"verdict": "block", "actions": ["email"]}]})


def test_runner_groups_a_flood_and_needs_webhook_config(store: Store) -> None:
    env = ActionEnv(reviews=ReviewRepository(store), jobs=JobRepository(store), webhook=None)
    runner = ActionRunner(env)
    with pytest.raises(ConfigError, match="SAFESTREAM_WEBHOOK_URL is not set"):
        runner.check_config({"block", "webhook"})
    t0 = utcnow()
    outcomes = []
    for i in range(3):
        event = ActionEvent(
            content_id=f"c{i}",
            received_at=t0 + timedelta(seconds=i),
            verdict="block",
            outcome="match",
            rule="known material",
            matches=[],
            context={"account_id": "acct-1"},
            flood_window_s=60,
        )
        outcomes.append(runner.run(["block", "enqueue_review", "block"], event))
    assert [r.action for r in outcomes[0]] == ["block", "enqueue_review"]
    assert [o[1].detail["match_count"] for o in outcomes] == [1, 2, 3]
    assert [o[1].detail["new_incident"] for o in outcomes] == [True, False, False]
