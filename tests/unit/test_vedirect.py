"""The VE.Direct text protocol parser, on byte strings written from the public protocol description
("VE.Direct Protocol" 3.33: ``\\r\\n<label>\\t<value>`` fields, a ``Checksum`` byte making the block
sum 0 mod 256, HEX frames ``:`` ... ``\\n`` in between) and on a block captured from a real BMV-712."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.vedirect import VeDirectParser, battery_values, history_values, is_reading

# A real BMV-712 Smart block as captured on its VE.Direct port (published in
# norbert-walter/LoRa-Boat-Monitor src/vedirect.h); its checksum byte is '/'.
BMV712 = (b"\r\nPID\t0xA381\r\nV\t12341\r\nT\t---\r\nI\t0\r\nP\t0\r\nCE\t0\r\nSOC\t1000\r\nTTG\t-1\r\n"
          b"Alarm\tOFF\r\nRelay\tOFF\r\nAR\t0\r\nBMV\t712 Smart\r\nFW\t0408\r\nMON\t0\r\nChecksum\t/")
HEX_PING_ANSWER = b":51641F9\n"      # an asynchronous HEX frame, as the protocol allows in between


def block(*fields):
    """A block as the protocol describes it; the checksum byte makes the sum of all bytes 0 mod 256."""
    body = b"".join(b"\r\n" + label + b"\t" + value for label, value in fields) + b"\r\nChecksum\t"
    return body + bytes([-sum(body) % 256])


SHUNT = block((b"PID", b"0xA389"), (b"V", b"53127"), (b"VS", b"13012"), (b"I", b"-12345"), (b"P", b"-656"),
              (b"CE", b"-48250"), (b"SOC", b"827"), (b"TTG", b"1234"), (b"Alarm", b"ON"), (b"AR", b"2"),
              (b"T", b"-4"), (b"FW", b"0410"), (b"MON", b"0"))
HISTORY = block((b"H1", b"-188890"), (b"H4", b"12"), (b"H7", b"12333"), (b"H9", b"86400"), (b"H17", b"1563"),
                (b"H18", b"2095"))


def parse(data):
    parser = VeDirectParser()
    return parser.feed(data), parser.counters


def test_a_real_bmv712_block_is_accepted_and_converted():
    blocks, counters = parse(BMV712)
    assert counters.blocks == 1 and counters.bad_checksum == 0
    assert blocks[0]["V"] == "12341" and blocks[0]["BMV"] == "712 Smart" and "Checksum" not in blocks[0]
    values = battery_values(blocks[0])
    assert values["voltage_v"] == 12.341 and values["current_a"] == 0.0 and values["soc_pct"] == 100.0
    assert values["temperature_c"] is None            # "---": no probe
    assert values["time_to_go_min"] is None           # -1: infinite
    assert values["alarm"] is False and values["relay"] is False and values["alarm_reason"] == 0.0


def test_units_are_converted_exactly():
    values = battery_values(parse(SHUNT)[0][0])
    assert values == {
        "voltage_v": 53.127, "starter_voltage_v": 13.012, "midpoint_v": None, "midpoint_deviation_pct": None,
        "current_a": -12.345, "power_w": -656.0, "consumed_ah": -48.25, "soc_pct": 82.7,
        "temperature_c": -4.0, "time_to_go_min": 1234.0, "alarm_reason": 2.0, "alarm": True, "relay": None}


def test_history_block_is_not_a_reading_and_converts_its_fields():
    (fields,), _ = parse(HISTORY)
    assert not is_reading(fields) and is_reading(parse(SHUNT)[0][0])
    assert history_values(fields) == {"deepest_discharge_ah": -188.89, "charge_cycles": 12.0,
                                      "min_voltage_v": 12.333, "since_full_charge_s": 86400.0,
                                      "discharged_energy_kwh": 15.63, "charged_energy_kwh": 20.95}


@pytest.mark.parametrize("position", [i for i, byte in enumerate(BMV712[:-1]) if byte not in b"\r\n\t"])
def test_a_block_with_any_text_byte_changed_is_dropped_and_counted(position):
    """Also a damaged "Checksum" label: the next block's repeated labels end the broken one."""
    damaged = bytearray(BMV712)
    damaged[position] ^= 0x01
    blocks, counters = parse(bytes(damaged) + SHUNT)
    assert blocks == [parse(SHUNT)[0][0]]       # the next good block still comes through
    assert counters.bad_checksum + counters.malformed >= 1 and counters.blocks == 1


def test_bad_checksum_is_counted_as_such():
    blocks, counters = parse(BMV712[:-1] + b"0" + SHUNT)
    assert len(blocks) == 1 and blocks[0]["PID"] == "0xA389"
    assert counters.bad_checksum == 1 and counters.malformed == 0


def test_hex_frames_between_and_inside_blocks_are_skipped():
    middle = SHUNT.index(b"\r\nSOC")
    data = HEX_PING_ANSWER + SHUNT[:middle] + HEX_PING_ANSWER + SHUNT[middle:] + HEX_PING_ANSWER + HISTORY
    blocks, counters = parse(data)
    assert [b.get("V") for b in blocks] == ["53127", None] and blocks[0]["SOC"] == "827"
    assert counters.hex_frames == 3 and counters.blocks == 2 and counters.bad_checksum == 0


@pytest.mark.parametrize("checksum", [b":", b"\r", b"\n", b"\t", b"\x00", b"\xff"])
def test_any_checksum_byte_ends_the_block(checksum):
    """Tune a value until the checksum byte is the awkward one: ':' there is no HEX frame."""
    for millivolts in range(50000, 50512):
        candidate = block((b"V", str(millivolts).encode()), (b"I", b"0"), (b"SOC", b"500"))
        if candidate[-1:] == checksum:
            break
    blocks, counters = parse(candidate + SHUNT)
    assert [b["V"] for b in blocks] == [str(millivolts), "53127"] and counters.hex_frames == 0


def test_a_port_opened_in_the_middle_of_a_block_drops_that_block_only():
    blocks, counters = parse(SHUNT[40:] + SHUNT + HISTORY)
    assert [is_reading(b) for b in blocks] == [True, False] and counters.bad_checksum == 1


def test_noise_and_an_overlong_line_are_malformed_and_dropped():
    noisy = b"\r\nV\t" + b"9" * 500 + b"\r\nI\t0\r\nChecksum\t\x00"
    blocks, counters = parse(noisy + SHUNT)
    assert len(blocks) == 1 and blocks[0]["V"] == "53127" and counters.malformed >= 1


def test_a_partial_block_is_never_handed_out():
    parser = VeDirectParser()
    assert parser.feed(SHUNT[:-1]) == []
    assert parser.feed(SHUNT[-1:])[0]["V"] == "53127"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=60))
def test_any_chunking_gives_the_same_blocks(cuts):
    stream = HEX_PING_ANSWER + SHUNT + HISTORY + HEX_PING_ANSWER + BMV712
    parser, blocks, start = VeDirectParser(), [], 0
    for size in cuts * (len(stream) // sum(cuts) + 1):
        blocks += parser.feed(stream[start:start + size])
        start += size
    assert blocks == parse(stream)[0] and len(blocks) == 3


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_after_any_garbage_the_second_good_block_comes_through_exactly(garbage):
    blocks, _ = parse(garbage + SHUNT + HISTORY)
    assert blocks and blocks[-1] == parse(HISTORY)[0][0]


@settings(max_examples=300, deadline=None)
@given(st.integers(-10 ** 9, 10 ** 9), st.sampled_from([(b"V", "voltage_v", 3), (b"I", "current_a", 3),
                                                        (b"SOC", "soc_pct", 1), (b"CE", "consumed_ah", 3)]))
def test_conversion_is_the_nearest_float_to_the_exact_quotient(number, spec):
    label, name, decimals = spec
    digits = str(abs(number)).rjust(decimals + 1, "0")
    as_decimal_text = ("-" if number < 0 else "") + digits[:-decimals] + "." + digits[-decimals:]
    blocks, _ = parse(block((label, str(number).encode())))
    value = battery_values(blocks[0])[name]
    assert value == float(as_decimal_text)
