import dagster as dg

RAW_EVENTS = [
    {"user": "ada", "event": "login"},
    {"user": "grace", "event": "login"},
    {"user": "ada", "event": "purchase"},
]


@dg.asset(group_name="landing")
def raw_events() -> list[dict]:
    """Events as they arrive from the source system."""
    return list(RAW_EVENTS)


@dg.asset(group_name="landing")
def event_counts(raw_events: list[dict]) -> dict[str, int]:
    """How often each event type occurred."""
    counts: dict[str, int] = {}
    for row in raw_events:
        counts[row["event"]] = counts.get(row["event"], 0) + 1
    return counts


defs = dg.Definitions(assets=[raw_events, event_counts])
