from analytics.definitions import defs

__all__ = ["defs"]
