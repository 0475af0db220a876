"""A skill's files, checked as a hostile tenant's upload: a zip or a directory's files in, a clean bundle out.

Zips are read defensively: at most MAX_ENTRIES entries; no absolute paths, `..`, drive letters or NULs;
no symlinks, no encrypted entries; and the uncompressed bytes are counted as they are inflated (never the
header's claim), so a zip bomb stops at the size cap. The bundle's root is the folder holding SKILL.md (the
upload's root, or its single top-level folder); SKILL.md's YAML front matter gives the name and description.
What is stored is a zip we write ourselves, every entry under `<name>/`.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import yaml

from app.core.errors import APIError, invalid_request

MAX_ENTRIES = 500  # the spec's maxItems for `files`
MAX_DIRECTORY_BYTES = 1024 * 1024  # a zip's central directory (about 2,000 entries of long names)
MAX_NAME = 64
MAX_DESCRIPTION = 1024
_READ = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Bundle:
    name: str
    description: str
    files: dict[str, bytes]  # path relative to the skill's root -> bytes

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


def bad(message: str, param: str = "files") -> APIError:
    return invalid_request(message, param=param, code="invalid_value")


def too_large(limit: int) -> APIError:
    return APIError(f"The skill is too large: its files may total at most {limit} bytes uncompressed.", status_code=413,
                    param="files", code="file_too_large")


def clean_path(name: str) -> str:
    """A relative path inside the skill, or a 400."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or _DRIVE.match(name):
        raise bad(f"Invalid file path {name!r} in the skill: paths must be relative, with '/' separators.")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if not parts or ".." in parts:
        raise bad(f"Invalid file path {name!r} in the skill: paths may not leave the skill's directory.")
    return "/".join(parts)


def looks_like_zip(filename: str | None, head: bytes) -> bool:
    return head[:4] == b"PK\x03\x04" or (filename or "").lower().endswith(".zip")


def _check_directory(data: bytes) -> None:
    """The central directory's size and count, read from its end record before zipfile parses it: a small
    zip that lists a million entries would otherwise cost a ZipInfo (and memory) each."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        raise bad("The uploaded file is not a valid zip archive.")
    count, size = struct.unpack("<H", data[end + 10:end + 12])[0], struct.unpack("<I", data[end + 12:end + 16])[0]
    if count == 0xFFFF or size == 0xFFFFFFFF:
        raise bad("ZIP64 archives are not accepted for skills.")
    if count > MAX_ENTRIES * 2 or size > MAX_DIRECTORY_BYTES:
        raise bad(f"The skill zip has too many entries; at most {MAX_ENTRIES} files are allowed.")


def read_zip(data: bytes, max_bytes: int) -> dict[str, bytes]:
    """The zip's files, checked entry by entry (blocking: call off the event loop)."""
    _check_directory(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise bad("The uploaded file is not a valid zip archive.") from None
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES * 2:  # directories count here too
        raise bad(f"The skill zip has too many entries ({len(entries)}); at most {MAX_ENTRIES} files are allowed.")
    files: dict[str, bytes] = {}
    total = 0
    for info in entries:
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise bad(f"The skill zip contains a symbolic link ({info.filename!r}); links are not allowed.")
        if info.flag_bits & 0x1:
            raise bad(f"The skill zip contains an encrypted entry ({info.filename!r}).")
        if info.is_dir():
            clean_path(info.filename.rstrip("/"))
            continue
        path = clean_path(info.filename)
        if path in files:
            raise bad(f"The skill zip contains {path!r} twice.")
        if len(files) >= MAX_ENTRIES:
            raise bad(f"The skill has too many files; at most {MAX_ENTRIES} are allowed.")
        chunks = []
        try:
            with archive.open(info) as member:
                while chunk := member.read(_READ):
                    total += len(chunk)
                    if total > max_bytes:
                        raise too_large(max_bytes)
                    chunks.append(chunk)
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as error:
            raise bad(f"The skill zip's entry {info.filename!r} could not be read ({error}).") from None
        files[path] = b"".join(chunks)
    return files


def front_matter(text: str) -> dict:
    """SKILL.md's YAML front matter (`---` … `---` at the top)."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise bad("Invalid SKILL.md: it must begin with YAML front matter between '---' lines, giving 'name' and 'description'.")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise bad("Invalid SKILL.md: its YAML front matter has no closing '---' line.") from None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as error:
        raise bad(f"Invalid SKILL.md: its front matter is not valid YAML ({str(error).splitlines()[0]}).") from None
    if not isinstance(meta, dict):
        raise bad("Invalid SKILL.md: its front matter must be a YAML mapping with 'name' and 'description'.")
    return meta


def bundle(files: dict[str, bytes]) -> Bundle:
    """The skill in `files`: its root found, SKILL.md read, the paths made relative to the root."""
    if not files:
        raise invalid_request("Missing required parameter: 'files'.", param="files", code="missing_required_parameter")
    roots = sorted({p.rsplit("/", 1)[0] if "/" in p else "" for p in files if p.rsplit("/", 1)[-1] == "SKILL.md"}, key=len)
    tops = {p.split("/", 1)[0] for p in files}
    root = None
    if "" in roots:
        root = ""
    elif len(tops) == 1 and "/" in next(iter(files)):
        top = next(iter(tops))
        root = top if top in roots else None
    if root is None:
        raise bad("The skill must contain a SKILL.md file at its root (or in its single top-level folder).")
    prefix = f"{root}/" if root else ""
    relative = {p[len(prefix):]: data for p, data in files.items() if p.startswith(prefix)}
    try:
        text = relative["SKILL.md"].decode("utf-8")
    except UnicodeDecodeError:
        raise bad("Invalid SKILL.md: it is not UTF-8 text.") from None
    meta = front_matter(text)
    name, description = meta.get("name"), meta.get("description")
    if not isinstance(name, str) or not name.strip():
        raise bad("Invalid SKILL.md: its front matter must give a 'name' (a non-empty string).")
    if not isinstance(description, str) or not description.strip():
        raise bad("Invalid SKILL.md: its front matter must give a 'description' (a non-empty string).")
    name = name.strip()
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise bad(f"Invalid SKILL.md: 'name' must be at most {MAX_NAME} letters, digits, '-', '_' or '.', starting with a letter or digit; got {name!r}.")
    if len(description) > MAX_DESCRIPTION:
        raise bad(f"Invalid SKILL.md: 'description' must be at most {MAX_DESCRIPTION} characters.")
    return Bundle(name, description.strip(), relative)


def to_zip(skill: Bundle) -> bytes:
    """The bundle as the zip we store and serve: every file under `<name>/` (blocking)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(skill.files):
            info = zipfile.ZipInfo(f"{skill.name}/{path}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, skill.files[path])
    return out.getvalue()


def from_stored(data: bytes, max_bytes: int) -> Bundle:
    """A stored zip (ours) read back."""
    return bundle(read_zip(data, max_bytes))


def from_upload(parts: list[tuple[str | None, bytes]], max_bytes: int) -> Bundle:
    """A create's `files`: one zip, or a directory's files named by their relative paths (blocking)."""
    if len(parts) == 1 and looks_like_zip(parts[0][0], parts[0][1]):
        return bundle(read_zip(parts[0][1], max_bytes))
    if len(parts) > MAX_ENTRIES:
        raise bad(f"Too many files: at most {MAX_ENTRIES} are allowed.")
    files: dict[str, bytes] = {}
    for filename, data in parts:
        path = clean_path(filename or "")
        if path in files:
            raise bad(f"The file {path!r} was uploaded twice.")
        files[path] = data
    if sum(len(d) for d in files.values()) > max_bytes:
        raise too_large(max_bytes)
    return bundle(files)


def inline(skill: dict, param: str, max_bytes: int) -> "Bundle":
    """An `inline` skill of a request (a base64 zip), as a bundle; a bad one is a 400 naming `param.source.data`."""
    source = skill.get("source") or {}
    try:
        data = base64.b64decode(source.get("data") or "", validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(f"Invalid '{param}.source.data': expected base64-encoded zip data.", param=f"{param}.source.data",
                              code="invalid_value") from None
    try:
        return from_upload([("inline.zip", data)], max_bytes)
    except APIError as error:
        error.status_code, error.param = 400, f"{param}.source.data"
        raise
