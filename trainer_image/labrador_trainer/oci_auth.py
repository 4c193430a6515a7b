"""Registry logins for ``oci://`` model fetches: one docker config entry, sent to its own registry host only.

``load_login`` picks the entry of a docker config JSON (a ``kubernetes.io/dockerconfigjson`` Secret's
``.dockerconfigjson``) for one registry host. ``RegistryAuth`` is the oras-py auth backend that answers the
registry's challenges with it; oras-py's own backends are not used because they also read ``~/.docker/config.json``
and run credential helpers, the default (token) one cannot answer a Basic challenge, and ``login`` writes the
password to ``~/.docker/config.json``.

What leaves the process, and where to:

- Basic challenge (``WWW-Authenticate: Basic``, e.g. distribution's htpasswd): the username and password, to the
  registry's host itself, over https.
- Bearer challenge (token auth: Quay, GHCR, Harbor, ACR, Artifact Registry...): the username and password (Basic,
  GET) or the ``identitytoken`` (OAuth2 ``refresh_token`` grant, POST) to the token service the challenge names,
  only when that service is https on the registry's own host[:port]; a token service elsewhere (Docker Hub's
  auth.docker.io, GitLab's gitlab.com for registry.gitlab.com) is refused rather than trusted. Without a login the
  token is asked for anonymously, wherever the service is. Token requests never follow redirects.
- The bearer token it returns goes to the registry only; requests drops ``Authorization`` on a redirect to another
  host (blob stores, CDNs). requests' own ``~/.netrc`` lookup is off for the registry's requests (a redirect
  elsewhere still gets that other host's netrc entry, as with any requests client).

The secret values never reach an exception message or a log line: errors name the config file, the ``auths`` key
and the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import oras.auth
import requests

from labrador_trainer.fetch import SourceError

#: the OAuth2 client id sent with an identity token (any string; distribution's own client sends one too)
CLIENT_ID = "labrador-trainer"
_PARAM = re.compile(r'([A-Za-z_]+)="([^"]*)"')


@dataclass(frozen=True)
class RegistryLogin:
    """A docker config entry for one registry host: a username and password, or an OAuth2 identity token."""

    host: str
    source: str  # "<config file>: auths[<key>]", for messages
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def key_host(key: str) -> str:
    """docker's reading of an ``auths`` key: ``host[:port]``, ``https://host[:port]``, ``https://host/v1/``... →
    ``host[:port]``, lower case."""
    k = key.strip().lower()
    for scheme in ("https://", "http://"):
        if k.startswith(scheme):
            k = k[len(scheme) :]
            break
    return k.split("/", 1)[0]


def load_login(path: Path, host: str) -> RegistryLogin | None:
    """The entry of the docker config at ``path`` for registry ``host`` (``host[:port]``), None if it has none.

    Only an entry whose key names exactly that host[:port] counts (an exact ``host`` key first, else the first
    ``https://host...`` one). Raises SourceError for a file that is not a docker config or an entry that holds no
    usable credentials; the message never quotes the file's content.
    """
    host = host.lower()
    try:
        doc = json.loads(path.read_bytes())
    except OSError as e:
        raise SourceError(f"{path}: cannot read the registry config: {e.strerror or type(e).__name__}") from None
    except UnicodeDecodeError:
        raise SourceError(f"{path}: the registry config is not UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise SourceError(f"{path}: not a docker config JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise SourceError(f'{path}: not a docker config JSON (no "auths" object; see kubernetes.io/dockerconfigjson)')
    keys = [k for k in auths if key_host(k) == host]
    if not keys:
        return None
    key = host if host in keys else keys[0]
    where = f"{path}: auths[{key!r}]"
    entry = auths[key]
    if not isinstance(entry, dict):
        raise SourceError(f"{where} is not an object")
    values: dict[str, str] = {}
    for name in ("auth", "username", "password", "identitytoken"):
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            raise SourceError(f"{where}.{name} is not a string")
        values[name] = value or ""
    username, password = values["username"], values["password"]
    if values["auth"]:
        try:
            decoded = base64.b64decode(values["auth"].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SourceError(f"{where}.auth is not base64 of <username>:<password>") from None
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise SourceError(f"{where}.auth is not base64 of <username>:<password>")
    if values["identitytoken"]:
        return RegistryLogin(host, where, username=username, identity_token=values["identitytoken"])
    if not username:
        raise SourceError(f"{where} holds no credentials (auth, username/password or identitytoken)")
    return RegistryLogin(host, where, username=username, password=password)


def authority(url: str) -> str:
    """``host[:port]`` of a URL, lower case, without the scheme's default port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _same_host(host: str, other: str) -> bool:
    """``host[:port]`` of a reference against another authority, https default port allowed either way."""
    return authority(f"https://{host}/") == authority(f"https://{other}/")


def registry_errors(response: requests.Response) -> str:
    """The registry's own error messages (OCI distribution ``errors[].message``, or OAuth2 ``error``), short."""
    try:
        body: Any = json.loads(response.content[:65536] or b"null")
    except (ValueError, requests.RequestException):
        return ""
    messages: list[str] = []
    if isinstance(body, dict):
        for e in body.get("errors") or []:
            if isinstance(e, dict) and isinstance(e.get("message"), str):
                messages.append(e["message"])
        if isinstance(body.get("error"), str):
            messages.append(body["error"])
    return "; ".join(messages)[:300]


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A session-wide requests auth that adds nothing: its presence stops requests from reading ~/.netrc."""
    return request


class RegistryAuth(oras.auth.TokenAuth):
    """oras-py auth backend: answers ``host``'s challenges with ``login`` (or anonymously), https only."""

    def __init__(
        self, session: requests.Session, host: str, login: RegistryLogin | None, tls_verify: bool | str = True
    ) -> None:
        super().__init__()
        self.session = session
        self.prefix = "https"
        self._tls_verify = tls_verify
        self._basic_auth = None
        self.host = host.lower()
        self.login = login
        self.sent_credentials = False  # a request carried the login (then a 401 means it was rejected)
        self.denial = ""  # the last 401/403's status and registry message
        session.hooks["response"].append(self._remember_denial)
        # requests would otherwise put a ~/.netrc login for the host on any request without one of ours; the
        # session keeps reading the environment for proxies and REQUESTS_CA_BUNDLE
        session.auth = _no_netrc

    def _remember_denial(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        """The last refusal, cleared by any later success (the first 401 of each request is only a challenge)."""
        if response.status_code in (401, 403):
            message = registry_errors(response)
            self.denial = f"{response.status_code} {response.reason}" + (f": {message}" if message else "")
        else:
            self.denial = ""

    def load_configs(self, container: object, configs: list[str] | None = None) -> None:
        """Nothing: the login comes from ``--registry-config`` only (never ``~/.docker``, never a helper)."""

    def logout(self, hostname: str) -> None:
        self.token = None

    def authenticate_request(
        self, original: requests.Response, headers: dict[str, Any] | None, refresh: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Headers for the retry of a request ``original`` answered 401/403; raises AuthenticationException
        (oras-py then gives up at once instead of retrying for minutes) when there is nothing acceptable to send."""
        headers = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
        if refresh:
            self.token = None
        where = authority(original.url)
        challenge = original.headers.get("Www-Authenticate", "")
        scheme, _, rest = challenge.strip().partition(" ")
        params = dict(_PARAM.findall(rest))
        denied = f"{where} answered {original.status_code} {original.reason}"
        if message := registry_errors(original):
            denied += f" ({message})"
        if not challenge:
            raise oras.auth.AuthenticationException(denied)
        if self.login and not (urlsplit(original.url).scheme == "https" and _same_host(self.host, where)):
            raise oras.auth.AuthenticationException(
                f"{denied}; the login in {self.login.source} is only sent to https://{self.host}"
            )
        if scheme.lower() == "basic":
            if not self.login:
                raise oras.auth.AuthenticationException(f"{denied}: it needs a login and there is none for {self.host}")
            if not self.login.username or self.login.identity_token:
                raise oras.auth.AuthenticationException(
                    f"{denied}: it asks for a username and password; {self.login.source} has an identitytoken, "
                    "which only a token service (Bearer) accepts"
                )
            self.sent_credentials = True
            headers["Authorization"] = self.login.basic()
            return headers, True
        if scheme.lower() == "bearer":
            self.token = self._bearer(params, denied)
            headers["Authorization"] = f"Bearer {self.token}"
            return headers, True
        raise oras.auth.AuthenticationException(f"{denied}: unsupported authentication scheme {scheme[:20]!r}")

    def _bearer(self, params: dict[str, str], denied: str) -> str:
        """A token from the challenge's token service (docker's token auth; OAuth2 refresh grant for an identity
        token)."""
        realm = params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise oras.auth.AuthenticationException(f"{denied}: the challenge names no token service URL")
        service = f"{parts.scheme}://{authority(realm)}{parts.path}"
        query = {k: params[k] for k in ("service", "scope") if params.get(k)}
        common: dict[str, Any] = {"verify": self._tls_verify, "allow_redirects": False, "timeout": 60}
        if self.login is None:
            response = self.session.get(realm, params=query, **common)
        elif parts.scheme != "https" or not _same_host(self.host, authority(realm)):
            raise oras.auth.AuthenticationException(
                f"{denied}: its token service is {service}; the login in {self.login.source} is only sent to "
                f"https://{self.host}"
            )
        elif self.login.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": self.login.identity_token, "client_id": CLIENT_ID}
            self.sent_credentials = True
            response = self.session.post(realm, data={**form, **query}, **common)
        else:
            self.sent_credentials = True
            response = self.session.get(realm, params=query, headers={"Authorization": self.login.basic()}, **common)
        if response.status_code != 200:
            message = registry_errors(response)
            raise oras.auth.AuthenticationException(
                f"{denied}; the token service {service} answered {response.status_code} {response.reason}"
                + (f" ({message})" if message else "")
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise oras.auth.AuthenticationException(f"{denied}; the token service {service} returned no token")
        return token
