"""Python client for Parley, the multi-agent dialogue service.

``ParleyClient`` (blocking) and ``AsyncParleyClient`` (asyncio) wrap every RPC of
``parley.v1.DialogueService``; :mod:`parley.client.builders` builds the protos people
write by hand; failed calls raise :class:`ParleyRpcError` with the server's status
details decoded. The messages themselves are the generated ``parley.v1.dialogue_pb2``.

    from parley.client import ParleyClient, builders as b

    with ParleyClient("127.0.0.1:50051") as client:
        created = client.create_dialogue(
            b.dialogue("Review", [b.participant("Ada"), b.participant("Bo")]), "review"
        )
        for turn in client.turns("review", "Is this design sound?"):
            print(turn.speaker.name, turn.content)

A ``RunSession`` stream that breaks mid-run is followed to its end through
``WatchDialogue``; the current OpenTelemetry context travels with every call.
"""

from parley.client import builders
from parley.client._common import DEFAULT_TARGET, TlsConfig, dialogue_id, dialogue_name
from parley.client._runs import RunSummary
from parley.client.aio import AsyncParleyClient, AsyncRunTurns
from parley.client.builders import DialogueFileError, dialogue_from_mapping, load_dialogue_file
from parley.client.errors import ErrorDescription, FieldViolation, ParleyRpcError, describe_error
from parley.client.sync import ParleyClient, RunTurns

__all__ = [
    "DEFAULT_TARGET",
    "AsyncParleyClient",
    "AsyncRunTurns",
    "DialogueFileError",
    "ErrorDescription",
    "FieldViolation",
    "ParleyClient",
    "ParleyRpcError",
    "RunSummary",
    "RunTurns",
    "TlsConfig",
    "builders",
    "describe_error",
    "dialogue_from_mapping",
    "dialogue_id",
    "dialogue_name",
    "load_dialogue_file",
]
