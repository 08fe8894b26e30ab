import dagster as dg
from common import SAMPLE_ORDERS, order_total, totals_by_customer


@dg.asset(group_name="analytics")
def orders() -> list[dict]:
    """Orders with their computed total."""
    return [{**order, "total": order_total(order)} for order in SAMPLE_ORDERS]


@dg.asset(group_name="analytics")
def customer_spend(orders: list[dict]) -> dict[str, float]:
    """Total spend per customer."""
    return totals_by_customer(orders)


@dg.asset(group_name="analytics")
def top_customer(customer_spend: dict[str, float]) -> str:
    """The customer who spent the most."""
    return max(customer_spend, key=lambda customer: customer_spend[customer])


defs = dg.Definitions(assets=[orders, customer_spend, top_customer])
