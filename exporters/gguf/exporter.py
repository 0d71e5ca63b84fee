"""GgufExporter: one HF folder -> GGUF files of several types, verified, with an Ollama Modelfile.

    exporter = GgufExporter(model_dir, Path("exports/smollm2"))
    result = exporter.export(["q8_0", "q4_k_m", "f16"])

Direct types (f32, f16, bf16, q8_0) are written by our converter; llama.cpp types
(q4_k_m, q6_k, ...) are quantised by llama.cpp from a full-precision GGUF written to
a temporary file in the same folder (removed afterwards unless it was asked for).
Everything is checked for disk space first and written under temp names. With verification
each file is verified under a hidden staged name and published (renamed into place) together
with its verify.json entry, so a file at a final path always has its report beside it
(exporters/gguf/staging.py); an interrupted export leaves no file it did not verify.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from exporters.gguf.qtypes import gguf_type
from exporters.gguf.staging import VERIFY_JSON, Staging

MODELFILE = "Modelfile"


def gguf_file_name(quant: str) -> str:
    """model-<quant>.gguf, the name every export folder uses."""
    return f"model-{quant}.gguf"


@dataclass
class ExportedFile:
    path: Path
    type: str
    size_bytes: int
    seconds: float


@dataclass
class ExportResult:
    files: list = field(default_factory=list)       # ExportedFile
    reports: list = field(default_factory=list)     # VerifyReport
    modelfile: Optional[Path] = None
    model_name: str = ""  # the name in the Modelfile's `ollama create` line
    auto_choice: Optional[str] = None
    advisor_text: str = ""
    modelfile_problems: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.reports) and not self.modelfile_problems


class GgufExporter:
    """Exports one HF model folder to GGUF files in `out_dir`."""

    def __init__(self, model_dir: Path, out_dir: Path, progress=None, metadata: Optional[dict] = None,
                 pre_tokenizer: Optional[str] = None, model_name: Optional[str] = None):
        from exporters.gguf.convert import GgufConverter
        from exporters.gguf.progress import ExportProgress
        from exporters.safe_write import ensure_writable_dir

        self.model_dir = Path(model_dir)
        self.progress = progress or ExportProgress(bar=False)
        # the model is checked (architecture, tokenizer, weights) before any folder is created for it
        self.converter = GgufConverter(self.model_dir, pre_tokenizer, metadata)
        self.out_dir = ensure_writable_dir(Path(out_dir))
        self.model_name = model_name or _ollama_name(self.out_dir.name if self.out_dir.name != "exports"
                                                     else self.out_dir.parent.name)
        self._ref = None

    # ---- helpers --------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return self.converter.source.float_param_count()

    def source_type(self) -> str:
        """The full-precision type llama.cpp quantises from: the checkpoint's own precision."""
        dtypes = {t.dtype for t in self.converter.source}
        if dtypes == {"BF16"}:
            return "bf16"
        if "F32" in dtypes and self.n_params < 2e9:
            return "f32"  # small fp32 checkpoints: quantise from exact weights
        return "f16"

    def estimate(self, quant: str) -> int:
        spec = gguf_type(quant)
        if spec.direct:
            return self.converter.estimate_bytes(quant)
        return int(self.n_params * spec.bits_per_weight / 8 * 1.15) + (8 << 20)

    def reference(self):
        """The HF model used by verification and the advisor (loaded once)."""
        if self._ref is None:
            from exporters.gguf.verify import HfReference

            self.progress.message("loading the HF model for verification ...")
            self._ref = HfReference(self.model_dir)
        return self._ref

    def _write_direct(self, quant: str, path: Path, report=None) -> ExportedFile:
        from engine.formats.gguf_integrity import check_gguf
        from exporters.safe_write import atomic_path

        start = time.perf_counter()
        with atomic_path(path) as tmp:
            self.converter.write(tmp, quant, report or self.progress.report)
            check_gguf(tmp)
        return ExportedFile(path, quant, path.stat().st_size, time.perf_counter() - start)

    def _quantize(self, src: Path, quant: str, path: Path) -> ExportedFile:
        from exporters.gguf.quantize import quantize_gguf

        start = time.perf_counter()
        self.progress.report(f"quantising {quant}", 0.0)
        quantize_gguf(src, path, quant)
        return ExportedFile(path, quant, path.stat().st_size, time.perf_counter() - start)

    # ---- the export -----------------------------------------------------------------
    def export(self, quants: list, verify: bool = True, modelfile: bool = True,
               max_kl: Optional[float] = None, min_top1: Optional[float] = None) -> ExportResult:
        """Write every requested type (and 'auto''s choice), verify, write the Modelfile and verify.json.

        With `verify` every file is staged, verified, then published with its verify.json entry;
        without it files are written straight to their final names.
        """
        from exporters.gguf import advisor
        from exporters.gguf.quantize import llama_cpp_available, require_llama_cpp
        from exporters.safe_write import check_free_space

        result = ExportResult()
        quants = list(dict.fromkeys(quants))
        max_kl = advisor.MAX_KL if max_kl is None else max_kl
        min_top1 = advisor.MIN_TOP1 if min_top1 is None else min_top1
        measure_auto = "auto" in quants and verify and llama_cpp_available()
        if "auto" in quants and not measure_auto:
            choice = advisor.heuristic_quant(self.n_params)
            self.progress.message(f"--quant auto without measurements: {choice} "
                                  f"({'q8_0 under' if choice == 'q8_0' else 'q4_k_m from'} 1B parameters)")
            quants = [choice if q == "auto" else q for q in quants]
            result.auto_choice = choice
        fixed = [q for q in dict.fromkeys(quants) if q != "auto"]
        needs_llama = [q for q in fixed if not gguf_type(q).direct] or measure_auto
        if needs_llama:
            require_llama_cpp("Quantising to a llama.cpp type")
        if verify:
            require_llama_cpp("Verification (use --no-verify to skip it)")
        src_type = self.source_type()
        intermediate = None
        if needs_llama:
            intermediate = (self.out_dir / gguf_file_name(src_type)) if src_type in fixed else \
                self.out_dir / f".intermediate-{src_type}.gguf"
        # disk: every output, the auto candidates, the intermediate
        planned = [q for q in fixed] + (list(advisor.CANDIDATES) if measure_auto else [])
        need = sum(self.estimate(q) for q in dict.fromkeys(planned))
        if intermediate is not None and src_type not in fixed:
            need += self.estimate(src_type)
        check_free_space(self.out_dir, need, f"{len(set(planned))} GGUF file(s)")

        steps = [(f"write {q}", 3.0 if gguf_type(q).direct else 2.0) for q in fixed]
        if intermediate is not None and src_type not in fixed:
            steps.insert(0, (f"write {src_type}", 3.0))
        if measure_auto:
            steps.append(("auto", 2.0 * len(advisor.CANDIDATES)))
        if verify:
            steps += [(f"verify {q}", 1.0) for q in fixed]
        self.progress.plan(steps)

        produced: dict[str, ExportedFile] = {}
        verified: dict = {}  # type -> VerifyReport ('auto' verifies its candidates while choosing)
        with Staging(self.out_dir, enabled=verify) as staging:  # what is not published goes, on any exit
            try:
                order = ([src_type] if intermediate is not None and src_type not in fixed else []) + \
                        sorted(fixed, key=lambda q: not gguf_type(q).direct)
                for q in order:
                    self.progress.start(f"write {q}")
                    hidden = q == src_type and intermediate is not None and q not in fixed
                    path = intermediate if hidden else staging.target(self.out_dir / gguf_file_name(q))
                    if q == src_type and intermediate is not None:
                        intermediate = path  # the k-quants are made from the staged full-precision file
                    if gguf_type(q).direct:
                        produced[q] = self._write_direct(q, path)
                    else:
                        produced[q] = self._quantize(intermediate, q, path)
                    self.progress.finish_step()
                    if not hidden:
                        self.progress.message(f"wrote {staging.final(path)} ({produced[q].size_bytes / 1e6:.1f} MB, "
                                              f"{produced[q].seconds:.1f} s)" + (", published once verified"
                                                                                  if verify else ""))
                if measure_auto:
                    self.progress.start("auto")
                    choice = self._auto(produced, verified, staging, intermediate, src_type, fixed, max_kl,
                                        min_top1, result)
                    result.auto_choice = choice
                    self.progress.finish_step()
                    if choice not in fixed:
                        fixed.append(choice)
            finally:
                if intermediate is not None and src_type not in fixed and intermediate.exists():
                    intermediate.unlink()
            result.files = [produced[q] for q in fixed]

            if verify:
                from exporters.gguf.verify import verify_gguf

                for f in result.files:
                    self.progress.start(f"verify {f.type}")
                    if f.type not in verified:
                        verified[f.type] = verify_gguf(f.path, self.reference(), f.type,
                                                       name=staging.final(f.path).name)
                    f.path, = staging.publish([verified[f.type]], f.path)  # its report, then the file
                    self.progress.finish_step()
                result.reports = [verified[f.type] for f in result.files]
        if modelfile and result.files:
            result.modelfile, result.modelfile_problems = self._write_modelfile(result.files[0])
            result.model_name = self.model_name
        if verify:
            from exporters.gguf.verify import save_reports

            extra = {"model_dir": str(self.model_dir), "reference_dtype": self.reference().dtype,
                     "modelfile": {"file": str(result.modelfile) if result.modelfile else None,
                                   "template_matches": not result.modelfile_problems,
                                   "problems": result.modelfile_problems}}
            if result.advisor_text:
                extra["quant_auto"] = {"choice": result.auto_choice, "table": result.advisor_text.splitlines()}
            save_reports(self.out_dir / VERIFY_JSON, result.reports, extra)
        self.progress.close()
        return result

    def _auto(self, produced, verified, staging, intermediate, src_type, fixed, max_kl, min_top1, result) -> str:
        """Measure the candidates (staged, each verified) and return the choice; the others are discarded."""
        from exporters.gguf import advisor
        from exporters.gguf.verify import verify_gguf

        reports = {}
        n = len(advisor.CANDIDATES)

        def measure(q: str):
            i = advisor.CANDIDATES.index(q)
            if q not in produced:
                path = staging.target(self.out_dir / gguf_file_name(q))
                self.progress.report(f"auto: trying {q}", i / n)
                produced[q] = self._write_direct(q, path, lambda stage, f: self.progress.report(stage, (i + f) / n)) \
                    if gguf_type(q).direct else self._quantize(intermediate, q, path)
            if q not in verified:
                verified[q] = verify_gguf(produced[q].path, self.reference(), q,
                                          name=staging.final(produced[q].path).name)
            reports[q] = verified[q]
            return reports[q].kl_mean, reports[q].top1, produced[q].size_bytes

        choice, trials = advisor.choose_quant(measure, max_kl, min_top1)
        result.advisor_text = advisor.format_trials(trials, max_kl, min_top1)
        self.progress.message(result.advisor_text + f"\n  -> {choice}")
        if not any(t.within for t in trials):
            self.progress.warning(f"--quant auto: no candidate was within the bounds (mean KL <= {max_kl}, top-1 >= "
                                  f"{min_top1:.0%}); kept {choice}, the closest",
                                  "export f16 for an exact copy, or relax --max-kl/--min-top1")
        for q in list(produced):  # drop the candidates nobody asked for
            if q in reports and q != choice and q not in fixed and q != src_type:
                staging.discard(produced.pop(q).path)
        return choice

    def _write_modelfile(self, main: ExportedFile) -> tuple[Optional[Path], list]:
        from exporters.gguf.chat_format import render_function
        from exporters.gguf.modelfile import render_modelfile, stop_strings, template_check
        from exporters.safe_write import write_text_atomic

        fmt = self.converter.turns
        tok = self.converter.hf_tokenizer
        if fmt is None:
            self.progress.message("no Modelfile: the chat template's turns could not be read off by rendering it")
            return None, ["the chat template could not be analysed"]
        strip_bos = self.converter.vocab.add_bos
        eot = self.converter.vocab.special_ids.get("eot")
        eot_text = tok.convert_ids_to_tokens(eot) if eot is not None else None
        stops = stop_strings(fmt, eot_text, tok.eos_token)
        path = self.out_dir / MODELFILE
        text = render_modelfile(main.path.name, fmt, stops, strip_bos, self.model_name, str(path))
        write_text_atomic(path, text)
        problems = template_check(fmt, render_function(tok), tok.bos_token or "", strip_bos)
        problems += fmt.matches(render_function(tok))
        self.progress.message(f"wrote {path} (ollama create {self.model_name} -f {path})")
        return path, problems

    def close(self) -> None:
        if self._ref is not None:
            self._ref.close()


def _ollama_name(text: str) -> str:
    """A model name Ollama accepts (lower case, [a-z0-9._-])."""
    import re

    name = re.sub(r"[^a-z0-9._-]+", "-", str(text).lower()).strip("-.")
    return name or "edgetune-model"
