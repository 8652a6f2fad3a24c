"""A worker without processes for driving a worker's class in a unit test: shared memory as a
dict (values round-trip through JSON as in the real slots), the shipped config with the charge
state file given, no heartbeat."""
import json
import logging
import threading

import config
from workers.runtime import Worker


class FakeState:
    def __init__(self):
        self.slots = {}

    def read(self, slot):
        return self.slots.get(slot)

    def write(self, slot, value):
        self.slots[slot] = json.loads(json.dumps(value))


class FakeWorker:
    def __init__(self, charge_file, state=None):
        self.cfg = config.load().replace(state={"charge_file": str(charge_file)})
        self.state = state or FakeState()
        self.log = logging.getLogger("pylon-venus.test")
        self.stopping = threading.Event()

    beat_period_s = Worker.beat_period_s      # the real worker's rule, on this config

    def beat(self, **info):
        pass

    def wait(self, seconds):
        return self.stopping.wait(seconds)
