"""The one frame type the pure core speaks; the I/O shells convert it to python-can's Message."""
from typing import NamedTuple


class Frame(NamedTuple):
    arbitration_id: int
    data: bytes
    is_extended_id: bool = False

    def __str__(self) -> str:
        """candump notation, e.g. ``351#14022C01F401C201``."""
        width = 8 if self.is_extended_id else 3
        return "%0*X#%s" % (width, self.arbitration_id, self.data.hex().upper())
