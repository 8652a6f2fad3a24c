"""Battery data sources for a device without a Venus battery service (a plain Raspberry Pi)."""
