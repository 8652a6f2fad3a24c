"""Command-line tools around the pure core; the I/O stays here."""
