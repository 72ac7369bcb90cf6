"""Small models, tokenizers and training data built on the spot, for the demo, tests and
benchmarks: no download."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, cast

import torch

__all__ = [
    "probe_texts",
    "tiny_gpt_neox",
    "TokenBlocks",
    "train_bpe_tokenizer",
]

if TYPE_CHECKING:
    from ..data import ProbeSentence


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A byte-level BPE tokenizer (GPT-2 / Pythia style) trained on ``texts``; takes about a second."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def tiny_gpt_neox(vocab_size: int, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, seed: int = 0, **config):
    """A randomly initialised GPT-NeoX causal LM (Pythia's architecture) of a few hundred thousand weights."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cfg = GPTNeoXConfig(
        bos_token_id=0,
        eos_token_id=0,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=config.pop("max_position_embeddings", 256),
        **config,
    )
    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(cfg)


class TokenBlocks(torch.utils.data.Dataset):
    """Causal-LM training examples: each text tokenised, cut or padded to ``length`` tokens.

    Items are dicts with ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding), the
    form both the HF Trainer and a plain LightningModule can use.
    """

    def __init__(self, tokenizer, texts: Iterable[str], length: int = 64) -> None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
        rows = [ids[:length] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
        self.input_ids = torch.tensor([ids + [pad] * (length - len(ids)) for ids in rows])
        self.attention_mask = torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids in rows])

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        labels = self.input_ids[index].masked_fill(self.attention_mask[index] == 0, -100)
        return {"input_ids": self.input_ids[index], "attention_mask": self.attention_mask[index], "labels": labels}


def probe_texts() -> list[str]:
    """Every prompt of the default probe on the built-in set, plus its answers: a tokenizer corpus."""
    from ..data import ProbeSet
    from ..probe.prompts import build_prompts

    prompts = build_prompts(cast("Sequence[ProbeSentence]", ProbeSet.builtin()))  # a gender set: ProbeSentences
    return [p.text + " male female not specified" for p in prompts]
