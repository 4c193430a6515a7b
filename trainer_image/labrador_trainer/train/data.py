"""Chat-template tokenisation with assistant-only labels, and padding-free packing under a token budget.

A pack is one row of concatenated samples with per-sample position ids and the samples' boundaries
(``cu_seq_lens``); the training model attends within each sample only (``attention``: the causal kernel per sample,
cost Σ Lᵢ², no mask over the pack). ``collate_packed(..., mask=True)`` adds the explicit block-diagonal causal mask
instead, for a model on a stock attention implementation (evaluation) and as the reference the tests compare with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labrador_trainer.files import read_jsonl

IGNORE = -100


@dataclass(frozen=True)
class Sample:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_loss(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class Dataset:
    samples: list[Sample]
    dropped_long: int = 0
    dropped_short: int = 0
    dropped_no_loss: int = 0
    stats: dict[str, int] = field(default_factory=dict)


def tokenize_messages(tokenizer: Any, messages: list[dict[str, str]], *, unmask: bool = False) -> Sample:
    """Render ``messages`` with the chat template; labels are the ids on assistant spans (content and end of turn),
    or on every non-system message when ``unmask``, else -100."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans: list[tuple[int, int]] = []
    prev_end = 0
    for i, msg in enumerate(messages):
        end = len(tokenizer.apply_chat_template(messages[: i + 1], tokenize=False))
        if msg["role"] == "assistant" or (unmask and msg["role"] != "system"):
            start = text.find(msg["content"], prev_end, end) if msg["content"] else -1
            if start < 0:  # empty content: learn the end of turn, not the role header
                start = len(tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True))
            spans.append((start, end))
        prev_end = end
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for tok, (a, _b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        labels.append(tok if any(s <= a < e for s, e in spans) else IGNORE)
    return Sample(list(enc["input_ids"]), labels)


def load_dataset(path: str | Path, tokenizer: Any, *, max_seq_len: int, min_seq_len: int) -> Dataset:
    """InstructLab messages JSONL (``messages``, optional ``unmask``, ``metadata``, ``id``) to samples."""
    ds = Dataset(samples=[])
    for row in read_jsonl(path):
        s = tokenize_messages(tokenizer, row["messages"], unmask=bool(row.get("unmask", False)))
        if len(s.input_ids) > max_seq_len:
            ds.dropped_long += 1
        elif len(s.input_ids) < min_seq_len:
            ds.dropped_short += 1
        elif s.n_loss == 0:
            ds.dropped_no_loss += 1
        else:
            ds.samples.append(s)
    ds.stats = {
        "kept": len(ds.samples),
        "dropped_too_long": ds.dropped_long,
        "dropped_too_short": ds.dropped_short,
        "dropped_no_loss": ds.dropped_no_loss,
    }
    return ds


def steps_per_epoch(n_samples: int, effective_batch_size: int) -> int:
    return max(1, -(-n_samples // effective_batch_size))


def global_batch(n_samples: int, effective_batch_size: int, seed: int, epoch: int, index: int) -> list[int]:
    """Sample indices of optimizer step ``index`` of ``epoch``: a shuffle seeded by (seed, epoch), so a resumed run
    needs only (epoch, index) to continue exactly."""
    order = list(range(n_samples))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order[index * effective_batch_size : (index + 1) * effective_batch_size]


def assign_ranks(lengths: dict[int, int], world_size: int) -> list[list[int]]:
    """Longest sample first onto the least-loaded rank (by tokens)."""
    loads = [0] * world_size
    out: list[list[int]] = [[] for _ in range(world_size)]
    for idx in sorted(lengths, key=lambda i: (-lengths[i], i)):
        r = min(range(world_size), key=lambda k: (loads[k], k))
        out[r].append(idx)
        loads[r] += lengths[idx]
    return out


def micro_batches(indices: list[int], lengths: dict[int, int], max_batch_len: int) -> list[list[int]]:
    """First-fit-decreasing bins of at most ``max_batch_len`` tokens each."""
    bins: list[list[int]] = []
    fill: list[int] = []
    for idx in sorted(indices, key=lambda i: (-lengths[i], i)):
        for b, used in enumerate(fill):
            if used + lengths[idx] <= max_batch_len:
                bins[b].append(idx)
                fill[b] += lengths[idx]
                break
        else:
            bins.append([idx])
            fill.append(lengths[idx])
    return bins


def cu_seq_lens(lengths: list[int]) -> torch.Tensor:
    """Cumulative sample boundaries [0, L₀, L₀+L₁, …], in host memory (they only slice, never sync a device)."""
    out = [0]
    for n in lengths:
        out.append(out[-1] + n)
    return torch.tensor(out, dtype=torch.long)


def collate_packed(
    samples: list[Sample], device: torch.device | str = "cpu", *, mask: bool = False
) -> dict[str, torch.Tensor]:
    """One row of concatenated samples: ids, labels shifted within each sample, per-sample position ids, segment
    index per token and ``cu_seq_lens`` (host tensor). With ``mask``, also a block-diagonal causal boolean mask
    (1, 1, T, T) where True means "may attend" — T² bytes and SDPA's slow path, so training builds none."""
    ids, labels, pos, seg = [], [], [], []
    for k, s in enumerate(samples):
        n = len(s.input_ids)
        ids += s.input_ids
        # predict token t+1 at position t; the last token of a sample predicts nothing (no leak into the next)
        labels += [*s.labels[1:], IGNORE]
        pos += list(range(n))
        seg += [k] * n
    seg_t = torch.tensor(seg, device=device)
    batch = {
        "input_ids": torch.tensor([ids], device=device),
        "labels": torch.tensor([labels], device=device),
        "position_ids": torch.tensor([pos], device=device),
        "segments": seg_t[None],
        "cu_seq_lens": cu_seq_lens([len(s.input_ids) for s in samples]),
    }
    if mask:
        t = len(ids)
        causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()
        batch["attention_mask"] = (causal & (seg_t[:, None] == seg_t[None, :]))[None, None]
    return batch


def packed_token_losses(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy per position (0 where the label is ignored), shape (T,). Only labelled positions are projected
    to logits (the vocabulary projection of the rest is skipped). Without an ``attention_mask`` in ``batch`` the
    model must be on ``attention.ATTN_IMPLEMENTATION`` (it gets the samples' boundaries); with one, any."""
    labels = batch["labels"][0]
    keep = (labels != IGNORE).nonzero().squeeze(-1)
    if keep.numel() == 0:  # an empty micro-batch still runs forward and backward (FSDP's collectives)
        keep = torch.tensor([labels.numel() - 1], device=labels.device)
    kw: dict[str, Any] = {"position_ids": batch["position_ids"], "logits_to_keep": keep}
    if "attention_mask" in batch:
        kw["attention_mask"] = batch["attention_mask"]
    else:
        kw["cu_seq_lens_q"] = batch["cu_seq_lens"]
    logits = model(input_ids=batch["input_ids"], **kw).logits[0].float()
    ce = torch.nn.functional.cross_entropy(logits, labels[keep], ignore_index=IGNORE, reduction="none")
    return torch.zeros(labels.shape, dtype=ce.dtype, device=ce.device).index_put((keep,), ce)


class _LinearCrossEntropySum(torch.autograd.Function):
    """Σᵢ CE(hᵢ·Wᵀ, yᵢ) computed ``chunk`` rows at a time, gradients made in the same pass: the (N × vocab) logits,
    their log-softmax and its backward never exist whole (on CPU those memory-bound passes cost ~20 % of a 4-layer
    SmolLM2 step). Backward only scales the stored gradients, so it suits a loss that is summed then scaled."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, chunk: int) -> torch.Tensor:
        grad_h, grad_w = torch.empty_like(h), torch.zeros_like(w)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for a in range(0, h.shape[0], chunk):
            hc, tc = h[a : a + chunk], target[a : a + chunk]
            rows = torch.arange(tc.numel(), device=h.device)
            logits = hc @ w.t()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits[rows, tc]).sum()
            probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place
            probs[rows, tc] -= 1.0  # d CE / d logits
            grad_h[a : a + chunk] = probs @ w
            grad_w.addmm_(probs.t(), hc)
        ctx.save_for_backward(grad_h, grad_w)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad, grad_w * grad, None, None


def _fused_head(model: Any) -> tuple[Any, torch.nn.Linear] | None:
    """(decoder, lm_head) where the summed loss may bypass the logits: an unsharded model training in fp32 with a
    plain bias-free ``nn.Linear`` head (FSDP unshards the head and embeddings only in the root's own forward;
    under autocast the stock path keeps the dtypes autocast chooses)."""
    from torch.distributed.fsdp import FSDPModule

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    decoder = getattr(base, getattr(base, "base_model_prefix", ""), None)
    if decoder is None or type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    if any(isinstance(m, FSDPModule) for m in (model, base)) or torch.is_autocast_enabled(head.weight.device.type):
        return None
    if not torch.is_grad_enabled():
        return None
    return decoder, head


def packed_loss_sum(model: Any, batch: dict[str, torch.Tensor], *, chunk: int = 512) -> torch.Tensor:
    """Σ of ``packed_token_losses`` (a scalar to backpropagate), through the chunked linear + cross-entropy where
    ``_fused_head`` allows it (the model on ``attention.ATTN_IMPLEMENTATION``, no mask in ``batch``), else the
    stock path."""
    fused = _fused_head(model) if "attention_mask" not in batch else None
    if fused is None:
        return packed_token_losses(model, batch).sum()
    decoder, head = fused
    labels = batch["labels"][0]
    keep = (labels != IGNORE).nonzero().squeeze(-1)
    ids, pos, cu = batch["input_ids"], batch["position_ids"], batch["cu_seq_lens"]
    hidden = decoder(input_ids=ids, position_ids=pos, cu_seq_lens_q=cu, use_cache=False).last_hidden_state[0]
    return _LinearCrossEntropySum.apply(hidden[keep], head.weight, labels[keep], chunk)
