"""Outbox link tokens are sealed with the secret key; older (Fernet) seals still open."""

from __future__ import annotations

import base64

from flask import Flask

from webapp.services.tokens import _fernet
from webapp.services.tokens import new_token
from webapp.services.tokens import open_from_outbox
from webapp.services.tokens import seal_for_outbox
from webapp.services.tokens import seal_many_for_outbox


def _app(secret: str) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = secret
    return app


def test_sealed_tokens_open_only_with_the_same_secret_key():
    raw = new_token()[0]
    with _app("first-secret").app_context():
        sealed = seal_for_outbox(raw)
        assert raw not in sealed
        assert open_from_outbox(sealed) == raw
        many = seal_many_for_outbox([raw, raw, new_token()[0]])
        assert len(set(many)) == 3  # a fresh nonce every time
        assert open_from_outbox(many[1]) == raw
        # Tampering is detected, not decrypted into garbage.
        box = bytearray(base64.urlsafe_b64decode(sealed.removeprefix("a1.")))
        box[20] ^= 1
        flipped = "a1." + base64.urlsafe_b64encode(bytes(box)).decode()
        assert open_from_outbox(flipped) is None
        assert open_from_outbox("a1.not base64!") is None
    with _app("another-secret").app_context():
        assert open_from_outbox(sealed) is None


def test_fernet_sealed_tokens_queued_before_the_change_still_open():
    raw = new_token()[0]
    with _app("first-secret").app_context():
        legacy = _fernet().encrypt(raw.encode()).decode()
        assert open_from_outbox(legacy) == raw
    with _app("another-secret").app_context():
        assert open_from_outbox(legacy) is None
