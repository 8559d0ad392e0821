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
        for event in client.run_session("review", "Is this design sound?"):
            ...
"""

from parley.client import builders
from parley.client._common import DEFAULT_TARGET, dialogue_id, dialogue_name
from parley.client.aio import AsyncParleyClient
from parley.client.builders import DialogueFileError, dialogue_from_mapping, load_dialogue_file
from parley.client.errors import ErrorDescription, FieldViolation, ParleyRpcError, describe_error
from parley.client.sync import ParleyClient

__all__ = [
    "DEFAULT_TARGET",
    "AsyncParleyClient",
    "DialogueFileError",
    "ErrorDescription",
    "FieldViolation",
    "ParleyClient",
    "ParleyRpcError",
    "builders",
    "describe_error",
    "dialogue_from_mapping",
    "dialogue_id",
    "dialogue_name",
    "load_dialogue_file",
]
