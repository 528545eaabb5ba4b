#!/bin/sh
# seedchain guest agent for arm64: PID 1 of every layer of a chain.
#
# The same protocol as x86_64.sh (read it first): a report of this layer's facts to the
# host, a "go" back, the next layer loaded, a loader record, a "go", the hand-over. What
# differs is the device tree: the seed arrives as /chosen/rng-seed of the DTB, which the
# kernel removes from its tree on receipt; this layer reports what is left of it
# (/proc/device-tree/chosen and a copy of /sys/firmware/fdt, parsed by the host), and
# the host reads the DTB itself at each hand-over.
#
# The channel: -M virt has one UART (the console, ttyAMA0), so the report goes over a
# virtio serial port named org.seedchain.agent. A Debian kernel has its drivers as
# modules (virtio_mmio, virtio_console): they come first in MODULES.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
PORT_NAME=org.seedchain.agent

halt() { echo "seedchain-agent: $*" >/dev/console; sync; poweroff -f; sleep 60; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
read -r started _ </proc/uptime

. /seedchain/layer.conf || halt "no /seedchain/layer.conf"
for module in $MODULES; do
	insmod "$module" || echo "seedchain-agent: insmod $module failed" >/dev/console
done

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
[ -n "$port" ] && [ -c "$port" ] || halt "no virtio port $PORT_NAME: the host's report channel is missing"
case " $MODULES " in *virtio?rng*|*virtio-rng*)
	tries=20
	while [ $tries -gt 0 ]; do
		current=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
		[ -n "$current" ] && [ "$current" != none ] && break
		tries=$((tries - 1))
		sleep 0.1
	done ;;
esac
# A virtio port opens once at a time (a second open is EBUSY): one descriptor both ways.
exec 3<>"$port" || halt "cannot open $port"

field() {
	echo "@field $1" >&3
	while IFS= read -r line || [ -n "$line" ]; do echo "|$line"; done >&3
}
long_field() {
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
			"CONFIG_VIRTIO_MMIO=y) built in"
		return 1
	fi
	mkdir -p /tmp/next
	extract "$disk" $NEXT_KERNEL /tmp/next/bzImage && extract "$disk" $NEXT_INITRD /tmp/next/initrd
}
rng_ready() {   # rng_ready: the kernel log, now, in /tmp/dmesg; $ready says if the RNG is ready
	dmesg >/tmp/dmesg
	ready=no
	grep -q 'random: crng init done' /tmp/dmesg && ready=yes
}
# The FDT's header (big-endian words) says how many of its bytes are content: QEMU pads
# its blob to 1 MiB, and only the content is worth sending.
fdt_used() {
	set -- $(od -An -v -tu1 -N40 /sys/firmware/fdt)
	[ $# -eq 40 ] || { echo 0; return; }
	word() { echo $(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 )); }
	off_struct=$(word $9 ${10} ${11} ${12}); off_strings=$(word ${13} ${14} ${15} ${16})
	size_strings=$(word ${33} ${34} ${35} ${36}); size_struct=$(word ${37} ${38} ${39} ${40})
	a=$((off_struct + size_struct)); b=$((off_strings + size_strings))
	[ $a -gt $b ] && echo $a || echo $b
}

chosen=/proc/device-tree/chosen
echo "seedchain-agent: layer $LAYER reporting" >/dev/console
echo "@begin $LAYER" >&3
field kernel_release </proc/sys/kernel/osrelease
field cmdline </proc/cmdline
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
	hex /tmp/fdt >$scratch
	long_field fdt <$scratch
fi
field boot_id </proc/sys/kernel/random/boot_id
first_line kexec_tools kexec --version
first_line busybox busybox
output cpu_flags grep -m 1 '^Features' /proc/cpuinfo
rng=/sys/class/misc/hw_random/rng_current
if [ -r $rng ]; then field hwrng <$rng; else value hwrng; fi
output modules cut -d ' ' -f 1 /proc/modules 2>/dev/null
if [ -d /sys/firmware/efi ]; then value efi yes; else value efi no; fi
long_field iomem </proc/iomem
rng_ready
value crng_ready $ready
long_field dmesg </tmp/dmesg
read -r now _ </proc/uptime
value agent_uptime "$started" "$now"
echo "@end $LAYER" >&3

read -r answer <&3
[ "$answer" = go ] || halt "host said '$answer'"

if [ -z "$NEXT_LOADER" ]; then
	echo "seedchain-agent: last layer, powering off" >/dev/console
	halt "done"
fi

# -i (no purgatory checksum) for kexec_load: under TCG the check takes ~7 s a hop
# (FACTS.md) and has nothing to do with the seed.
case "$NEXT_LOADER" in
	kexec_file_load) mode="-s -l" ;;
	kexec_load) mode="-c -i -l" ;;
	kexec_crash) mode="-s -p" ;;
	*) halt "unknown loader $NEXT_LOADER" ;;
esac
control=/proc/dynamic_debug/control
[ -w $control ] || { mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null; control=/sys/kernel/debug/dynamic_debug/control; }
for file in kexec_image.c machine_kexec_file.c kexec.c; do
	echo "file $file +p" >$control 2>/dev/null
done
read -r went _ </proc/uptime
fetch_next >/tmp/loader.out 2>&1
fetched=$?
read -r copied _ </proc/uptime
rng_ready
if [ $fetched = 0 ]; then
	kexec -d $mode /tmp/next/bzImage --initrd=/tmp/next/initrd \
		--command-line="$NEXT_CMDLINE" >>/tmp/loader.out 2>&1
	rc=$?
else
	rc=1
fi
read -r loaded _ </proc/uptime
rm -rf /tmp/next   # the kernel holds its own copy now; the memory is the next layer's
echo "@loader $NEXT_LOADER $rc $ready" >&3
grep -v '^sym: ' /tmp/loader.out | long_field loader_output
dmesg | grep -E 'Loaded (kernel|dtb) at|RNG is not initiali[sz]ed' | long_field loader_dmesg
value loader_uptime "$went" "$copied" "$loaded"
echo "@end-loader" >&3
read -r answer <&3
[ "$rc" = 0 ] || halt "loading layer $((LAYER + 1)) failed (rc $rc)"
echo "seedchain-agent: starting layer $((LAYER + 1)) with $NEXT_LOADER" >/dev/console
sync
if [ "$NEXT_LOADER" = kexec_crash ]; then
	echo c >/proc/sysrq-trigger
else
	kexec -e
fi
echo "@exec $?" >&3
halt "kexec -e returned"
