"""Bake jobs on the tiny model: training, metrics, checkpoints, archives and sequential bakes."""

import json
import tarfile
from pathlib import Path

import jsonschema
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

import bakehouse_engine.bake as bake
from bakehouse_engine.bake.sequences import build_example
from bakehouse_engine.bake.settings import resolve_settings
from bakehouse_engine.bake.train import train
from bakehouse_engine.models import load_model
from job_harness import bake_spec, close, job_context, read_jsonl, rollout_lines, tiny_model, tiny_model_cache  # noqa: F401

CONTRACT = Path(__file__).resolve().parents[2] / "contract"


def run_bake(tmp_path: Path, spec: dict) -> dict:
    ctx = job_context(spec, tmp_path)
    result = bake.run(ctx)
    close(ctx)
    return result


def test_a_bake_writes_metrics_checkpoints_and_a_result(tiny_model, tmp_path):
    spec = bake_spec(
        tmp_path, tiny_model, [("main", 1.0, rollout_lines(6))], total=6, epochs=2, train_log_iter_interval=2,
        checkpoint=[{"save_every_n_steps": 4}, {"save_end_of_training": True}],
    )
    result = run_bake(tmp_path, spec)
    out = tmp_path / "out"

    assert result["checkpoints"] == [4, 6]
    assert result["unhonoured_config"] == []
    jsonschema.validate({"status": "complete", "error": None, **result}, json.loads((CONTRACT / "job-result.schema.json").read_text()))

    rows = read_jsonl(out / "metrics.jsonl")
    assert [row["iter"] for row in rows] == [2, 4, 6]
    row_schema = json.loads((CONTRACT / "metrics-row.schema.json").read_text())
    for row in rows:
        jsonschema.validate(row, row_schema)
        assert set(row) == {"iter", "loss", "train_loss", "lr", "epoch", "seqlen", "iter_time", "step_time", "tokens_per_s", "iter_tflops", "step_tflops"}
        assert row["tokens_per_s"] > 0 and row["iter_tflops"] > 0
    assert [row["epoch"] for row in rows] == [2 / 3, 4 / 3, 2.0] or [round(row["epoch"], 3) for row in rows] == [0.667, 1.333, 2.0]
    assert rows[0]["lr"] > rows[-1]["lr"]  # linear decay ("huggingface")
    losses = [row["loss"] for row in rows]
    assert result["loss"] == {"latest_loss": losses[-1], "final_loss": losses[-1], "min_loss": min(losses), "max_loss": max(losses)}
    assert json.loads((out / "progress.json").read_text())["percent"] == 100

    for step in (4, 6):
        assert sorted(p.name for p in (out / "ckpts" / str(step)).iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    adapter_config = json.loads((out / "ckpts" / "6" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == tiny_model
    assert adapter_config["r"] == 4 and adapter_config["lora_alpha"] == 8

    with tarfile.open(out / "ckpts" / "6.tar.gz") as archive:
        assert sorted(archive.getnames()) == ["adapter_config.json", "adapter_model.safetensors", "manifest.json"]
        manifest = json.load(archive.extractfile("manifest.json"))
    assert manifest == {"base_model": tiny_model, "model_name": "user/repo/bake1/6", "checkpoint": 6, "parents": []}


def test_the_saved_adapter_reloads_with_peft_and_changes_the_model(tiny_model, tiny_model_cache, tmp_path):
    run_bake(tmp_path, bake_spec(tmp_path, tiny_model, [("main", 1.0, rollout_lines(4))], total=4))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_cache / tiny_model)
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        before = base(ids).logits
        baked = PeftModel.from_pretrained(base, tmp_path / "out" / "ckpts" / "2")
        after = baked(ids).logits
    assert not torch.allclose(before, after, atol=1e-4)


class RecordingWriter:
    def __init__(self):
        self.steps = []

    def save(self, model, step):
        self.steps.append(step)


def test_gradients_reach_only_the_lora_weights(tiny_model, tmp_path):
    model, tokenizer = load_model({"base_model": tiny_model, "adapters": []}, "fp32", "cpu")
    frozen = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    settings = resolve_settings({"optimizer": {"learning_rate": 1e-2}, "micro_batch_size": 2}, "cpu")
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    peft_model = bake.attach_lora(model, config, settings)
    lora_before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" in n}
    examples = [build_example(tokenizer, line, 200) for line in rollout_lines(4)]
    writer = RecordingWriter()
    outcome = train(peft_model, examples, settings, tokenizer.pad_token_id, 1000, writer, lambda row: None, lambda s, t: None)

    assert outcome.steps == 2 and writer.steps == [2] and outcome.forced_final_checkpoint
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert any(not torch.equal(p, lora_before[n]) for n, p in peft_model.named_parameters() if n in lora_before)
    base_now = peft_model.get_base_model().state_dict()
    for name, tensor in frozen.items():
        lora_name = name.replace(".weight", ".base_layer.weight")
        assert torch.equal(base_now.get(name, base_now.get(lora_name)), tensor), name


def test_the_loss_falls_as_the_prompt_is_baked_in(tiny_model, tmp_path):
    spec = bake_spec(tmp_path, tiny_model, [("main", 1.0, rollout_lines(4))], total=4, epochs=15, micro_batch_size=4)
    run_bake(tmp_path, spec)
    losses = [row["loss"] for row in read_jsonl(tmp_path / "out" / "metrics.jsonl")]
    assert len(losses) == 15
    assert losses[-1] < 0.3 * losses[0]


def test_gradient_accumulation_and_top_k_train_too(tiny_model, tmp_path):
    spec = bake_spec(
        tmp_path, tiny_model, [("main", 0.75, rollout_lines(6)), ("reg", 0.25, rollout_lines(2, teacher_system=None))],
        total=8, micro_batch_size=1, gradient_accumulation_steps=4, data={"max_length": 200, "top_k": 5, "temperature": 2.0},
    )
    result = run_bake(tmp_path, spec)
    assert result["checkpoints"] == [2]
    assert [row["iter"] for row in read_jsonl(tmp_path / "out" / "metrics.jsonl")] == [1, 2]


def save_parent_checkpoint(base_dir: Path, out_dir: Path) -> Path:
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    peft_model.save_pretrained(out_dir)
    return out_dir


def test_a_sequential_bake_starts_from_the_merged_parent(tiny_model, tiny_model_cache, tmp_path, monkeypatch):
    base_dir = tiny_model_cache / tiny_model
    parent = save_parent_checkpoint(base_dir, tmp_path / "parent-bake" / "ckpts" / "3")
    loaded = []

    def recording_load_model(*args, **kwargs):
        model, tokenizer = load_model(*args, **kwargs)
        loaded.append({name: tensor.clone() for name, tensor in model.state_dict().items()})
        return model, tokenizer

    monkeypatch.setattr(bake, "load_model", recording_load_model)
    # Teacher prompt == student prompt: if the teacher is the parent (as the student starts), the first loss is 0.
    same_prompt = rollout_lines(4)
    for line in same_prompt:
        line["conditioned_stimulus"] = line["unconditioned_stimulus"]
    spec = bake_spec(tmp_path, tiny_model, [("main", 1.0, same_prompt)], total=4, micro_batch_size=4)
    spec["bake"]["model"]["adapters"] = [{"model_name": "user/repo/parent/3", "uri": parent.as_uri() + "/"}]
    result = run_bake(tmp_path, spec)

    expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), parent).merge_and_unload()
    for name, tensor in expected.state_dict().items():
        assert torch.allclose(loaded[0][name], tensor, atol=1e-6), name
    assert result["loss"]["latest_loss"] < 1e-8

    with tarfile.open(tmp_path / "out" / "ckpts" / "1.tar.gz") as archive:
        names = sorted(archive.getnames())
        manifest = json.load(archive.extractfile("manifest.json"))
    assert names == [
        "adapter_config.json", "adapter_model.safetensors", "manifest.json",
        "parents/0_parent/adapter_config.json", "parents/0_parent/adapter_model.safetensors",
    ]
    assert manifest["parents"] == ["user/repo/parent/3"]
    assert manifest["model_name"] == "user/repo/bake1/1"


def test_bakes_publish_to_s3_and_read_their_parent_from_it(tiny_model, tmp_path, s3_bucket):
    import boto3

    first = bake_spec(tmp_path / "first", tiny_model, [("main", 1.0, rollout_lines(4))], total=4)
    first["output_uri"] = s3_bucket + "bakes/first/"
    assert run_bake(tmp_path / "first", first)["checkpoints"] == [2]
    keys = sorted(item["Key"] for item in boto3.client("s3").list_objects_v2(Bucket="bakehouse-test")["Contents"])
    assert keys == [
        "bakes/first/ckpts/2.tar.gz", "bakes/first/ckpts/2/adapter_config.json",
        "bakes/first/ckpts/2/adapter_model.safetensors", "bakes/first/metrics.jsonl", "bakes/first/progress.json",
    ]

    second = bake_spec(tmp_path / "second", tiny_model, [("main", 1.0, rollout_lines(4))], total=4)
    second["bake"]["model"]["adapters"] = [{"model_name": "user/repo/first/2", "uri": s3_bucket + "bakes/first/ckpts/2/"}]
    run_bake(tmp_path / "second", second)
    with tarfile.open(tmp_path / "second" / "out" / "ckpts" / "2.tar.gz") as archive:
        assert "parents/0_first/adapter_model.safetensors" in archive.getnames()


def test_a_full_disk_while_writing_a_checkpoint_fails_the_bake_with_a_sentence(tiny_model, tmp_path, monkeypatch):
    import errno

    from bakehouse_engine.bake.checkpoints import CheckpointWriter
    from bakehouse_engine.cli import main

    def disk_full(self, adapter_dir, step, archive):
        raise OSError(errno.ENOSPC, "No space left on device", str(archive))

    monkeypatch.setattr(CheckpointWriter, "write_archive", disk_full)
    spec = bake_spec(tmp_path, tiny_model, [("main", 1.0, rollout_lines(4))], total=4, checkpoint=[{"save_every_n_steps": 1}])
    (tmp_path / "spec.json").write_text(json.dumps(spec))

    assert main(["run", str(tmp_path / "spec.json")]) == 1
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result == {"status": "failed", "error": "No space left on disk while writing checkpoint 1; free some space, then run the bake again."}
    engine_log = (tmp_path / "out" / "engine.log").read_text()
    assert "No space left on device" in engine_log  # the detail, path and all, is in the owner's log
