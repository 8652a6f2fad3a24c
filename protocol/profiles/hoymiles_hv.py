"""Hoymiles HYT/HAT-HV ("Pylontech" in S-Miles Installer): little endian with the 30000 offset and
the discharge limit in the positive form, as Battery-Emulator's tested settings send it
(BE-wiki/hoymiles: without them "the inverter will not see correct data").
"""
from protocol.pylon_hv import HvSettings, PylonHvProfile

PROFILE = PylonHvProfile("hoymiles_hv", HvSettings(discharge_limit_negative=False),
                         product_name="Hoymiles HV inverter")
