"""Following one run: what both clients need to resume a lost stream and to sum a run up.

A ``RunSession`` stream can break while the run goes on on the server (a proxy or a
network path dropped it, the replica behind a load balancer went away). Every reply is
stored before it is streamed, so nothing is lost: ``WatchDialogue`` replays the log and
then follows live runs. :class:`RunTracker` remembers what the stream already delivered
and turns what the watch says into the ``SessionEvent``s the stream would have sent:

* a stored reply of this turn by a participant still owed becomes ``turn_completed``;
* a live ``turn_failed`` or ``completed`` of this turn passes through;
* a notice that the turn was cancelled or interrupted (a System NOTIFICATION with
  metadata ``parley.run_end``), or any sign of a later turn, ends the run: every
  participant still owed becomes a ``turn_failed`` (``RUN_CANCELLED`` or
  ``RUN_INTERRUPTED``) and a ``completed`` follows;
* once every participant called has replied or failed, a ``completed`` ends it.

Events after a resume are numbered on from the last ``sequence`` the stream delivered.
Replies rebuilt from the log carry no latency or token usage (the log does not keep
them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc
from google.protobuf import timestamp_pb2
from parley.v1 import dialogue_pb2 as pb

__all__ = ["RunSummary", "RunTracker", "stream_lost"]

RUN_END_KEY = "parley.run_end"
_END_CODES = {"cancelled": "RUN_CANCELLED", "interrupted": "RUN_INTERRUPTED"}


def stream_lost(error: grpc.RpcError) -> bool:
    """Whether a failed stream may be resumed: the connection, not the server, failed."""
    code = error.code() if callable(getattr(error, "code", None)) else None
    return bool(code == grpc.StatusCode.UNAVAILABLE)


class RunSummary:
    """What a run said about itself so far: who was called, which turns, which failures.

    Fed every event of one run by :meth:`observe`; the clients' ``turns()`` iterators
    expose it so that, after the loop, callers can look at failures and counts.
    """

    def __init__(self) -> None:
        self.dialogue = ""
        self.turn = 0
        self.started: pb.SessionStarted | None = None
        self.routing: pb.RoutingDecision | None = None
        self.turns: list[pb.Turn] = []
        self.failures: list[pb.TurnFailed] = []
        self.completed: pb.SessionCompleted | None = None
        self.sequence = 0
        self.resumed = 0
        """How many times the stream was lost and the run followed on through WatchDialogue."""

    def observe(self, event: pb.SessionEvent) -> None:
        self.dialogue = event.dialogue or self.dialogue
        self.turn = event.turn or self.turn
        self.sequence = max(self.sequence, event.sequence)
        kind = event.WhichOneof("event")
        if kind == "started":
            self.started = event.started
        elif kind == "routing":
            self.routing = event.routing
        elif kind == "turn_completed":
            self.turns.append(event.turn_completed)
        elif kind == "turn_failed":
            self.failures.append(event.turn_failed)
        elif kind == "completed":
            self.completed = event.completed


class RunTracker(RunSummary):
    """A :class:`RunSummary` that can finish its run from ``WatchDialogue`` items."""

    def __init__(self) -> None:
        super().__init__()
        self._answered: set[str] = set()
        self._reply_seqs: set[int] = set()

    def observe(self, event: pb.SessionEvent) -> None:
        super().observe(event)
        kind = event.WhichOneof("event")
        if kind == "turn_completed":
            self._answered.add(event.turn_completed.speaker.name)
            self._reply_seqs.add(event.turn_completed.message_seq)
        elif kind == "turn_failed":
            self._answered.add(event.turn_failed.speaker.name)

    @property
    def resumable(self) -> bool:
        """Only a run whose turn is known (SessionStarted arrived) and that has not ended:
        before that the input may not be stored, and running again could store it twice."""
        return self.started is not None and self.completed is None

    @property
    def resume_after(self) -> int:
        """The seq to watch from: after this turn's input, so every reply of the turn is
        replayed (emission order may differ from storage order) and none is missed."""
        assert self.started is not None
        return max(self.started.input_seqs, default=0)

    @property
    def owed(self) -> list[str]:
        """Participants called in this run that have neither replied nor failed yet."""
        called = self.started.participants if self.started is not None else ()
        return [name for name in called if name not in self._answered]

    def resume_events(
        self, item: pb.WatchDialogueResponse, participants: Sequence[pb.Participant]
    ) -> list[pb.SessionEvent]:
        """The events of this run that one watch item stands for (often none).

        ``participants`` is the dialogue's current participant list, for the positions
        and personas of replies rebuilt from the log.
        """
        if self.completed is not None:
            return []
        events: list[pb.SessionEvent] = []
        kind = item.WhichOneof("item")
        if kind == "message":
            events = self._from_message(item.message, participants)
        elif kind == "event":
            events = self._from_event(item.event, participants)
        if self.completed is None and self.started is not None and not self.owed:
            events.append(self._emit(completed=self._counts()))
        return events

    def _from_message(
        self, message: pb.Message, participants: Sequence[pb.Participant]
    ) -> list[pb.SessionEvent]:
        if message.turn > self.turn:
            # A later turn has begun: this run is over, whatever it did not say.
            return self._end("interrupted", participants)
        if message.turn != self.turn or message.seq in self._reply_seqs:
            return []
        run_end = message.metadata.get(RUN_END_KEY, "")
        if message.type == pb.MESSAGE_TYPE_NOTIFICATION and run_end:
            return self._end(run_end, participants)
        name = message.speaker.name
        if (
            message.origin != pb.MESSAGE_ORIGIN_AGENT_GENERATED
            or message.speaker.kind != pb.SPEAKER_KIND_AGENT
            or name not in self.owed
        ):
            return []
        turn = pb.Turn(
            speaker=message.speaker,
            content=message.content,
            turn=message.turn,
            message_seq=message.seq,
            participant_index=_index_of(name, participants),
        )
        return [self._emit(time=message.create_time, turn_completed=turn)]

    def _from_event(
        self, event: pb.SessionEvent, participants: Sequence[pb.Participant]
    ) -> list[pb.SessionEvent]:
        if event.turn > self.turn:
            return self._end("interrupted", participants)
        if event.turn != self.turn:
            return []
        kind = event.WhichOneof("event")
        if kind == "routing" and self.routing is None:
            return [self._emit(time=event.time, routing=event.routing)]
        if kind == "turn_failed" and event.turn_failed.speaker.name not in self._answered:
            return [self._emit(time=event.time, turn_failed=event.turn_failed)]
        if kind == "turn_completed" and event.turn_completed.message_seq not in self._reply_seqs:
            return [self._emit(time=event.time, turn_completed=event.turn_completed)]
        if kind == "completed":
            # The server's own count: it includes failures this client never saw.
            return [self._emit(time=event.time, completed=event.completed)]
        return []

    def _end(self, how: str, participants: Sequence[pb.Participant]) -> list[pb.SessionEvent]:
        code = _END_CODES.get(how, "RUN_INTERRUPTED")
        events = [
            self._emit(
                turn_failed=pb.TurnFailed(
                    speaker=_speaker_of(name, participants),
                    participant_index=_index_of(name, participants),
                    code=code,
                    message=f"the run was {how} before {name} replied",
                    retryable=True,
                )
            )
            for name in self.owed
        ]
        events.append(self._emit(completed=self._counts()))
        return events

    def _counts(self) -> pb.SessionCompleted:
        return pb.SessionCompleted(turn_count=len(self.turns), failure_count=len(self.failures))

    def _emit(
        self,
        *,
        time: timestamp_pb2.Timestamp | None = None,
        routing: pb.RoutingDecision | None = None,
        turn_completed: pb.Turn | None = None,
        turn_failed: pb.TurnFailed | None = None,
        completed: pb.SessionCompleted | None = None,
    ) -> pb.SessionEvent:
        event = pb.SessionEvent(
            dialogue=self.dialogue,
            turn=self.turn,
            sequence=self.sequence + 1,
            routing=routing,
            turn_completed=turn_completed,
            turn_failed=turn_failed,
            completed=completed,
        )
        if time is not None and (time.seconds or time.nanos):
            event.time.CopyFrom(time)
        else:
            event.time.GetCurrentTime()
        self.observe(event)
        return event


def _index_of(name: str, participants: Iterable[pb.Participant]) -> int:
    return next((i for i, p in enumerate(participants) if p.persona.name == name), -1)


def _speaker_of(name: str, participants: Iterable[pb.Participant]) -> pb.Speaker:
    for participant in participants:
        if participant.persona.name == name:
            persona = participant.persona
            return pb.Speaker(
                kind=pb.SPEAKER_KIND_AGENT,
                name=name,
                role=persona.role,
                icon=persona.visual_identity.icon,
            )
    return pb.Speaker(kind=pb.SPEAKER_KIND_AGENT, name=name)
