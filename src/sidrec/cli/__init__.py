"""The `sidrec` command line: a thin typer layer over documented Python functions."""
