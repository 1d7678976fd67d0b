"""Writes exporter/live/live_stream_pb2.py (and its type stub, .pyi, for mypy) from proto/live_stream.proto
(needs grpcio-tools).

The generated module is committed: installing the exporter then needs no protobuf compiler, and the module
only changes when the .proto does. tests/test_live_frame.py checks that the committed module is what this
script makes of the committed .proto.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
# Outside the package: the installed exporter (and its Docker image) needs only the generated module.
PROTO = ROOT / "proto"
LIVE = ROOT / "exporter" / "live"


def generate(out_dir: Path) -> Path:
    proto = str(PROTO / "live_stream.proto")
    code = protoc.main(["protoc", f"-I{PROTO}", f"--python_out={out_dir}", f"--pyi_out={out_dir}", proto])
    if code != 0:
        raise SystemExit(f"protoc failed with status {code}")
    return out_dir / "live_stream_pb2.py"


if __name__ == "__main__":
    print(generate(Path(sys.argv[1]) if len(sys.argv) > 1 else LIVE))
