"""The KV cache of a Hugging Face model's forward, under the name the installed transformers uses.

transformers 5.x renamed the `past_key_values` argument and output field to `cache`; the old name
still works there but logs a deprecation warning (and is due to go), while older releases know only
`past_key_values`. Every KV-cache call of ours passes and reads the cache through these helpers.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from transformers.modeling_outputs import CausalLMOutputWithPast

CACHE_KWARG = "cache" if "cache" in {f.name for f in fields(CausalLMOutputWithPast)} else "past_key_values"


def with_cache(cache: Any) -> dict[str, Any]:
    """The forward keyword argument that feeds `cache` back in."""
    return {CACHE_KWARG: cache}


def cache_of(output: Any) -> Any:
    """The KV cache a forward returned (None when it kept none)."""
    return getattr(output, CACHE_KWARG, None)


__all__ = ["CACHE_KWARG", "cache_of", "with_cache"]
