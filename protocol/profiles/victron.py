"""Victron GX with the "CAN-bus BMS LV" profile: the Pylon V1.2 set plus 0x35A and 0x35F.

Victron's reading of 0x35A ([MG] §1.4.2, PYLON_CAN.md §2.7): 1 = raised, 2 = OK, 0 = not
supported — the same bits as SMA's raise/clear. Quirks handled here (§6):

* A low-voltage *alarm* in 0x35A makes the GX stop charging, which would trap a battery in
  under-voltage protection; under-voltage protection is therefore reported as the low-voltage
  *warning* (the alarm item is "not supported"). 0x359 still carries it as Pylon defines.
* The name "PYLON" makes Venus treat the battery as a Pylontech (product id 0xB009) and floor
  CCL at capacity / 4, so a CCL of 0 would not stop charging: the default name is not "PYLON".
* An unknown temperature is sent as 0x8000, the invalid s16 of the general BMS protocol [MG] §1.4.
* 0x355 carries the high-resolution SOC in bytes 4-5; 0x35F uses SMA's layout, of which this
  bridge only knows the capacity (the other fields are 0xFFFF, "invalid").
"""
from protocol import inverter, pylon, sma
from protocol.profile import Profile

STATE_OF_CHARGE = pylon.STATE_OF_CHARGE._replace(length=6, parts=(pylon.SOC, pylon.SOH, pylon.SOC_HIRES))
MEASUREMENTS = pylon.MEASUREMENTS._replace(parts=(pylon.VOLTAGE, pylon.CURRENT, sma.TEMPERATURE_OR_INVALID))

PROTECTION_ITEMS = {flag: item for flag, item in sma.PROTECTION_ITEMS.items() if flag != "under_voltage"}
ALARMS_WARNINGS = sma.ALARMS_WARNINGS._replace(parts=(sma.AlarmItems(
    sma.sources(*sma.links("protection", PROTECTION_ITEMS)),
    sma.sources(*sma.links("alarm", sma.ALARM_ITEMS), ("protection", "under_voltage", "low_voltage"))),))

FRAMES = (pylon.LIMITS, STATE_OF_CHARGE, MEASUREMENTS, pylon.PROTECTION_ALARM, ALARMS_WARNINGS, pylon.REQUESTS,
          pylon.MANUFACTURER, sma.SYSTEM_INFO)

PROFILE = Profile(
    "victron", FRAMES, (inverter.KEEPALIVE, inverter.GX_HEARTBEAT, inverter.GX_IDENTIFICATION),
    [inverter.standard_filter(0x305), inverter.standard_filter(0x306), inverter.standard_filter(0x307)],
    default_manufacturer="VENUSBMS", product_name="Inverter (Pylon CAN)")
