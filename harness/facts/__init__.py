# SPDX-License-Identifier: GPL-2.0-only
"""Stage 4, facts: the guest agent's report grammar and what was recorded per layer."""
