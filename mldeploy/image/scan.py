"""Secret scan of what goes into an image: the build context before ``docker build`` and image layers after.

Two kinds of findings:

* clutter that must never ship but is harmless to drop (``.git``, ``.env`` files, caches): *excluded* from the
  context with a warning naming the file;
* secrets (private keys, AWS credential files, ``.netrc``/``.pypirc``, access keys or tokens inside any small
  file such as a ``sample.json`` that ended up in ``model.json``): the build is *refused* with a message naming the
  file, the line and the rule.

Hand-rolled on purpose (a dozen anchored rules): general scanners such as detect-secrets flag the high-entropy
sha256 digests and base64 weights every model folder is full of, and would be one more dependency of the CLI.
"""

from __future__ import annotations

import fnmatch
import io
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mldeploy.errors import BuildError

# names dropped from the context (never needed by the server)
EXCLUDE = (".git", ".hg", ".svn", ".env", ".env.*", "*.env", ".DS_Store", "__pycache__", ".pytest_cache",
           ".ipynb_checkpoints", ".mldeploy")
# names that are credentials whatever their content
SECRET_NAMES: dict[str, str] = {
    "id_rsa": "SSH private key", "id_dsa": "SSH private key", "id_ecdsa": "SSH private key",
    "id_ed25519": "SSH private key", "*.pem": "PEM key/certificate file", "*.key": "private key file",
    "*.p12": "PKCS#12 key store", "*.pfx": "PKCS#12 key store", "*.jks": "Java key store",
    ".netrc": "netrc credentials", ".pypirc": "PyPI credentials", ".npmrc": "npm credentials",
    ".git-credentials": "git credentials", ".dockercfg": "Docker registry credentials",
    "credentials": "AWS credentials file", "*.kdbx": "password database",
}
SECRET_PATHS: dict[str, str] = {".aws/*": "AWS CLI configuration", ".docker/config.json": "Docker credentials",
                                ".ssh/*": "SSH configuration/keys"}
# content rules: anchored patterns with (almost) no false positives on model files
CONTENT_RULES: list[tuple[str, re.Pattern[bytes]]] = [
    ("private key", re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("AWS access key id", re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Z0-9])")),
    ("AWS secret access key", re.compile(rb"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}")),
    ("GitHub token", re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b")),
    ("Slack token", re.compile(rb"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("Hugging Face token", re.compile(rb"\bhf_[A-Za-z]{34,}\b")),
]
MAX_CONTENT_BYTES = 8 * 1024 * 1024  # larger files are model weights: checked by name only


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the scanned root (posix)
    rule: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}{f':{self.line}' if self.line else ''}: {self.rule}"


def _match(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def excluded(rel: PurePosixPath) -> bool:
    """True when any component of ``rel`` is clutter that never goes into an image."""
    return any(_match(part, EXCLUDE) for part in rel.parts)


def name_rule(rel: PurePosixPath) -> str | None:
    """The secret-file rule ``rel`` matches by name or location, if any."""
    for pattern, rule in SECRET_NAMES.items():
        if fnmatch.fnmatchcase(rel.name, pattern):
            return rule
    posix = rel.as_posix()
    for pattern, rule in SECRET_PATHS.items():
        if fnmatch.fnmatchcase(posix, pattern) or fnmatch.fnmatchcase(posix, "*/" + pattern):
            return rule
    return None


def scan_bytes(path: str, data: bytes) -> list[Finding]:
    """Content findings in one file's bytes (first match per rule, with its line number)."""
    out = []
    for rule, pattern in CONTENT_RULES:
        m = pattern.search(data)
        if m:
            out.append(Finding(path, rule, data.count(b"\n", 0, m.start()) + 1))
    return out


def scan_file(rel: PurePosixPath, read: Iterator[bytes] | bytes, size: int) -> list[Finding]:
    rule = name_rule(rel)
    if rule:
        return [Finding(rel.as_posix(), rule)]
    if size > MAX_CONTENT_BYTES:
        return []
    data = read if isinstance(read, bytes) else b"".join(read)
    return scan_bytes(rel.as_posix(), data)


def scan_tree(root: Path) -> tuple[list[Finding], list[Finding]]:
    """(excluded clutter, secrets) under ``root``; excluded folders are not descended into."""
    clutter: list[Finding] = []
    secrets: list[Finding] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir()):
            rel = PurePosixPath(entry.relative_to(root).as_posix())
            if excluded(PurePosixPath(rel.name)):
                clutter.append(Finding(rel.as_posix(), "excluded from the image"))
            elif entry.is_dir() and not entry.is_symlink():
                stack.append(entry)
            elif entry.is_file():
                size = entry.stat().st_size
                secrets += scan_file(rel, entry.read_bytes() if size <= MAX_CONTENT_BYTES else b"", size)
    return clutter, secrets


def copy_ignore(folder: str, names: list[str]) -> set[str]:
    """``shutil.copytree(ignore=...)`` callback dropping the clutter ``scan_tree`` reports."""
    return {n for n in names if _match(n, EXCLUDE)}


def check_tree(root: Path, what: str, warn=None) -> None:
    """Raise BuildError naming every secret under ``root``; report excluded clutter through ``warn``."""
    clutter, secrets = scan_tree(root)
    if secrets:
        listing = "\n".join(f"  {root / f.path}{f':{f.line}' if f.line else ''}: {f.rule}" for f in secrets)
        raise BuildError(
            f"refusing to build: {len(secrets)} secret(s) found in the {what} ({root}):\n{listing}",
            hint="remove them from the model folder / model.sample_input; pass secrets at run time "
                 "(aws.secrets in mldeploy.yaml, or environment variables), never inside the image")
    if clutter and warn is not None:
        warn(f"excluded from the image ({what}): " + ", ".join(f.path for f in clutter))


def scan_layer(layer: bytes | io.IOBase, skip: Iterable[str] = ()) -> list[Finding]:
    """Secrets among the files of one image layer tarball (``docker save`` output), paths under ``skip`` ignored."""
    findings: list[Finding] = []
    fileobj = io.BytesIO(layer) if isinstance(layer, bytes) else layer
    with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
        for member in tar:
            if not member.isfile() or member.name.startswith(tuple(skip)):
                continue
            rel = PurePosixPath(member.name)
            if rel.name.startswith(".wh."):
                continue  # whiteout marker: a deletion, no content
            if member.size > MAX_CONTENT_BYTES:
                rule = name_rule(rel)
                findings += [Finding(member.name, rule)] if rule else []
                continue
            fh = tar.extractfile(member)
            findings += scan_file(rel, fh.read() if fh else b"", member.size)
    return findings
