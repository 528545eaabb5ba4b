# SPDX-License-Identifier: GPL-2.0-only
"""seedchain: does a boot-time RNG seed really travel down a chain of boots?"""

__version__ = "0.1.0"
