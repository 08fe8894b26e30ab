"""A tiny order model: enough for the example assets to compute something real."""

from collections import defaultdict

SAMPLE_ORDERS: list[dict] = [
    {"order_id": 1, "customer": "ada", "items": [("widget", 2, 3.5), ("gadget", 1, 10.0)]},
    {"order_id": 2, "customer": "grace", "items": [("widget", 5, 3.5)]},
    {"order_id": 3, "customer": "ada", "items": [("gizmo", 1, 42.0)]},
    {"order_id": 4, "customer": "linus", "items": [("gadget", 3, 10.0), ("widget", 1, 3.5)]},
]


def order_total(order: dict) -> float:
    """Sum of quantity * unit price over an order's items."""
    return round(sum(qty * price for _name, qty, price in order["items"]), 2)


def totals_by_customer(orders: list[dict]) -> dict[str, float]:
    """Total spend per customer, sorted by customer name."""
    totals: dict[str, float] = defaultdict(float)
    for order in orders:
        totals[order["customer"]] += order_total(order)
    return {customer: round(totals[customer], 2) for customer in sorted(totals)}
