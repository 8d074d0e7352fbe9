"""The assessor's challenge: one nonce from which every input and every audited output derives.

``bench run --challenge NONCE`` (or a nonce the harness draws with :mod:`secrets` and records)
makes every input matrix a function of the nonce, the dtype, the device and the shape::

    input seed = first 8 bytes of SHA-256(len-prefixed "icb-bench/inputs/1", nonce, dtype,
                                          device id, "MxNxK")          (63 bits)

(device id: the device's UUID, else ``host:index``). So no output can be prepared before the
nonce is known, and a record cannot be replayed under another nonce, on another device or at
another shape: the audit regenerates the inputs from the nonce and the record's own device and
shape, and the record's outputs no longer match.

After the run, K = :data:`OUTPUT_SAMPLES` output positions are drawn from the nonce *and the
digest of the measurement's raw samples* (batch times, batches' GEMM count, core-phase length,
energy); their values are recorded with a SHA-256 over the whole sample (scheme, nonce, device,
dtype, shape, input seed, raw digest, positions, values). Editing the batch times (and the
`tflops` computed from them) or the energy moves the positions, so the recorded values no
longer sit where the audit looks, and the digest no longer matches. K = 32 is enough to check
(a replayed or fabricated record misses the FP64 reference at every position) and too few to
help anyone precompute: the values exist only after the inputs the nonce fixes, and 32 of m·n
elements reveal nothing about the rest. The limit: whoever holds the nonce can regenerate the
inputs and compute any 32 elements on a CPU, so after editing the raw samples a forger could
recompute the samples too; what stops that is the signature (:mod:`.sign`) by a key the site
does not hold, and the assessor's own nonce.

``--seed`` without a challenge keeps the old behaviour (the same seeded inputs on every device);
the record says ``mode: "seed"`` and the audit reports that freshness is not established.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

INPUTS_DERIVATION = "icb-bench/inputs/1"
OUTPUTS_DERIVATION = "icb-bench/outputs/1"
FREIVALDS_DERIVATION = "icb-bench/freivalds/1"
RAW_DERIVATION = "icb-bench/raw/1"
#: output elements recorded per measurement
OUTPUT_SAMPLES = 32
#: an assessor's nonce: 16 to 64 bytes, written as hex
NONCE_MIN_BYTES, NONCE_MAX_BYTES = 16, 64
#: bytes the harness draws when no nonce is given
DRAWN_NONCE_BYTES = 32
_SEED_MASK = (1 << 63) - 1


class ChallengeError(ValueError):
    """A nonce that is not 16–64 bytes of hex, or a record's challenge object that is malformed."""


@dataclass(frozen=True)
class Challenge:
    """Where a run's inputs come from: an assessor's or a drawn nonce, or a fixed seed."""

    mode: str  # "challenge" | "seed"
    nonce: bytes = b""
    source: str = "harness"  # "assessor" | "harness" | "seed"
    seed: int = 0

    @property
    def key(self) -> bytes:
        """The bytes every derivation starts from."""
        return self.nonce if self.mode == "challenge" else f"seed:{self.seed}".encode()

    def to_dict(self) -> dict[str, Any]:
        """As recorded in the plan (``plan.extra.challenge``) and in each measurement."""
        return {"mode": self.mode, "nonce": self.nonce.hex() if self.mode == "challenge" else None,
                "source": self.source, "seed": self.seed if self.mode == "seed" else None,
                "derivation": INPUTS_DERIVATION}

    @classmethod
    def from_dict(cls, d: Any) -> "Challenge":
        if not isinstance(d, dict) or d.get("mode") not in ("challenge", "seed"):
            raise ChallengeError(f"challenge: {d!r} is not a challenge object (expected mode 'challenge' or 'seed')")
        if d["mode"] == "seed":
            seed = d.get("seed")
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _SEED_MASK:
                raise ChallengeError(f"challenge.seed: {seed!r} is not a seed; expected an integer 0 to {_SEED_MASK}")
            return cls("seed", source="seed", seed=seed)
        return cls("challenge", parse_nonce(d.get("nonce"), "challenge.nonce"), str(d.get("source") or "harness"))


def parse_nonce(text: Any, field: str = "--challenge") -> bytes:
    """The nonce's bytes from hex (``0x`` prefix, spaces and dashes allowed); ChallengeError otherwise."""
    if not isinstance(text, str):
        raise ChallengeError(f"{field}: {text!r} is not a nonce; expected {NONCE_MIN_BYTES}–{NONCE_MAX_BYTES} bytes as hex")
    clean = text.strip().lower().removeprefix("0x").replace("-", "").replace(" ", "")
    try:
        raw = bytes.fromhex(clean)
    except ValueError:
        raise ChallengeError(f"{field}: {text[:80]!r} is not hex; expected {NONCE_MIN_BYTES}–{NONCE_MAX_BYTES} "
                             f"bytes as hex, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`") from None
    if not NONCE_MIN_BYTES <= len(raw) <= NONCE_MAX_BYTES:
        raise ChallengeError(f"{field}: {len(raw)} bytes; expected {NONCE_MIN_BYTES}–{NONCE_MAX_BYTES} bytes "
                             f"({2 * NONCE_MIN_BYTES}–{2 * NONCE_MAX_BYTES} hex digits)")
    return raw


def draw() -> Challenge:
    """A fresh nonce from :mod:`secrets`, for a run the assessor gave none."""
    return Challenge("challenge", secrets.token_bytes(DRAWN_NONCE_BYTES), "harness")


def resolve(nonce_text: str | None, seed: int | None) -> Challenge:
    """The run's challenge: the assessor's nonce; else ``--seed`` alone (seed mode); else drawn."""
    if nonce_text is not None:
        return Challenge("challenge", parse_nonce(nonce_text), "assessor")
    if seed is not None:
        return Challenge("seed", source="seed", seed=int(seed))
    return draw()


def from_plan(extra: dict[str, Any] | None, seed: int) -> Challenge:
    """The challenge a plan carries (``plan.extra["challenge"]``); a plan without one is seed mode."""
    d = (extra or {}).get("challenge")
    return Challenge.from_dict(d) if d is not None else Challenge("seed", source="seed", seed=int(seed))


def _hash(*parts: bytes | str | int) -> bytes:
    """SHA-256 over length-prefixed parts, so no two part lists hash the same bytes."""
    h = hashlib.sha256()
    for p in parts:
        b = p if isinstance(p, bytes) else str(p).encode("utf-8")
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.digest()


def device_identity(device_info: dict[str, Any] | None, host: str, index: int) -> str:
    """The device's UUID where it has one, else ``host:index``."""
    uuid = (device_info or {}).get("uuid")
    return str(uuid) if uuid else f"{host}:{index}"


def _shape_text(shape: Sequence[int]) -> str:
    m, n, k = (int(x) for x in shape)
    return f"{m}x{n}x{k}"


def input_seed(ch: Challenge, dtype: str, device_id: str, shape: Sequence[int]) -> int:
    """Seed of the inputs (see the module docstring); seed mode: the seed itself, as before."""
    if ch.mode == "seed":
        return ch.seed
    digest = _hash(INPUTS_DERIVATION, ch.key, dtype, device_id, _shape_text(shape))
    return int.from_bytes(digest[:8], "big") & _SEED_MASK


def canonical_json(obj: Any) -> bytes:
    """The bytes every digest here is taken over (sorted keys, no spaces, no NaN)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def raw_digest(batch_time_ms: Iterable[float], iters_per_batch: int, core_phase_s: float,
               energy_j: float | None) -> str:
    """SHA-256 of the raw figures every reported figure is computed from."""
    body = {"scheme": RAW_DERIVATION, "batch_time_ms": [float(t) for t in batch_time_ms],
            "iters_per_batch": int(iters_per_batch), "core_phase_s": float(core_phase_s),
            "energy_j": None if energy_j is None else float(energy_j)}
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class SampleContext:
    """What the output samples of one measurement are bound to."""

    challenge: Challenge
    dtype: str
    device_id: str
    shape: tuple[int, int, int]
    raw_sha256: str

    def _parts(self, scheme: str) -> tuple[Any, ...]:
        return (scheme, self.challenge.key, self.dtype, self.device_id, _shape_text(self.shape), self.raw_sha256)


def positions(ctx: SampleContext, count: int = OUTPUT_SAMPLES) -> tuple[list[int], list[int]]:
    """``count`` (row, col) positions, a SHA-256 stream over the context (64-bit draws: the
    modulo bias is below 2^-40 for any shape)."""
    m, n, _k = ctx.shape
    rows: list[int] = []
    cols: list[int] = []
    for i in range(count):
        block = _hash(*ctx._parts(OUTPUTS_DERIVATION), i)
        rows.append(int.from_bytes(block[:8], "big") % m)
        cols.append(int.from_bytes(block[8:16], "big") % n)
    return rows, cols


def freivalds_seed(ctx: SampleContext) -> int:
    """Seed of the Freivalds vectors, drawn after the run like the positions."""
    return int.from_bytes(_hash(*ctx._parts(FREIVALDS_DERIVATION))[:8], "big") & _SEED_MASK


def encode_values(values: Iterable[float | int], exact: bool) -> list[str]:
    """Exact text of each value: decimal for integers, ``float.hex`` otherwise (NaN and Inf too)."""
    return [str(int(v)) for v in values] if exact else [float(v).hex() for v in values]


def decode_values(texts: Iterable[Any], exact: bool) -> list[float]:
    """The numbers back (ChallengeError naming the bad one)."""
    out = []
    for t in texts:
        try:
            out.append(float(int(t)) if exact else float.fromhex(t))
        except (TypeError, ValueError):
            raise ChallengeError(f"output_samples.values: {t!r} is not an exact number") from None
    return out


def samples_digest(ctx: SampleContext, input_seed_value: int, rows: Sequence[int], cols: Sequence[int],
                   values: Sequence[str]) -> str:
    body = {"scheme": OUTPUTS_DERIVATION, "key": ctx.challenge.key.hex(), "dtype": ctx.dtype,
            "device_id": ctx.device_id, "shape": list(ctx.shape), "input_seed": int(input_seed_value),
            "raw_sha256": ctx.raw_sha256, "rows": list(rows), "cols": list(cols), "values": list(values)}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def measurement_fields(ctx: SampleContext, input_seed_value: int, rows: Sequence[int], cols: Sequence[int],
                       values: Sequence[str]) -> dict[str, Any]:
    """The ``challenge`` and ``output_samples`` objects of a measurement."""
    return {
        "challenge": {**ctx.challenge.to_dict(), "device_id": ctx.device_id, "input_seed": int(input_seed_value)},
        "output_samples": {"scheme": OUTPUTS_DERIVATION, "count": len(rows), "raw_sha256": ctx.raw_sha256,
                           "rows": list(rows), "cols": list(cols), "values": list(values),
                           "sha256": samples_digest(ctx, input_seed_value, rows, cols, values)},
    }


__all__ = ["Challenge", "ChallengeError", "OUTPUT_SAMPLES", "SampleContext", "decode_values", "device_identity",
           "draw", "encode_values", "freivalds_seed", "from_plan", "input_seed", "measurement_fields", "parse_nonce",
           "positions", "raw_digest", "resolve", "samples_digest"]
