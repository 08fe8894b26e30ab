import dagster as dg

from ingest.definitions import event_counts, raw_events


def test_event_counts():
    result = dg.materialize([raw_events, event_counts])
    assert result.success
    assert result.output_for_node("event_counts") == {"login": 2, "purchase": 1}
