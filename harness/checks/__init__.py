"""Stage 5, checks: pure checks over the facts, and the verdict against expectations."""
