"""Stage 4, facts: the guest agent's report grammar and what was recorded per layer."""
