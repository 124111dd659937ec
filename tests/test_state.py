"""Reducers are pure and merge the way parallel agent branches need."""

from __future__ import annotations

from stellar_graph.state import MAX_EVENTS, add_counters, append_events, merge_records


def test_merge_records_patches_per_record_and_deletes_on_none() -> None:
    current = {"t1": {"status": "running", "agent_id": "a"}, "t2": {"status": "running"}}
    update = {"t1": {"status": "completed"}, "t2": None, "t3": {"status": "pending"}}
    merged = merge_records(current, update)
    assert merged == {"t1": {"status": "completed", "agent_id": "a"}, "t3": {"status": "pending"}}
    assert current["t1"]["status"] == "running"  # inputs untouched
    assert merge_records(None, None) == {}


def test_two_branches_writing_different_tasks_both_land() -> None:
    state = {"t1": {"status": "running"}, "t2": {"status": "running"}}
    state = merge_records(state, {"t1": {"status": "completed"}})
    state = merge_records(state, {"t2": {"status": "failed"}})
    assert {k: v["status"] for k, v in state.items()} == {"t1": "completed", "t2": "failed"}


def test_add_counters_and_bounded_events() -> None:
    assert add_counters({"a": 1, "b": 2.5}, {"a": 2, "c": 1}) == {"a": 3, "b": 2.5, "c": 1}
    events = append_events(None, [{"i": i} for i in range(MAX_EVENTS + 50)])
    assert len(events) == MAX_EVENTS and events[0] == {"i": 50}
