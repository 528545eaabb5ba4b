# SPDX-License-Identifier: GPL-2.0-only
"""Stage 2, images: kernels, userland and QEMU builds from Debian, per-layer initramfs, the cache."""
