"""Importers: each reads one public layout and returns a canonical `Dataset` (see sidrec.data.dataset)."""
