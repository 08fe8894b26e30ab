import dagster as dg
from common import SAMPLE_ORDERS, order_total


@dg.asset(group_name="ml")
def training_set() -> list[tuple[int, float]]:
    """(number of items, order total) pairs."""
    return [(sum(qty for _n, qty, _p in o["items"]), order_total(o)) for o in SAMPLE_ORDERS]


@dg.asset(group_name="ml")
def price_per_item_model(training_set: list[tuple[int, float]]) -> float:
    """Least-squares slope through the origin: expected spend per item."""
    numerator = sum(items * total for items, total in training_set)
    denominator = sum(items * items for items, _total in training_set)
    return round(numerator / denominator, 4)


defs = dg.Definitions(assets=[training_set, price_per_item_model])
