"""Signing keys, the trust store, and DSSE signatures over a capsule's manifest digest.

A capsule's identity is the sha256 of its canonical repro.json, and repro.json lists the
sha256 of every other member, so one Ed25519 signature over that digest covers every byte.
The envelope is DSSE (https://github.com/secure-systems-lab/dsse): the payload is a small
statement naming the digest; the signature is over DSSE's pre-authentication encoding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import Field, ValidationError

from repro import FORMAT
from repro.capsule.manifest import canonical_json
from repro.errors import KeyPassphraseError, SignatureError, SigningKeyError
from repro.model_base import Model
from repro.paths import config_dir

PAYLOAD_TYPE = "application/vnd.repro.capsule-statement+json"
STATEMENT_TYPE = "https://repro.invalid/capsule-statement/v1"
DEFAULT_KEY = "default"
PASSPHRASE_ENV = "REPRO_KEY_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)

PassphrasePrompt = Callable[[str], str]


# --- the envelope ------------------------------------------------------------------------


class EnvelopeSignature(Model):
    keyid: str
    """sha256 of the raw Ed25519 public key, hex."""
    sig: str
    """base64 Ed25519 signature over PAE(payloadType, payload)."""
    public_key: str = Field(alias="publicKey")
    """base64 raw Ed25519 public key (32 bytes), so a stranger's capsule can be checked."""


class Envelope(Model):
    payload: str
    """base64 of the canonical statement JSON."""
    payloadType: str
    signatures: list[EnvelopeSignature] = Field(min_length=1)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(capsule_id: str) -> bytes:
    return canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "format": FORMAT,
            "subject": [{"name": "repro.json", "digest": {"sha256": capsule_id}}],
        }
    )


# --- keys --------------------------------------------------------------------------------


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()


def fingerprint(keyid: str) -> str:
    """How a key is shown to people: SHA256:xxxx xxxx ... (the first 128 bits)."""
    head = keyid[:32]
    return "SHA256:" + " ".join(head[i : i + 4] for i in range(0, 32, 4))


@dataclass(frozen=True)
class KeyInfo:
    name: str
    keyid: str
    path: Path
    encrypted: bool


def keys_dir() -> Path:
    path = config_dir() / "keys"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def generate_key(name: str = DEFAULT_KEY, passphrase: str | None = None) -> KeyInfo:
    """A new Ed25519 key pair in the config dir: NAME.key (0600) and NAME.pub."""
    if not name or "/" in name or name.startswith("."):
        raise SigningKeyError(f"invalid key name: {name!r}", hint="use letters, digits, - and _")
    folder = keys_dir()
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    if private_path.exists():
        raise SigningKeyError(
            f"a key named {name!r} already exists: {private_path}",
            hint="choose another --name, or delete the old key if you mean to replace it",
        )
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    _write_private(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ),
    )
    public_path.write_bytes(export_public(key.public_key()))
    return KeyInfo(name, key_id(key.public_key()), private_path, bool(passphrase))


def export_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def list_keys() -> list[KeyInfo]:
    infos = []
    for path in sorted(keys_dir().glob("*.key")):
        if not path.with_suffix(".pub").is_file():
            continue  # a private key without its public half: not one of ours to list
        public = load_public_key(path.with_suffix(".pub"))
        encrypted = b"ENCRYPTED" in path.read_bytes()
        infos.append(KeyInfo(path.stem, key_id(public), path, encrypted))
    return infos


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise SigningKeyError(f"public key not found: {path}") from None
    except ValueError:
        raise SigningKeyError(f"not a PEM public key: {path}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"not an Ed25519 public key: {path}", hint="repro uses Ed25519 keys")
    return key


def default_key_path() -> Path | None:
    """The key capture signs with when none is named: 'default', or the only one there is."""
    folder = config_dir() / "keys"
    if not folder.is_dir():
        return None
    default = folder / f"{DEFAULT_KEY}.key"
    if default.is_file():
        return default
    keys = sorted(folder.glob("*.key"))
    return keys[0] if len(keys) == 1 else None


def load_private_key(path: Path, prompt: PassphrasePrompt | None = None) -> Ed25519PrivateKey:
    """Load a private key; an encrypted one takes REPRO_KEY_PASSPHRASE or asks via prompt."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"signing key not found: {path}") from None
    password: bytes | None = None
    if b"ENCRYPTED" in data:
        secret = os.environ.get(PASSPHRASE_ENV)
        if secret is None and prompt is not None:
            secret = prompt(f"passphrase for {path.name}")
        if secret is None:
            raise KeyPassphraseError(
                f"signing key {path.name} is encrypted and no passphrase was given"
            )
        password = secret.encode()
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except ValueError:
        raise KeyPassphraseError(
            f"cannot open signing key {path.name}: wrong passphrase or not a key"
        ) from None
    except TypeError:
        raise SigningKeyError(f"cannot open signing key {path.name}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"not an Ed25519 private key: {path}")
    return key


# --- the trust store ---------------------------------------------------------------------


def _trust_file() -> Path:
    return config_dir() / "trusted-keys.json"


def trusted_keys() -> dict[str, dict[str, str]]:
    """keyid -> {"name", "public_key" (base64 raw)}."""
    path = _trust_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise SigningKeyError(
            f"trust store is corrupt: {path}", hint="fix or delete the file"
        ) from None
    if not isinstance(data, dict):
        raise SigningKeyError(f"trust store is corrupt: {path}", hint="fix or delete the file")
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _save_trust(store: dict[str, dict[str, str]]) -> None:
    path = _trust_file()
    fd, tmp = tempfile.mkstemp(prefix=".trust-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(store, fh, indent=2, sort_keys=True)
    Path(tmp).replace(path)


def trust_key(public_key_file: Path, name: str | None = None) -> tuple[str, str]:
    key = load_public_key(public_key_file)
    keyid = key_id(key)
    label = name or public_key_file.stem
    store = trusted_keys()
    store[keyid] = {"name": label, "public_key": base64.b64encode(raw_public(key)).decode()}
    _save_trust(store)
    return keyid, label


def untrust_key(name_or_id: str) -> list[str]:
    """Remove keys by name or key id (prefix of at least 8 hex digits); returns what went."""
    store = trusted_keys()
    gone = [
        k
        for k, v in store.items()
        if v.get("name") == name_or_id
        or (len(name_or_id) >= 8 and k.startswith(name_or_id.lower()))
    ]
    if not gone:
        raise SigningKeyError(f"no trusted key named {name_or_id!r}", hint="see: repro keys list")
    for k in gone:
        del store[k]
    _save_trust(store)
    return gone


# --- sign and verify ---------------------------------------------------------------------


def sign_digest(capsule_id: str, key: Ed25519PrivateKey) -> bytes:
    """The repro.sig bytes for a capsule id: one call, so publish can re-sign after a stamp."""
    payload = statement(capsule_id)
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [
            {
                "keyid": key_id(key.public_key()),
                "sig": base64.b64encode(signature).decode(),
                "publicKey": base64.b64encode(raw_public(key.public_key())).decode(),
            }
        ],
    }
    return canonical_json(envelope)


SignatureState = Literal["trusted", "unknown", "unsigned"]


@dataclass(frozen=True)
class SignatureStatus:
    state: SignatureState
    keyid: str | None = None
    name: str | None = None
    """The trusted key's name in the local trust store."""

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(self.keyid) if self.keyid else None

    def describe(self) -> str:
        if self.state == "trusted":
            return f"signed by a trusted key: {self.name} ({self.fingerprint})"
        if self.state == "unknown":
            return f"signed by an unknown key: {self.fingerprint}"
        return "unsigned"


def check_signature(capsule_id: str, signature: bytes | None) -> SignatureStatus:
    """Verify repro.sig against the capsule id; raise SignatureError when it does not hold."""
    if signature is None:
        return SignatureStatus("unsigned")
    try:
        envelope = Envelope.model_validate_json(signature)
    except ValidationError:
        raise SignatureError("repro.sig is not a valid signature envelope") from None
    if envelope.payloadType != PAYLOAD_TYPE:
        raise SignatureError(f"repro.sig has an unexpected payload type: {envelope.payloadType}")
    try:
        payload = base64.b64decode(envelope.payload, validate=True)
    except ValueError:
        raise SignatureError("repro.sig payload is not base64") from None
    if payload != statement(capsule_id):
        raise SignatureError("repro.sig was made for another manifest (the capsule was changed)")
    trusted = trusted_keys()
    for sig in envelope.signatures:
        try:
            raw = base64.b64decode(sig.public_key, validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw)
            public.verify(base64.b64decode(sig.sig, validate=True), pae(PAYLOAD_TYPE, payload))
        except (ValueError, InvalidSignature):
            raise SignatureError(
                f"bad signature in repro.sig (key {fingerprint(sig.keyid)})"
            ) from None
        if key_id(public) != sig.keyid:
            raise SignatureError("repro.sig key id does not match its public key")
    own = {k.keyid: f"{k.name} (your own key)" for k in list_keys()}
    for sig in envelope.signatures:
        if sig.keyid in trusted:
            return SignatureStatus("trusted", sig.keyid, trusted[sig.keyid].get("name"))
        if sig.keyid in own:
            return SignatureStatus("trusted", sig.keyid, own[sig.keyid])
    return SignatureStatus("unknown", envelope.signatures[0].keyid)
