"""The SQLite store (Peewee): mappings and encrypted credentials synced from the TOML, client keys,
and the request log."""
