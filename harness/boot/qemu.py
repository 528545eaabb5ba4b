# SPDX-License-Identifier: GPL-2.0-only
"""QEMU control: command line, launch, QMP, the agent's channel, guest RAM, shutdown.

QEMU connects out to two sockets we listen on (QMP and the agent's serial port),
so nothing the guest says can be lost to a race with our connect. The console goes
to a file QEMU writes itself: the log survives whatever happens to this process.
QEMU dies with us (PR_SET_PDEATHSIG), and `close()` asks it to quit over QMP before
it is killed.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.arch import DEFAULT
from harness.arch import get as get_arch
from harness.errors import QemuError
from harness.private import make_folder, open_file, write_file
from harness.proc import die_with_parent

if TYPE_CHECKING:       # imported where QEMU starts: its asyncio loop is not needed before
    from harness.boot.qmp import Monitor

log = logging.getLogger(__name__)
SOCKET_PATH_MAX = 107       # sockaddr_un's sun_path holds 108 bytes with its terminating NUL
# What QEMU prints when a signal ends it (runstate.c, qemu_kill_report): the pid is
# the sender's, left out when the kernel sent it (a terminal's Ctrl-C).
_TERMINATED = re.compile(r"terminating on signal ([0-9]+)(?: from pid ([0-9]+))?")
SOCKETS = ("qmp.sock", "agent.sock", "gdb.sock")      # the sockets QEMU has in a run's folder


def check_socket_room(workdir: Path) -> None:
    """Refuse a run folder whose sockets' paths would not fit in a Unix socket address."""
    for name in SOCKETS:
        path = Path(workdir) / name
        if len(os.fsencode(path)) > SOCKET_PATH_MAX:
            raise QemuError(f"the artifacts folder's path is too long for QEMU's sockets: {path} has "
                            f"{len(os.fsencode(path))} bytes, a Unix socket's path at most {SOCKET_PATH_MAX}",
                            where=str(workdir), hint="give a shorter --artifacts folder")


def base_args(*, machine: str, cpu: str, memory: int, accel: str, rng: str,
              firmware: str = "seabios", workdir: Path | None = None, arch: str = DEFAULT,
              vars_template: Path | None = None, boot_disk: Path | None = None) -> list[str]:
    """Options for the machine itself; `workdir` (the run's folder) holds per-run
    firmware files (OVMF's variable store)."""
    args = [
        "-nodefaults", "-no-user-config", "-display", "none",
        "-no-reboot",            # a guest reset or panic ends QEMU: the runner sees it
        "-machine", machine, "-accel", accel, "-cpu", cpu, "-m", str(memory), "-smp", "1",
    ]
    return args + get_arch(arch).machine_args(machine=machine, rng=rng, firmware=firmware,
                                              workdir=workdir, vars_template=vars_template,
                                              boot_disk=boot_disk)


class Machine:
    """One QEMU process with its console file, QMP and agent channel."""

    def __init__(self, command: list[str] | str, args: list[str], workdir: Path,
                 agent_device: list[str] | None = None):
        # command: the binary, after any wrapper (bwrap) that runs it (qemu_builds).
        self.command = [command] if isinstance(command, str) else list(command)
        self.binary = self.command[-1]
        self.workdir = workdir
        self.console_path = workdir / "console.log"
        self.qemu_log_path = workdir / "qemu.log"
        self._qmp_path = workdir / "qmp.sock"
        self._agent_path = workdir / "agent.sock"
        self.args = [
            *args,
            "-chardev", f"file,id=console,path={self.console_path}",
            "-serial", "chardev:console",
            "-chardev", f"socket,id=agent,path={self._agent_path}",
            # the agent's channel (chardev "agent") as the architecture wires it: x86's
            # second serial port (ttyS1) by default
            *(agent_device if agent_device is not None else ["-serial", "chardev:agent"]),
            "-chardev", f"socket,id=qmp,path={self._qmp_path}",
            "-mon", "chardev=qmp,mode=control",
        ]
        self.proc: subprocess.Popen | None = None
        self.qmp: Monitor | None = None
        self._agent: socket.socket | None = None
        self._agent_listener: socket.socket | None = None
        self._buffer = b""
        self.exit_code: int | None = None

    @property
    def command_line(self) -> str:
        return shlex.join([*self.command, *self.args])

    # -- start ---------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        from harness.boot.qmp import Monitor

        make_folder(self.workdir)
        check_socket_room(self.workdir)
        for path in (self._qmp_path, self._agent_path, self.workdir / "gdb.sock"):
            path.unlink(missing_ok=True)
        self._agent_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._agent_listener.bind(str(self._agent_path))
        self._agent_listener.listen(1)
        self.qmp = Monitor(self._qmp_path)
        write_file(self.workdir / "qemu-cmdline.txt", self.command_line + "\n")
        # QEMU appends to the console file it is given: made here, private, before it starts.
        os.close(open_file(self.console_path))
        with os.fdopen(open_file(self.qemu_log_path), "wb") as qemu_log:
            try:
                self.proc = subprocess.Popen(
                    [*self.command, *self.args], stdin=subprocess.DEVNULL, stdout=qemu_log,
                    stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
            except OSError as exc:
                raise QemuError(f"cannot run {self.binary}: {exc.strerror}",
                                hint="check the QEMU path (--qemu) and that it is executable") from None
        deadline = time.monotonic() + timeout
        self._agent_listener.settimeout(0.2)
        while self._agent is None:
            self._check_alive("while starting")
            if time.monotonic() > deadline:
                raise self._launch_error(f"QEMU did not connect to the agent socket in {timeout:.0f} s")
            try:
                self._agent, _ = self._agent_listener.accept()
            except TimeoutError:
                continue
        try:
            self.monitor.accept(timeout=max(1.0, deadline - time.monotonic()))
        except Exception as exc:  # qemu.qmp raises several kinds; all mean "no monitor"
            self._check_alive("while connecting QMP")
            raise self._launch_error(f"QMP did not come up: {exc}") from None
        self._agent.setblocking(False)

    def _launch_error(self, what: str) -> QemuError:
        output = self.qemu_output()
        # QEMU was started and did not come up: worth one more try (the runner bounds it).
        return QemuError(what, where="qemu", transient=True,
                         hint=f"command line: {self.command_line}\n  QEMU said: {output or '(nothing)'}")

    def qemu_output(self) -> str:
        try:
            return self.qemu_log_path.read_text(errors="replace").strip()[-2000:]
        except OSError:
            return ""

    def _check_alive(self, when: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            raise self._launch_error(f"QEMU exited with status {self.exit_code} {when}")

    @property
    def monitor(self) -> Monitor:
        """The QMP connection, once start() made it."""
        if self.qmp is None:
            raise QemuError("QEMU's monitor is not connected: the machine was not started", where="qemu")
        return self.qmp

    # -- running -------------------------------------------------------------------------
    def running(self) -> bool:
        if self.proc is None:
            return False
        if self.proc.poll() is None:
            return True
        self.exit_code = self.proc.returncode
        return False

    def killed_by(self) -> str | None:
        """How a signal from outside ended QEMU ("signal 15 (SIGTERM) from pid 123"), from its
        exit status or its own last words in qemu.log; None when no signal did."""
        found = _TERMINATED.search(self.qemu_output()[-500:])
        if found:
            number, sender = int(found.group(1)), found.group(2)
        elif self.exit_code is not None and self.exit_code < 0:
            number, sender = -self.exit_code, None
        else:
            return None
        try:
            name = f" ({signal.Signals(number).name})"
        except ValueError:
            name = ""
        return f"signal {number}{name}" + (f" from pid {sender}" if sender else "")

    def query_version(self) -> str:
        reply = self.monitor.cmd("query-version")
        q = reply["qemu"]
        package = reply.get("package", "").strip()
        return f"{q['major']}.{q['minor']}.{q['micro']}" + (f" ({package})" if package else "")

    def read_agent(self, wait: float) -> bytes:
        """Whatever the agent sent within `wait` seconds ("" when nothing, or closed)."""
        if self._agent is None:
            return b""
        ready, _, _ = select.select([self._agent], [], [], wait)
        if not ready:
            return b""
        try:
            return self._agent.recv(1 << 16)
        except (BlockingIOError, ConnectionResetError):
            return b""

    def answer_agent(self, word: str) -> None:
        if self._agent is not None:
            self._agent.setblocking(True)
            try:
                self._agent.sendall(word.encode() + b"\n")
            except OSError:
                pass  # QEMU went away; the runner sees that next
            finally:
                self._agent.setblocking(False)

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest-physical memory through the monitor's `xp` (works while the guest runs)."""
        text = self.monitor.cmd("human-monitor-command", **{"command-line": f"xp /{size}xb {address:#x}"})
        data = bytearray()
        for line in str(text).splitlines():
            _, _, values = line.partition(":")
            data += bytes(int(v, 16) for v in re.findall(r"0x([0-9a-fA-F]{2})\b", values))
        if len(data) != size:
            raise QemuError(f"reading {size} bytes at {address:#x} gave {len(data)}: {str(text)[:200]}")
        return bytes(data)

    def wait_exit(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    # -- stop ----------------------------------------------------------------------------
    def close(self) -> None:
        """Quit gracefully over QMP, then terminate, then kill; always closes sockets."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.monitor.settimeout(2.0)
                self.monitor.cmd("quit")
            except Exception:  # the monitor may be gone already; killing follows
                pass
            if self.wait_exit(3.0) is None:
                self.proc.terminate()
                if self.wait_exit(3.0) is None:
                    self.proc.kill()
                    self.wait_exit(5.0)
        elif self.proc is not None:
            self.exit_code = self.proc.returncode
        for closer in (getattr(self.qmp, "close", None), getattr(self._agent, "close", None),
                       getattr(self._agent_listener, "close", None)):
            if closer:
                try:
                    closer()
                except Exception:  # closing a half-open monitor may raise; nothing to save
                    pass
        for path in (self._qmp_path, self._agent_path):
            path.unlink(missing_ok=True)

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def kvm_usable(command: list[str] | str, kernel: Path, workdir: Path, timeout: float = 10.0) -> bool:
    """Does KVM really work here? /dev/kvm can exist and still hang guests.

    Boots the kernel with no initramfs: it panics at once for want of a root
    filesystem, which (with -no-reboot) ends QEMU. Under working KVM that takes a
    second or two; a hang or an abort means no.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    workdir.mkdir(parents=True, exist_ok=True)
    console = workdir / "kvm-probe.log"
    command = [command] if isinstance(command, str) else list(command)
    args = [*command, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-machine", "q35", "-accel", "kvm", "-cpu", "max", "-m", "256",
            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1",
            "-serial", f"file:{console}"]
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, preexec_fn=die_with_parent)
    except (subprocess.TimeoutExpired, OSError):
        return False
    text = console.read_text(errors="replace") if console.exists() else ""
    return proc.returncode == 0 and "Kernel panic" in text
