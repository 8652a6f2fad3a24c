"""candump's log format as the recorder reads it."""
import pytest

from protocol.frame import Frame
from tests.system import can_utils


@pytest.mark.parametrize("line, expected", [
    ("(1700000000.250000) vcan0 351#14022C01", can_utils.CapturedFrame(
        1700000000.25, "vcan0", Frame(0x351, bytes.fromhex("14022C01")))),
    ("(1700000000.000001) vcan1 18FF50E5#", can_utils.CapturedFrame(
        1700000000.000001, "vcan1", Frame(0x18FF50E5, b"", is_extended_id=True))),
])
def test_candump_lines_parse(line, expected):
    assert can_utils.parse_candump_line(line) == expected


@pytest.mark.parametrize("line", ["(1.0) vcan0 351#R", "(1.0) vcan0 351##0AA", "351#00",
                                  "(1.0) vcan0 3510#00", "(1.0) vcan0 351#0"])
def test_candump_lines_that_are_not_classic_data_frames_are_refused(line):
    with pytest.raises(ValueError, match="candump -L format"):
        can_utils.parse_candump_line(line)
