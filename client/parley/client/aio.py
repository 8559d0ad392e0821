"""The asyncio client: one method per DialogueService RPC, typed, errors decoded.

Compared with the generated stub it accepts bare dialogue ids, hides paging behind
async iterators, applies a default deadline and metadata to every call, and raises
:class:`~parley.client.errors.ParleyRpcError` with the server's reason and field
violations already decoded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Unpack

import grpc
from parley.client import _common
from parley.client._common import (
    DEFAULT_TARGET,
    CallOptions,
    ClientBase,
    dialogue_name,
    parley_errors,
)
from parley.v1 import dialogue_pb2 as pb
from parley.v1.dialogue_pb2_grpc import DialogueServiceStub

__all__ = ["AsyncParleyClient"]


class AsyncParleyClient(ClientBase):
    """An asyncio client for ``parley.v1.DialogueService``.

    Use it as ``async with AsyncParleyClient("host:port") as client: ...``. The client
    closes the channel it opened; a ``channel`` passed in belongs to the caller and is
    left open, so one channel can serve several clients. ``metadata`` (for example
    ``[("authorization", "Bearer ...")]``) and ``timeout`` (seconds) apply to every
    call; each method's own ``timeout`` and ``metadata`` override or extend them.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        metadata: Iterable[tuple[str, str | bytes]] = (),
        timeout: float | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        super().__init__(target, metadata=metadata, timeout=timeout)
        self._owns_channel = channel is None
        self._channel = channel or grpc.aio.insecure_channel(
            target, options=_common.CHANNEL_OPTIONS
        )
        self._stub = DialogueServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel if this client opened it; in-flight calls are cancelled."""
        if self._owns_channel:
            await self._channel.close(None)

    async def __aenter__(self) -> AsyncParleyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def create_dialogue(
        self,
        dialogue: pb.Dialogue,
        dialogue_id: str = "",
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Create ``dialogue``; an empty ``dialogue_id`` lets the server choose one."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.CreateDialogue(
                _common.create_request(dialogue, dialogue_id),
                timeout=timeout,
                metadata=metadata,
            )

    async def get_dialogue(self, name_or_id: str, **options: Unpack[CallOptions]) -> pb.Dialogue:
        """One dialogue, by ``dialogues/{id}`` or bare id."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.GetDialogue(
                pb.GetDialogueRequest(name=dialogue_name(name_or_id)),
                timeout=timeout,
                metadata=metadata,
            )

    async def list_dialogues_page(
        self,
        page_size: int = 0,
        page_token: str = "",
        **options: Unpack[CallOptions],
    ) -> pb.ListDialoguesResponse:
        """One page of dialogues, for callers that keep the page token themselves."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.ListDialogues(
                pb.ListDialoguesRequest(page_size=page_size, page_token=page_token),
                timeout=timeout,
                metadata=metadata,
            )

    async def list_dialogues(
        self, page_size: int = 0, **options: Unpack[CallOptions]
    ) -> AsyncIterator[pb.Dialogue]:
        """Every dialogue, ordered by name, fetching pages of ``page_size`` as needed.

        ``timeout`` applies to each page's call, not to the whole iteration.
        """
        token = ""
        while True:
            page = await self.list_dialogues_page(page_size, token, **options)
            for item in page.dialogues:
                yield item
            token = page.next_page_token
            if not token:
                return

    async def update_dialogue(
        self,
        dialogue: pb.Dialogue,
        paths: Iterable[str],
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Change the fields named in ``paths`` of the dialogue named by ``dialogue.name``."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.UpdateDialogue(
                _common.update_request(dialogue, paths), timeout=timeout, metadata=metadata
            )

    async def delete_dialogue(self, name_or_id: str, **options: Unpack[CallOptions]) -> None:
        """Delete a dialogue and its whole message log."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            await self._stub.DeleteDialogue(
                pb.DeleteDialogueRequest(name=dialogue_name(name_or_id)),
                timeout=timeout,
                metadata=metadata,
            )

    async def add_participant(
        self,
        dialogue: str,
        participant: pb.Participant,
        joining_strategy: pb.JoiningStrategy | None = None,
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Add a participant; with ``joining_strategy`` it joins a dialogue in progress."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.AddParticipant(
                _common.add_participant_request(dialogue, participant, joining_strategy),
                timeout=timeout,
                metadata=metadata,
            )

    async def remove_participant(
        self,
        dialogue: str,
        participant_name: str,
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Remove a participant by persona name; its messages stay in the log."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.RemoveParticipant(
                pb.RemoveParticipantRequest(
                    dialogue=dialogue_name(dialogue), participant_name=participant_name
                ),
                timeout=timeout,
                metadata=metadata,
            )

    async def run_session(
        self,
        dialogue: str,
        text: str = "",
        *,
        messages: Iterable[pb.InputMessage] = (),
        attachments: Iterable[pb.Attachment] = (),
        speaker: pb.Speaker | str | None = None,
        order: pb.Broadcast | str | None = None,
        **options: Unpack[CallOptions],
    ) -> AsyncIterator[pb.SessionEvent]:
        """Run one turn and yield each event the moment the server sends it.

        ``text`` is a plain prompt (from the System speaker, or from ``speaker``; a
        string speaker is a user of that name); ``messages`` are stored before it.
        ``order`` overrides a broadcast's order for this run only: a ``Broadcast`` or
        ``"completion"``, ``"participant"``, ``"explicit:Name1,Name2"``. Leaving the
        loop early cancels the call; replies already produced stay in the log.
        """
        request = _common.run_request(
            dialogue,
            text,
            messages=messages,
            attachments=attachments,
            speaker=speaker,
            order=order,
        )
        timeout, metadata = self._call_options(options)
        call = self._stub.RunSession(request, timeout=timeout, metadata=metadata)
        try:
            with parley_errors():
                async for event in call:
                    yield event
        finally:
            call.cancel()

    async def run(
        self,
        dialogue: str,
        text: str = "",
        *,
        messages: Iterable[pb.InputMessage] = (),
        attachments: Iterable[pb.Attachment] = (),
        speaker: pb.Speaker | str | None = None,
        order: pb.Broadcast | str | None = None,
        **options: Unpack[CallOptions],
    ) -> pb.RunResponse:
        """Run one turn and return it whole; the arguments are those of :meth:`run_session`."""
        request = _common.run_request(
            dialogue,
            text,
            messages=messages,
            attachments=attachments,
            speaker=speaker,
            order=order,
        )
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.Run(request, timeout=timeout, metadata=metadata)

    async def list_messages_page(
        self,
        dialogue: str,
        after_seq: int = 0,
        page_size: int = 0,
        page_token: str = "",
        **options: Unpack[CallOptions],
    ) -> pb.ListMessagesResponse:
        """One page of the log, for callers that keep the page token themselves."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.ListMessages(
                _common.list_messages_request(dialogue, after_seq, page_size, page_token),
                timeout=timeout,
                metadata=metadata,
            )

    async def list_messages(
        self,
        dialogue: str,
        after_seq: int = 0,
        page_size: int = 0,
        **options: Unpack[CallOptions],
    ) -> AsyncIterator[pb.Message]:
        """The log in seq order, from after ``after_seq`` to its end, a page at a time."""
        token = ""
        while True:
            page = await self.list_messages_page(dialogue, after_seq, page_size, token, **options)
            for message in page.messages:
                yield message
            token = page.next_page_token
            if not token:
                return

    async def export_history(
        self,
        dialogue: str,
        format: pb.HistoryFormat | str = "llm_toolkit_json",
        **options: Unpack[CallOptions],
    ) -> str:
        """The whole log as a JSON document: ``llm_toolkit_json`` or ``full_json``."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            response = await self._stub.ExportHistory(
                _common.export_request(dialogue, format), timeout=timeout, metadata=metadata
            )
        return response.content

    async def import_history(
        self,
        dialogue: str,
        content: str,
        mode: pb.ImportMode | str = "as_messages",
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Load an exported history into a dialogue whose log is empty.

        ``mode`` is ``as_messages`` (into the log) or ``as_system_prompt`` (into the
        dialogue's context, leaving the log empty).
        """
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.ImportHistory(
                _common.import_request(dialogue, content, mode),
                timeout=timeout,
                metadata=metadata,
            )
