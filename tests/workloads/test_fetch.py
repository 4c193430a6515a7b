"""`labrador-trainer model fetch`: s3:// against a real S3-compatible HTTP server (moto's server, boto3 as the
client), idempotent and concurrent fetches, clean failures, and hf:// failing cleanly when the Hub is unreachable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SECRET = "s3cr3t-value-never-logged"
EXE = str(Path(sys.executable).with_name("labrador-trainer"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto_server did not start"
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _env() -> dict[str, str]:
    return {**os.environ, "AWS_ACCESS_KEY_ID": "labrador", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"}


def _upload(url: str, bucket: str, prefix: str, src: Path) -> int:
    import boto3

    env = _env()
    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    files = [p for p in src.rglob("*") if p.is_file()]
    for p in files:
        client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(src)}")
    return len(files)


def _fetch(uri: str, dest: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [EXE, "model", "fetch", "--uri", uri, "--dest", str(dest), *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=env or _env(), timeout=300)


def test_s3_model_is_fetched_once_and_loads(s3: str, train_model: Path, tmp_path: Path) -> None:
    n = _upload(s3, "models", "smollm2/l2", train_model)
    dest = tmp_path / "cache" / "abc"
    first = _fetch("s3://models/smollm2/l2", dest, f"--endpoint={s3}")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in dest.iterdir() if p.name != ".labrador-complete") == sorted(
        p.name for p in train_model.iterdir()
    )
    assert len([p for p in dest.rglob("*") if p.is_file()]) == n + 1

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(dest)
    assert model.config.num_hidden_layers == 2

    # a complete destination is a cache hit: no network at all (the endpoint below does not exist)
    again = _fetch("s3://models/smollm2/l2", dest, f"--endpoint=http://127.0.0.1:{_free_port()}")
    assert again.returncode == 0, again.stderr
    assert "already in the workspace cache" in again.stderr
    assert SECRET not in first.stderr + first.stdout + again.stderr


def test_concurrent_fetches_share_one_download(s3: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"shard-{i}.bin").write_bytes(os.urandom(64 * 1024))
    _upload(s3, "shared", "m", src)
    dest = tmp_path / "cache" / "m"
    argv = [EXE, "model", "fetch", "--uri", "s3://shared/m", "--dest", str(dest), f"--endpoint={s3}"]
    procs = [subprocess.Popen(argv, env=_env(), stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    assert sum("fetched s3://shared/m" in e for e in errs) == 1  # one downloaded, two waited on the lock
    assert sorted(p.name for p in dest.iterdir()) == sorted([".labrador-complete", *(p.name for p in src.iterdir())])
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".m.") and p.is_dir()] == []


def test_missing_objects_fail_cleanly_without_leftovers(s3: str, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "none"
    out = _fetch("s3://no-such-bucket/x", dest, f"--endpoint={s3}")
    assert out.returncode == 1 and "fetch failed" in out.stderr and "Traceback" not in out.stderr
    assert SECRET not in out.stderr
    assert not dest.exists() and [p.name for p in dest.parent.iterdir()] == [".none.lock"]
    _upload(s3, "empty", "nothing-here", tmp_path / "does-not-exist")  # bucket exists, prefix holds nothing
    out = _fetch("s3://empty/nothing-here", dest, f"--endpoint={s3}")
    assert out.returncode == 1 and "holds no files" in out.stderr and not dest.exists()


def test_unreachable_hub_fails_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", "HF_TOKEN": SECRET}
    env["HF_HOME"] = str(tmp_path / "hf-home")
    out = _fetch("hf://org/model@v1", tmp_path / "m", env=env)
    assert out.returncode == 1, out.stderr
    assert "fetch failed: hf://org/model@v1" in out.stderr and "Traceback" not in out.stderr
    assert SECRET not in out.stderr and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "uri", ["pvc://models/x", "hf://just-a-name", "s3://Bad_Bucket/x", "s3://bucket/../etc", "oci://", "ftp://x/y"]
)
def test_bad_uris_exit_2(uri: str, tmp_path: Path) -> None:
    out = _fetch(uri, tmp_path / "m")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "m").exists()


def _tree(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (".labrador-complete", "labrador-manifest.json")
    }


def test_export_to_s3_lands_the_same_files_and_a_stable_digest(s3: str, tmp_path: Path) -> None:
    """`model export` publishes the model directory (what the workspace holds) under the prefix with a manifest
    of checksums; fetching it back gives the same files; the digest depends on the files only."""
    import json

    src = tmp_path / "model"
    (src / "tokenizer").mkdir(parents=True)
    (src / "config.json").write_text('{"model_type": "llama"}')
    (src / "model.safetensors").write_bytes(os.urandom(200 * 1024))
    (src / "tokenizer" / "tokenizer.json").write_text('{"version": "1.0"}')
    _upload(s3, "exports", "placeholder", tmp_path / "none")  # the bucket
    log = tmp_path / "termination-log"
    argv = [EXE, "model", "export", "--src", str(src), "--uri", "s3://exports/team/ft-1", f"--endpoint={s3}",
            f"--termination-log={log}"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(log.read_text())
    assert summary["status"] == "Succeeded" and summary["uri"] == "s3://exports/team/ft-1" and summary["files"] == 3
    assert summary["digest"].startswith("sha256:") and "checksums" not in summary
    assert SECRET not in out.stdout + out.stderr + log.read_text()
    back = tmp_path / "back"
    fetched = _fetch("s3://exports/team/ft-1", back, f"--endpoint={s3}")
    assert fetched.returncode == 0, fetched.stderr
    assert _tree(back) == _tree(src)
    manifest = json.loads((back / "labrador-manifest.json").read_text())
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == _tree(src)
    # the same files again (to another prefix): the same digest
    again = subprocess.run([*argv[:6], "s3://exports/team/ft-2", *argv[7:]], capture_output=True, text=True,
                           env=_env(), timeout=300)  # fmt: skip
    assert again.returncode == 0 and json.loads(log.read_text())["digest"] == summary["digest"], again.stderr


def test_export_failures_exit_1_or_2_without_secrets(s3: str, tmp_path: Path) -> None:
    src = tmp_path / "model"
    src.mkdir()
    (src / "config.json").write_text("{}")
    missing = subprocess.run([EXE, "model", "export", "--src", str(src), "--uri", "s3://no-such-bucket/x",
                              f"--endpoint={s3}"], capture_output=True, text=True, env=_env(), timeout=300)  # fmt: skip
    assert missing.returncode == 1 and "export failed" in missing.stderr and "Traceback" not in missing.stderr
    assert SECRET not in missing.stderr
    for bad in (["--src", str(tmp_path / "nowhere"), "--uri", "s3://b/x"], ["--src", str(src), "--uri", "ftp://x/y"],
                ["--src", str(src), "--uri", "oci://r.example/m@sha256:" + "0" * 64]):  # fmt: skip
        out = subprocess.run([EXE, "model", "export", *bad], capture_output=True, text=True, env=_env(), timeout=60)
        assert out.returncode == 2 and "Traceback" not in out.stderr, (bad, out.stderr)
