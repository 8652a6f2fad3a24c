"""Generic Pylontech LV V1.2 (PYLON_CAN.md §1-2): what a US5000 sends, for any "Pylon" inverter.

0x305 keep-alives are accepted as standard and as 29-bit frames (Schneider XW Pro, §4.1).
"""
from protocol import inverter, pylon
from protocol.profile import Profile

PROFILE = Profile(
    "pylon", pylon.FRAMES, (inverter.KEEPALIVE, inverter.KEEPALIVE_EXTENDED),
    [inverter.standard_filter(0x305), inverter.extended_filter(0x305)], product_name="Inverter (Pylon CAN)")
