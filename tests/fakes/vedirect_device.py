"""A VE.Direct battery monitor on a pseudo-terminal: checksum-correct text blocks from a simple
battery model, with HEX frames and noise between them, bad-checksum blocks on demand, and a
port that can be unplugged (the node disappears, reads fail) and plugged in again."""
import os
import threading
import tty


def block(fields):
    """A text block as the VE.Direct protocol describes it (the sum of all its bytes is 0 mod 256)."""
    body = b"".join(b"\r\n%s\t%s" % (label.encode(), str(value).encode()) for label, value in fields)
    body += b"\r\nChecksum\t"
    return body + bytes([-sum(body) % 256])


class VeDirectDevice:
    """Writes a SmartShunt-like main block and a history block every ``period_s`` at ``link``, and
    the same bytes at each of ``split_to`` (a TX line split to more receivers)."""

    def __init__(self, link, period_s=0.1, millivolts=53120, milliamps=-12345, per_mille=827, celsius=21,
                 split_to=()):
        self.link = link
        self.links = (link,) + tuple(split_to)
        self.period_s = period_s
        self.values = {"V": millivolts, "I": milliamps, "SOC": per_mille, "T": celsius}
        self.bad_blocks = 0          # send this many blocks with a wrong checksum next
        self.sent = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ports = []
        self._thread = None

    def main_block(self):
        with self.lock:
            v = dict(self.values)
        return block([("PID", "0xA389"), ("V", v["V"]), ("VS", 12950), ("I", v["I"]), ("P", v["V"] * v["I"] // 10 ** 6),
                      ("CE", -48250), ("SOC", v["SOC"]), ("TTG", 1234), ("Alarm", "OFF"), ("Relay", "OFF"),
                      ("AR", 0), ("T", v["T"]), ("BMV", "SmartShunt 500A/50mV"), ("FW", "0410"), ("MON", 0)])

    def plug(self):
        self._ports = []
        for link in self.links:
            master, slave = os.openpty()
            tty.setraw(slave)                  # what a USB serial port gives: no line discipline
            os.set_blocking(master, False)
            os.symlink(os.ttyname(slave), link)
            self._ports.append((master, slave))
        self._stop.clear()
        self._thread = threading.Thread(target=self._write_loop, daemon=True)
        self._thread.start()
        return self

    def unplug(self):
        """The USB cable pulled: the node disappears and reads on an open port fail."""
        self._stop.set()
        self._thread.join()
        for link, (master, slave) in zip(self.links, self._ports):
            os.unlink(link)
            os.close(master)
            os.close(slave)

    def _write_loop(self):
        ticks = 0
        while not self._stop.wait(self.period_s):
            ticks += 1
            data = self.main_block()
            if self.bad_blocks:
                self.bad_blocks -= 1
                data = data[:-1] + bytes([(data[-1] + 1) % 256])
            data = b":A0002000148\n" + data if ticks % 3 == 0 else data     # a HEX frame in between
            if ticks % 2 == 0:
                data += block([("H4", 12), ("H9", 3600), ("H17", 1563), ("H18", 2095)])
            for master, _ in self._ports:
                try:
                    os.write(master, data)
                except BlockingIOError:
                    pass                     # nobody reads: the data is lost, as on a real line
            self.sent += 1
