"""What the VM gives the daemon besides CAN: shared memory with forked processes, a private
D-Bus, python-can's UDP multicast bus on loopback. A failure here is the harness's problem."""
import multiprocessing
import os
import subprocess
from multiprocessing import shared_memory

import can
import dbus  # Debian's dbus-python, through the venv's system site-packages


def _write_to_shared_memory(name: str) -> None:
    block = shared_memory.SharedMemory(name=name)
    block.buf[:5] = b"child"
    block.close()


def test_shared_memory_lives_in_dev_shm_and_is_shared_with_a_forked_child():
    """As the supervisor does: fork (spawn works too, but costs ~10 s a child in the VM)."""
    block = shared_memory.SharedMemory(create=True, size=4096)
    try:
        assert os.path.exists("/dev/shm/" + block.name)
        child = multiprocessing.get_context("fork").Process(
            target=_write_to_shared_memory, args=(block.name,))
        child.start()
        child.join(timeout=30)
        assert child.exitcode == 0
        assert bytes(block.buf[:5]) == b"child"
    finally:
        block.close()
        block.unlink()


def test_a_private_dbus_daemon_starts_and_answers(tmp_path):
    address = "unix:path=%s" % (tmp_path / "bus")
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile",
                               "--address=" + address, "--print-address"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert daemon.stdout.readline().decode().startswith(address)
        connection = dbus.bus.BusConnection(address)
        names = connection.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                         "org.freedesktop.DBus", "ListNames", "", [])
        assert "org.freedesktop.DBus" in names
        connection.close()
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_python_can_udp_multicast_bus_works_on_loopback():
    """The simulation's virtual bus (python-can udp_multicast on an IPv4 group)."""
    group = {"interface": "udp_multicast", "channel": "239.74.163.99", "port": 43199}
    with can.Bus(**group) as sender, can.Bus(**group) as receiver:
        sender.send(can.Message(arbitration_id=0x351, data=b"\x01\x02", is_extended_id=False))
        message = receiver.recv(timeout=5)
    assert message is not None
    assert (message.arbitration_id, bytes(message.data)) == (0x351, b"\x01\x02")
