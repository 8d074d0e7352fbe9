"""Ed25519 signatures over a record, and the integrity check every reader runs before believing one.

``bench keygen --out KEY`` writes an Ed25519 private key (PEM, PKCS#8, mode 0600) and ``KEY.pub``.
``bench run --sign KEY`` signs a *canonical manifest* of the finished record, written beside it as
``signature.json``::

    {schema, algorithm: "Ed25519", public_key (base64, raw 32 bytes), key_fingerprint
     ("sha256:<hex of the raw key>"), signer, signed_at, signed_digest (sha256 of the canonical
     bytes), signature (base64), manifest: {run_id, kind, status, files: [{path, sha256, bytes}]
     of every file (manifest.json and every shard's included), devices (index, host, model, uuid,
     serial, PCI id, driver and runtime versions), hosts, harness (version, git revision),
     challenge}}

The canonical bytes are the manifest object as JSON with sorted keys, no spaces, ASCII only.
A fleet record's signature covers its shards (their files and manifests are files of the record).

:func:`check_record_integrity` is what `bench show`, `bench audit` and `bench verify` call: every
manifest's ``files`` index (the record's and every part's) against the bytes on disk, no file
outside an index, regular files only, and every ``signature.json`` in the tree verified over the
files of its directory. Who signed is a fingerprint: the assessor pins the fingerprint of a key
the site does not hold (``trusted``); a valid signature by an unknown key is reported as such.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import socket
import stat
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import record
from .challenge import canonical_json

SIGNATURE_SCHEMA = "icb-bench/signature/1"
MANIFEST_SCHEMA = "icb-bench/signed-manifest/1"
ALGORITHM = "Ed25519"
#: a signature file larger than this is not one (a hostile record)
MAX_SIGNATURE_BYTES = 16 << 20
#: largest single record file hashed (traces of long runs are the largest files)
MAX_FILE_BYTES = 4 << 30
#: device fields the signature binds (identity and software, from the manifest's inventory)
DEVICE_FIELDS = ("index", "model", "vendor", "uuid", "serial", "pci_bus_id", "driver_version", "runtime_version")


class SignError(Exception):
    """A key file that cannot be written or read, or a record that cannot be signed (exit 2)."""


# -- keys ---------------------------------------------------------------------------------

def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise SignError(f"signatures need the 'cryptography' package ({exc}); pip install cryptography") from None
    return serialization, ed25519


def _raw_public(public_key: Any) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(raw_public_key: bytes) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key."""
    return "sha256:" + hashlib.sha256(raw_public_key).hexdigest()


@dataclass(frozen=True)
class KeyFiles:
    private_path: Path
    public_path: Path
    fingerprint: str


def public_path_for(private_path: Path) -> Path:
    return Path(str(private_path) + ".pub")


def keygen(out: Path) -> KeyFiles:
    """A new Ed25519 key: ``out`` (private, PEM PKCS#8, created 0600, never overwritten) and
    ``out.pub`` (public, PEM)."""
    serialization, ed25519 = _crypto()
    out = Path(out)
    pub = public_path_for(out)
    for p in (out, pub):
        if p.exists() or p.is_symlink():
            raise SignError(f"--out: {p} exists; a key is never overwritten (choose another path)")
    if not out.parent.is_dir():
        raise SignError(f"--out: {out.parent} is not a directory")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
        os.chmod(out, 0o600)  # whatever the umask
        fd = os.open(pub, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(public_pem)
    except OSError as exc:
        raise SignError(f"--out: cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return KeyFiles(out, pub, fingerprint(_raw_public(key.public_key())))


def load_private_key(path: Path) -> Any:
    """The Ed25519 private key in ``path``; SignError naming the file otherwise (also when the
    file can be read by others: a signing key shared with the site proves nothing)."""
    serialization, ed25519 = _crypto()
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise SignError(f"--sign: {path} is not a regular file; expected a key from `bench keygen`")
        if st.st_size > 64 << 10:
            raise SignError(f"--sign: {path} is {st.st_size} bytes; not an Ed25519 key file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise SignError(f"--sign: {path}: no such file; create a key with `bench keygen --out {path}`") from None
    except OSError as exc:
        raise SignError(f"--sign: {path}: unreadable ({exc.strerror or exc})") from None
    if st.st_mode & 0o077:
        raise SignError(f"--sign: {path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                        f"expected 0600 (chmod 600 {path})")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignError(f"--sign: {path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SignError(f"--sign: {path} holds a {type(key).__name__}, expected an Ed25519 key")
    return key


# -- the canonical manifest ------------------------------------------------------------------

def disk_files(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(every regular file below ``run_dir`` but its own signature and temp files, with digest;
    problems: links, FIFOs, devices, unreadable files), read without following links."""
    run_dir = Path(run_dir)
    files, problems = [], []
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir).as_posix()
        if rel == record.SIGNATURE or record.is_temp_name(p.name):
            continue
        try:
            st = os.lstat(p)
        except OSError as exc:
            problems.append(f"{rel}: unreadable ({exc.strerror or exc})")
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            problems.append(f"{rel}: is {kind}; a record holds regular files only")
            continue
        try:
            digest = record.record_file_sha256(run_dir, rel, MAX_FILE_BYTES)
        except record.RecordError as exc:
            problems.append(str(exc))
            continue
        files.append({"path": rel, "sha256": digest, "bytes": st.st_size})
    return files, problems


def _git_revision() -> str | None:
    """The harness's git revision where it runs from a checkout (None otherwise)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and len(rev) in (40, 64) else None


def _devices(rec: record.RunRecord) -> list[dict[str, Any]]:
    parts = rec.parts or [rec]
    out = []
    for part in parts:
        host = (part.manifest.get("host") or {}).get("hostname") if isinstance(part.manifest.get("host"), dict) else None
        for d in part.manifest.get("inventory") or []:
            if isinstance(d, dict):
                out.append({"host": host, **{k: d.get(k) for k in DEVICE_FIELDS}})
    return out


def canonical_manifest(run_dir: Path) -> dict[str, Any]:
    """What a signature covers (see the module docstring); SignError if the record cannot be read."""
    run_dir = Path(run_dir)
    try:
        rec = record.load_run(run_dir)
    except record.RecordError as exc:
        raise SignError(f"cannot sign {run_dir}: {exc}") from None
    files, problems = disk_files(run_dir)
    if problems:
        raise SignError(f"cannot sign {run_dir}: {problems[0]}")
    m = rec.manifest
    tool = m.get("tool") if isinstance(m.get("tool"), dict) else {}
    plan = m.get("plan") if isinstance(m.get("plan"), dict) else {}
    hosts = sorted({str((p.manifest.get("host") or {}).get("hostname")) for p in (rec.parts or [rec])
                    if isinstance(p.manifest.get("host"), dict)})
    return {
        "schema": MANIFEST_SCHEMA, "run_id": rec.run_id, "kind": rec.kind, "status": rec.status,
        "files": files, "devices": _devices(rec), "hosts": hosts,
        "harness": {"name": "icb-bench", "version": tool.get("version"), "git_revision": _git_revision()},
        "challenge": (plan.get("extra") or {}).get("challenge") if isinstance(plan.get("extra"), dict) else None,
    }


def _signer() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def sign_record(run_dir: Path, key: Any, signer: str | None = None) -> dict[str, Any]:
    """Sign the finished record at ``run_dir`` with an Ed25519 private key (from
    :func:`load_private_key`); writes and returns ``signature.json``."""
    from .inventory import utc_now

    manifest = canonical_manifest(run_dir)
    body = canonical_json(manifest)
    raw_pub = _raw_public(key.public_key())
    sig = {
        "schema": SIGNATURE_SCHEMA, "algorithm": ALGORITHM,
        "public_key": base64.b64encode(raw_pub).decode(), "key_fingerprint": fingerprint(raw_pub),
        "signer": signer or _signer(), "signed_at": utc_now(),
        "signed_digest": hashlib.sha256(body).hexdigest(),
        "signature": base64.b64encode(key.sign(body)).decode(),
        "manifest": manifest,
    }
    try:
        record.atomic_write_json(Path(run_dir) / record.SIGNATURE, sig)
    except OSError as exc:
        raise SignError(f"cannot write {Path(run_dir) / record.SIGNATURE}: {exc.strerror or exc}") from None
    return sig


# -- the check ---------------------------------------------------------------------------------

@dataclass
class IntegrityReport:
    """Whether a record is what its indexes and signatures say. ``ok`` is False with at least
    one problem, each naming a file; ``signed``/``signature_valid`` describe the top-level
    signature (None: unsigned), ``trusted`` whether its key is one of the caller's."""

    run_dir: str
    ok: bool
    closed: bool
    signed: bool
    signature_valid: bool | None = None
    signer: str | None = None
    key_fingerprint: str | None = None
    trusted: bool | None = None
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        """One line: who signed and whether it held, or what failed first."""
        if self.problems:
            return f"{self.run_dir}: integrity check failed: {self.problems[0]}"
        if not self.closed:
            return f"{self.run_dir}: record not closed (no file index yet): not checked"
        who = (f"signed by {self.signer} (key {self.key_fingerprint[:23]}…{', trusted' if self.trusted else ''})"
               if self.signed else "unsigned")
        return f"{self.run_dir}: {self.files_checked} files match their digests; {who}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "first_problem": self.first_problem}


def _check_index(root: Path, sub: Path, index: Any, on_disk: dict[str, dict[str, Any]], problems: list[str]) -> set[str]:
    """One manifest's ``files`` (relative to ``sub``) against the disk; returns the root-relative
    paths it covers."""
    covered: set[str] = set()
    prefix = "" if sub == root else sub.relative_to(root).as_posix() + "/"
    if not isinstance(index, list):
        problems.append(f"{prefix}{record.MANIFEST}: 'files' is not a list of files")
        return covered
    for e in index:
        if not isinstance(e, dict) or not isinstance(e.get("path"), str):
            problems.append(f"{prefix}{record.MANIFEST}: a 'files' entry is not {{path, sha256, bytes}}")
            continue
        rel = prefix + e["path"]
        covered.add(rel)
        have = on_disk.get(rel)
        if have is None:
            problems.append(f"{rel}: listed in {prefix}{record.MANIFEST} but missing")
        elif have["sha256"] != e.get("sha256") or have["bytes"] != e.get("bytes"):
            problems.append(f"{rel}: sha256 differs from {prefix}{record.MANIFEST}'s file index (edited after the run)")
    return covered


def _verify_signature(root: Path, sub: Path, on_disk: dict[str, dict[str, Any]], problems: list[str]
                      ) -> tuple[bool, dict[str, Any] | None]:
    """Verify ``sub/signature.json`` over the files of ``sub``; (valid, the signature object)."""
    serialization, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature

    prefix = "" if sub == root else sub.relative_to(root).as_posix() + "/"
    where = f"{prefix}{record.SIGNATURE}"
    try:
        sig = record.parse_record_json(record.read_record_file(root, sub / record.SIGNATURE, MAX_SIGNATURE_BYTES),
                                       where, "signature")
    except record.RecordError as exc:
        problems.append(str(exc))
        return False, None
    manifest = sig.get("manifest") if isinstance(sig, dict) else None
    if not isinstance(sig, dict) or sig.get("algorithm") != ALGORITHM or not isinstance(manifest, dict):
        problems.append(f"{where}: not an {ALGORITHM} signature of this format ({SIGNATURE_SCHEMA})")
        return False, None
    try:
        raw_pub = base64.b64decode(str(sig.get("public_key")), validate=True)
        signature = base64.b64decode(str(sig.get("signature")), validate=True)
        public = ed25519.Ed25519PublicKey.from_public_bytes(raw_pub)
    except (ValueError, TypeError):
        problems.append(f"{where}: public key or signature is not valid base64 Ed25519 data")
        return False, sig
    body = canonical_json(manifest)
    if sig.get("key_fingerprint") != fingerprint(raw_pub):
        problems.append(f"{where}: key_fingerprint does not match its public key")
    if sig.get("signed_digest") != hashlib.sha256(body).hexdigest():
        problems.append(f"{where}: signed_digest does not match the signed manifest")
    try:
        public.verify(signature, body)
    except InvalidSignature:
        problems.append(f"{where}: the Ed25519 signature does not verify: the signed manifest was altered")
        return False, sig
    signed = {f.get("path"): f for f in manifest.get("files") or [] if isinstance(f, dict)}
    mine = {rel[len(prefix):]: v for rel, v in on_disk.items() if rel.startswith(prefix) and rel != where}
    for rel in sorted(set(signed) | set(mine)):
        s, d = signed.get(rel), mine.get(rel)
        if s is None:
            problems.append(f"{prefix}{rel}: not covered by {where} (added after signing)")
        elif d is None:
            problems.append(f"{prefix}{rel}: signed in {where} but missing")
        elif s.get("sha256") != d["sha256"]:
            problems.append(f"{prefix}{rel}: sha256 differs from the signed manifest (edited after signing)")
    return not problems, sig


def check_record_integrity(run_dir: Path | str, *, require_signature: bool = False,
                           trusted: Iterable[str] | None = None) -> IntegrityReport:
    """Check the record at ``run_dir`` (see the module docstring). ``require_signature``: an
    unsigned record is a problem (what `bench verify` wants unless --allow-unsigned);
    ``trusted``: key fingerprints (``sha256:…``) the caller accepts as the signer."""
    root = Path(run_dir)
    report = IntegrityReport(run_dir=str(root), ok=False, closed=False, signed=False)
    try:
        rec = record.load_run(root)
    except record.RecordError as exc:
        report.problems.append(str(exc))
        return report
    files, problems = disk_files(root)
    on_disk = {f["path"]: f for f in files}
    report.files_checked = len(files)
    covered: set[str] = {record.MANIFEST}
    manifests = [(root, rec.manifest)] + [(p.path, p.manifest) for p in _all_parts(rec)]
    report.closed = "files" in rec.manifest
    for sub, manifest in manifests:
        if "files" in manifest:
            covered |= _check_index(root, Path(sub), manifest.get("files"), on_disk, problems)
            covered.add(Path(sub).relative_to(root).as_posix() + "/" + record.MANIFEST if Path(sub) != root
                        else record.MANIFEST)
    if report.closed:
        for rel in sorted(set(on_disk) - covered):
            if not rel.endswith("/" + record.SIGNATURE):
                problems.append(f"{rel}: not in any manifest's file index (added after the run)")
    for sig_path in sorted(root.rglob(record.SIGNATURE)):
        sub = sig_path.parent
        if sig_path.is_symlink():
            problems.append(f"{sig_path.relative_to(root).as_posix()}: is a symbolic link")
            continue
        valid, sig = _verify_signature(root, sub, on_disk, problems)
        if sub == root:
            report.signed = True
            report.signature_valid = valid
            if isinstance(sig, dict):
                report.signer = str(sig.get("signer"))
                report.key_fingerprint = str(sig.get("key_fingerprint"))
                if trusted is not None:
                    report.trusted = report.key_fingerprint in set(trusted)
                    if valid and not report.trusted:
                        problems.append(f"{record.SIGNATURE}: signed by key {report.key_fingerprint}, "
                                        "which is not among the trusted keys")
    if require_signature and not report.signed:
        problems.append(f"{record.SIGNATURE}: missing; the record is unsigned (sign with `bench run --sign KEY`)")
    report.problems = problems
    report.ok = not problems
    return report


def _all_parts(rec: record.RunRecord) -> list[record.RunRecord]:
    out, stack = [], list(rec.parts)
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(p.parts)
    return out


__all__ = ["IntegrityReport", "KeyFiles", "SignError", "canonical_manifest", "check_record_integrity", "fingerprint",
           "keygen", "load_private_key", "sign_record"]
