# SPDX-License-Identifier: GPL-2.0-only
"""The guest-report parser over real recorded channels, and over hostile input."""

import pytest

from harness.facts.report import (MAX_REPORT_BYTES, ReportError, parse_loader, parse_report,
                            take_block)
from recorded import RUNS, agent_blocks, names


def test_every_recorded_report_parses():
    for name in names():
        blocks = agent_blocks(name)
        assert blocks, name
        for number, block in enumerate(blocks, 1):
            report = parse_report(block)
            assert report.layer == number
            if name.startswith("a64-"):      # the device tree: no boot_params, a copy of the FDT
                assert report.get("fdt").startswith("d00dfeed")
            else:
                assert len(report.boot_params) == 4096
            assert report.get("kernel_release")
            assert "Run /init as init process" in report.get("dmesg")


def test_consumed_seed_as_the_guest_saw_it():
    # kexec-file-2, layer 2: the 6.1 child got a seed from kexec_file_load and zeroed it.
    report = parse_report(agent_blocks("kexec-file-2")[1])
    (entry,) = report.sysfs_entries
    assert entry.type == 9 and entry.data == b"" and entry.mode == 0o444
    assert report.setup_data_head == 0x990D0
    assert "random.trust_cpu=off" in report.get("cmdline")


def test_old_kernel_leaves_the_seed_readable():
    report = parse_report(agent_blocks("old-child")[1])
    (entry,) = report.sysfs_entries
    assert report.get("kernel_release").startswith("5.10.")
    assert entry.type == 9 and len(entry.data) == 32 and any(entry.data)
    assert entry.world_readable


def test_first_layer_has_no_setup_data():
    report = parse_report(agent_blocks("qemu-only")[0])
    assert report.sysfs_entries == () and report.setup_data_head == 0


def test_loader_record_from_a_real_run():
    stream = (RUNS / "unseeded-parent" / "agent.log").read_bytes()
    block, _ = take_block(stream, b"@loader ", b"@end-loader")
    record = parse_loader(block)
    assert record.loader == "kexec_file_load" and record.rc == 0 and record.rng_ready is False


def test_take_block_waits_for_the_end_line():
    assert take_block(b"@begin 1\n@field x\n|y\n", b"@begin ", b"@end 1") == (None, b"@begin 1\n@field x\n|y\n")
    block, rest = take_block(b"noise\n@begin 1\n@end 1\n@loader", b"@begin ", b"@end 1")
    assert block == b"@begin 1\n@end 1\n" and rest == b"@loader"


@pytest.mark.parametrize("raw, message", [
    (b"", "empty"),
    (b"@begin 1\n@field dmesg\n|x\n", "not closed"),
    (b"@begin 1\n|orphan\n@end 1\n", "outside a field"),
    (b"@begin 1\n@field ../../etc/passwd\n@end 1\n", "bad field name"),
    (b"@begin 1\n@field a\n@field a\n@end 1\n", "sent twice"),
    (b"@begin 1\n@field boot_params\n|zz\n@end 1\n", "not hex"),
    (b"@begin 1\n@field setup_data/0/type\n|0x9\n@end 1\n", "incomplete"),
    (b"@begin 1\nrm -rf /\n@end 1\n", "unexpected"),
    (b"@begin 2\n@end 1\n", "not closed"),
    (b"@begin 1\n" + b"|" * (MAX_REPORT_BYTES + 1), "limit"),
])
def test_malformed_reports_are_refused(raw, message):
    with pytest.raises(ReportError, match=message):
        parse_report(raw)


# Any input, fuzzed: tests/test_fuzz.py.


def test_loader_record_keeps_the_guests_clock():
    block = (b"@loader kexec_file_load 0 yes\n@field loader_output\n|ok\n"
             b"@field loader_uptime\n|2.70\n|3.91\n|5.02\n@end-loader\n")
    record = parse_loader(block)
    assert record.uptime.split() == ["2.70", "3.91", "5.02"] and record.output == "ok"
    assert parse_loader(b"@loader kexec_load 0 no\n@end-loader\n").uptime == ""
