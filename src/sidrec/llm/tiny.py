"""A tiny, randomly initialised causal LM folder (byte-level BPE tokenizer + small Llama).

For unit tests and smoke runs where no pretrained model is wanted: it exercises exactly the
code path of any Hugging Face model folder (`model.name_or_path: PATH`).

    make_tiny_lm("/tmp/tiny-lm")      # ~1 s, ~0.5 MB
"""

from __future__ import annotations

from pathlib import Path

_CORPUS = (
    "the a an of to and in is for on with by from at as this that item items user users next title "
    "history answer predict recommend which will what interacted order given choose chose likely most "
    "identifier give tell called here are they them their it its be was were has have had product "
    "beauty shampoo cream hair skin face oil brush nail polish lotion soap tool kit set pack gold "
    "blue red green black white small large mini pro plus max new best classic organic natural"
).split()


def make_tiny_lm(folder: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0) -> Path:
    """Write a tokenizer + LlamaForCausalLM folder (vocab ~400, `layers` layers) and return its path."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    sentences = [" ".join(_CORPUS[i:i + 12]) for i in range(0, len(_CORPUS), 3)] * 4
    tok.train_from_iterator(sentences, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
