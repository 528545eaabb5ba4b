# SPDX-License-Identifier: GPL-2.0-only
"""Stage 3, boot: one QEMU boot that follows the chain, filling each layer's facts."""
