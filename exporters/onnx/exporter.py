"""`OnnxExporter`: one ONNX export job, from a run folder or model spec to a verified folder.

    OnnxExporter("runs/quickstart", precision="int4", target="mobile").run()

Steps (each reported as an `export_progress` event): resolve the source to an HF folder
(a run is merged first), check architecture, precision/target and free disk space, stage
the HF folder, build with ONNX Runtime GenAI's model builder, make the tokenizer readable
by onnxruntime-extensions, verify against the HF model, time a short generation, write
verify.json / export.json / README.md. Everything is written into `.<name>.partial` next
to the destination and renamed when complete; a build that fails verification is kept as
`<name>.failed` for inspection, never at the final path.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from engine.errors import EdgetuneError
from engine.events import EventSink
from exporters.onnx.architectures import is_vlm
from engine.models.param_count import param_count
from engine.formats.onnx_targets import PRECISIONS, folder_name, resolve_target

BOOKKEEPING = ("verify.json", "export.json", "README.md", "build.log")


@dataclass
class OnnxExportResult:
    """Where the export went and what was measured."""

    folder: Path
    precision: str
    target: str
    size_mb: float
    build_s: float
    verification: Optional[dict]  # the content of verify.json; None with verify=False
    speed: Optional[dict]  # measure_speed's figures; None with speed=False


def folder_size_mb(folder: Path, skip: tuple[str, ...] = BOOKKEEPING) -> float:
    """Size of the model files in `folder` (reports and logs excluded)."""
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file() and f.name not in skip) / 2**20


class OnnxExporter:
    """Export `source` (run folder or model spec) to an ONNX Runtime GenAI folder.

    `out` is the export folder itself (default: <exports>/onnx-<precision>[-<target>]).
    `target=None` picks the first target that builds `precision` (cpu; cuda for fp16).
    Progress goes to `sink` as export_progress events and to `say` as lines of text.
    """

    def __init__(self, source: str | Path, precision: str = "int4", target: Optional[str] = None,
                 out: Optional[str | Path] = None, verify: bool = True, speed: bool = True,
                 sink: Optional[EventSink] = None, say: Callable[[str], None] = print):
        self.source = str(source)
        self.precision = precision
        self.target = resolve_target(precision, target)  # fails fast, before any model is touched
        self.out = Path(out) if out else None
        self.verify = verify
        self.speed = speed
        self.sink = sink or EventSink()
        self.say = say
        self.vlm_parts: Optional[dict] = None  # a VLM's vision/embedding storage, once built

    def progress(self, stage: str, fraction: float, text: Optional[str] = None) -> None:
        self.sink.emit("export_progress", target="onnx", stage=stage, fraction=round(fraction, 3))
        if text:
            self.say(text)

    def run(self) -> OnnxExportResult:
        """Do the export; returns where it went and what was measured."""
        from engine.runs import exports_dir_for, model_dir_for
        from exporters.onnx.architectures import check_architecture

        self.progress("resolve", 0.0, f"onnx: resolving {self.source}")
        model_dir = Path(model_dir_for(self.source))
        arch = check_architecture(model_dir)
        final = self.out or Path(exports_dir_for(self.source)) / folder_name(self.precision, self.target)
        if final.exists() and not final.is_dir():
            raise EdgetuneError(f"--out {final} is a file, not a folder. Pass a folder for the ONNX export.")
        if final.exists() and any(final.iterdir()) and not (final / "genai_config.json").is_file():
            # the old folder is deleted when the new one is published: never do that to a stranger's folder
            raise EdgetuneError(f"--out {final} exists and is not an ONNX export (no genai_config.json); it would be "
                                f"replaced. Pass a new folder, e.g. --out {final / folder_name(self.precision, self.target)}.")
        from exporters.safe_write import ensure_writable_dir

        ensure_writable_dir(final.parent)  # a clear error now, not a traceback after minutes of building
        self._check_free_space(model_dir, final.parent)
        tmp = final.with_name(f".{final.name}.partial")
        stage = final.with_name(f".{final.name}.stage")
        for p in (tmp, stage):
            shutil.rmtree(p, ignore_errors=True)
        try:
            return self._build_verify_publish(model_dir, arch, final, tmp, stage)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _check_free_space(self, model_dir: Path, where: Path) -> None:
        from exporters.safe_write import check_free_space

        params = param_count(model_dir)
        need = params * PRECISIONS[self.precision].bytes_per_param * 1.1 + 50 * 2**20
        if is_vlm(model_dir):  # beside the decoder: the embedding table again (embedding.onnx) and the vision graph
            from exporters.onnx.vlm_graphs import VISION_AND_TABLE

            text = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")).get("text_config") or {}
            vision_weights, table = VISION_AND_TABLE[self.precision]
            width = {"fp32": 4, "fp16": 2, "int8": 1}
            vision = param_count(model_dir, only=lambda n: any(k in n for k in ("vision", "visual", "projector")))
            need += int(text.get("vocab_size", 0)) * int(text.get("hidden_size", 0)) * width[table]
            need += vision * width[vision_weights]
        check_free_space(where, int(need), f"the {self.precision} ONNX export of this {params / 1e6:.0f}M-parameter model")

    def _build_verify_publish(self, model_dir: Path, arch: str, final: Path, tmp: Path, stage: Path) -> OnnxExportResult:
        from exporters.onnx.build import builder_options, run_builder, stage_model, tune_genai_config
        from exporters.onnx.tokenizer_fix import fix_tokenizer_json

        t = self.target
        self.progress("stage", 0.02, f"onnx: {arch} from {model_dir} -> {self.precision} for {t.name} "
                                     f"(execution provider {t.provider})")
        from exporters.onnx.vlm_pipelines import vlm_pipeline_for

        stage_model(model_dir, stage)
        tmp.mkdir(parents=True)
        pipeline = vlm_pipeline_for(arch) if is_vlm(model_dir) else None
        staged = json.loads((stage / "config.json").read_text())
        layers = (staged.get("text_config") or staged).get("num_hidden_layers") or 1
        self.options = builder_options(self.precision, t, param_count(model_dir))
        if pipeline:  # the decoder takes inputs_embeds; vision.onnx and embedding.onnx make them
            self.options["exclude_embeds"] = "true"
        shown = " ".join(f"{k}={v}" for k, v in self.options.items() if k != "hf_token")
        self.progress("build", 0.05, "onnx: building the graph with onnxruntime_genai.models.builder"
                      + (f" ({shown})" if shown else "") + " ...")
        started = time.perf_counter()
        run_builder(stage, tmp, self.precision, t, self.options, tmp / "build.log",
                    on_layer=lambda i: self.progress("build", 0.05 + 0.65 * (i + 1) / layers))
        if pipeline:
            from exporters.onnx.vlm_build import build_vlm_parts

            self.progress("build", 0.70, f"onnx: tracing the vision encoder + projector (vision.onnx) and the "
                                         f"image-token embedding (embedding.onnx) for the {pipeline.genai_type} pipeline ...")
            self.vlm_parts = build_vlm_parts(model_dir, tmp, pipeline, self.precision)
        build_s = time.perf_counter() - started
        changes = fix_tokenizer_json(tmp)
        genai_config = tune_genai_config(tmp, t)
        size_mb = folder_size_mb(tmp)
        self.progress("built", 0.72, f"onnx: built in {build_s:.1f} s, {size_mb:.1f} MB"
                      + (f"; tokenizer.json fixed for onnxruntime-extensions ({', '.join(changes)})" if changes else ""))

        verification = None
        if self.verify:
            from exporters.onnx.verify import verify_export

            self.progress("verify", 0.75, "onnx: verifying against the HF model in fp32 (tokenizer, logits, end of turn) ...")
            if pipeline:
                from exporters.onnx.verify_vlm import image_checks_text, verify_vlm_export

                verification = verify_vlm_export(tmp, model_dir, self.precision, self.vlm_parts["vision_weights"])
            else:
                verification = verify_export(tmp, model_dir, self.precision)
            (tmp / "verify.json").write_text(json.dumps(verification, indent=2, ensure_ascii=False), encoding="utf-8")
            s = verification["summary"]
            self.say(f"onnx: verify {'passed' if verification['passed'] else 'FAILED'}: NMSE {s['nmse']:.2e}, "
                     f"top-1 {s['top1']:.1%}, KL {s['kl']:.4f} nats/token, tokenizer "
                     f"{'identical' if s['tokenizer_ok'] else 'DIFFERENT'}, greedy replies stopping at end-of-turn "
                     f"{s['free_run_stops']}, identical greedy text {s['same_greedy_text']}"
                     + (f"; {image_checks_text(s)}" if pipeline else ""))
            if verification["passed"] and s["free_run_stops"].split("/")[0] != s["free_run_stops"].split("/")[1]:
                self.sink.emit("warning", message=f"{self.precision} replies parted from the HF model's at a near tie and "
                               f"then did not always stop within the check's token budget ({s['free_run_stops']}); the "
                               f"end-of-turn token itself is predicted and honoured (verify.json: end_of_turn.runs).",
                               hint="For replies closer to the trained model export --precision int8 (or fp32).")
                self.say(f"onnx: note: {self.precision} drifts from the fp32 model; see verify.json end_of_turn.runs")

        speed = None
        if self.speed and not (verification and not verification["passed"]):  # no timing a build that is not shipped
            from exporters.onnx.speed import measure_speed

            self.progress("speed", 0.95, "onnx: timing a short greedy generation ...")
            speed = measure_speed(tmp)

        info = self._write_reports(tmp, final, model_dir, arch, build_s, size_mb, verification, speed, genai_config)
        if verification and not verification["passed"]:
            failed = final.with_name(final.name + ".failed")
            shutil.rmtree(failed, ignore_errors=True)
            tmp.rename(failed)
            raise EdgetuneError(f"ONNX export failed verification: {'; '.join(verification['failures'])}. "
                                f"The build is kept at {failed} (see its verify.json); nothing was written to {final}. "
                                f"Re-run with --no-verify to accept it anyway.")
        self._publish(tmp, final)
        self.progress("done", 1.0, f"onnx: wrote {final} ({size_mb:.1f} MB"
                      + (f", {speed['tokens_per_s']} tokens/s on this CPU" if speed else "") + ")")
        return OnnxExportResult(final, self.precision, self.target.name, info["size_mb"], build_s, verification, speed)

    def _write_reports(self, tmp, final, model_dir, arch, build_s, size_mb, verification, speed, genai_config) -> dict:
        import onnxruntime_genai

        from engine.data.chat_templates import EXPORT_FALLBACK
        from engine.models.loading import tokenizer_from_dir
        from exporters.onnx.readme import prompt_pattern, write_readme

        info = {
            "source": self.source, "model_dir": str(model_dir), "model_name": Path(self.source).name or self.source,
            "architecture": arch, "precision": self.precision, "target": self.target.name,
            "execution_provider": self.target.provider, "builder_options": self.options,
            "builder_version": onnxruntime_genai.__version__, "build_s": round(build_s, 1),
            "size_mb": round(size_mb, 1),
            "files": {f.name: f.stat().st_size for f in sorted(tmp.iterdir()) if f.is_file()},
            "verification": verification and {"passed": verification["passed"], **verification["summary"]},
            "speed": speed,
            **({"vision_language": self.vlm_parts} if self.vlm_parts else {}),
        }
        (tmp / "export.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        hf_tok = tokenizer_from_dir(model_dir, default_template=EXPORT_FALLBACK)
        image_prompt = None
        if "vision" in genai_config["model"]:
            image_prompt = hf_tok.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]}],
                tokenize=False, add_generation_prompt=True)
        write_readme(tmp, info, self.target, genai_config, prompt_pattern(hf_tok), image_prompt)
        return info

    @staticmethod
    def _publish(tmp: Path, final: Path) -> None:
        """Swap the finished folder into place (an older export is replaced only now)."""
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
