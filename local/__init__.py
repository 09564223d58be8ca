"""Local mode: the same handlers, state machine file and container code on this machine (no AWS, no GPU)."""
