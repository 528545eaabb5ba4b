# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=sh disable=SC2034,SC2154
# (agent.sh, which sources this file, reads its variables and sets $scratch)
# seedchain guest agent, x86_64's part: sourced by agent.sh (read it first) as
# /seedchain/arch.sh. The seed arrives as a setup_data entry of type 9 (SETUP_RNG_SEED),
# which the kernel shows under /sys/kernel/boot_params; the report goes over the second
# serial port (ttyS1), the console staying on ttyS0.

CPU_FLAGS='^flags'
KEXEC_LOAD="-c -l"
DEBUG_FILES="kexec-bzimage64.c"      # "Loaded 64bit kernel at 0x..." (kexec_file_load)
LOADER_DMESG='Loaded 64bit kernel at'
TRANSPORT="CONFIG_VIRTIO_PCI=y, or CONFIG_VIRTIO_MMIO=y on microvm"

open_channel() {
	[ -c /dev/ttyS1 ] || halt "no /dev/ttyS1: the host's report channel is missing"
	# The 8250 driver makes ttyS0-3 whether or not a UART is there; writes to an empty one fail.
	grep -q '^1: uart:unknown' /proc/tty/driver/serial 2>/dev/null &&
		halt "ttyS1 has no UART behind it: the host's report channel is missing"
	stty -F /dev/ttyS1 raw -echo 2>/dev/null
	exec 3>/dev/ttyS1 4</dev/ttyS1
}

report_seed() {
	field boot_protocol </sys/kernel/boot_params/version
	hex /sys/kernel/boot_params/data >"$scratch"
	long_field boot_params <"$scratch"
	for entry in /sys/kernel/boot_params/setup_data/*; do
		[ -d "$entry" ] || continue
		n=${entry##*/}
		field "setup_data/$n/type" <"$entry/type"
		output "setup_data/$n/data" hex "$entry/data"
		output "setup_data/$n/mode" stat -c %a "$entry/data"
	done
}

loader_output() {
	long_field loader_output </tmp/loader.out
}
