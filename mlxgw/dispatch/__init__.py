"""Dispatch: which backends answer a model name (`route_table`), in what order and how often they
are tried (`dispatcher`, `retries`, `pacing`), and which are skipped for now (`breaker`)."""
