from ingest.definitions import defs

__all__ = ["defs"]
