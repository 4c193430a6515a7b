"""``labrador-trainer model export``: publish a promoted model directory to where the FineTuneJob's
``spec.output.uri`` says, and report where it landed and its digest (the operator puts both on the status).

- ``s3://<bucket>/<prefix>`` — every file under ``<prefix>/`` via boto3 (env ``AWS_ACCESS_KEY_ID``/
  ``AWS_SECRET_ACCESS_KEY``, ``--endpoint`` for a non-AWS store), then ``labrador-manifest.json`` (each file's sha256
  and size). The digest is the sha256 of that manifest: the same files give the same digest, on any store.
- ``oci://<registry>/<repository>[:<tag>]`` — an OCI artifact (ORAS layout: one layer per file, a directory as one
  tar+gzip layer, titles the relative paths) via ``oras``; the same login rules as ``model fetch``
  (``--registry-config``: only the entry for the reference's host[:port], sent to that host only, over https). The
  digest is the registry's manifest digest: ``model fetch`` of ``oci://<registry>/<repository>@<digest>`` gets the
  same files back.
- ``hf://<org>/<name>`` — a Hub model repository via ``huggingface_hub.upload_folder`` (env ``HF_TOKEN``,
  ``HF_ENDPOINT`` for a private Hub); the digest is the commit. (No Hub server runs in this project's test bed: this
  path is not tested here.)

Credentials come from the environment or the mounted registry config only — never from argv — and never appear in
the output, the termination message or the logs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from labrador_trainer.fetch import MARKER, FetchError, SourceError, _first_line, _oci_host, parse, s3_client

MANIFEST = "labrador-manifest.json"


@dataclass
class Exported:
    uri: str
    digest: str
    files: int
    bytes: int
    #: relative path -> sha256 of what was published
    checksums: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """The termination message: where, which digest, how much (the checksums stay in the logs' JSON)."""
        out = asdict(self)
        out.pop("checksums")
        return {"status": "Succeeded", **out}


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` by relative path (the fetch step's completion marker left out)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MARKER:
            h = hashlib.sha256()
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[str(p.relative_to(root))] = h.hexdigest()
    return out


def export(
    src: str | Path,
    uri: str,
    *,
    endpoint: str | None = None,
    env: Mapping[str, str] | None = None,
    registry_config: str | Path | None = None,
) -> Exported:
    source, src = parse(uri), Path(src)
    env = os.environ if env is None else env
    if source.scheme == "oci" and "@" in source.location:
        raise SourceError(f"{uri}: export to a tag (or no tag), not to a digest: the registry computes the digest")
    if registry_config is not None and source.scheme != "oci":
        raise SourceError(f"{uri}: a registry config is for oci:// destinations only")
    if not src.is_dir():
        raise SourceError(f"{src}: no model directory to export")
    sums = checksums(src)
    if not sums:
        raise SourceError(f"{src}: the model directory holds no files")
    size = sum((src / rel).stat().st_size for rel in sums)
    if source.scheme == "s3":
        digest = _s3(source.location, source.revision, src, sums, endpoint, env)
    elif source.scheme == "oci":
        digest = _oci(source.location, src, env, registry_config)
    else:
        digest = _hf(source.location, src, endpoint, env)
    return Exported(uri=uri, digest=digest, files=len(sums), bytes=size, checksums=sums)


def _s3(bucket: str, prefix: str, src: Path, sums: dict[str, str], endpoint: str | None, env: Mapping[str, str]) -> str:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(endpoint, env)
    base = f"{prefix}/" if prefix else ""
    manifest = json.dumps(
        {"files": {rel: {"sha256": h, "size": (src / rel).stat().st_size} for rel, h in sums.items()}},
        indent=1,
        sort_keys=True,
    ).encode()
    try:
        for rel in sums:
            client.upload_file(str(src / rel), bucket, base + rel)
        # last: a reader that finds the manifest finds every file it names
        client.put_object(Bucket=bucket, Key=base + MANIFEST, Body=manifest, ContentType="application/json")
    except (Boto3Error, BotoCoreError, ClientError) as e:  # boto3's transfers raise S3UploadFailedError
        raise FetchError(f"s3://{bucket}/{prefix}: {_first_line(e)}") from e
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def _oci(reference: str, src: Path, env: Mapping[str, str], registry_config: str | Path | None) -> str:
    import oras.client

    from labrador_trainer.oci_auth import RegistryAuth, load_login

    host = _oci_host(parse(f"oci://{reference}"))
    login = load_login(Path(registry_config), host) if registry_config is not None else None
    insecure = env.get("ORAS_INSECURE", "") in ("1", "true")
    if login and insecure:
        raise SourceError(f"oci://{reference}: ORAS_INSECURE pushes over plain http; a login is only sent over https")
    client = oras.client.OrasClient(insecure=insecure)
    auth = RegistryAuth(client.session, host, login)
    client.auth = auth
    entries = sorted(p.name for p in src.iterdir() if p.name != MARKER)
    try:
        with contextlib.chdir(src):  # oras names each layer by the path given, relative to the working directory
            response = client.push(target=reference, files=entries, disable_path_validation=False)
    except Exception as e:  # oras raises plain exceptions (requests, ValueError) for registry failures
        message = f"oci://{reference}: {type(e).__name__}: {_first_line(e)}"
        if auth.denial:
            message += f" ({auth.denial})"
        raise FetchError(message) from e
    digest = response.headers.get("Docker-Content-Digest", "") if response is not None else ""
    if not digest.startswith("sha256:"):
        raise FetchError(f"oci://{reference}: the registry answered the manifest push without a digest")
    return digest


def _hf(repo: str, src: Path, endpoint: str | None, env: Mapping[str, str]) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint or env.get("HF_ENDPOINT") or None, token=env.get("HF_TOKEN") or None)
    try:
        api.create_repo(repo, repo_type="model", exist_ok=True, private=True)
        commit = api.upload_folder(repo_id=repo, folder_path=str(src), ignore_patterns=[MARKER])
    except (HfHubHTTPError, OSError) as e:
        raise FetchError(f"hf://{repo}: {type(e).__name__}: {_first_line(e)}") from e
    return str(commit.oid)
