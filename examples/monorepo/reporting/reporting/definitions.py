import dagster as dg
from common import SAMPLE_ORDERS, totals_by_customer


@dg.asset(group_name="reporting")
def spend_report() -> str:
    """A plain-text spend report, one line per customer."""
    totals = totals_by_customer(SAMPLE_ORDERS)
    return "\n".join(f"{customer:<8}{total:>8.2f}" for customer, total in totals.items())


@dg.asset(group_name="reporting")
def report_line_count(spend_report: str) -> int:
    return len(spend_report.splitlines())


defs = dg.Definitions(assets=[spend_report, report_line_count])
