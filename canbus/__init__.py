"""The CAN I/O shell: opening a python-can bus from the config, and sending a frame set on cadence."""
