# SPDX-License-Identifier: GPL-2.0-only
"""Stage 5, checks: pure checks over the facts, and the verdict against expectations."""
