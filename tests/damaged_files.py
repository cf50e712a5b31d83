"""Safetensors files damaged on purpose, and what the package must say about each (checkpoint and
model-folder tests)."""

import json


def damaged_weights(raw: bytes, kind: str) -> bytes:
    """A safetensors file's bytes damaged one way: cut inside the data, cut inside the header, a
    header that claims a 4 TB tensor, or a header length field of 2^62 bytes."""
    length = int.from_bytes(raw[:8], "little")
    if kind == "cut file":
        return raw[: 8 + length + (len(raw) - 8 - length) // 2]
    if kind == "cut header":
        return raw[: 8 + length // 2]
    if kind == "absurd header length":
        return (2**62).to_bytes(8, "little") + raw[8:]
    header = json.loads(raw[8:8 + length])
    name = next(k for k in header if k != "__metadata__")
    header[name] = {**header[name], "shape": [10**12], "data_offsets": [0, 4 * 10**12]}
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + raw[8 + length:]


DAMAGE_REASONS = {
    "cut file": r"its tensor data does not end where the file ends \(the file was cut short",
    "cut header": r"its header length field says \d+ bytes, but the file holds \d+ bytes in all \(it was cut inside",
    "huge tensor": r"its header gives a tensor a shape, data type or offset that the file's bytes do not hold",
    "absurd header length": r"its header length field says 4611686018427387904 bytes, but the file holds",
}
