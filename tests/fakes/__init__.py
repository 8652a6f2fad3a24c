"""Stand-ins for Victron services on a private bus, written from VENUS.md alone.

They share no code with ``venus/`` on purpose: a fake built from the same code as the thing
under test would agree with it even where both are wrong.
"""
