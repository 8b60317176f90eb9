"""The local model worker: a separate process that owns MLX and runs the loaded models.

The daemon starts it with `python -m mlxgw.worker` and talks to it over its stdin and stdout
(see `protocol`). Only the worker process imports mlx: the modules the daemon uses (`protocol`,
`chat`, `client`, `demo` until it builds) import nothing heavy at the top.
"""
