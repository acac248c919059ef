"""Fetching official data files: checked downloads, safe extraction, one message.

Every data set that downloads (:mod:`linopt.cifar10`, :mod:`linopt.cifar100`,
:mod:`linopt.mnist`) uses these, so they agree on what a user sees:

* :func:`download` fetches into a ``.part`` file with a short socket timeout
  (a machine offline fails in seconds), tries each mirror in turn, and keeps
  the file only when its sha256 is the published one;
* :func:`fetch_file` reuses a file already on disk only after that check;
* :func:`safe_extract` refuses links, devices and any member whose path
  resolves outside the target, checking every member before writing any;
* :func:`missing_message` says where to put the files by hand.

Every problem is a one-line :class:`DataError` naming the file or URL.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from linopt.errors import DataError

TIMEOUT_S = 10.0  # per socket operation, so a machine offline fails in seconds


def one_line(error) -> str:
    """``error`` as text on one line, at most 300 characters."""
    return " ".join(str(error).split())[:300]


def default_data_dir() -> Path:
    """``$LINOPT_DATA`` when set, else ``~/.cache/linopt``."""
    return Path(os.environ.get("LINOPT_DATA") or "~/.cache/linopt").expanduser()


def missing_message(name: str, folder, what: str, source: str) -> str:
    """What to do when data set ``name`` is not in ``folder``.

    Args:
      name: the data set as people write it (``"CIFAR-10"``).
      folder: where it was looked for (and where a download would go).
      what: the files or folder to put there (``"the official ... folder"``).
      source: where the official files are (a URL or a few words).
    """
    return (
        f"{name} not found in {folder}: put {what} there, or point $LINOPT_DATA "
        f"or data_dir at a folder that holds them (official files: {source})"
    )


def sha256_of(path) -> str:
    """The hex sha256 of the file at ``path``, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_one(url: str, dest: Path, sha256: str, progress: bool) -> None:
    """One try: ``url`` into a ``.part`` file, renamed to ``dest`` if it checks."""
    part, bar = None, None
    digest = hashlib.sha256()
    try:
        fd, part = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as response,
        ):
            if progress:
                from tqdm.auto import tqdm

                size = response.headers.get("Content-Length")
                total = int(size) if size and size.isdigit() else None
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name)
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if digest.hexdigest() != sha256:
            raise DataError(
                f"{url}: sha256 {digest.hexdigest()} is not the expected {sha256}: "
                "the download is corrupt or was altered; deleted it"
            )
        os.replace(part, dest)
    finally:
        if bar is not None:
            bar.close()
        if part is not None:
            Path(part).unlink(missing_ok=True)


def download(
    urls: str | Sequence[str],
    dest,
    *,
    sha256: str,
    progress: bool = False,
    hint: str = "",
) -> Path:
    """Fetch the first of ``urls`` that answers into ``dest``, kept only if its
    sha256 is ``sha256``; a failed or corrupt download leaves nothing behind.

    Args:
      urls: one URL, or mirrors of the same file tried in order.
      dest: the file to write (its folder must exist).
      sha256: the published hex digest of the file.
      progress: show a tqdm bar.
      hint: appended when no mirror could be reached (see :func:`missing_message`).
    """
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    dest, problem, cause, offline = Path(dest), "", None, False
    for url in urls:
        try:
            _download_one(url, dest, sha256, progress)
            return dest
        except DataError as e:  # the checksum: try another mirror
            problem, cause, offline = str(e), e, False
        except (OSError, http.client.HTTPException, ValueError) as e:
            problem = f"could not download {url} ({type(e).__name__}: {one_line(e)})"
            cause, offline = e, True
    if len(urls) > 1:
        problem += f" (the last of {len(urls)} mirrors tried)"
    raise DataError(problem + (f"; {hint}" if offline and hint else "")) from cause


def fetch_file(
    urls: str | Sequence[str],
    dest,
    *,
    sha256: str,
    progress: bool = False,
    hint: str = "",
    advice: str = "",
) -> Path:
    """``dest``, downloaded first when absent (see :func:`download`).

    A file already there that fails its checksum is reported, never silently
    replaced: it may be a partial copy the user means to finish. ``advice``
    ends that message (another way to get the data).
    """
    dest = Path(dest)
    if not dest.is_file():
        return download(urls, dest, sha256=sha256, progress=progress, hint=hint)
    if (digest := sha256_of(dest)) != sha256:
        raise DataError(
            f"{dest}: sha256 {digest} is not the official archive's {sha256}; "
            "it is corrupt or another file: delete it to download again"
            + (f", or {advice}" if advice else "")
        )
    return dest


def make_folder(folder) -> Path:
    """``folder``, created with its parents; a failure is a DataError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{folder}: cannot create ({one_line(e)})") from e
    return folder


def _check_member(member: tarfile.TarInfo, staging: Path, archive: Path) -> None:
    name = PurePosixPath(member.name)
    where = (staging / member.name).resolve()
    if not (member.isreg() or member.isdir()):
        problem = "is a link or device"
    elif name.is_absolute() or ".." in name.parts:
        problem = "has an absolute or parent-relative path"
    elif where != staging and staging not in where.parents:
        problem = "would be written outside the target folder"
    else:
        return
    raise DataError(f"{archive}: refused member {member.name!r}: it {problem}")


def safe_extract(archive, target) -> None:
    """Extract ``archive`` into ``target``, refusing links, devices and any member
    whose path resolves outside it; every member is checked before any is written.
    """
    archive, target, staging = Path(archive), Path(target), None
    try:
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target)).resolve()
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, staging, archive)
            # The "data" filter (Python >= 3.12, backported) is a second guard.
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **kwargs)
        for entry in staging.iterdir():
            if (target / entry.name).exists():
                raise DataError(f"{target / entry.name}: already exists; not replaced")
            os.replace(entry, target / entry.name)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: cannot extract ({one_line(e)})") from e
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def fetch_archive(
    data_dir,
    archive: str,
    urls: str | Sequence[str],
    *,
    sha256: str,
    progress: bool = False,
    hint: str = "",
    advice: str = "",
) -> None:
    """Extract ``data_dir / archive`` into ``data_dir``, downloading it first
    when absent; an archive there is used only if its checksum is right."""
    data_dir = make_folder(data_dir)
    path = data_dir / archive
    fetch_file(urls, path, sha256=sha256, progress=progress, hint=hint, advice=advice)
    safe_extract(path, data_dir)
