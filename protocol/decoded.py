"""What a profile's decoder returns, and the error it raises for a frame it cannot read."""
from typing import Any, Dict, NamedTuple


class Decoded(NamedTuple):
    """One decoded frame: its name in the profile ("unknown" for a foreign id) and its values."""

    name: str
    fields: Dict[str, Any]


class DecodeError(ValueError):
    """A frame too short for its id; the message names the id, the length and the minimum."""
