"""The HTTP service (FastAPI): check, lookup, hash, banks, keys, health and metrics."""
