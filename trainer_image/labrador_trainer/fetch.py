"""``labrador-trainer model fetch``: bring a model into the workspace cache once, whatever its source.

The operator runs this as the init step of every pod that needs a non-PVC model (``builders/models.py``): several pods
of a job may start it at once on a shared (RWX) workspace, so the download takes a file lock, lands in a temporary
directory beside the destination and is renamed into place with a completion marker. A complete destination is a
cache hit and touches no network.

Sources and credentials (from the ModelSource's ``secretRef``; never in argv or logs):

- ``hf://<org>/<name>[@<revision>]`` — Hugging Face Hub (env ``HF_TOKEN``; ``HF_ENDPOINT`` for a mirror) via
  ``huggingface_hub.snapshot_download``.
- ``s3://<bucket>/<prefix>`` — any S3-compatible store via boto3 (env ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
  ``--endpoint`` for a non-AWS store).
- ``oci://<registry>/<repository>[:<tag>|@<digest>]`` — an OCI artifact (ORAS layout) via ``oras``. A login comes
  from ``--registry-config``, a docker config JSON (the ``.dockerconfigjson`` of a ``kubernetes.io/dockerconfigjson``
  Secret, mounted as a file): only the ``auths`` entry for the reference's host[:port] is used (keys ``host``,
  ``https://host``, ``https://host/v1/``...; ``auth`` or ``username``/``password``, or an ``identitytoken``), and it
  is sent to that host only, over https (``oci_auth.py`` says exactly where). TLS is verified against certifi's CAs
  or ``REQUESTS_CA_BUNDLE``. ``ORAS_INSECURE=1`` pulls over plain http, anonymously only: a login is refused there.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labrador_trainer.oci_auth import RegistryLogin

log = logging.getLogger("labrador_trainer.fetch")

MARKER = ".labrador-complete"
_HF = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")
_S3 = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
_OCI = re.compile(r"^oci://(?P<ref>[\w.-]+(?::\d+)?/[\w./-]+(?::[\w.-]+|@sha256:[0-9a-f]{64})?)$")


class FetchError(Exception):
    """The source could not be fetched (network, credentials, missing object): exit 1, the pod may retry."""


class SourceError(ValueError):
    """The URI itself is wrong: exit 2, retrying cannot help."""


@dataclass(frozen=True)
class Source:
    scheme: str
    location: str  # repo id, bucket, or OCI reference
    revision: str = ""  # hf revision or s3 prefix


def parse(uri: str) -> Source:
    if m := _HF.match(uri):
        return Source("hf", m["repo"], m["rev"] or "main")
    if m := _S3.match(uri):
        prefix = (m["prefix"] or "").strip("/")
        if ".." in prefix.split("/"):
            raise SourceError(f"{uri}: '..' is not allowed in an S3 prefix")
        return Source("s3", m["bucket"], prefix)
    if m := _OCI.match(uri):
        return Source("oci", m["ref"])
    raise SourceError(
        f"unsupported model URI {uri!r}: expected hf://<org>/<name>[@<rev>], s3://<bucket>/<prefix> or "
        "oci://<registry>/<repository>[:<tag>] (pvc:// models are mounted, not fetched)"
    )


def is_complete(dest: Path) -> bool:
    return (dest / MARKER).is_file()


def fetch(
    uri: str,
    dest: str | Path,
    *,
    endpoint: str | None = None,
    env: Mapping[str, str] | None = None,
    registry_config: str | Path | None = None,
) -> Path:
    """Fetch ``uri`` into ``dest`` unless it is already there; safe to run from several processes at once.

    ``registry_config``: a docker config JSON with the login for an oci:// source's registry (oci:// only).
    """
    source, dest = parse(uri), Path(dest)
    env = os.environ if env is None else env
    if registry_config is not None and source.scheme != "oci":
        raise SourceError(f"{uri}: a registry config is for oci:// sources only")
    if is_complete(dest):
        log.info("model already in the workspace cache: %s", dest)
        return dest
    if source.scheme == "oci":
        from labrador_trainer.oci_auth import load_login

        login = load_login(Path(registry_config), _oci_host(source)) if registry_config is not None else None
        if login and env.get("ORAS_INSECURE", "") in ("1", "true"):
            raise SourceError(
                f"{uri}: ORAS_INSECURE pulls over plain http; the login in {login.source} is only sent over https"
            )
        if registry_config is not None and login is None:
            log.info("%s has no login for %s: pulling anonymously", registry_config, _oci_host(source))
        puller = functools.partial(_oci, login=login)
    else:
        puller = {"hf": _hf, "s3": _s3}[source.scheme]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pod may be fetching the same model: wait for it
        if is_complete(dest):
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            puller(source, tmp, endpoint, env)
            files = [p for p in tmp.rglob("*") if p.is_file()]
            if not files:
                raise FetchError(f"{uri}: the source holds no files")
            (tmp / MARKER).write_text(uri + "\n")
            if dest.exists():  # an incomplete leftover of a killed run
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("fetched %s into %s (%d files)", uri, dest, len(files))
    return dest


def _hf(source: Source, out: Path, endpoint: str | None, env: Mapping[str, str]) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        snapshot_download(
            repo_id=source.location,
            revision=source.revision,
            local_dir=out,
            token=env.get("HF_TOKEN") or None,
            endpoint=endpoint or env.get("HF_ENDPOINT") or None,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise FetchError(f"hf://{source.location}@{source.revision}: {type(e).__name__}: {_first_line(e)}") from e
    shutil.rmtree(out / ".cache", ignore_errors=True)  # huggingface_hub's download metadata


def s3_client(endpoint: str | None, env: Mapping[str, str]) -> Any:
    """A boto3 S3 client with the credentials of ``env`` only (never a profile or file of the machine's)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint or env.get("AWS_ENDPOINT_URL") or None,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def _s3(source: Source, out: Path, endpoint: str | None, env: Mapping[str, str]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(endpoint, env)
    prefix = f"{source.revision}/" if source.revision else ""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=source.location, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if not rel or rel.endswith("/"):
                    continue
                target = (out / rel).resolve()
                if not target.is_relative_to(out.resolve()):
                    raise FetchError(f"s3://{source.location}/{obj['Key']}: key escapes the destination")
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(source.location, obj["Key"], str(target))
    except (BotoCoreError, ClientError) as e:
        raise FetchError(f"s3://{source.location}/{source.revision}: {_first_line(e)}") from e


def _oci_host(source: Source) -> str:
    return source.location.split("/", 1)[0].lower()


def _oci(
    source: Source, out: Path, endpoint: str | None, env: Mapping[str, str], *, login: RegistryLogin | None
) -> None:
    import oras.auth
    import oras.client

    from labrador_trainer.oci_auth import RegistryAuth

    client = oras.client.OrasClient(insecure=env.get("ORAS_INSECURE", "") in ("1", "true"))
    auth = RegistryAuth(client.session, _oci_host(source), login)
    client.auth = auth
    try:
        client.pull(target=source.location, outdir=str(out))
    except Exception as e:  # oras raises plain exceptions (requests, ValueError) for registry failures
        message = f"oci://{source.location}: {type(e).__name__}: {_first_line(e)}"
        if auth.denial and not isinstance(e, oras.auth.AuthenticationException):  # which says it all itself
            message += f" ({auth.denial})"
        if login and auth.sent_credentials and auth.denial:
            message += f"; {_oci_host(source)} rejected the login in {login.source}"
        raise FetchError(message) from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:500] if text else type(e).__name__
