"""Pure models of a battery and an inverter for the demo and closed-loop tests. Time is passed in."""
