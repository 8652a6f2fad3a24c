"""Luxpower / EG4 ("Lithium 6"), battery CAN protocol V04 [LUX] (PYLON_CAN.md §6).

Pylon V1.2 with the blank bytes used: 0x355 bytes 4-7 max/min cell voltage (1 mV), 0x356
bytes 4-7 max/min cell temperature (0.1 degC), 0x359 bytes 5-6 capacity (1 Ah) instead of
"PN", 0x35C bytes 2-3 cycle count. Every frame has 8 bytes. Luxpower defines no "not
available" code: missing cell voltages, capacity and cycle count are sent as 0 (the blank
bytes of V1.2), missing max/min temperatures fall back to the battery temperature.
The inverter may send 0x300 "shut the battery down". Luxpower's "forced charge request 1" is
bit 4 = ``force_charge_2`` of the report (the EG4 6000XP force-charges only on that bit).
"""
from protocol import inverter, pylon
from protocol.layout import S16, U16, Field
from protocol.profile import Profile

STATE_OF_CHARGE = pylon.STATE_OF_CHARGE._replace(length=8, parts=(
    pylon.SOC, pylon.SOH,
    Field("cell_max_v", 4, U16, 0.001, low=0, missing=0),
    Field("cell_min_v", 6, U16, 0.001, low=0, missing=0)))
MEASUREMENTS = pylon.MEASUREMENTS._replace(length=8, parts=(
    pylon.VOLTAGE, pylon.CURRENT,
    Field("temperature_max_c", 4, S16, 0.1, fallback="temperature_c"),
    Field("temperature_min_c", 6, S16, 0.1, fallback="temperature_c")))
PROTECTION_ALARM = pylon.PROTECTION_ALARM._replace(length=8, parts=(
    pylon.PROTECTION_BITS, pylon.ALARM_BITS, pylon.MODULES,
    Field("capacity_ah", 5, U16, 1, low=0, missing=0)))
REQUESTS = pylon.REQUESTS._replace(length=8, parts=(
    pylon.REQUEST_BITS, Field("cycle_count", 2, U16, 1, low=0, missing=0)))

FRAMES = (pylon.LIMITS, STATE_OF_CHARGE, MEASUREMENTS, PROTECTION_ALARM, REQUESTS, pylon.MANUFACTURER)

PROFILE = Profile(
    "luxpower", FRAMES, (inverter.KEEPALIVE, inverter.KEEPALIVE_EXTENDED, inverter.LUXPOWER_SHUTDOWN),
    [inverter.standard_filter(0x305), inverter.extended_filter(0x305), inverter.standard_filter(0x300)],
    product_name="Luxpower/EG4 inverter")
