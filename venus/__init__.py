"""The Venus OS side: a BusItem exporter, the battery monitor follower, the vebus and battery
services, DVCC limits, localsettings and energy counters. Used by workers/dbus_publisher.py
(and the simulator's battery monitor); see README.md in this folder."""
