"""Recompute every output of a D-JEPA model fixture (the layout of shared/fixtures/official/tiny).

Sizes come from the fixture's own `model_config`; weights go through the reference importer;
each golden output is recomputed by our modules and compared elementwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from djepa_core.compat.compare import ParityResult, compare
from djepa_core.compat.reference import config_from_reference, pick_weights
from djepa_core.compat.state_dict import load_strict, read_container
from djepa_core.heads.flow import flow_training_losses
from djepa_core.heads.gaussian import gaussian_training_losses, masked_mean, p_mean_variance
from djepa_core.heads.mlp import timestep_embedding
from djepa_core.heads.schedule import GaussianSchedule, make_schedule
from djepa_core.models.djepa import DJEPA
from djepa_core.samplers.ddpm import ddpm_sample
from djepa_core.samplers.guidance import guided
from djepa_core.samplers.masked_ar import SampleSettings, sample_tokens
from djepa_core.samplers.noise import ReplayNoise
from djepa_core.samplers.ode import flow_sample, flow_time_grid
from djepa_core.tokenizers.grid import patchify, unpatchify

# rtol = atol for outputs that amplify float32 rounding (fixture README, section 2)
LOOSE_PREFIXES = ("p_step_", "sample_loop_")
SCHEDULE_FIELDS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "timestep_map",
)


def tolerance(name: str, gauss: bool, default: float = 1e-5, loose: float = 1e-4) -> float:
    short = name.removeprefix("outputs.")
    return loose if gauss and short.startswith(LOOSE_PREFIXES) else default


def _schedule_outputs(prefix: str, s: GaussianSchedule) -> dict[str, torch.Tensor]:
    return {f"{prefix}{f}": torch.from_numpy(getattr(s, f)) for f in SCHEDULE_FIELDS}


class ModelFixture:
    """One head variant of a model fixture: description, weights, golden tensors."""

    def __init__(self, folder: Path, files: dict[str, str]) -> None:
        self.folder = folder
        self.desc: dict[str, Any] = json.loads((folder / files["description"]).read_text())
        self.golden = load_file(str(folder / files["golden"]))
        self.config = config_from_reference(self.desc["model_config"])
        self.model = DJEPA(self.config).eval()
        state = pick_weights(read_container(folder / files["weights"]))
        load_strict(self.model, state, f"{files['weights']}")
        self.gauss = self.config.head == "gauss"

    def g(self, name: str) -> torch.Tensor:
        return self.golden[name]

    @torch.no_grad()
    def compute(self) -> dict[str, torch.Tensor]:
        """Every output this code knows how to recompute, by golden name."""
        m, cfg, g = self.model, self.config, self.g
        meta = self.desc.get("meta", {})
        patch = int(self.desc["model_config"].get("patch_size", 1))
        out: dict[str, torch.Tensor] = {}
        labels, mask = g("inputs.labels"), g("inputs.mask")
        tokens = patchify(g("inputs.latents_image"), patch)
        out["tokens"] = tokens
        out["unpatchify_tokens"] = unpatchify(tokens, (cfg.grid[0], cfg.grid[1]), patch)
        e = m.class_vectors(labels)
        out["class_embedding"] = e
        # encoder, block by block
        x = m.encoder_input(tokens, mask, e)
        out["debug_encoder_blocks_input"] = x
        for i, blk in enumerate(m.encoder_blocks):
            x = blk(x)
            out[f"debug_encoder_block{i}_output"] = x
        enc = m.encode(tokens, mask, e)
        out["encoder_output"] = enc
        y = m.predictor_input(enc, mask)
        out["debug_decoder_blocks_input"] = y
        for i, blk in enumerate(m.decoder_blocks):
            y = blk(y)
            out[f"debug_decoder_block{i}_output"] = y
        z = m.predict(enc, mask)
        out["decoder_output_z"] = z
        null = m.null_vectors(labels.shape[0])
        enc_u = m.encode(tokens, mask, null)
        out["encoder_output_uncond"] = enc_u
        z_u = m.predict(enc_u, mask)
        out["decoder_output_z_uncond"] = z_u
        target = m.target_features(tokens, labels)
        out["ema_target_features"] = target
        if m.jepaloss is not None:
            out["jepa_predictor_output"] = m.jepaloss.net(z)
            out["jepa_loss"] = m.jepaloss(z, target, mask).reshape(1)

        # head inputs: rows of z at the first N masked positions (batch-major, position-ascending)
        n = g("inputs.head_x").shape[0]
        mb = mask.bool()
        c, c_u = z[mb][:n], z_u[mb][:n]
        out["head_c"], out["head_c_uncond"] = c, c_u
        net = m.head
        t_int, t_float = g("inputs.head_t_int"), g("inputs.head_t_float")
        t_head = t_int if self.gauss else t_float
        out["timestep_frequency_embedding_int"] = timestep_embedding(t_int, net.time_embed.freq_dim)
        out["timestep_frequency_embedding_float"] = timestep_embedding(t_float, net.time_embed.freq_dim)
        out["debug_head_time_embed_int"] = net.time_embed(t_int)
        out["debug_head_time_embed_float"] = net.time_embed(t_float)
        out["debug_head_cond_embed"] = net.cond_embed(c)
        out["head_output"] = net(g("inputs.head_x"), t_head, c)
        scale = g("outputs.cfg_scale")[0]
        x2 = torch.cat([g("inputs.head_x"), g("inputs.head_x_cfg_second_half")])
        c2 = torch.cat([c, c_u])
        out["head_output_cfg"] = guided(net, scale, cfg.token_dim)(x2, torch.cat([t_head, t_head]), c2)
        temp = self.golden.get("outputs.temperature")
        temperature = float(temp[0]) if temp is not None else 1.0
        if self.gauss:
            self._gauss_outputs(out, c, c2, scale, temperature)
        else:
            self._flow_outputs(out, c, c2, scale, meta)
        # end-to-end sampling
        s = meta.get("e2e_settings")
        if s is not None:
            bsz = int(s["bsz"])
            settings = SampleSettings(num_steps=int(s["num_iter"]), cfg_scale=float(s["cfg_scale"]),
                                      cfg_schedule=s["cfg_schedule"], temperature=float(s["temperature"]),
                                      reference_arithmetic=True)  # a replay of the reference's run, bit for bit
            noise = ReplayNoise(g("outputs.e2e_noise_stream"), g("inputs.e2e_orders")[:bsz])
            if not self.gauss and "time_shifting_factor" in s:
                m.config = cfg.replace(flow_time_shift=float(s["time_shifting_factor"]))
            toks = sample_tokens(m, labels[:bsz], noise, settings)
            m.config = cfg
            out["e2e_sample_tokens_output"] = unpatchify(toks, (cfg.grid[0], cfg.grid[1]), patch)
            if not noise.exhausted:
                raise ValueError("end-to-end run did not consume the whole recorded noise stream")
        return out

    def _gauss_outputs(self, out: dict[str, torch.Tensor], c: torch.Tensor, c2: torch.Tensor,
                       scale: torch.Tensor, temperature: float) -> None:
        g, cfg, net = self.g, self.config, self.model.head
        train = make_schedule(cfg.diffusion_steps, cfg.noise_schedule)
        gen = make_schedule(cfg.diffusion_steps, cfg.noise_schedule, respace=cfg.sampling_steps)
        out.update(_schedule_outputs("sched_train_", train))
        out.update(_schedule_outputs("sched_gen_", gen))
        terms = gaussian_training_losses(net, train, g("inputs.train_x_start"), g("inputs.train_t_int"), c,
                                         g("inputs.train_noise"))
        out["train_loss_mse"], out["train_loss_vb"], out["train_loss_per_row"] = terms.mse, terms.vb, terms.loss
        out["train_loss_masked_mean"] = masked_mean(terms.loss, g("inputs.train_row_mask")).reshape(1)
        x = g("inputs.step_x")
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("mean", "variance", "log_variance",
                                                               "pred_xstart", "sample")}
        for j, idx in enumerate(g("outputs.step_t_index").tolist()):
            t = torch.full((x.shape[0],), int(idx), dtype=torch.long)
            pred = p_mean_variance(gen, net(x, gen.original_steps(t), c), x, t)
            nz = (t != 0).float()[:, None]
            sample = pred.mean + nz * torch.exp(0.5 * pred.log_variance) * g("inputs.step_noise")[j] * temperature
            for k, val in (("mean", pred.mean), ("variance", pred.variance), ("log_variance", pred.log_variance),
                           ("pred_xstart", pred.pred_xstart), ("sample", sample)):
                rows[k].append(val)
        for k, vals in rows.items():
            out[f"p_step_{k}"] = torch.stack(vals)
        x2 = torch.cat([x, x])
        t = torch.full((x2.shape[0],), gen.num_steps - 1, dtype=torch.long)
        pred = p_mean_variance(gen, guided(net, scale, cfg.token_dim)(x2, gen.original_steps(t), c2), x2, t)
        out["p_step_cfg_mean"], out["p_step_cfg_variance"] = pred.mean, pred.variance
        out["p_step_cfg_log_variance"], out["p_step_cfg_pred_xstart"] = pred.log_variance, pred.pred_xstart
        out["p_step_cfg_sample"] = (pred.mean + torch.exp(0.5 * pred.log_variance)
                                    * g("inputs.step_noise_cfg") * temperature)
        noise = ReplayNoise(g("outputs.sample_loop_noise_stream"))
        out["sample_loop_output"] = ddpm_sample(net, c, gen, noise, cfg.token_dim, temperature, None)
        noise = ReplayNoise(g("outputs.sample_loop_cfg_noise_stream"))
        out["sample_loop_cfg_output"] = ddpm_sample(net, c2, gen, noise, cfg.token_dim, temperature, scale)

    def _flow_outputs(self, out: dict[str, torch.Tensor], c: torch.Tensor, c2: torch.Tensor,
                      scale: torch.Tensor, meta: dict[str, Any]) -> None:
        g, cfg, net = self.g, self.config, self.model.head
        per_row = flow_training_losses(net, g("inputs.train_x_start"), g("inputs.flow_train_t"), c,
                                       g("inputs.train_noise"))
        out["train_loss_per_row"] = per_row
        out["train_loss_masked_mean"] = masked_mean(per_row, g("inputs.train_row_mask")).reshape(1)
        shift = float(meta.get("e2e_settings", {}).get("time_shifting_factor", cfg.flow_time_shift))
        grid = flow_time_grid(cfg.sampling_steps, shift)
        out["ode_time_grid"] = grid
        x = g("inputs.step_x")
        ones = torch.ones(x.shape[0])
        vs: list[torch.Tensor] = []
        nxt: list[torch.Tensor] = []
        for k in g("outputs.euler_step_grid_index").tolist():
            v = net(x, ones * grid[k], c)
            vs.append(v)
            nxt.append(x + (grid[k + 1] - grid[k]) * v)
        out["euler_step_velocity"], out["euler_step_next_x"] = torch.stack(vs), torch.stack(nxt)
        x2 = torch.cat([x, x])
        v2 = guided(net, scale, cfg.token_dim)(x2, torch.ones(x2.shape[0]) * grid[0], c2)
        out["euler_step_cfg_next_x"] = x2 + (grid[1] - grid[0]) * v2
        noise = ReplayNoise(g("outputs.sample_loop_noise_stream"))
        out["sample_loop_output"] = flow_sample(net, c, grid, noise, cfg.token_dim, None)
        noise = ReplayNoise(g("outputs.sample_loop_cfg_noise_stream"))
        out["sample_loop_cfg_output"] = flow_sample(net, c2, grid, noise, cfg.token_dim, scale)


def run_model_parity(folder: Path, log: Callable[[str], None] | None = None) -> list[ParityResult]:
    """Parity of every output of every head variant listed in `folder/index.json`."""
    index = json.loads((folder / "index.json").read_text())
    results: list[ParityResult] = []
    for variant, files in index["files"].items():
        fx = ModelFixture(folder, files)
        names = [k for k in fx.desc["tensors"] if k.startswith("outputs.")]
        try:
            ours = fx.compute()
        except Exception as e:  # report, per output, rather than hide the failure
            err = f"{type(e).__name__}: {e}"
            results.extend(
                ParityResult(f"{folder.name}/{variant}/{k.removeprefix('outputs.')}", float("inf"), float("inf"),
                             0, 0, error=err)
                for k in names)
            continue
        for name in names:
            short = name.removeprefix("outputs.")
            tol = tolerance(name, fx.gauss)
            label = f"{folder.name}/{variant}/{short}"
            if short in ("cfg_scale", "temperature", "step_t_index", "euler_step_grid_index") or \
                    short.endswith("noise_stream"):
                continue  # settings and recorded noise: inputs of the other outputs, used as given
            if short not in ours:
                results.append(ParityResult(label, float("inf"), float("inf"), tol, tol, error="not recomputed"))
                continue
            results.append(compare(label, ours[short], fx.golden[name], tol, tol))
    return results
