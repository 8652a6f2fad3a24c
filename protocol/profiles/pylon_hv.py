"""Generic Pylontech HV ("Force H1/H2", SC0500): the protocol as its documents define it
(PYLON_HV.md §8): reply address 0, little endian, currents +30000, discharge limit in the
negative form (30000 - 10*I, §6 C2), name "PYLONTECH" in 0x7330/0x7340.

For: GoodWe ET/EH/BT/BH (H: Force H2, diyBMS), SAJ H2 ("Pylon-SC0500", H), Solis RHI-HVES /
S6-EH3P in Pylon mode (H), Sermatec (M), Sungrow SH-RT (seen polling 0x4200, M), Growatt SPH
TL3 BH (the EEV capture), and the families only presumed to speak Pylon HV (L). An inverter
that reads a zero or absurd discharge limit with this profile wants ``hoymiles_hv``'s
positive form.
"""
from protocol.pylon_hv import HvSettings, PylonHvProfile

PROFILE = PylonHvProfile("pylon_hv", HvSettings(), product_name="Inverter (Pylon HV CAN)")
