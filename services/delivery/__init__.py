"""Multi-channel delivery: one codebase, one process per channel."""
