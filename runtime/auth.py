"""API-key and JWT (HS256/RS256) authentication; secrets only from env vars or files, keys kept hashed.

With ``auth.mode`` set and no secret configured the server refuses to start (``AuthConfigError``) — there is no
default secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path

from runtime.contract.serving import Auth

MIN_HS256_SECRET_BYTES = 32  # RFC 7518 §3.2: the key must be at least as long as the hash output
MAX_TOKEN_BYTES = 8192  # JWTs and API keys; longer credentials are refused before any hashing/parsing


class AuthConfigError(Exception):
    """Auth is enabled but its secret is missing or weak; the message names the env var / file to set."""


class AuthError(Exception):
    """401: missing or invalid credentials."""


_sha256 = hashlib.sha256


def hash_key(key: str) -> str:
    """The sha256 hex digest of a key (as ``sha256:<hex>`` entries name it)."""
    return _sha256(key.encode()).hexdigest()


def _read_secret(env_name: str, file: str | None, environ: dict[str, str]) -> str | None:
    if file:
        path = Path(file)
        if not path.is_file():
            raise AuthConfigError(f"auth secret file {file} does not exist")
        return path.read_text(encoding="utf-8").strip() or None
    return (environ.get(env_name) or "").strip() or None


class Authenticator:
    """``verify`` returns a principal id (for rate limits and logs; None without one) or raises AuthError."""

    def __init__(self, cfg: Auth, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self.mode = cfg.mode
        self.cfg = cfg
        self._hashes: list[bytes] = []  # the sha256 digest of each configured key (raw bytes)
        self._principals: dict[bytes, str] = {}  # sha256 digest of a configured key -> its principal id
        self._key: str | None = None
        self._jwt = None  # the jwt module, in jwt mode
        if cfg.mode == "api_key":
            raw = _read_secret(cfg.api_keys_env, cfg.api_keys_file, env)
            if not raw:
                where = f"file {cfg.api_keys_file}" if cfg.api_keys_file else f"${cfg.api_keys_env}"
                raise AuthConfigError(f"auth.mode is api_key but no API keys are configured: set {where} "
                                      "(comma- or newline-separated keys, or sha256:<hex> hashes)")
            for entry in raw.replace("\n", ",").split(","):
                entry = entry.strip()
                if entry:
                    digest = entry[7:].lower() if entry.startswith("sha256:") else hash_key(entry)
                    try:
                        raw_digest = bytes.fromhex(digest)
                    except ValueError:  # not hex: a configured entry no key can match (as before)
                        raw_digest = digest.encode()
                    self._hashes.append(raw_digest)
                    self._principals[raw_digest] = "key:" + digest[:12]
        elif cfg.mode == "jwt":
            key = _read_secret(cfg.jwt_secret_env, cfg.jwt_secret_file, env)
            what = "public key (PEM)" if cfg.jwt_algorithm == "RS256" else "secret"
            if not key:
                where = f"file {cfg.jwt_secret_file}" if cfg.jwt_secret_file else f"${cfg.jwt_secret_env}"
                raise AuthConfigError(
                    f"auth.mode is jwt ({cfg.jwt_algorithm}) but no {what} is configured: set {where}"
                )
            if cfg.jwt_algorithm == "HS256" and len(key.encode()) < MIN_HS256_SECRET_BYTES:
                raise AuthConfigError(f"the HS256 secret in ${cfg.jwt_secret_env} is {len(key.encode())} bytes; "
                                      f"use at least {MIN_HS256_SECRET_BYTES} random bytes")
            if cfg.jwt_algorithm == "RS256" and "PUBLIC KEY" not in key:
                raise AuthConfigError(f"auth.jwt_algorithm RS256 needs a PEM public key in ${cfg.jwt_secret_env}")
            self._key = key
            import jwt  # PyJWT (and cryptography for RS256): imported only by servers in jwt mode (start-up time)

            self._jwt = jwt

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def authenticate(self, headers) -> str | None:
        """Read ``X-API-Key`` / ``Authorization: Bearer`` from ``headers`` (as the HTTP security schemes do), verify."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return self.verify(headers.get("x-api-key") or None, token if scheme.lower() == "bearer" and token else None)

    def known_key(self, api_key: str) -> str | None:
        """The principal of a configured API key, else None (no error, nothing counted): the predict fast path's
        check of the common request, which leaves every other one to ``verify``."""
        if len(api_key) > MAX_TOKEN_BYTES:
            return None
        return self._principals.get(_sha256(api_key.strip().encode()).digest())

    def verify(self, api_key: str | None, bearer: str | None) -> str | None:
        """A principal id (for rate limits and logs) from an API key or a bearer token; raises AuthError."""
        if self.mode == "none":
            return None
        token = api_key if self.mode == "api_key" and api_key else bearer
        if not token:
            raise AuthError("missing credentials: send 'Authorization: Bearer <token>'"
                            + (" or 'X-API-Key: <key>'" if self.mode == "api_key" else ""))
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError(f"credentials longer than {MAX_TOKEN_BYTES} bytes")
        if self.mode == "api_key":
            digest = _sha256(token.strip().encode()).digest()
            principal = self._principals.get(digest)  # a configured key: one lookup of its digest, no scan
            if principal is None:
                # an unknown key costs a constant-time comparison with every key, whatever it is (the lookup
                # above hashes a SHA-256 digest, which a caller cannot steer towards a configured one)
                for h in self._hashes:
                    hmac.compare_digest(h, digest)
                raise AuthError("invalid API key")
            return principal
        cfg = self.cfg
        require = ["exp", "aud"] + (["iss"] if cfg.jwt_issuer else []) + (["iat"] if cfg.jwt_max_lifetime_s else [])
        jwt = self._jwt
        try:
            claims = jwt.decode(token.strip(), self._key, algorithms=[cfg.jwt_algorithm], audience=cfg.jwt_audience,
                                issuer=cfg.jwt_issuer, options={"require": require})
        except jwt.PyJWTError as e:
            raise AuthError(f"invalid token: {e}") from None
        self._check_times(claims)
        sub = claims.get("sub")
        return "sub:" + sub if isinstance(sub, str) and sub else None

    def _check_times(self, claims: dict) -> None:
        """``exp``/``iat`` must be numbers (PyJWT also takes numeric strings); lifetime ≤ ``jwt_max_lifetime_s``."""
        times = {k: claims[k] for k in ("exp", "iat", "nbf") if k in claims}
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in times.values()):
            raise AuthError("invalid token: exp, iat and nbf must be NumericDate numbers")
        limit = self.cfg.jwt_max_lifetime_s
        if limit and (times["exp"] - times["iat"] > limit or times["exp"] - time.time() > limit):
            raise AuthError(f"invalid token: lifetime above jwt_max_lifetime_s ({limit}s)")
