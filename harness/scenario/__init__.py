"""Stage 1, scenario: a scenario file becomes a validated Scenario (load, schema, model)."""
