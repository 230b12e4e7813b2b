"""A Python client of LLark.Services' gRPC contract, through the gateway.

The stubs under the ``llark`` package are generated from ../../protos (``python3 -m grpc_tools.protoc``, the command
in this folder's README) and shipped with the package, so installing it needs only grpcio and protobuf.

    from llark_client import LLarkClient
    with LLarkClient("127.0.0.1:5000", api_key) as client:
        clip = client.embed("clip.wav")
        for text in client.ask(clip.embedding_id, "What key is it in?"):
            print(text, end="")
"""
import os

import grpc

from llark.common.v1 import common_pb2
from llark.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from llark.language.v1 import language_pb2, language_pb2_grpc

__all__ = ["LLarkClient", "common_pb2", "encoder_pb2", "language_pb2"]


class LLarkClient:
    """One channel to the gateway; every call carries the API key as a Bearer token."""

    def __init__(self, address, api_key=None):
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 256 << 20)]
        self._channel = grpc.insecure_channel(address.removeprefix("http://"), options=options)
        self._metadata = [("authorization", "Bearer " + api_key)] if api_key else []
        self.encoder = encoder_pb2_grpc.EncoderServiceStub(self._channel)
        self.language = language_pb2_grpc.LanguageServiceStub(self._channel)
        #: The final frame (finish reason, usage, timings) of the last answer :meth:`ask` streamed.
        self.last_final = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._channel.close()

    def embed(self, path):
        """Embeds a clip (wav, mp3, ogg) once; its ``embedding_id`` serves any number of questions."""
        with open(path, "rb") as f:
            audio = common_pb2.AudioBytes(data=f.read(), filename=os.path.basename(path))
        return self.encoder.Embed(encoder_pb2.EmbedRequest(audio=audio), metadata=self._metadata)

    def ask(self, embedding_id, question, max_new_tokens=0, history=()):
        """Streams the answer's text; ``history`` is earlier (question, answer) turns of the conversation."""
        turns = [language_pb2.ChatTurn(human=q, assistant=a) for q, a in history]
        turns.append(language_pb2.ChatTurn(human=question))
        request = language_pb2.GenerateRequest(
            turns=turns, embedding_id=embedding_id, stopping=language_pb2.StoppingParameters(max_new_tokens=max_new_tokens))
        for response in self.language.Generate(request, metadata=self._metadata):
            if response.WhichOneof("frame") == "delta":
                yield response.delta.text
            else:
                self.last_final = response.final
