"""Jobs the CLI runs, as plain Python functions (usable from notebooks)."""
