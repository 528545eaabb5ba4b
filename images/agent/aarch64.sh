# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=sh disable=SC2034,SC2154
# (agent.sh, which sources this file, reads its variables and sets $scratch)
# seedchain guest agent, arm64's part: sourced by agent.sh (read it first) as
# /seedchain/arch.sh. The seed arrives as /chosen/rng-seed of the DTB, which the kernel
# removes from its tree on receipt; this layer reports what is left of it
# (/proc/device-tree/chosen and a copy of /sys/firmware/fdt, parsed by the host), and the
# host reads the DTB itself at each hand-over.
#
# The channel: -M virt has one UART (the console, ttyAMA0), so the report goes over a
# virtio serial port named org.seedchain.agent. A Debian kernel has its drivers as
# modules (virtio_mmio, virtio_console): they come first in MODULES.

PORT_NAME=org.seedchain.agent
CPU_FLAGS='^Features'
# -i: no purgatory checksum for kexec_load; under TCG the check takes about 7 s a hop
# (measured) and has nothing to do with the seed.
KEXEC_LOAD="-c -i -l"
DEBUG_FILES="kexec_image.c machine_kexec_file.c kexec.c"
LOADER_DMESG='Loaded (kernel|dtb) at|RNG is not initiali[sz]ed'
TRANSPORT="CONFIG_VIRTIO_MMIO=y"

open_channel() {
	# The port's name shows in sysfs a moment after the driver binds (seen after a kexec).
	port=
	tries=50
	while [ $tries -gt 0 ] && [ -z "$port" ]; do
		for p in /sys/class/virtio-ports/*; do
			[ -r "$p/name" ] && [ "$(cat "$p/name")" = "$PORT_NAME" ] && port=/dev/${p##*/}
		done
		[ -n "$port" ] && break
		tries=$((tries - 1))
		sleep 0.1
	done
	{ [ -n "$port" ] && [ -c "$port" ]; } || halt "no virtio port $PORT_NAME: the host's report channel is missing"
	# A virtio port opens once at a time (a second open is EBUSY): one descriptor both
	# ways, duplicated for reading.
	exec 3<>"$port" || halt "cannot open $port"
	exec 4<&3
}

# The FDT's header (big-endian words) says how many of its bytes are content: QEMU pads
# its blob to 1 MiB, and only the content is worth sending.
fdt_used() {
	# the header's 40 bytes, one decimal number each, as the positional parameters
	# shellcheck disable=SC2046
	set -- $(od -An -v -tu1 -N40 /sys/firmware/fdt)
	[ $# -eq 40 ] || { echo 0; return; }
	off_struct=$(( ($9 << 24) | (${10} << 16) | (${11} << 8) | ${12} ))
	off_strings=$(( (${13} << 24) | (${14} << 16) | (${15} << 8) | ${16} ))
	size_strings=$(( (${33} << 24) | (${34} << 16) | (${35} << 8) | ${36} ))
	size_struct=$(( (${37} << 24) | (${38} << 16) | (${39} << 8) | ${40} ))
	a=$((off_struct + size_struct)); b=$((off_strings + size_strings))
	if [ $a -gt $b ]; then echo $a; else echo $b; fi
}

report_seed() {
	chosen=/proc/device-tree/chosen
	output dt_chosen ls $chosen 2>/dev/null
	if [ -e $chosen/rng-seed ]; then
		value dt_rng_seed_present yes
		output dt_rng_seed hex $chosen/rng-seed
		output dt_rng_seed_mode stat -c %a $chosen/rng-seed
	else
		value dt_rng_seed_present no
	fi
	[ -e $chosen/kaslr-seed ] && output dt_kaslr_seed hex $chosen/kaslr-seed
	used=$(fdt_used)
	if [ "$used" -gt 0 ] 2>/dev/null; then
		head -c "$used" /sys/firmware/fdt >/tmp/fdt
		hex /tmp/fdt >"$scratch"
		long_field fdt <"$scratch"
	fi
}

loader_output() {
	# kexec -d lists every purgatory symbol it relocates: noise the host does not read
	grep -v '^sym: ' /tmp/loader.out | long_field loader_output
}
