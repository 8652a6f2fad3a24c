"""Deye / Sunsynk LV ("Lithium 00"): the Pylon V1.2 set with Deye's quirks (PYLON_CAN.md §6).

* Deye only recognises 0x35E names that start with "PYLON" ("PYLONDIY" works, "DIYPYLON" not).
* Deye answers 0x305 only after 0x356 and pauses more than 5 s every ~2 h and at midnight, so
  the link supervision must wait at least 6 s (YamBMS users run 6 s).
* Deye ignores CCL/DCL = 0; the "SOC 100 % / 0 %" workaround is not done here (it lies about
  the SOC and belongs to an explicit, opt-in decision of the BMS).
"""
from protocol import inverter, pylon
from protocol.profile import Profile

PROFILE = Profile(
    "deye", pylon.FRAMES, (inverter.KEEPALIVE, inverter.KEEPALIVE_EXTENDED),
    [inverter.standard_filter(0x305), inverter.extended_filter(0x305)],
    manufacturer_prefix="PYLON", min_keepalive_timeout_s=6.0, product_name="Deye inverter",
    ignores_zero_limits=True)
