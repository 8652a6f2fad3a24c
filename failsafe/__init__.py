"""Keeping valid frames on the bus when a part fails: the failsafe transmitter."""
