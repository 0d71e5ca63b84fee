"""The Export page runs `engine export ...` children: progress, verification table, Modelfile, errors."""

from __future__ import annotations

import pytest


@pytest.fixture
def page(qtbot, state, settings, fake_engine, tmp_path):
    from app.export_page import ExportPage

    run = tmp_path / "runs" / "r1"
    (run / "adapter").mkdir(parents=True)
    (run / "config.yaml").write_text("method: lora\n")
    p = ExportPage(state, settings)
    qtbot.addWidget(p)
    p.set_source(str(run))
    return p


def export(qtbot, page):
    with qtbot.waitSignal(page.process.finished, timeout=20000):
        assert page.start()
    qtbot.waitUntil(lambda: not page.process.is_running() and not page.jobs, timeout=20000)


def test_gguf_and_onnx_exports_show_progress_verification_and_modelfile(qtbot, page, tmp_path):
    page.quant_boxes["auto"].setChecked(False)
    page.quant_boxes["q8_0"].setChecked(True)
    page.quant_boxes["q4_k_m"].setChecked(True)
    page.onnx_on.setChecked(True)
    page.precision.setCurrentText("int4")
    page.target.setCurrentText("mobile")
    jobs = page.export_args()
    assert jobs[0][:5] == ["export", "gguf", str(tmp_path / "runs" / "r1"), "--quant", "q8_0,q4_k_m"]
    assert jobs[1][3:7] == ["--precision", "int4", "--target", "mobile"] and "--out" not in jobs[1]
    with qtbot.waitSignal(page.exported, timeout=30000) as blocker:
        page.start()
    assert blocker.args[0] == str(tmp_path / "runs" / "r1" / "exports")
    assert page.results == [("gguf", "done"), ("onnx", "done")]
    assert page.progress.value() == 1000
    files = [page.verify.item(r, 0).text() for r in range(page.verify.rowCount())]
    assert files == ["model-q8_0.gguf", "model-q4_k_m.gguf", "onnx-int4"]
    assert page.verify.item(0, 8).text() == "✔ pass" and page.verify.item(0, 3).text() == "120/120"
    assert [page.verify.item(2, c).text() for c in (3, 5, 7, 8)] == ["yes", "97.0%", "3/3", "✔ pass"]
    assert 'PARAMETER stop "<|im_end|>"' in page.modelfile.toPlainText()
    assert "ollama create r1 -f" in page.modelfile.toPlainText()
    assert page.open_button.isEnabled()


def test_failed_verification_and_exporter_errors_are_dialogs(qtbot, page, fake_engine):
    fake_engine.setenv("FAKE_ENGINE_MODE", "verify_fail")
    export(qtbot, page)
    assert page.results == [("gguf", "unverified")]
    assert "verification failed" in page.dialog.windowTitle() and page.verify.item(0, 8).text() == "✘ FAIL"
    fake_engine.setenv("FAKE_ENGINE_MODE", "export_error")
    export(qtbot, page)
    assert page.results == [("gguf", "failed")]
    assert "does not support" in page.dialog.text() and "ONNX" in page.dialog.informativeText()


def test_an_onnx_vlm_reports_image_checks_in_the_tooltip():
    from app.verify_table import report_row

    summary = {"nmse": 3e-14, "top1": 1.0, "kl": 0.0, "tokenizer_ok": True, "free_run_stops": "5/5", "max_pixel_diff": 1.2e-7,
               "vision_nmse": 1.3e-4, "as_trained_top1": 0.93, "as_trained_kl": 0.056}
    cells, passed, tip = report_row("onnx-int4", {"passed": True, "failures": [], "precision": "int4", "summary": summary})
    assert passed and cells[4] == "3.00e-14" and cells[7] == "5/5"
    assert "image features NMSE 1.3e-04" in tip and "bidirectional image attention: top-1 93.0%" in tip
