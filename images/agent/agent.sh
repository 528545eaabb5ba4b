#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# seedchain guest agent: PID 1 (/init) of every layer of a chain, on every architecture.
#
# It records what this kernel did with its boot-time seed, sends that to the host over a
# report channel of its own (the console stays for humans), waits for the host to read
# guest RAM, then starts the next layer with the loader the scenario names, or powers off
# after the last one. What differs between architectures (the channel, where the seed
# arrives, the kexec options) is in /seedchain/arch.sh, one small file per architecture
# beside this one (images/agent/ARCH.sh), sourced below.
#
# Report format, one item per line, so the host parser stays trivial and strict:
#   @begin <layer>          start of this layer's report
#   @field <name>           a field; its content follows, each line prefixed "|"
#   @end <layer>            end of the report; the host answers "go" on the channel
#   @loader <name> <rc> <rng_ready>   after loading the next layer (output as a field,
#                           then "@end-loader"; the host answers "go" again)
#   @exec <rc>              kexec -e (or the crash trigger) returned: the hand-over failed
# /seedchain/layer.conf (written by the host) sets LAYER, NEXT_LOADER, NEXT_CMDLINE and
# maybe MODULES (kernel modules to load first, in order: the channel's, virtio-rng's). A
# layer with a next one also gets CHAIN_DISK (the serial of the read-only chain disk),
# NEXT_KERNEL and NEXT_INITRD ("OFFSET SIZE SHA256": where the next layer's images are
# on it) and maybe DISK_MODULES (the disk's driver, loaded after the report). A failure
# to fetch them is reported as the loader's: "@loader" with rc 1 and what went wrong.
# With NEXT_LOADER=kexec_crash the next layer is loaded as a crash kernel (kexec -s -p)
# and started by crashing this one on purpose (sysrq c): the host expects that panic.
#
# The architecture file defines:
#   open_channel            opens the report channel: descriptor 3 to write, 4 to read
#   report_seed             the fields that say what became of this layer's seed
#   loader_output           the loader's output (/tmp/loader.out) as the loader_output field
#   CPU_FLAGS               the /proc/cpuinfo line that names the CPU's features
#   KEXEC_LOAD              kexec's options for kexec_load
#   DEBUG_FILES             kernel files whose dynamic debug says where a child was loaded
#   LOADER_DMESG            what of the kernel log after a load goes to the host (grep -E)
#   TRANSPORT               the virtio transport a kernel file needs for the chain disk

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# PID 1 must never exit (the kernel would panic and hide the real fault): any
# failure from here on ends in a power-off, which the host notices.
halt() { echo "seedchain-agent: $*" >/dev/console; sync; poweroff -f; sleep 60; }

# busybox's applets are symlinks made when the image was built (harness/images/initramfs.py).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
read -r started _ </proc/uptime   # the agent's own cost is a fact worth keeping

# shellcheck source=/dev/null  # written by the host for each layer
. /seedchain/layer.conf || halt "no /seedchain/layer.conf"
# shellcheck source=images/agent/x86_64.sh
. /seedchain/arch.sh || halt "no /seedchain/arch.sh"
for module in $MODULES; do
	insmod "$module" || echo "seedchain-agent: insmod $module failed" >/dev/console
done
open_channel
case " $MODULES " in *virtio?rng*)
	# A hardware RNG driver registers while it probes; give it a moment to show.
	tries=20
	while [ $tries -gt 0 ]; do
		current=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
		[ -n "$current" ] && [ "$current" != none ] && break
		tries=$((tries - 1))
		sleep 0.1
	done ;;
esac

field() {   # field NAME: stdin becomes the field's content (shell builtins: a fork
	# costs ~15 ms under TCG, and a report has some twenty fields)
	echo "@field $1" >&3
	while IFS= read -r line || [ -n "$line" ]; do echo "|$line"; done >&3
}
long_field() {   # the same for long text: one sed beats a byte-by-byte read loop
	echo "@field $1" >&3
	sed 's/^/|/' >&3
}
value() {   # value NAME LINE...: a field from words the shell already has
	name=$1; shift
	echo "@field $name" >&3
	for line; do echo "|$line"; done >&3
}
# A command's output goes through a scratch file rather than a pipe: a pipe's end is a
# subshell, one more fork.
scratch=/tmp/field
output() {   # output NAME COMMAND...: what COMMAND prints as a field
	name=$1; shift
	"$@" >$scratch
	field "$name" <$scratch
}
first_line() {   # first_line NAME COMMAND...: the first line COMMAND prints, on stdout or stderr
	name=$1; shift
	"$@" >$scratch 2>&1
	line="" && IFS= read -r line <$scratch
	value "$name" "$line"
}
hex() { hexdump -v -e '1/1 "%02x"' "$1"; echo; }
# The next layer's kernel and initramfs, copied from the chain disk into /tmp/next
# and checked; what goes wrong goes to stdout, which becomes the loader's output.
extract() {   # extract DEVICE OFFSET SIZE SHA256 FILE
	# dd's complaint is kept in memory: when the root file system is full, no file takes it
	err=$(dd if="$1" of="$5" bs=1M iflag=skip_bytes,fullblock skip="$2" count=$((($3 + 1048575) / 1048576)) 2>&1) ||
		{ rm -f "$5"; echo "cannot copy $3 bytes at offset $2 of $1: $(echo "$err" | grep -v "records" | tail -n 1)"; return 1; }
	truncate -s "$3" "$5"
	echo "$4  $5" | sha256sum -c -s ||
		{ echo "the copy of $5 from $1 does not have the sha256 layer.conf gives"; return 1; }
}
fetch_next() {
	for module in $DISK_MODULES; do
		insmod "$module" || echo "insmod $module failed"
	done
	disk="" tries=50
	while [ $tries -gt 0 ]; do   # a disk's node shows up shortly after its driver probes it
		for dev in /sys/block/*; do
			[ -e "$dev/serial" ] || continue
			read -r serial <"$dev/serial"
			[ "$serial" = "$CHAIN_DISK" ] && disk=/dev/${dev##*/}
		done
		[ -n "$disk" ] && [ -b "$disk" ] && break
		disk="" tries=$((tries - 1))
		sleep 0.1
	done
	if [ -z "$disk" ]; then
		echo "no disk with serial $CHAIN_DISK: this kernel sees no chain disk; a kernel given" \
			"as a file needs virtio_blk and the virtio transport (CONFIG_VIRTIO_BLK=y," \
			"$TRANSPORT) built in"
		return 1
	fi
	mkdir -p /tmp/next
	# $NEXT_KERNEL and $NEXT_INITRD are three words each: OFFSET SIZE SHA256
	# shellcheck disable=SC2086
	extract "$disk" $NEXT_KERNEL /tmp/next/bzImage && extract "$disk" $NEXT_INITRD /tmp/next/initrd
}
rng_ready() {   # rng_ready: the kernel log, now, in /tmp/dmesg; $ready says if the RNG is ready
	dmesg >/tmp/dmesg
	ready=no
	grep -q 'random: crng init done' /tmp/dmesg && ready=yes
}

echo "seedchain-agent: layer $LAYER reporting" >/dev/console
echo "@begin $LAYER" >&3
field kernel_release </proc/sys/kernel/osrelease
field cmdline </proc/cmdline
report_seed
field boot_id </proc/sys/kernel/random/boot_id
first_line kexec_tools kexec --version
first_line busybox busybox
output cpu_flags grep -m 1 "$CPU_FLAGS" /proc/cpuinfo
rng=/sys/class/misc/hw_random/rng_current
if [ -r $rng ]; then field hwrng <$rng; else value hwrng; fi
output modules cut -d ' ' -f 1 /proc/modules 2>/dev/null
if [ -d /sys/firmware/efi ]; then value efi yes; else value efi no; fi
long_field iomem </proc/iomem   # names the memory a lingering copy of a seed sits in
rng_ready
value crng_ready $ready
long_field dmesg </tmp/dmesg
read -r now _ </proc/uptime
value agent_uptime "$started" "$now"
echo "@end $LAYER" >&3

# The host reads this layer's seed in RAM now; the next kernel may overwrite it.
read -r answer <&4
[ "$answer" = go ] || halt "host said '$answer'"

if [ -z "$NEXT_LOADER" ]; then
	echo "seedchain-agent: last layer, powering off" >/dev/console
	halt "done"
fi

case "$NEXT_LOADER" in
	kexec_file_load) mode="-s -l" ;;
	kexec_load) mode=$KEXEC_LOAD ;;
	kexec_crash) mode="-s -p" ;;   # a crash kernel: its seed is made now, at load time
	*) halt "unknown loader $NEXT_LOADER" ;;
esac
# The host stops the guest where the next kernel is entered, to read its seed before
# that kernel runs: kexec -d says where kexec_load put the kernel, and the kernel's own
# kexec_file_load code says it in a debug message, switched on here.
control=/proc/dynamic_debug/control
[ -w $control ] || { mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null; control=/sys/kernel/debug/dynamic_debug/control; }
for file in $DEBUG_FILES; do
	echo "file $file +p" >$control 2>/dev/null
done
read -r went _ </proc/uptime
fetch_next >/tmp/loader.out 2>&1
fetched=$?
read -r copied _ </proc/uptime
# kexec_file_load only adds a seed when this kernel's RNG is ready right now.
rng_ready
if [ $fetched = 0 ]; then
	# $mode is several options
	# shellcheck disable=SC2086
	kexec -d $mode /tmp/next/bzImage --initrd=/tmp/next/initrd \
		--command-line="$NEXT_CMDLINE" >>/tmp/loader.out 2>&1
	rc=$?
else
	rc=1
fi
read -r loaded _ </proc/uptime
rm -rf /tmp/next   # the kernel holds its own copy now; the memory is the next layer's
echo "@loader $NEXT_LOADER $rc $ready" >&3
loader_output
dmesg | grep -E "$LOADER_DMESG" | long_field loader_dmesg
value loader_uptime "$went" "$copied" "$loaded"
echo "@end-loader" >&3
# Wait until the host has this record: a buffer is not drained across kexec -e.
read -r answer <&4
[ "$rc" = 0 ] || halt "loading layer $((LAYER + 1)) failed (rc $rc)"
echo "seedchain-agent: starting layer $((LAYER + 1)) with $NEXT_LOADER" >/dev/console
sync
if [ "$NEXT_LOADER" = kexec_crash ]; then
	echo c >/proc/sysrq-trigger   # the panic starts the crash kernel
else
	kexec -e
fi
echo "@exec $?" >&3
halt "kexec -e returned"
