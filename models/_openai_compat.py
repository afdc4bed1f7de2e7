"""`CompatChatModel`: pydantic-ai's `OpenAIChatModel` for an OpenAI-compatible server, set up by `Compat`.

The one module that overrides a pydantic-ai hook (`OpenAIChatModel._map_model_response`, documented for
subclasses to override): no profile key covers the `content` of a tool-call-only assistant message.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles.openai import OpenAIModelProfile

from ._compat import Compat, compat_profile

__all__ = ('CompatChatModel', 'build_openai_compatible')


class CompatChatModel(OpenAIChatModel):
    """`OpenAIChatModel` for a compatible server: its profile from `compat`, `""` content on tool-call-only
    assistant messages where the server needs it, and the preset's name as the provider (`gen_ai.provider.name`)."""

    def __init__(self, model_name: str, *, provider: Any, compat: Compat) -> None:
        self.compat = compat
        super().__init__(model_name, provider=provider, profile=OpenAIModelProfile(**compat_profile(compat)))

    @property
    def system(self) -> str:
        preset = self.compat.preset
        return preset if preset not in (None, 'openai') else super().system

    def _map_model_response(self, message: Any) -> Any:
        param = super()._map_model_response(message)
        if (
            self.compat.empty_tool_call_content
            and isinstance(param, dict)
            and param.get('role') == 'assistant'
            and param.get('content') is None
        ):
            param['content'] = ''
        return param


def build_openai_compatible(
    served_name: str, *, base_url: str, api_key: str | None, compat: Compat | None
) -> OpenAIChatModel:
    """The pydantic-ai model for `openai-compatible:<served_name>` at `base_url`."""
    from pydantic_ai.providers.openai import OpenAIProvider

    if compat is not None and compat.preset == 'ollama':
        from pydantic_ai.providers.ollama import OllamaProvider

        # Ollama's own provider: its per-family profiles (llama, qwen, gemma, ...) under the compat keys.
        provider: Any = OllamaProvider(base_url=base_url, api_key=api_key or 'not-needed')
    else:
        provider = OpenAIProvider(base_url=base_url, api_key=api_key or 'not-needed')
    if compat is None:
        return OpenAIChatModel(served_name, provider=provider)
    return CompatChatModel(served_name, provider=provider, compat=compat)
