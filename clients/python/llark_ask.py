#!/usr/bin/env python3
"""Ask LLark a question about a clip through the gateway, from the protos alone.

The gRPC stubs are generated from ../../protos at start (grpc_tools.protoc into a temporary folder), so this
client needs nothing of the C# code: Debian's python3-grpcio and python3-grpc-tools are enough.

    python3 clients/python/llark_ask.py --address 127.0.0.1:5000 --api-key KEY clip.wav "What key is it in?"

Prints the answer as it streams, then one JSON line with the final frame (finish reason, usage, timings).
"""
import argparse
import importlib
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.normpath(os.path.join(HERE, "..", "..", "protos"))
FILES = ["llark/common/v1/common.proto", "llark/encoder/v1/encoder.proto", "llark/language/v1/language.proto"]


def generate_stubs(out_dir):
    from grpc_tools import protoc
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    if protoc.main(args + [os.path.join(PROTOS, f) for f in FILES]) != 0:
        raise SystemExit("protoc failed on " + PROTOS)
    sys.path.insert(0, out_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=os.environ.get("LLARK_ADDRESS", "127.0.0.1:5000"), help="gateway host:port")
    parser.add_argument("--api-key", default=os.environ.get("LLARK_API_KEY"), help="API key (or $LLARK_API_KEY)")
    parser.add_argument("--embedding", help="a cached embedding id instead of a clip")
    parser.add_argument("--max-new-tokens", type=int, default=0)
    parser.add_argument("rest", nargs="+", help="CLIP QUESTION, or QUESTION with --embedding")
    args = parser.parse_args()
    if (args.embedding is None) != (len(args.rest) == 2):
        parser.error("give CLIP QUESTION, or --embedding ID QUESTION")

    import grpc

    with tempfile.TemporaryDirectory() as stubs:
        generate_stubs(stubs)
        common = importlib.import_module("llark.common.v1.common_pb2")
        encoder = importlib.import_module("llark.encoder.v1.encoder_pb2")
        encoder_grpc = importlib.import_module("llark.encoder.v1.encoder_pb2_grpc")
        language = importlib.import_module("llark.language.v1.language_pb2")
        language_grpc = importlib.import_module("llark.language.v1.language_pb2_grpc")

        address = args.address.removeprefix("http://")
        metadata = [("authorization", "Bearer " + args.api_key)] if args.api_key else []
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 256 << 20)]
        with grpc.insecure_channel(address, options=options) as channel:
            try:
                embedding_id = args.embedding
                if embedding_id is None:
                    with open(args.rest[0], "rb") as f:
                        audio = common.AudioBytes(data=f.read(), filename=os.path.basename(args.rest[0]))
                    embedded = encoder_grpc.EncoderServiceStub(channel).Embed(encoder.EmbedRequest(audio=audio), metadata=metadata)
                    embedding_id = embedded.embedding_id
                    print(f"embedding {embedding_id}: {embedded.frames} frames x {embedded.width} at {embedded.fps} fps"
                          f"{' (cached)' if embedded.cached else ''}", file=sys.stderr)
                request = language.GenerateRequest(
                    turns=[language.ChatTurn(human=args.rest[-1])],
                    embedding_id=embedding_id,
                    stopping=language.StoppingParameters(max_new_tokens=args.max_new_tokens),
                )
                final = None
                for response in language_grpc.LanguageServiceStub(channel).Generate(request, metadata=metadata):
                    if response.WhichOneof("frame") == "delta":
                        sys.stdout.write(response.delta.text)
                        sys.stdout.flush()
                    else:
                        final = response.final
                print()
                print(json.dumps({
                    "finish_reason": language.FinishReason.Name(final.finish_reason),
                    "text": final.text,
                    "prompt_tokens": final.usage.prompt_tokens,
                    "audio_tokens": final.usage.audio_tokens,
                    "generated_tokens": final.usage.generated_tokens,
                    "time_to_first_token_ms": final.timings.time_to_first_token_ms,
                    "embedding_id": embedding_id,
                }))
            except grpc.RpcError as e:
                print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
                if e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                    return 2
                return 6 if e.code() == grpc.StatusCode.UNAUTHENTICATED else 5
    return 0


if __name__ == "__main__":
    sys.exit(main())
