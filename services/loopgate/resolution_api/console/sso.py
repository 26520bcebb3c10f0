"""Single sign-on for the console: OpenID Connect's authorization code flow with PKCE (S256).

`/console/sso/start` stores a new sign-in (the state's hash, a nonce, the PKCE verifier) in the
database, sets the state in a short-lived HTTP-only cookie, and sends the browser to the provider.
`/console/sso/callback` takes that sign-in (deleting it: a state works once, on any replica, and
only in the browser that started it), exchanges the code with the verifier and the client secret,
verifies the ID token (signature against the provider's JWKS from its discovery document; `iss`,
`aud`/`azp`, `exp`, `iat` and `nonce`), maps its groups or claims to a role and clients
(sso_mapping.py) and opens a console session (session.py). Every refusal is a page with a 4xx
(or a 503 when the provider does not answer), never a 500.

Authlib builds the authorization URL and the S256 challenge; joserfc verifies the JWT; the HTTP
calls go through one httpx client with an explicit start and stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
import sqlalchemy as sa
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from loopgate.common.errors import LoopgateError
from loopgate.common.secrets import SecretFileError, inline_or_file
from loopgate.common.settings import Settings
from loopgate.resolution_api.access.tokens import NAME_MAX, RESERVED_PREFIX
from loopgate.resolution_api.clock import Clock
from loopgate.resolution_api.console.sso_mapping import Grant, SsoMapping, grant_for, load_mapping
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import SsoSignInRow

log = logging.getLogger(__name__)

CALLBACK_PATH = "/console/sso/callback"
STATE_COOKIE = "loopgate_sso_state"
STATE_COOKIE_PATH = "/console/sso"
# Asymmetric algorithms only: never `none`, never HS* (whose key would be our client secret).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_SECONDS = 30  # clock skew allowed between the provider and us
DISCOVERY_SECONDS = 3600.0  # the discovery document and JWKS are read again after this long
JWKS_REFRESH_MIN_SECONDS = 30.0  # an unknown key id reads the JWKS again at most this often (key rotation)
HTTP_TIMEOUT = httpx.Timeout(10.0)
MAX_PARAM = 2048  # longest code or state worth reading
PERSON_NAME_MAX = NAME_MAX
ERROR_CODE = re.compile(r"[a-z_]{1,64}")  # an OAuth error code (access_denied, login_required, ...)
DOWN = "The identity provider does not answer; try again later."
AGAIN = "start again from the sign-in page."


class SsoSettingsError(LoopgateError):
    """Single sign-on is configured but cannot work; the message names the setting."""


class SignInRefused(LoopgateError):
    """A sign-in that cannot go on: the page's status, what it says, and a bounded reason for the log."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


@dataclass(frozen=True, slots=True)
class SsoConfig:
    issuer: str
    provider_name: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: str
    mapping: SsoMapping
    sign_in_seconds: float


def _checked_issuer(issuer: str) -> str:
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("localhost",) or _is_loopback(parts.hostname or "")
    if not parts.hostname or parts.query or parts.fragment:
        raise SsoSettingsError(f"sso_issuer: {issuer!r} is not an issuer URL")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise SsoSettingsError(f"sso_issuer: {issuer!r} must be https (http only on 127.0.0.1 or localhost)")
    return issuer


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _read_secret(settings: Settings) -> str:
    try:
        secret = inline_or_file(
            "sso_client_secret", settings.sso_client_secret.get_secret_value(), settings.sso_client_secret_file
        )
    except SecretFileError as err:
        raise SsoSettingsError(str(err)) from None
    if not secret:
        raise SsoSettingsError("sso_client_secret: required with sso_issuer (prefer its _FILE variant)")
    return secret


def load_sso_config(settings: Settings) -> SsoConfig | None:
    """The single sign-on configuration, read when the API starts; None when it is not configured.
    A missing or bad setting, secret or mapping file refuses the start, naming it."""
    if not settings.sso_issuer:
        return None
    issuer = _checked_issuer(settings.sso_issuer.rstrip("/"))
    if not settings.sso_client_id:
        raise SsoSettingsError("sso_client_id: required with sso_issuer")
    if settings.sso_mapping_file is None:
        raise SsoSettingsError("sso_mapping_file: required with sso_issuer (who becomes which role)")
    if "openid" not in settings.sso_scopes.split():
        raise SsoSettingsError("sso_scopes: must include openid")
    base = (settings.sso_redirect_base or settings.public_url).rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).hostname:
        raise SsoSettingsError(f"sso_redirect_base: {base!r} is not an http(s) URL")
    return SsoConfig(
        issuer=issuer,
        provider_name=settings.sso_provider_name or urlsplit(issuer).hostname or issuer,
        client_id=settings.sso_client_id,
        client_secret=_read_secret(settings),
        redirect_uri=base + CALLBACK_PATH,
        scopes=settings.sso_scopes,
        mapping=load_mapping(settings.sso_mapping_file),
        sign_in_seconds=settings.sso_sign_in_seconds,
    )


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Person:
    """Who signed in: the name the history will show, and what the mapping grants."""

    name: str
    grant: Grant


class SingleSignOn:
    """The provider as the console sees it: its discovery document and keys (cached), the sign-ins
    under way (in the database), the code exchange and the ID token's checks."""

    def __init__(
        self,
        config: SsoConfig,
        *,
        db: Database,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._db, self._clock, self._monotonic = db, clock, monotonic
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._http = httpx.AsyncClient(transport=self._transport, timeout=HTTP_TIMEOUT, follow_redirects=False)
        await self._forget_stale_sign_ins()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- the provider's documents ------------------------------------------------------------

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        assert self._http is not None, "SingleSignOn.start() was not called"
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as err:
            log.warning("single sign-on: the provider's %s at %s: %s", what, url, err.__class__.__name__)
            raise SignInRefused(503, DOWN, "provider_down") from None
        if not isinstance(body, dict):
            raise SignInRefused(503, "The identity provider's answer cannot be used.", "provider_bad")
        return body

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is not None and self._monotonic() - self._discovery[0] < DISCOVERY_SECONDS:
            return self._discovery[1]
        async with self._lock:
            if self._discovery is not None and self._monotonic() - self._discovery[0] < DISCOVERY_SECONDS:
                return self._discovery[1]  # read by the caller that held the lock before us
            document = await self._get_json(f"{self.config.issuer}/.well-known/openid-configuration", "discovery")
            needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
            if any(not isinstance(document.get(name), str) for name in needed):
                raise SignInRefused(503, "The identity provider's discovery document is incomplete.", "provider_bad")
            if document["issuer"].rstrip("/") != self.config.issuer:
                # OpenID Connect Discovery 4.3: the document must name the issuer it was fetched for.
                log.warning("single sign-on: discovery names issuer %r, not %r", document["issuer"], self.config.issuer)
                raise SignInRefused(503, "The identity provider names another issuer.", "provider_bad")
            self._discovery = (self._monotonic(), document)
            return document

    async def _key_set(self, *, refresh: bool) -> KeySet:
        now = self._monotonic()
        cached = self._keys
        if cached is not None and not refresh and now - cached[0] < DISCOVERY_SECONDS:
            return cached[1]
        if cached is not None and refresh and now - cached[0] < JWKS_REFRESH_MIN_SECONDS:
            return cached[1]  # a flood of tokens with unknown key ids does not flood the provider
        document = await self.discovery()
        jwks = await self._get_json(document["jwks_uri"], "JWKS")
        try:
            keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise SignInRefused(503, "The identity provider's keys cannot be read.", "provider_bad_jwks") from None
        self._keys = (now, keys)
        return keys

    # --- the flow ----------------------------------------------------------------------------

    async def begin(self) -> tuple[str, str]:
        """A new sign-in: the provider's authorization URL to send the browser to, and the state
        for its cookie."""
        document = await self.discovery()
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        async with self._db.write() as db, db.begin():
            db.add(SsoSignInRow(id=_hash(state), nonce=nonce, code_verifier=verifier, created_at=self._clock()))
        url = prepare_grant_uri(
            document["authorization_endpoint"],
            client_id=self.config.client_id,
            response_type="code",
            redirect_uri=self.config.redirect_uri,
            scope=self.config.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return url, state

    async def finish(self, *, state: str, cookie_state: str | None, code: str, error: str) -> Person:
        """The callback: the person the provider vouched for, or SignInRefused saying why."""
        if not state or len(state) > MAX_PARAM:
            raise SignInRefused(400, f"This sign-in link has no state: {AGAIN}", "no_state")
        if not cookie_state or not secrets.compare_digest(cookie_state.encode(), state.encode()):
            raise SignInRefused(400, f"This sign-in was not started in this browser: {AGAIN}", "state_not_ours")
        taken = await self._take(state)
        if taken is None:
            raise SignInRefused(400, f"This sign-in was already used or has expired: {AGAIN}", "state_unknown")
        nonce, verifier = taken
        if error:
            shown = error if ERROR_CODE.fullmatch(error) else "no reason given"  # never an attacker's sentence
            raise SignInRefused(401, f"The identity provider did not sign you in ({shown}).", "provider_refused")
        if not code or len(code) > MAX_PARAM:
            raise SignInRefused(400, "The identity provider sent no sign-in code: start again.", "no_code")
        id_token = await self._exchange(code, verifier)
        claims = await self.verify_id_token(id_token, nonce=nonce)
        return self._person(claims)

    async def _take(self, state: str) -> tuple[str, str] | None:
        """The sign-in of this state, deleted in the same statement (so only one callback gets it);
        None when unknown, already taken, or older than the sign-in time."""
        async with self._db.write() as db, db.begin():
            row = (
                await db.execute(
                    sa.delete(SsoSignInRow)
                    .where(SsoSignInRow.id == _hash(state))
                    .returning(SsoSignInRow.nonce, SsoSignInRow.code_verifier, SsoSignInRow.created_at)
                )
            ).first()
        if row is None:
            return None
        nonce, verifier, created_at = row
        if created_at < self._clock() - dt.timedelta(seconds=self.config.sign_in_seconds):
            return None
        return nonce, verifier

    async def _forget_stale_sign_ins(self) -> None:
        """Sign-ins nobody came back from (a closed tab) are deleted when the API starts."""
        cutoff = self._clock() - dt.timedelta(seconds=self.config.sign_in_seconds)
        async with self._db.write() as db, db.begin():
            await db.execute(sa.delete(SsoSignInRow).where(SsoSignInRow.created_at < cutoff))

    async def _exchange(self, code: str, verifier: str) -> str:
        """The code, the PKCE verifier and the client's credentials for the provider's tokens; the ID token."""
        assert self._http is not None, "SingleSignOn.start() was not called"
        document = await self.discovery()
        # client_secret_basic, each part form-encoded first (RFC 6749 2.3.1)
        auth = httpx.BasicAuth(quote_plus(self.config.client_id), quote_plus(self.config.client_secret))
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": verifier,
        }
        try:
            response = await self._http.post(
                document["token_endpoint"], data=form, auth=auth, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as err:
            log.warning("single sign-on: token endpoint: %s", err.__class__.__name__)
            raise SignInRefused(503, DOWN, "provider_down") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            problem = body.get("error") if isinstance(body, dict) else None
            log.info("single sign-on: the provider refused the code: %s %s", response.status_code, str(problem)[:64])
            raise SignInRefused(400, f"The identity provider did not accept this sign-in: {AGAIN}", "code_refused")
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SignInRefused(401, "The identity provider sent no ID token.", "no_id_token")
        return id_token

    async def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The ID token's claims once its signature (the provider's JWKS), issuer, audience,
        expiry, issue time and nonce hold; SignInRefused (401) naming the check otherwise."""
        keys = await self._key_set(refresh=False)
        try:
            token = self._decode(id_token, keys)
        except InvalidKeyIdError:
            try:  # the provider may have rotated its keys since they were read
                token = self._decode(id_token, await self._key_set(refresh=True))
            except InvalidKeyIdError:
                raise _refused("bad_signature") from None
        claims: dict[str, Any] = dict(token.claims)
        self._check_claims(claims, nonce=nonce)
        return claims

    @staticmethod
    def _decode(id_token: str, keys: KeySet) -> jwt.Token:
        try:
            return jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
        except InvalidKeyIdError:
            raise
        except BadSignatureError:
            raise _refused("bad_signature") from None
        except (JoseError, ValueError, TypeError):
            raise _refused("malformed") from None

    def _check_claims(self, claims: dict[str, Any], *, nonce: str) -> None:
        now = int(self._clock().timestamp())
        if claims.get("iss") != self.config.issuer:
            raise _refused("wrong_issuer")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if self.config.client_id not in audiences:
            raise _refused("wrong_audience")
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise _refused("wrong_audience")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS <= now:
            raise _refused("expired")
        if not isinstance(iat, int | float) or iat - LEEWAY_SECONDS > now:
            raise _refused("issued_in_future")
        given = claims.get("nonce")
        if not isinstance(given, str) or not secrets.compare_digest(given.encode(), nonce.encode()):
            raise _refused("wrong_nonce")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise _refused("no_subject")

    def _person(self, claims: dict[str, Any]) -> Person:
        mapping = self.config.mapping
        named = claims.get(mapping.name_claim)
        name = named if isinstance(named, str) and named.strip() else str(claims["sub"])
        name = "".join(ch for ch in name.strip() if ch.isprintable())[:PERSON_NAME_MAX]
        if not name or name.lower().startswith(RESERVED_PREFIX):
            raise SignInRefused(403, "Your name at the identity provider cannot be used in Loopgate.", "bad_name")
        grant = grant_for(mapping, claims)
        if grant is None:
            raise SignInRefused(
                403,
                f"You are signed in at {self.config.provider_name} as {name}, but none of your groups gives access "
                "to Loopgate. Ask whoever runs Loopgate to map one of them.",
                "not_mapped",
            )
        return Person(name=name, grant=grant)


ID_TOKEN_PROBLEMS = {
    "malformed": "is not a JWT",
    "bad_signature": "is not signed by the provider",
    "wrong_issuer": "comes from another issuer",
    "wrong_audience": "was issued for another application",
    "expired": "has expired",
    "issued_in_future": "is issued in the future",
    "wrong_nonce": "belongs to another sign-in",
    "no_subject": "names nobody",
}


def _refused(check: str) -> SignInRefused:
    return SignInRefused(
        401, f"The identity provider's ID token {ID_TOKEN_PROBLEMS[check]}: start again.", f"id_token_{check}"
    )
