"""The local model worker: a separate process that owns MLX and runs the loaded models.

The daemon starts it with `python -m mlxgw.worker` and talks to it over its stdin and stdout (see
`frames`, the codec both sides share). Only this process imports mlx; the daemon's side of the
pipe is `mlxgw.backends.local`. `demo` builds the offline demo model (it imports mlx when it runs).
"""
