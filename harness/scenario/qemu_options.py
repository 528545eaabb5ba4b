# SPDX-License-Identifier: GPL-2.0-only
"""The QEMU options a scenario or matrix file may carry: those that name no host file,
socket, plugin or program.

A scenario file may come from someone else; QEMU options such as `-plugin file=x.so`
(runs its code), `-chardev file,path=F` (truncates a host file), `-fw_cfg file=F` (reads
one into the guest), `-drive file=F` or `-monitor tcp::4444,server` (opens a port) would
let it act as the user who runs it. So `qemu.extra_args` is an allow-list: each option
is followed by one value, which must match the option's pattern. The machine and CPU
(qemu.machine, qemu.cpu and the matrix's axes) are checked too: a name, then
comma-separated properties, none of which may be one that names a file (`dumpdtb=F`,
`dtb=F`, `romfile=F` ...). Other options are the user's own choice, on the command line
(`seedchain run --qemu-arg`, `pytest --qemu-arg`), never a file's.

The patterns are ECMA 262 as well as Python (the scenario schema carries them too).
"""

from __future__ import annotations

import re

_SMP_KEYS = "cpus|maxcpus|sockets|dies|clusters|modules|cores|threads|books|drawers"
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2})?"
_RTC = rf"(base=(utc|localtime|{_DATE})|clock=(host|rt|vm)|driftfix=(none|slew))"
_ICOUNT = r"(shift=([0-9]+|auto)|align=(on|off)|sleep=(on|off))"

# option -> (pattern of its value, the value in words)
OPTIONS: dict[str, tuple[str, str]] = {
    "-smp": (rf"^([0-9]+|({_SMP_KEYS})=[0-9]+)(,({_SMP_KEYS})=[0-9]+)*$", "N or cpus=N,cores=N,..."),
    "-seed": (r"^[0-9]+$", "a number"),
    "-global": (r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+=[A-Za-z0-9_.+:-]*$", "DRIVER.PROPERTY=VALUE"),
    "-rtc": (rf"^{_RTC}(,{_RTC})*$", "base=utc|localtime|DATE,clock=host|rt|vm,driftfix=none|slew"),
    "-icount": (rf"^{_ICOUNT}(,{_ICOUNT})*$", "shift=N|auto,align=on|off,sleep=on|off"),
}

# One item of extra_args, as the schema sees it: an allowed option, or a value that does
# not start with '-' and holds no '/', space or other character a file name needs.
ITEM = r"^(" + "|".join(OPTIONS) + r"|[A-Za-z0-9_][A-Za-z0-9_.,=+:-]*)$"     # the options are letters and '-'
ITEM_WORDS = (f"one of the options {', '.join(OPTIONS)}, or an option's value (letters, digits and _.,=+:-, "
              "no '/' or space); other options are yours to give on the command line (--qemu-arg)")

# Properties (of -global, -machine, -cpu) whose value is, or leads to, a host file, a
# socket, a program or another object: refused whatever the value.
FILE_PROPERTY = re.compile(r"[a-z0-9_-]*(file|path|dir|rom|bios|name)|dtb|dumpdtb|kernel|initrd|append|"
                           r"firmware|pflash[0-9]*|memory-backend|chardev|drive|netdev|memdev|fd|socket|"
                           r"script|plugin|log|trace|confidential-guest-support|sgx-epc[a-z0-9._-]*|"
                           r"x-[a-z0-9_-]*", re.I)

ALLOWED_WORDS = ", ".join(f"{option} {words}" for option, (_, words) in OPTIONS.items())
HINT = (f"a scenario may give only {ALLOWED_WORDS} (each option, then its value, as two items); "
        "options that could name a host file, socket, plugin or program are yours to give on the "
        "command line: seedchain run --qemu-arg ARG (pytest --qemu-arg ARG)")


def check_extra_args(args: list[str] | tuple[str, ...]) -> tuple[int, str] | None:
    """(index of the first item refused, why) for a scenario's extra_args; None when every
    option is allowed and followed by a value of its pattern."""
    i = 0
    while i < len(args):
        option = args[i]
        if option not in OPTIONS:
            what = "is not an option seedchain lets a scenario give" if option.startswith("-") else \
                "is not an option (the value of one comes after it)"
            return i, f"{option!r} {what}"
        if i + 1 == len(args):
            return i, f"{option} needs a value after it"
        value = args[i + 1]
        if not re.fullmatch(OPTIONS[option][0].strip("^$"), value):
            return i + 1, f"{option} {value!r}: allowed: {option} {OPTIONS[option][1]}"
        if option == "-global":
            prop = value.split("=", 1)[0].split(".", 1)[1]
            if FILE_PROPERTY.fullmatch(prop):
                return i + 1, f"-global {value!r}: property {prop} may name a host file or object"
        i += 2
    return None


def file_property(value: str) -> str | None:
    """The first property of a machine or CPU ('q35,dumpdtb=x': 'dumpdtb') that may name a
    host file or object; None when there is none."""
    for part in value.split(",")[1:]:
        key = part.split("=", 1)[0].lstrip("+-")
        if "=" in part and FILE_PROPERTY.fullmatch(key):
            return key
    return None
