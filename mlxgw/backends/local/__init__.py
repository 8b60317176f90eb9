"""The local backend, daemon side: the MLX worker process supervised and spoken to over a pipe
(`process`), canonical requests in the chat format models' templates take (`messages`), and the
`LocalBackend` the dispatcher calls. Nothing here imports MLX: that happens in `mlxgw.worker`."""

from mlxgw.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
