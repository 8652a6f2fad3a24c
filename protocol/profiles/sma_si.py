"""SMA Sunny Island 6.0H-11 and relatives with an external BMS [SMA-TI] (PYLON_CAN.md §4.3, §6).

Frames 0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F (no 0x359/0x35C: 0x35C has an SMA meaning).
The SI wants at least 200 ms between frames (inhibit time, §5): six frames in a 1.2 s cycle
keep that spacing when the sender spreads them evenly; its timeouts are 60 s.
It broadcasts its own telemetry on 0x300-0x30F; its 0x305 is battery data, not a keep-alive.
"""
from protocol import inverter, sma
from protocol.profile import Profile

PROFILE = Profile(
    "sma_si", sma.FRAMES, sma.SI_TELEMETRY, [inverter.standard_filter(0x300, 0x7F0)], cycle_s=1.2,
    min_frame_spacing_s=0.2, product_name="SMA Sunny Island", ac_telemetry=True)
