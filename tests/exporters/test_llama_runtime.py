"""load_llama: GGUFs run in llama.cpp without the AMX kernels that crash on AMX CPUs."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")


def test_extra_buffers_follow_the_build(monkeypatch):
    from engine.runtimes import llama as llama_runtime

    monkeypatch.delenv("EDGETUNE_LLAMA_EXTRA_BUFTS", raising=False)
    assert llama_runtime.extra_buffers_safe() == (not llama_runtime.amx_in_build())
    monkeypatch.setenv("EDGETUNE_LLAMA_EXTRA_BUFTS", "1")
    assert llama_runtime.extra_buffers_safe()


def test_batched_prompt_runs_and_defaults_are_restored(monkeypatch):
    """A prompt of many tokens takes llama.cpp's batched matmul (the AMX path where one is built)."""
    import llama_cpp.llama_cpp as capi

    from engine.models.bundled import bundled_gguf_path
    from engine.runtimes import llama as llama_runtime

    monkeypatch.setattr(llama_runtime, "extra_buffers_safe", lambda: False)  # take the patched path everywhere
    default = capi.llama_model_default_params
    llm = llama_runtime.load_llama(bundled_gguf_path("smollm2-135m-instruct"), n_ctx=256, verbose=False)
    assert capi.llama_model_default_params is default
    assert capi.llama_model_default_params().use_extra_bufts  # only that one load changed
    ids = llm.tokenize(b"The lantern is bright and the night is long. " * 6, add_bos=False)
    assert len(ids) > 32
    llm.eval(ids)
    assert llm.n_tokens == len(ids)
    llm.close()
