"""A software WebAuthn authenticator (P-256, "none" attestation) for API tests: it answers
``navigator.credentials.create/get`` options the way a phone's platform authenticator does,
byte for byte, so the server's real verification (the ``webauthn`` library) runs."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


class SoftAuthenticator:
    def __init__(self, *, rp_id: str = "testserver", origin: str = "http://testserver",
                 counts: bool = True) -> None:
        self.rp_id, self.origin, self.counts = rp_id, origin, counts
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.sign_count = 0
        self.user_handle: bytes | None = None

    def _client_data(self, kind: str, options: dict[str, Any], origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": options["challenge"],
                           "origin": origin or self.origin, "crossOrigin": False}).encode()

    def _rp_hash(self, rp_id: str | None) -> bytes:
        return hashlib.sha256((rp_id or self.rp_id).encode()).digest()

    def create(self, options: dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None) -> dict[str, Any]:
        self.user_handle = base64url_to_bytes(options["user"]["id"])
        numbers = self.key.public_key().public_numbers()
        cose_key = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                                -3: numbers.y.to_bytes(32, "big")})
        attested = (bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id
                    + cose_key)
        auth_data = (self._rp_hash(rp_id) + bytes([FLAG_UP | FLAG_UV | FLAG_AT])
                     + self.sign_count.to_bytes(4, "big") + attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        raw_id = bytes_to_base64url(self.credential_id)
        return {"id": raw_id, "rawId": raw_id, "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(
                                 self._client_data("webauthn.create", options, origin)),
                             "attestationObject": bytes_to_base64url(attestation),
                             "transports": ["internal"]}}

    def get(self, options: dict[str, Any], *, origin: str | None = None,
            rp_id: str | None = None) -> dict[str, Any]:
        if self.counts:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", options, origin)
        auth_data = (self._rp_hash(rp_id) + bytes([FLAG_UP | FLAG_UV])
                     + self.sign_count.to_bytes(4, "big"))
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        raw_id = bytes_to_base64url(self.credential_id)
        return {"id": raw_id, "rawId": raw_id, "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(client_data),
                             "authenticatorData": bytes_to_base64url(auth_data),
                             "signature": bytes_to_base64url(signature),
                             "userHandle": bytes_to_base64url(self.user_handle or b"")}}
