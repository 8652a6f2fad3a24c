"""Sol-Ark LV, CAN protocol rev 1.3 [SOLARK] (PYLON_CAN.md §6).

Sol-Ark only recognises standard frames with 8 data bytes, unused bytes 0x00; 0x356 carries
the voltage in 0.1 V (not 0.01 V); 0x379 adds the bank capacity (1 Ah, 0 when unknown).
Sol-Ark's "forced charge request 1" is bit 4 = ``force_charge_2`` of the report.
"""
from protocol import inverter, pylon
from protocol.layout import U16, Field, Layout
from protocol.profile import Profile

MEASUREMENTS = pylon.MEASUREMENTS._replace(
    length=8, parts=(pylon.VOLTAGE._replace(resolution=0.1), pylon.CURRENT, pylon.TEMPERATURE))
CAPACITY = Layout(0x379, "capacity", 8, (Field("capacity_ah", 0, U16, 1, low=0, missing=0),), min_length=2)

FRAMES = tuple(layout._replace(length=8) for layout in (
    pylon.LIMITS, pylon.STATE_OF_CHARGE, MEASUREMENTS, pylon.PROTECTION_ALARM, pylon.REQUESTS,
    pylon.MANUFACTURER, CAPACITY))

PROFILE = Profile(
    "solark", FRAMES, (inverter.KEEPALIVE, inverter.KEEPALIVE_EXTENDED),
    [inverter.standard_filter(0x305), inverter.extended_filter(0x305)], product_name="Sol-Ark inverter")
