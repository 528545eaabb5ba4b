# SPDX-License-Identifier: GPL-2.0-only
"""Stage 7, reports: the verdict tables, and the matrix report as JSON, Markdown and HTML."""
