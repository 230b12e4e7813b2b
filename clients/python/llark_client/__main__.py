"""Ask LLark a question about a clip through the gateway: ``python3 -m llark_client`` (or ``llark-ask``).

    llark-ask --address 127.0.0.1:5000 --api-key KEY clip.wav "What key is it in?"
    llark-ask --embedding ID "And the tempo?"

Prints the answer as it streams, then one JSON line with the final frame (finish reason, usage, timings).
"""
import argparse
import json
import os
import sys

import grpc

from llark_client import LLarkClient, language_pb2


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
    with LLarkClient(args.address, args.api_key) as client:
        try:
            embedding_id = args.embedding
            if embedding_id is None:
                embedded = client.embed(args.rest[0])
                embedding_id = embedded.embedding_id
                print(f"embedding {embedding_id}: {embedded.frames} frames x {embedded.width} at {embedded.fps} fps"
                      f"{' (cached)' if embedded.cached else ''}", file=sys.stderr)
            for text in client.ask(embedding_id, args.rest[-1], max_new_tokens=args.max_new_tokens):
                sys.stdout.write(text)
                sys.stdout.flush()
            final = client.last_final
            print()
            print(json.dumps({
                "finish_reason": language_pb2.FinishReason.Name(final.finish_reason),
                "text": final.text,
                "prompt_tokens": final.usage.prompt_tokens,
                "audio_tokens": final.usage.audio_tokens,
                "generated_tokens": final.usage.generated_tokens,
                "cached_tokens": final.usage.cached_tokens,
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
