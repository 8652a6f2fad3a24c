"""Pure BMS decisions: battery snapshot in, what the inverter may do out. No I/O; time is passed in."""
