# SPDX-License-Identifier: GPL-2.0-only
"""Stage 6, matrix: scenarios times versions, and results judged against the known gaps."""
