"""Request bodies of the OpenAI API that edgetune serves, validated with pydantic.

Fields OpenAI clients send that do not change a local model's answer (user, logprobs=false,
presence_penalty, ...) are accepted and ignored, so stock clients work; a known field of the
wrong type or range is a 400 naming it. `top_k` and `repeat_penalty` are llama.cpp-server
extensions (send them with the openai client's `extra_body`). Message content may be a string or
a list of `text` and `image_url` parts (images: vision-language models only, see image_parts.py).
"""

from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.serve.api_errors import ApiError
from engine.serve.image_parts import ImageRef

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str
    detail: Optional[str] = None  # OpenAI's low/high/auto: the processor decides the resolution here


class ContentPart(BaseModel):
    """{"type": "text", "text": ...} or {"type": "image_url", "image_url": {"url": ...}} (engine/serve/image_parts.py)."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: Optional[str] = None
    image_url: Union[ImageUrl, str, None] = None  # some clients send the URL string itself


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Union[str, list[ContentPart], None] = None

    def as_chat(self, index: int) -> dict:
        """{"role", "content"} as the chat template wants it (developer -> system, text parts joined), plus
        "image_refs" when the message has image parts (the model sees a turn's images before its text)."""
        if self.role not in ROLES:
            raise ApiError(400, f"messages[{index}].role is {self.role!r}; this server takes "
                                f"{', '.join(ROLES)} (tool calls are not supported).", "invalid_role", f"messages[{index}].role")
        content, refs = self.content, []
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                where = f"messages[{index}].content[{j}]"
                if part.type == "text":
                    texts.append(part.text or "")
                elif part.type == "image_url":
                    refs.append(ImageRef(where, _url_of(part, where)))
                else:
                    raise ApiError(400, f"{where} is a {part.type!r} part; this server takes 'text' and 'image_url' "
                                        f"parts.", "unsupported_content", where)
            content = "".join(texts)
        if refs and ROLES[self.role] != "user":
            raise ApiError(400, f"messages[{index}] is a {self.role} message with an image; images go in user "
                                f"messages.", "unsupported_content", f"messages[{index}].content")
        return {"role": ROLES[self.role], "content": content or "", **({"image_refs": refs} if refs else {})}


def _url_of(part: ContentPart, where: str) -> str:
    url = part.image_url.url if isinstance(part.image_url, ImageUrl) else part.image_url
    if not url:
        raise ApiError(400, f"{where} is an image_url part without a URL; send "
                            f"{{\"type\": \"image_url\", \"image_url\": {{\"url\": \"data:image/png;base64,...\"}}}}.",
                       "invalid_image_url", f"{where}.image_url")
    return url


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class SamplingFields(BaseModel):
    """What chat and text completions share."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, ge=0, le=1)  # 0 = off, as in engine chat
    top_k: Optional[int] = Field(None, ge=0)
    repeat_penalty: Optional[float] = Field(None, gt=0)
    max_tokens: Optional[int] = Field(None, ge=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    n: Optional[int] = None  # null or 1: some clients send every field, unset ones as null
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None

    def stop_strings(self) -> list[str]:
        """`stop` as a list (OpenAI allows one string or up to four)."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4:
            raise ApiError(400, f"stop holds {len(stops)} strings; at most 4 are allowed.", "too_many_stops", "stop")
        return [s for s in stops if s]


class ChatCompletionRequest(SamplingFields):
    messages: list[Message]


class CompletionRequest(SamplingFields):
    prompt: Union[str, list[str]]

    def prompt_text(self) -> str:
        """The one prompt string (a list of several would be a batch, which is not served)."""
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise ApiError(400, f"prompt holds {len(self.prompt)} strings; this server completes one at a time.",
                           "batch_prompt", "prompt")
        return self.prompt[0]


def parse_request(kind: type[BaseModel], body: bytes) -> BaseModel:
    """Validate a JSON body, turning pydantic's error into a 400 that names the field."""
    try:
        return kind.model_validate_json(body)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        if err["type"] == "json_invalid":
            raise ApiError(400, f"The request body is not valid JSON ({err.get('ctx', {}).get('error', err['msg'])}).",
                           "invalid_json") from None
        if err["type"] == "model_type":
            raise ApiError(400, "The request body must be a JSON object.", "invalid_body") from None
        where = ".".join(str(p) for p in err["loc"]) or "body"
        what = "is required" if err["type"] == "missing" else f"is invalid: {err['msg']}"
        raise ApiError(400, f"'{where}' {what}.", "invalid_field", where) from None

