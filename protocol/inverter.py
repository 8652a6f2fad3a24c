"""What inverters send to the battery, and the names their values are stored under.

Every number an inverter frame decodes to is named from ``INVERTER_FIELDS`` (SI units: W,
var, V, A, degC, Hz, %; current positive = charging the battery; flags as bool, codes as
int), so the inverter snapshot can live in a fixed shared-memory layout: one float slot per
name, ``float(value)``. The only other decoded key is the Victron GX's ``identification`` text.
The list only grows at its end.
"""
from typing import Dict

from protocol.layout import Bits, Layout, Text

INVERTER_FIELDS = (
    # AC input (Sunny Island: AC2, grid or generator); L1 = cluster master, L2 = slave 1, L3 = slave 2
    "ac_in_power_w", "ac_in_l1_power_w", "ac_in_l2_power_w",
    "ac_in_reactive_power_var", "ac_in_l1_reactive_power_var", "ac_in_l2_reactive_power_var",
    "ac_in_l1_voltage_v", "ac_in_l2_voltage_v", "ac_in_l3_voltage_v", "ac_in_frequency_hz",
    # the inverter bridge itself
    "inverter_power_w", "inverter_l1_power_w", "inverter_l2_power_w",
    "inverter_reactive_power_var", "inverter_l1_reactive_power_var", "inverter_l2_reactive_power_var",
    # AC output (loads)
    "ac_out_power_w",
    "ac_out_l1_voltage_v", "ac_out_l2_voltage_v", "ac_out_l3_voltage_v", "ac_out_frequency_hz",
    # battery as the inverter measures it
    "battery_voltage_v", "battery_current_a", "battery_temperature_c", "soc_pct", "soh_pct",
    # state
    "charging_procedure", "operating_state", "error_code", "charge_voltage_setpoint_v",
    "relay_state", "ac_in_relay_closed", "ac_in_voltage_valid",
    # commands
    "shutdown_requested",
    # Pylon HV requests (0x4200 byte 0) and control commands (0x8200/0x8210/0x8240 byte 0, 0x8210 byte 1)
    "poll_request", "sleep_command", "relay_charge_command", "relay_discharge_command", "mask_comm_loss",
)

MAX_STANDARD_ID = 0x7FF
MAX_EXTENDED_ID = 0x1FFFFFFF


def standard_filter(can_id: int, can_mask: int = MAX_STANDARD_ID) -> Dict[str, object]:
    """A python-can receive filter for 11-bit frames."""
    return {"can_id": can_id, "can_mask": can_mask, "extended": False}


def extended_filter(can_id: int) -> Dict[str, object]:
    """A python-can receive filter for one 29-bit id."""
    return {"can_id": can_id, "can_mask": MAX_EXTENDED_ID, "extended": True}


# 0x305: eight zero bytes every second [PYLON-1.2] p.2. Content is not checked: some senders put a
# counter in it (PYLON_CAN.md §8 #14). Schneider XW Pro sends it as a 29-bit id (§4.1).
KEEPALIVE = Layout(0x305, "keepalive", 8, (), min_length=0)
KEEPALIVE_EXTENDED = KEEPALIVE._replace(extended=True)

# Victron GX with the CAN-bus BMS profile (PYLON_CAN.md §4.2): 0x306 eight zero bytes,
# 0x307 "12 34 56 78 56 49 43 00" with "VIC" in bytes 4-6.
GX_HEARTBEAT = Layout(0x306, "gx_heartbeat", 8, (), min_length=0)
GX_IDENTIFICATION = Layout(0x307, "gx_identification", 8, (Text("identification", 4, 3),), min_length=7)

# Luxpower/EG4 remote command [LUX] p.2: byte 0 bit 0 = shut the battery down.
LUXPOWER_SHUTDOWN = Layout(0x300, "shutdown_command", 8, (Bits(0, ((0, "shutdown_requested"),)),),
                           min_length=1)
