"""Scoring one model: log-likelihoods of packed samples (the trainer's packing and masking), MCQ accuracy, answer
losses, and greedy answers for the judge. Deterministic: no sampling, no dropout, fixed sample order."""

from __future__ import annotations

import gc
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from labrador_trainer.evaluate.inputs import MCQ, Conversation, HeldOut, prompt_messages
from labrador_trainer.train.data import IGNORE, Sample, collate_packed, micro_batches, tokenize_messages

MAX_SEQ_LEN = 4096  # longer samples are skipped (and counted)
MAX_NEW_TOKENS = 256  # answers generated for the judge
GEN_BATCH = 8


@dataclass
class LM:
    """A causal LM and its tokenizer, loaded once, in eval mode."""

    model: Any
    tokenizer: Any
    device: torch.device
    max_seq_len: int
    max_batch_len: int

    @classmethod
    def load(cls, path: str) -> LM:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from labrador_trainer.hardware import compute_dtype

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # base and tuned are scored in one precision: bf16 on CUDA, fp32 on every CPU (never emulated bf16)
        dtype = getattr(torch, compute_dtype("auto", cuda=device.type == "cuda"))
        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        ctx = int(getattr(model.config, "max_position_embeddings", 0) or MAX_SEQ_LEN)
        seq = min(MAX_SEQ_LEN, ctx)
        return cls(model, tok, device, seq, max(seq, 16384 if device.type == "cuda" else 4096))

    def close(self) -> None:
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


@dataclass(frozen=True)
class NLL:
    """Summed negative log-likelihood (nats) of a sample's scored tokens, and how many there were."""

    nll: float
    tokens: int


@torch.inference_mode()
def score_samples(lm: LM, samples: Sequence[Sample], desc: str) -> list[NLL | None]:
    """NLL of each sample's labelled tokens (None when longer than ``lm.max_seq_len``), packed into micro-batches
    isolated by the block-diagonal mask, only the labelled positions projected to logits."""
    out: list[NLL | None] = [None] * len(samples)
    lengths = {i: len(s.input_ids) for i, s in enumerate(samples) if len(s.input_ids) <= lm.max_seq_len}
    bins = micro_batches(list(lengths), lengths, lm.max_batch_len)
    with tqdm(total=len(lengths), desc=desc, file=sys.stderr, mininterval=2.0) as bar:
        for mb in bins:
            batch = collate_packed([samples[i] for i in mb], lm.device, mask=True)
            labels, segments = batch["labels"][0], batch["segments"][0]
            keep = (labels != IGNORE).nonzero().squeeze(-1)
            logits = lm.model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"],
                use_cache=False,
                logits_to_keep=keep,
            ).logits[0]
            ce = torch.nn.functional.cross_entropy(logits.float(), labels[keep], reduction="none")
            sums = torch.zeros(len(mb), dtype=torch.float64, device=ce.device).index_add_(
                0, segments[keep], ce.double()
            )
            counts = torch.bincount(segments[keep], minlength=len(mb))
            for k, i in enumerate(mb):
                out[i] = NLL(float(sums[k]), int(counts[k]))
            bar.update(len(mb))
    return out


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split: trailing whitespace of the context moves to the continuation, the pair is encoded whole,
    and the continuation is what follows the context's own encoding."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return whole[: len(ctx)], whole[len(ctx) :]


def mcq_samples(tokenizer: Any, item: MCQ, system: str | None) -> list[Sample]:
    """One sample per choice: the chat-templated question, then the choice text as the assistant's reply (scored)."""
    context = tokenizer.apply_chat_template(
        prompt_messages(system, item.question, item.context), tokenize=False, add_generation_prompt=True
    )
    out = []
    for choice in item.choices:
        ctx, cont = encode_pair(tokenizer, context, choice)
        out.append(Sample(ctx + cont, [IGNORE] * len(ctx) + cont))
    return out


@dataclass
class MCQResult:
    """Per item: the log-likelihood of each choice (None when skipped) and the predicted choice."""

    items: list[MCQ]
    loglik: list[list[float] | None]

    def predicted(self, i: int) -> int | None:
        ll = self.loglik[i]
        return None if ll is None else max(range(len(ll)), key=lambda k: (ll[k], -k))

    def summary(self, keep: set[int] | None = None) -> dict[str, Any] | None:
        per_leaf: dict[str, list[bool]] = defaultdict(list)
        chosen = [i for i in range(len(self.items)) if keep is None or i in keep]
        for i in chosen:
            item, p = self.items[i], self.predicted(i)
            if p is not None:
                per_leaf[item.leaf].append(p == item.answer)
        scored = [ok for oks in per_leaf.values() for ok in oks]
        if not scored:
            return None
        return {
            "accuracy": sum(scored) / len(scored),
            "correct": sum(scored),
            "n": len(scored),
            "skipped_too_long": len(chosen) - len(scored),
            "per_leaf": {
                leaf: {"accuracy": sum(oks) / len(oks), "n": len(oks)} for leaf, oks in sorted(per_leaf.items())
            },
        }


def mcq(lm: LM, items: list[MCQ], system: str | None) -> MCQResult:
    samples, owner = [], []
    for i, item in enumerate(items):
        for s in mcq_samples(lm.tokenizer, item, system):
            samples.append(s)
            owner.append(i)
    nlls = score_samples(lm, samples, "mcq")
    ll: list[list[float] | None] = [[] for _ in items]
    for i, r in zip(owner, nlls, strict=True):
        if r is None or ll[i] is None:
            ll[i] = None
        else:
            ll[i].append(-r.nll)  # type: ignore[union-attr]
    return MCQResult(items, ll)


@dataclass
class LossResult:
    """Per sample NLL (None when skipped); aggregates are token-weighted over the scored samples."""

    nll: list[NLL | None]
    groups: list[str] = field(default_factory=list)  # leaf of each sample (held-out), empty for general

    def summary(self, keep: set[int] | None = None) -> dict[str, Any] | None:
        idx = [i for i, r in enumerate(self.nll) if r is not None and r.tokens and (keep is None or i in keep)]
        if not idx:
            return None
        out = _loss(self.nll, idx)
        out["skipped"] = sum(1 for i, r in enumerate(self.nll) if r is None and (keep is None or i in keep))
        if self.groups:
            per: dict[str, list[int]] = defaultdict(list)
            for i in idx:
                per[self.groups[i]].append(i)
            out["per_leaf"] = {g: _loss(self.nll, ix) for g, ix in sorted(per.items())}
        return out


def _loss(nll: list[NLL | None], idx: list[int]) -> dict[str, Any]:
    total = sum(nll[i].nll for i in idx)  # type: ignore[union-attr]
    tokens = sum(nll[i].tokens for i in idx)  # type: ignore[union-attr]
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": tokens, "n": len(idx)}


def answer_sample(tokenizer: Any, item: HeldOut, system: str | None) -> Sample:
    msgs = [*prompt_messages(system, item.question, item.context), {"role": "assistant", "content": item.answer}]
    return tokenize_messages(tokenizer, msgs)


def held_out_loss(lm: LM, items: list[HeldOut], system: str | None) -> LossResult:
    samples = [answer_sample(lm.tokenizer, it, system) for it in items]
    return LossResult(score_samples(lm, samples, "held-out loss"), [it.leaf for it in items])


def conversation_loss(lm: LM, rows: list[Conversation], desc: str) -> LossResult:
    samples = [tokenize_messages(lm.tokenizer, list(r.messages), unmask=r.unmask) for r in rows]
    return LossResult(score_samples(lm, samples, desc))


@torch.inference_mode()
def generate(lm: LM, prompts: list[list[dict[str, str]]], max_new_tokens: int = MAX_NEW_TOKENS) -> list[str | None]:
    """Greedy answers (None for prompts that leave no room to answer), batched by length with left padding."""
    tok = lm.tokenizer
    texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    fits = [i for i in range(len(ids)) if len(ids[i]) + max_new_tokens <= lm.max_seq_len]
    order = sorted(fits, key=lambda i: len(ids[i]))
    out: list[str | None] = [None] * len(ids)
    pad = tok.pad_token_id
    with tqdm(total=len(order), desc="answers", file=sys.stderr, mininterval=2.0) as bar:
        for b in range(0, len(order), GEN_BATCH):
            chunk = order[b : b + GEN_BATCH]
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in chunk], device=lm.device)
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in chunk], device=lm.device)
            gen = lm.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
            )
            for k, i in enumerate(chunk):
                out[i] = tok.decode(gen[k, width:], skip_special_tokens=True).strip()
            bar.update(len(chunk))
    return out
