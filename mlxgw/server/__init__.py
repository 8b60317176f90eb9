"""The aiohttp daemon: one app factory, the protocol routes, auth and errors."""
