"""Pure frame codecs: battery reports to CAN frames and inverter frames to values. No I/O."""
from protocol.decoded import DecodeError, Decoded

__all__ = ["DecodeError", "Decoded"]
