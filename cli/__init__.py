"""``alimi``: the operators' command-line tool for the intake API (see README.md here)."""
