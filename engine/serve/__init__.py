"""`engine serve`: an OpenAI-compatible HTTP server over the chat backends.

    engine serve runs/quickstart runs/quickstart/exports/model-q8_0.gguf
    curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \
         -d '{"model": "model-q8_0", "messages": [{"role": "user", "content": "Hi"}]}'

Every model is a `ChatSession` backend (engine/chat), so a served model renders the same chat
template and stops at the same end-of-turn tokens as `engine chat` and export verification.
The HTTP layer is FastAPI/Starlette on uvicorn (the `serve` extra); these modules hold only
what is ours: the model pool, request schemas, limits, the API key check and the access log.
"""

from engine.errors import EdgetuneError

INSTALL_HINT = "pip install 'edgetune[serve]'  (FastAPI and uvicorn)"


def require_serve_deps() -> None:
    """Fail with the pip command to run when FastAPI or uvicorn is missing."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgetuneError(f"engine serve needs {' and '.join(missing)}, which are not installed. Install them with: "
                            f"{INSTALL_HINT}")
