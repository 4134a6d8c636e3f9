"""The parity runner takes every size from the fixture's own config (a held-back fixture has other sizes).

We write a fixture in the official layout for a model with other sizes (patch 2, 8 latent channels,
unequal encoder/predictor widths, no QK-norm, other buffer/head/step counts, constant guidance),
with goldens produced by our own code: the runner must rebuild that model from the fixture alone and
match every output. (Faithfulness itself is the job of the official fixtures; this guards generality.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from djepa_core.compat.parity import main
from djepa_core.compat.parity_model import ModelFixture, run_model_parity
from djepa_core.compat.reference import config_from_reference
from djepa_core.models.djepa import DJEPA
from djepa_core.samplers.masked_ar import mask_len_at

REF_CONFIG: dict[str, Any] = {
    "img_size": 96, "vae_stride": 16, "patch_size": 2, "vae_embed_dim": 8, "encoder_embed_dim": 48,
    "encoder_depth": 3, "encoder_num_heads": 3, "decoder_embed_dim": 32, "decoder_depth": 1,
    "decoder_num_heads": 2, "mlp_ratio": 4, "qk_norm": False, "class_num": 7, "buffer_size": 4,
    "diffloss_d": 3, "diffloss_w": 40, "num_sampling_steps": "20", "diffusion_batch_mul": 4,
    "jepaloss": "jepa", "attn_dropout": 0.1, "proj_dropout": 0.1, "label_drop_prob": 0.1, "mask_ratio_min": 0.7,
}
B, N, MASKED = 3, 4, 5
E2E: dict[str, Any] = {"num_iter": 3, "cfg_scale": 1.5, "cfg_schedule": "constant", "temperature": 0.9,
       "time_shifting_factor": 1.0, "bsz": 2}


def _e2e_draws(head: str, seq_len: int, c: int) -> int:
    """Normal draws of the end-to-end loop: per AR step the head samples 2*bsz*k rows (CFG)."""
    bsz, steps, total, remaining = E2E["bsz"], E2E["num_iter"], 0, seq_len
    head_steps = int(REF_CONFIG["num_sampling_steps"])
    for k in range(steps):
        mask_len = mask_len_at(k, steps, seq_len, remaining)
        rows = bsz * (remaining if k == steps - 1 else remaining - mask_len)
        total += rows * c + (head_steps * 2 * rows * c if head == "gauss" else 0)
        remaining = mask_len
    return total


def _write_fixture(folder: Path, head: str, g: torch.Generator) -> None:
    cfg = dict(REF_CONFIG, diffloss=head)
    model_cfg = config_from_reference(cfg)
    model = DJEPA(model_cfg)
    with torch.no_grad():  # every weight random, including the ones initialised at zero
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(max(p.shape[-1], 1)) + (p.dim() == 1) * 1.0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / f"model_{head}.safetensors"))
    side = 96 // 16
    c, length, steps = model_cfg.token_dim, model_cfg.seq_len, int(REF_CONFIG["num_sampling_steps"])
    orders = torch.stack([torch.randperm(length, generator=g) for _ in range(B)])
    mask = torch.zeros(B, length).scatter(1, orders[:, :MASKED], 1.0)
    def rn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    t: dict[str, torch.Tensor] = {
        "inputs.latents_image": torch.randn(B, 8, side, side, generator=g),
        "inputs.orders": orders, "inputs.labels": torch.tensor([1, 6, 3]),
        "inputs.mask": mask, "inputs.mask_bool": mask.bool(),
        "inputs.head_x": rn(N, c), "inputs.head_x_cfg_second_half": rn(N, c),
        "inputs.head_t_int": torch.randint(0, 1000, (N,), generator=g),
        "inputs.head_t_float": torch.rand(N, generator=g),
        "inputs.train_x_start": rn(N, c), "inputs.train_noise": rn(N, c),
        "inputs.train_t_int": torch.tensor([0, 5, 500, 999]), "inputs.train_row_mask": torch.tensor([1.0, 0, 1, 1]),
        "inputs.flow_train_t": torch.rand(N, generator=g), "inputs.step_x": rn(N, c),
        "inputs.step_noise": rn(3, N, c), "inputs.step_noise_cfg": rn(2 * N, c),
        "inputs.e2e_orders": torch.stack([torch.randperm(length, generator=g) for _ in range(B)]),
        "outputs.cfg_scale": torch.tensor([2.5]), "outputs.temperature": torch.tensor([0.9]),
        "outputs.step_t_index": torch.tensor([steps - 1, 7, 0]),
        "outputs.euler_step_grid_index": torch.tensor([0, 9, 18]),
    }
    loop = N * c + (steps * N * c if head == "gauss" else 0)
    loop_cfg = N * c + (steps * 2 * N * c if head == "gauss" else 0)
    t["outputs.sample_loop_noise_stream"] = torch.randn(loop, generator=g)
    t["outputs.sample_loop_cfg_noise_stream"] = torch.randn(loop_cfg, generator=g)
    t["outputs.e2e_noise_stream"] = torch.randn(_e2e_draws(head, length, c), generator=g)
    desc: dict[str, Any] = {"fixture": "other", "head": head, "model_config": cfg, "meta": {"e2e_settings": E2E},
                            "tensors": {k: {"shape": list(v.shape)} for k, v in t.items()}}
    golden = folder / f"golden_{head}.safetensors"
    save_file(t, str(golden))
    (folder / f"golden_{head}.json").write_text(json.dumps(desc))
    files = {"weights": f"model_{head}.safetensors", "golden": golden.name, "description": f"golden_{head}.json"}
    outputs = ModelFixture(folder, files).compute()  # goldens from our own code, then re-checked by the runner
    t.update({f"outputs.{k}": v.contiguous() for k, v in outputs.items()})
    desc["tensors"] = {k: {"shape": list(v.shape)} for k, v in t.items()}
    save_file(t, str(golden))
    (folder / f"golden_{head}.json").write_text(json.dumps(desc))


def test_runner_takes_sizes_from_the_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    g = torch.Generator().manual_seed(7)
    for head in ("gauss", "flow"):
        _write_fixture(folder, head, g)
    index = {"fixture": "other", "files": {h: {"weights": f"model_{h}.safetensors", "golden": f"golden_{h}.safetensors",
                                               "description": f"golden_{h}.json"} for h in ("gauss", "flow")}}
    (folder / "index.json").write_text(json.dumps(index))
    results = run_model_parity(folder)
    assert len(results) > 70
    assert all(r.ok for r in results), [r.line() for r in results if not r.ok]
    assert main([str(folder)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"parity: {len(results)}/{len(results)} outputs match"
