"""The inverter profiles: one module per profile in this package, named like the profile.

Each module defines ``PROFILE``, a ``Profile`` that carries everything the bridge knows of that
inverter (frames, transport, byte order, bit rates, product name, quirks); adding a profile is
adding a module, nothing else changes. tests/unit/test_profile.py fails naming a module that
lacks an attribute the rest reads, and every per-profile test runs over ``names()``.
"""
import importlib
import pkgutil
from typing import Tuple

from protocol.profile import Profile


def names() -> Tuple[str, ...]:
    """The profile names, one per module of this package."""
    return tuple(sorted(module.name for module in pkgutil.iter_modules(__path__)
                        if not module.name.startswith("_")))


def get(name: str) -> Profile:
    """The profile called ``name``; ValueError naming the allowed names otherwise."""
    allowed = names()
    if name not in allowed:
        raise ValueError("unknown inverter profile %r: allowed are %s" % (name, ", ".join(allowed)))
    return importlib.import_module("%s.%s" % (__name__, name)).PROFILE
