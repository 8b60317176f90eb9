"""The TOML config: the human-edited source of truth. Read and validated into `mlxgw.settings`,
edited with tomlkit so comments and layout survive, written atomically."""

from mlxgw.config.document import ensure_config, load, read_document
from mlxgw.config.editor import ConfigEditor
from mlxgw.config.template import DEFAULT_CONFIG
from mlxgw.config.validate import parse_settings

__all__ = ["DEFAULT_CONFIG", "ConfigEditor", "ensure_config", "load", "parse_settings", "read_document"]
