"""Deprecated name of :mod:`locality_lib.chapter` (kept so existing notebooks keep working)."""
from .chapter import *  # noqa: F401,F403
from .chapter import __all__  # noqa: F401
