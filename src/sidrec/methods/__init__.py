"""Training methods beside the core: each folder is one method (its settings, trainer and losses)
with one registration; `registry.py` lists them (see docs/adding-a-method.md)."""
