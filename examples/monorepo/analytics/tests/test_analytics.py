import dagster as dg

from analytics.definitions import customer_spend, orders, top_customer


def test_customer_spend():
    result = dg.materialize([orders, customer_spend, top_customer])
    assert result.success
    assert result.output_for_node("customer_spend") == {"ada": 59.0, "grace": 17.5, "linus": 33.5}
    assert result.output_for_node("top_customer") == "ada"
