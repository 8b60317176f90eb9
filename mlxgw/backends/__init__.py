"""Backends: where requests go (local MLX worker, OpenAI-compatible and Anthropic upstreams)."""
