"""Deye SG01HP3 (and Sol-Ark HV three-phase, presumed): Pylon HV as Battery-Emulator's working
settings send it (BE-wiki/deye, PYLON_HV.md §5): little endian with the 30000 offset, the
discharge limit in the positive form (30000 + 10*I), and the name "Deye", which unlocks more
information in Deye's app (BE PR #2150); Deye's V1.17 document carries the name in
0x42E0/0x42F0 too, so it is sent in both places.

Deye ignores zero current limits: the 0x4280 forbid marks (always set when a limit is 0) are
what stops it.
"""
from protocol.pylon_hv import HvSettings, PylonHvProfile

PROFILE = PylonHvProfile("deye_hv", HvSettings(discharge_limit_negative=False, manufacturer="Deye",
                                               name_in_ensemble=True),
                         product_name="Deye HV inverter")
