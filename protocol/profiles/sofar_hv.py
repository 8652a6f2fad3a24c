"""Sofar HYD-3PH (and ZCS Azzurro, its OEM, "might"): Pylon HV with battery address 01, so every
reply id ends in 1 (0x4211..., 0x7311...); little endian, 30000 offset, discharge limit in the
positive form (BE-wiki/sofar: "send group 1" + "invert byteorder" + "30k offset").
Set the battery address to 01 in the inverter.
"""
from protocol.pylon_hv import HvSettings, PylonHvProfile

PROFILE = PylonHvProfile("sofar_hv", HvSettings(address=1, discharge_limit_negative=False),
                         product_name="Sofar HV inverter")
