"""The identity paths every Venus service publishes (VENUS.md §5, velib's add_mandatory_paths)."""
from typing import Optional

from venus.busitem import BusService

PROCESS_NAME = "pylon-venus"


def add_identity(service: BusService, process_version: str, connection: str, device_instance: int,
                 product_id: int, product_name: str, firmware_version: Optional[int]) -> None:
    """``/DeviceInstance`` first: consumers skip a service without it (§4.4)."""
    service.add_path("/DeviceInstance", device_instance)
    service.add_path("/Mgmt/ProcessName", PROCESS_NAME)
    service.add_path("/Mgmt/ProcessVersion", process_version)
    service.add_path("/Mgmt/Connection", connection)
    service.add_path("/ProductId", product_id)
    service.add_path("/ProductName", product_name)
    service.add_path("/FirmwareVersion", firmware_version, text=lambda path, value: "%X" % value)
    service.add_path("/HardwareVersion", None)
    service.add_path("/Connected", 1)
    service.add_path("/Serial", None)


def device_instance_of(class_and_instance, default: int) -> int:
    """The instance in a ClassAndVrmInstance value like ``"vebus:276"``; ``default`` when absent."""
    try:
        return int(str(class_and_instance).split(":", 1)[1])
    except (IndexError, ValueError):
        return default
