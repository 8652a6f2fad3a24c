"""Pylontech LV CAN protocol V1.2: the battery frames 0x351-0x35E (PYLON_CAN.md §1-2).

Lengths are those of a real US5000 (0x351 = 8, 0x355 = 4, 0x356 = 6, 0x359 = 7, 0x35C = 2,
0x35E = 8; §1 [setfire]), so the frames match a Pylontech battery byte for byte. Variants
(Sol-Ark, Luxpower, Victron) derive their layouts from these parts with ``_replace``.
"""
from protocol.layout import S16, U8, U16, Bits, Constant, FlagBits, Field, Layout, Text
from protocol.report import ALARMS, PROTECTIONS

# 0x351: limits. DCL is sent as a positive number, as every real capture does (§2.1).
CHARGE_VOLTAGE = Field("charge_voltage_v", 0, U16, 0.1)
CHARGE_CURRENT = Field("charge_current_a", 2, S16, 0.1, low=0)
DISCHARGE_CURRENT = Field("discharge_current_a", 4, S16, 0.1, low=0)
DISCHARGE_VOLTAGE = Field("discharge_voltage_v", 6, U16, 0.1)  # blank in V1.2, defined in V1.3

# 0x355
SOC = Field("soc_pct", 0, U16, 1, low=0, high=100)
SOH = Field("soh_pct", 2, U16, 1, low=0, high=100)
SOC_HIRES = Field("soc_hires_pct", 4, U16, 0.01, low=0, high=100)  # SMA / Victron / MG only

# 0x356; current positive = charging (captures: negative while discharging, §2.3)
VOLTAGE = Field("voltage_v", 0, S16, 0.01)
CURRENT = Field("current_a", 2, S16, 0.1)
# No "not available" code: an unknown battery temperature is sent as temperature_max_c, which
# the engine then fills with battery.assumed_temperature_c.
TEMPERATURE = Field("temperature_c", 4, S16, 0.1, fallback="temperature_max_c")

# 0x359 tables 1-4 (§2.4): (byte, bit); system error / internal communication fail at bit 3.
PROTECTION_BITS = FlagBits("protection", PROTECTIONS, {
    "over_voltage": (0, 1), "under_voltage": (0, 2), "over_temperature": (0, 3),
    "under_temperature": (0, 4), "discharge_over_current": (0, 7),
    "charge_over_current": (1, 0), "system_error": (1, 3)})
ALARM_BITS = FlagBits("alarm", ALARMS, {
    "high_voltage": (2, 1), "low_voltage": (2, 2), "high_temperature": (2, 3),
    "low_temperature": (2, 4), "discharge_high_current": (2, 7),
    "charge_high_current": (3, 0), "internal_comm_fail": (3, 3)})
MODULES = Field("modules", 4, U8, 1)

# 0x35C table 5 (§2.5). Pylon's "force charge I" is bit 5, "II" bit 4 (Sol-Ark and Luxpower
# number them the other way round: their "request 1" is force_charge_2 here).
REQUEST_BITS = Bits(0, ((7, "charge_enable"), (6, "discharge_enable"), (5, "force_charge_1"),
                        (4, "force_charge_2"), (3, "full_charge")))

MANUFACTURER_NAME = Text("manufacturer", 0, 8)

LIMITS = Layout(0x351, "limits", 8, (CHARGE_VOLTAGE, CHARGE_CURRENT, DISCHARGE_CURRENT, DISCHARGE_VOLTAGE),
                min_length=6)
# The minimum lengths are those of V1.2, explicit so that a variant that lengthens a frame for
# its own optional fields still reads a US5000's shorter one.
STATE_OF_CHARGE = Layout(0x355, "state_of_charge", 4, (SOC, SOH), min_length=4)
MEASUREMENTS = Layout(0x356, "measurements", 6, (VOLTAGE, CURRENT, TEMPERATURE), min_length=6)
PROTECTION_ALARM = Layout(0x359, "protection_alarm", 7, (PROTECTION_BITS, ALARM_BITS, MODULES, Constant(5, b"PN")),
                          min_length=5)
REQUESTS = Layout(0x35C, "requests", 2, (REQUEST_BITS,), min_length=1)
MANUFACTURER = Layout(0x35E, "manufacturer", 8, (MANUFACTURER_NAME,), min_length=1)

FRAMES = (LIMITS, STATE_OF_CHARGE, MEASUREMENTS, PROTECTION_ALARM, REQUESTS, MANUFACTURER)
