"""Where the project's own files are: seedchain runs from its checkout, and what goes
into or under a guest (the agent, the recipes) lives in the top-level images/ folder."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
IMAGES = PROJECT / "images"
SCENARIOS = PROJECT / "scenarios"
