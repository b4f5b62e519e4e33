"""The memory plan of a bake, made before any weight is loaded: what one step needs on each device,
and the sharding, offload and micro-batching that make it fit the devices there are.

`plan_bake(shape, request, devices)` is a pure function. Its result (`BakePlan.as_dict()`):

    {"world_size": 8,                      # processes (GPUs) the bake runs on, all nodes together
     "sharding": "full",                   # full | grad_op | replicate (sharding.py maps them to FSDP)
     "cpu_offload": False,                 # params, gradients and optimizer step in host memory
     "activation_checkpointing": True,
     "micro_batch_size": 2, "gradient_accumulation_steps": 1,
     "per_device_bytes": 41e9,             # estimated peak of one device under this plan
     "device_bytes": 80e9,                 # what one device offers
     "changes": ["micro_batch_size 8 → 2: …"]}   # what differs from the request, each with why

The estimate, per device, in bytes (b = bytes per weight element of the model's dtype):
- weights: parameters × b, divided by the world size when sharded (full), or kept whole
  (grad_op and replicate keep whole weights on each device for the step);
- LoRA training state: LoRA parameters × 16 (float32 weight, gradient, two AdamW moments), divided
  by the world size for full and grad_op sharding (grad_op keeps the 4-byte weights whole);
- activations for micro_batch_size × max_length tokens: a decoder layer keeps about
  (10·hidden + 4·kv + 5·intermediate) elements per token for its backward pass; with activation
  checkpointing only each layer's input is kept, plus one layer's set while it is recomputed;
- the loss (loss.py): float32 hidden states and their gradient at the response positions (taken as
  every token: the bound), the [chunk, vocab] float32 tensors of one chunk (student and teacher
  logits, log-probabilities, probabilities and their difference: eight at the peak), and the float32 copy of the LM head
  the teacher uses when the model is not float32;
- allocator slack: 10 % on top of the activations and the loss, which come and go within the step;
- the CUDA context: 2 GiB per GPU (none on the CPU).
With CPU offload, weights and LoRA state leave the device except the layer being computed.

The load peak it assumes (sharding.load_sharded): under FSDP only rank 0 reads the weights, into host
memory (the whole model at its dtype, plus the LoRA in float32), and each device receives only its
shard, the weights term above, so loading adds nothing to the device estimate. DDP (replicate) loads
the whole model on every device, which its weights term already counts.

The coefficients were checked against measured peaks of real bake steps on the CPU
(tests/test_bake_plan.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bakehouse_engine.bake.loss import CHUNK_ELEMENTS
from bakehouse_engine.errors import JobFailure

GIB = 2**30
CUDA_OVERHEAD_BYTES = 2 * GIB
# Elements per token a decoder layer keeps for its backward pass, in units of its widths.
HIDDEN_ACTIVATIONS, KV_ACTIVATIONS, INTERMEDIATE_ACTIVATIONS = 10, 4, 5
LOSS_CHUNK_TENSORS = 8
TRANSIENT_SLACK = 1.1
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SHARDINGS = ("full", "grad_op", "replicate")


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's sizes, read from its config (no weights)."""

    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """From a transformers config (AutoConfig.from_pretrained(path) reads only config.json)."""
        config = getattr(config, "text_config", None) or config
        heads = config.num_attention_heads
        return cls(
            hidden=config.hidden_size,
            layers=config.num_hidden_layers,
            vocab=config.vocab_size,
            intermediate=config.intermediate_size,
            heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        )

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
        }

    @property
    def parameters(self) -> int:
        per_layer = sum(a * b for a, b in self.linears().values()) + 2 * self.hidden + 2 * self.head_dim
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embeddings + self.hidden

    def lora_parameters(self, rank: int, targets: Any) -> int:
        names = ALL_LINEAR if targets in (None, "all-linear") else [targets] if isinstance(targets, str) else targets
        chosen = [shape for name, shape in self.linears().items() if any(name in str(target) for target in names)]
        return self.layers * rank * sum(a + b for a, b in chosen)


@dataclass(frozen=True)
class Devices:
    count: int  # processes on this node (GPUs, or CPU processes)
    bytes_each: int  # memory of one device (for CPU processes: their share of host memory)
    kind: str = "cuda"  # cuda | cpu
    nodes: int = 1

    @property
    def world_size(self) -> int:
        return self.count * self.nodes


@dataclass(frozen=True)
class BakeRequest:
    """What the bake config asks for, as far as memory goes."""

    dtype_bytes: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    activation_checkpointing: bool
    lora_rank: int
    lora_targets: Any = "all-linear"
    sharding: str = "full"
    cpu_offload: bool = False


@dataclass(frozen=True)
class BakePlan:
    world_size: int
    sharding: str
    cpu_offload: bool
    activation_checkpointing: bool
    micro_batch_size: int
    gradient_accumulation_steps: int
    per_device_bytes: int
    device_bytes: int
    changes: list[str] = field(default_factory=list)

    @property
    def in_one_process(self) -> bool:
        """One process holds the whole model: nothing is sharded or offloaded, so nothing is launched."""
        return self.world_size == 1 and not self.cpu_offload

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_bytes(shape: ModelShape, request: BakeRequest, devices: Devices) -> int:
    """Estimated peak bytes on one device for one bake step under `request`."""
    world, b = devices.world_size, request.dtype_bytes
    weights = shape.parameters * b
    lora = shape.lora_parameters(request.lora_rank, request.lora_targets)
    if request.sharding == "full":
        weights, state = weights / world, lora * 16 / world
    elif request.sharding == "grad_op":
        state = lora * 4 + lora * 12 / world
    else:
        state = lora * 16
    if request.cpu_offload:  # one layer's weights and LoRA state on the device at a time
        weights, state = weights / shape.layers, state / shape.layers
    tokens = request.micro_batch_size * request.max_length
    per_layer = tokens * b * (
        HIDDEN_ACTIVATIONS * shape.hidden + KV_ACTIVATIONS * shape.kv_heads * shape.head_dim
        + INTERMEDIATE_ACTIVATIONS * shape.intermediate
    )
    if request.activation_checkpointing:
        activations = shape.layers * tokens * shape.hidden * b + per_layer
    else:
        activations = shape.layers * per_layer
    chunk = min(tokens, max(1, CHUNK_ELEMENTS // shape.vocab))
    loss = tokens * shape.hidden * (4 + 4 + b) + LOSS_CHUNK_TENSORS * chunk * shape.vocab * 4
    if b != 4:
        loss += shape.vocab * shape.hidden * 4
    overhead = CUDA_OVERHEAD_BYTES if devices.kind == "cuda" else 0
    return int(weights + state + TRANSIENT_SLACK * (activations + loss) + overhead)


def _candidates(request: BakeRequest, world: int):
    """Ever cheaper ways to run the request, each with the change it makes and why."""
    yield request, None
    if world > 1 and request.sharding != "full":
        before = request.sharding
        request = replace(request, sharding="full")
        yield request, f"sharding {before} → full, since the requested one does not fit"
    if not request.activation_checkpointing:
        request = replace(request, activation_checkpointing=True)
        yield request, "activation checkpointing turned on, since the step does not fit without it"
    while request.micro_batch_size > 1:
        accumulate = request.gradient_accumulation_steps * 2
        size = (request.micro_batch_size + 1) // 2
        before = request.micro_batch_size
        request = replace(request, micro_batch_size=size, gradient_accumulation_steps=accumulate)
        yield request, (
            f"micro_batch_size {before} → {size} with gradient_accumulation_steps ×2, since the larger micro-batch "
            "does not fit (the examples per optimizer step stay about the same)"
        )
    if not request.cpu_offload:
        yield replace(request, cpu_offload=True), "weights and training state offloaded to host memory, since they do not fit on the devices"


def plan_bake(shape: ModelShape, request: BakeRequest, devices: Devices) -> BakePlan:
    """The first of the request's cheaper variants that fits; a JobFailure with a sentence if none does."""
    if request.sharding not in SHARDINGS:
        raise ValueError(f"unknown sharding {request.sharding}")
    changes: list[str] = []
    for candidate, change in _candidates(request, devices.world_size):
        if change:
            changes.append(change)
        needed = estimate_bytes(shape, candidate, devices)
        if needed <= devices.bytes_each:
            return BakePlan(
                devices.world_size, candidate.sharding, candidate.cpu_offload, candidate.activation_checkpointing,
                candidate.micro_batch_size, candidate.gradient_accumulation_steps, needed, devices.bytes_each, changes,
            )
    smallest = replace(request, sharding="full", activation_checkpointing=True, micro_batch_size=1, cpu_offload=False)
    total = estimate_bytes(shape, smallest, devices) * devices.world_size
    offered = f"{devices.world_size} × {_size(devices.bytes_each)}"
    where = "GPUs" if devices.kind == "cuda" else "CPU processes"
    advice = (
        "Use a lane with more GPUs, a smaller model or a shorter data.max_length." if devices.kind == "cuda"
        else "Run it on GPUs, or use a smaller model or a shorter data.max_length."
    )
    raise JobFailure(
        f"This bake needs ~{_size(total)} across {where} (a {shape.parameters / 1e9:.1f}B-parameter model, "
        f"max_length {request.max_length}); this machine offers {offered}. {advice}"
    )


def _size(nbytes: float) -> str:
    return f"{nbytes / GIB:.0f} GiB" if nbytes >= GIB else f"{nbytes / 2**20:.0f} MiB"
