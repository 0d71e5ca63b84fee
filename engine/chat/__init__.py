"""Local chat for testing a fine-tune: one `ChatSession` over HF, GGUF and ONNX backends.

    from engine.chat import ChatSession
    s = ChatSession("runs/quickstart", temperature=0)
    print("".join(s.send("How long does the Quillon Q7 battery last?")))
"""

from engine.chat.sampling import SamplingParams
from engine.chat.session import ChatSession

__all__ = ["ChatSession", "SamplingParams"]
