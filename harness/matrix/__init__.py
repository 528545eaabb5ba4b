"""Stage 6, matrix: scenarios times versions, and results judged against the known gaps."""
