"""Multi-process model placement: FSDP2 (``fully_shard`` per decoder layer, then the root) and full state dicts.

Gradients are reduced with SUM (divide factor 1): the recipe already divides each micro-batch's loss by the
unmasked tokens of the whole global batch, so summing over ranks gives exactly the one-process gradient.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from labrador_trainer.train.config import Fsdp

log = logging.getLogger("labrador_trainer")

#: gathered on every rank (collective under FSDP), kept on rank 0 only, in host memory
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks, by the class names HF lists in ``_no_split_modules`` (Llama, Granite, Mistral...)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"{type(base).__name__}: no decoder layers found to shard (_no_split_modules={names})")
    return layers


def mesh_shape(world: int, local_world: int, strategy: str) -> tuple[int, ...]:
    """1-D (world,) mesh, or (nodes, local) for HYBRID_SHARD across nodes: shard within a node, replicate across."""
    nodes = world // local_world if local_world and world % local_world == 0 else 1
    return (nodes, local_world) if strategy == "HYBRID_SHARD" and nodes > 1 else (world,)


def shard(model: nn.Module, fsdp: Fsdp, *, world: int, local_world: int, device: torch.device) -> nn.Module:
    """Wrap ``model`` (already on ``device``) in place with FSDP2; returns it (its class becomes FSDP<name>)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, fully_shard

    shape = mesh_shape(world, local_world, fsdp.sharding_strategy)
    names = ("replicate", "shard") if len(shape) == 2 else ("shard",)
    mesh = init_device_mesh(device.type, shape, mesh_dim_names=names)
    kw: dict[str, Any] = {"mesh": mesh}
    if fsdp.cpu_offload:
        if device.type == "cuda":
            kw["offload_policy"] = CPUOffloadPolicy(pin_memory=True)
        else:
            log.warning("fsdp.cpuOffload ignored: the model already lives in host memory")
    reshard = fsdp.sharding_strategy != "SHARD_GRAD_OP"
    for layer in decoder_layers(model):
        fully_shard(layer, reshard_after_forward=reshard, **kw)
    fully_shard(model, reshard_after_forward=reshard, **kw)
    for m in model.modules():  # each FSDP module holds its own reduction settings
        if isinstance(m, FSDPModule):
            m.set_gradient_divide_factor(1.0)
            m.set_force_sum_reduction_for_comms(True)  # plain SUM: gloo has no PREMUL_SUM
    return model


def full_state(model: nn.Module, opt: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model and optimizer state keyed by parameter name, whole (unsharded); complete on rank 0. Every rank calls."""
    return get_model_state_dict(model, options=_FULL), get_optimizer_state_dict(model, opt, options=_FULL)


def full_model_state(model: nn.Module) -> dict[str, Any]:
    """The whole model state on rank 0, tied parameters (embeddings ↔ lm_head) sharing one tensor again so that
    ``save_pretrained`` recognises and drops the alias. Every rank calls."""
    sd = get_model_state_dict(model, options=_FULL)
    first: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first and name in sd and first[id(p)] in sd:
            sd[name] = sd[first[id(p)]]
        first.setdefault(id(p), name)
    return sd


def load_full_state(model: nn.Module, opt: torch.optim.Optimizer, msd: dict[str, Any], osd: dict[str, Any]) -> None:
    """Load a whole state on every rank (each keeps its shard): any world size or strategy can resume any state."""
    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, msd, options=opts)
    set_optimizer_state_dict(model, opt, osd, options=opts)
