"""Fake cloud upstreams for tests; see `fakes.upstream`."""

from .upstream import *  # noqa: F403
from .upstream import __all__  # noqa: F401
