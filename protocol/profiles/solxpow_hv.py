"""Solinteg / Solxpow / Wattsonic ("Default HV_1 CANBUS Protocol of High Voltage system V00.01",
BE-inv/SOLXPOW-CAN.cpp, M): Pylon HV little endian **without** the 30000 current offset
(signed 0.1 A, discharge limit positive), temperatures still +1000, and "XXXXXXXX" in both
name frames (BE issue #987).
"""
from protocol.pylon_hv import HvSettings, PylonHvProfile

PROFILE = PylonHvProfile("solxpow_hv", HvSettings(discharge_limit_negative=False, current_offset=False,
                                                  manufacturer="XXXXXXXXXXXXXXXX"),
                         product_name="Solinteg/Solxpow HV inverter")
