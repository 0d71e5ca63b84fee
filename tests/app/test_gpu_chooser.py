"""The Method page's "GPUs to use": bound to dist.num_processes / dist.strategy, explaining the choice."""

from __future__ import annotations


def test_gpu_choice_goes_into_the_run_config_and_is_explained(qtbot, state):
    from app.gpu_chooser import GpuChooser

    chooser = GpuChooser(state, gpus=["NVIDIA GeForce RTX 3060", "NVIDIA GeForce RTX 3060"])
    qtbot.addWidget(chooser)
    assert "RTX 3060, NVIDIA GeForce RTX 3060" in chooser.detected.text()
    assert chooser.explanation.text().startswith("One process")
    chooser.processes.widget.setCurrentText("2")
    chooser.strategy.widget.setCurrentText("fsdp")
    assert "dist.num_processes=2" in state.overrides() and "dist.strategy=fsdp" in state.overrides()
    assert chooser.explanation.text().startswith("2 processes, one per GPU: weights, gradients and optimizer state")
    assert state.resolved_config().dist.num_processes == 2
    chooser.processes.widget.setCurrentText("4")
    assert "only 2 GPU(s) found" in chooser.explanation.text()


def test_without_a_gpu_more_processes_are_cpu_ddp(qtbot, state):
    from app.gpu_chooser import GpuChooser

    chooser = GpuChooser(state, gpus=[])
    qtbot.addWidget(chooser)
    assert "none (training runs on the CPU)" in chooser.detected.text()
    chooser.processes.widget.setCurrentText("2")
    assert "2 processes on the CPU (DDP over gloo" in chooser.explanation.text()


def test_method_page_shows_the_gpu_chooser_once(qtbot, state, settings):
    from app.method_page import MethodPage

    page = MethodPage(state, settings)
    qtbot.addWidget(page)
    assert page.gpu_chooser.processes.key == "dist.num_processes"
    assert not page.findChildren(type(page.gpu_chooser.processes), "field:dist.num_processes")[1:]  # not in Advanced too
