"""Semantic IDs: item text → embeddings → quantizer codes → unique SIDs (+ report).

    text.py       item text template (empty parts dropped; empty items: error or counted fallback)
    embed.py      EmbedConfig, embed_items / encode_items (sentence-transformers or mean pooling, cached)
    quantize/     RQ-KMeans, balanced RQ-KMeans, RQ-VAE (a XxxConfig beside each)
    dedupe.py     add_dedup_level: an extra level so that every SID is unique
    table.py      SIDTable and the sids.json artifact
    report.py     sid_report: collisions, utilisation, entropy, largest clusters, errors, time
    build.py      build_sids, import_sids, compare_methods
    trie.py       prefix trie of real SIDs (constrained decoding)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "EmbedConfig": "sidrec.sids.embed", "embed_items": "sidrec.sids.embed", "encode_items": "sidrec.sids.embed",
    "SIDTable": "sidrec.sids.table", "add_dedup_level": "sidrec.sids.dedupe", "sid_report": "sidrec.sids.report",
    "build_sids": "sidrec.sids.build", "import_sids": "sidrec.sids.build", "compare_methods": "sidrec.sids.build",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy exports: `import sidrec.sids.trie` does not pull in torch, faiss or the encoders."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sidrec.sids' has no attribute {name!r}")
