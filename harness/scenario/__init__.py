# SPDX-License-Identifier: GPL-2.0-only
"""Stage 1, scenario: a scenario file becomes a validated Scenario (load, schema, model)."""
