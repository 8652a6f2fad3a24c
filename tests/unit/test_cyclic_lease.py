"""The lease of kernel periodic tasks: a stopped process's frames stop, a running one's never do.

The fake broadcast manager decodes the very BCM messages python-can and ``canbus.bus`` write
and follows the kernel's rules (net/can/bcm.c): a TX_SETUP with a count sends that many frames,
the first at once, then stops; a TX_SETUP with SETTIMER alone sets a new count on a running
timer and keeps its phase, but does not restart one that has stopped.
"""
import ctypes

import pytest
from can.interfaces.socketcan import SocketcanBus, constants, socketcan

import config
from canbus.cyclic import CyclicFrameSet, Schedule, known_sent_until
from protocol.frame import Frame

IDS = (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E)
CYCLE = 1.0
LEASE = 5.0


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


class FakeBcmSocket:
    def __init__(self, task):
        self.task = task

    def send(self, data):
        head = socketcan.BcmMsgHead.from_buffer_copy(data[:ctypes.sizeof(socketcan.BcmMsgHead)])
        assert head.opcode == constants.CAN_BCM_TX_SETUP and head.can_id == self.task.task_id
        assert not head.flags & constants.STARTTIMER, "the phase is kept"
        if head.flags & constants.SETTIMER:     # else only the data changes
            assert (head.ival1_tv_sec + head.ival1_tv_usec / 1e6, head.ival2_tv_sec, head.ival2_tv_usec) == (
                self.task.period, 0, 0), "count frames one period apart, then none"
            self.task.renew(head.count)
        return len(data)


class KernelTask(socketcan.CyclicSendTask):
    """One broadcast-manager transmit operation on a fake clock: its frames are the due times
    from its start, one period apart, up to ``last`` (None: for ever) and its stop."""

    def __init__(self, bus, message, period, count):   # no socket: the fake one decodes what is sent
        self.bus, self.period, self.messages, self.flags = bus, period, (message,), 0
        self.task_id = self.arbitration_id = message.arbitration_id
        self.bcm_socket = FakeBcmSocket(self)
        self.started, self.stopped = bus.clock(), None
        self.last = None if count == 0 else self.started + (count - 1) * period

    def renew(self, count):
        now = self.bus.clock()
        if self.last is not None and now >= self.last:
            return      # the timer has stopped: SETTIMER alone does not restart it
        upcoming = self.started + (int((now - self.started) / self.period) + 1) * self.period
        self.last = upcoming + (count - 1) * self.period

    def stop(self):
        self.stopped = self.bus.clock()

    def frame_times(self, until):
        end = min(x for x in (until, self.last, self.stopped) if x is not None)
        return [self.started + k * self.period for k in range(int((end - self.started) / self.period + 1e-9) + 1)]


class KernelBus(SocketcanBus):
    def __init__(self, clock):      # no socket
        self.clock, self.tasks, self.sent = clock, [], []
        self._is_shutdown = True

    def send(self, msg, timeout=None):
        self.sent.append((self.clock(), msg.arbitration_id))

    def send_periodic(self, msg, period, duration=None):
        task = KernelTask(self, msg, period, int(duration / period) if duration else 0)   # python-can's count
        self.tasks.append(task)
        return task

    def frames(self, until):
        """(time, id) of every frame on the bus up to ``until``."""
        return sorted(self.sent + [(t, task.task_id) for task in self.tasks for t in task.frame_times(until)])


def frames(value=0):
    return [Frame(i, bytes([value])) for i in IDS]


def started_set(clock, lease_s=LEASE):
    bus = KernelBus(clock)
    schedule = Schedule(clock.t + 0.1, CYCLE, IDS)

    def wait(seconds):
        clock.t += seconds
        return False

    sender = CyclicFrameSet(bus, schedule, clock=clock, lease_s=lease_s)
    assert sender.start(frames(), [clock.t] * len(IDS), wait)
    return bus, sender


def run_cycles(clock, sender, cycles):
    for n in range(cycles):
        clock.t += CYCLE
        assert sender.update(frames(n % 256)), "a running sender's lease is renewed every cycle"


def last_frames(bus, until):
    return {frame_id: max(t for t, i in bus.frames(until) if i == frame_id) for frame_id in IDS}


def test_renewed_every_cycle_the_frames_go_on_without_a_gap_and_keep_their_phase():
    clock = FakeClock()
    bus, sender = started_set(clock)
    run_cycles(clock, sender, 30)
    for frame_id in IDS:
        times = [t for t, i in bus.frames(clock.t) if i == frame_id]
        assert len(times) >= 30 and all(abs(b - a - CYCLE) < 1e-9 for a, b in zip(times, times[1:]))


def test_a_frozen_sender_falls_silent_within_its_lease_and_its_record_never_claims_more():
    clock = FakeClock()
    bus, sender = started_set(clock)
    run_cycles(clock, sender, 3)
    renewed_at = clock.t
    wire = sender.wire          # what the frames slot holds when the whole tree freezes
    clock.t += 60               # frozen: nobody renews
    last = last_frames(bus, clock.t)
    assert all(renewed_at < t <= renewed_at + LEASE for t in last.values()), last
    assert wire["lease_until"] <= min(last.values()), "every due time up to lease_until went out"
    claimed = known_sent_until(wire, alive_until=clock.t)    # a supervisor that killed it just now
    assert claimed == [wire["lease_until"]] * len(IDS)


def test_after_a_lapse_update_stops_the_set_and_a_new_one_continues_where_the_frames_stopped():
    clock = FakeClock()
    bus, sender = started_set(clock)
    run_cycles(clock, sender, 3)
    clock.t += 20
    assert not sender.update(frames()) and not sender.running
    sent_until = known_sent_until(sender.wire)
    last = last_frames(bus, clock.t)
    assert all(until <= last[i] for until, i in zip(sent_until, IDS)), "no frame claimed that was not sent"

    def wait(seconds):
        clock.t += seconds
        return False

    again = CyclicFrameSet(bus, sender.schedule, clock=clock, lease_s=LEASE)
    resumed_at = clock.t
    assert again.start(frames(), sent_until, wait)
    assert sorted(i for t, i in bus.sent if t == resumed_at) == sorted(IDS), "each overdue ID is caught up at once"
    run_cycles(clock, again, 3)
    assert all(t > clock.t - CYCLE for t in last_frames(bus, clock.t).values())


def test_without_a_lease_the_kernel_sends_for_ever_and_updates_never_fail():
    clock = FakeClock()
    bus, sender = started_set(clock, lease_s=0.0)
    run_cycles(clock, sender, 2)
    clock.t += 60
    assert sender.update(frames()) and sender.wire["lease_until"] is None
    assert all(t > clock.t - CYCLE for t in last_frames(bus, clock.t).values())


def test_a_lease_too_short_for_the_watchdog_is_refused_and_zero_turns_it_off():
    defaults = config.load()
    with pytest.raises(config.ConfigError) as error:
        defaults.replace(can={"frame_lease_s": 4.0}, watchdog={"heartbeat_timeout_s": 2.0})
    assert any("can.frame_lease_s = 4 is below" in problem and "at least 5" in problem
               for problem in error.value.problems)
    assert defaults.replace(can={"frame_lease_s": 0.0}).can.frame_lease_s == 0.0
    assert defaults.can.frame_lease_s == 10.0
