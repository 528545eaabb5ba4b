# SPDX-License-Identifier: GPL-2.0-only
"""Benchmarks for seedchain: ratios against baselines measured in the same run (see README.md)."""
