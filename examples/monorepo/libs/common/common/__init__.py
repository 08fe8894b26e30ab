"""Helpers shared by several code locations (installed from libs/common, never from an index)."""

from common.orders import SAMPLE_ORDERS, order_total, totals_by_customer

__all__ = ["SAMPLE_ORDERS", "order_total", "totals_by_customer"]
