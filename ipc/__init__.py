"""Shared memory between the supervisor and its workers."""
