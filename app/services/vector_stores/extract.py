"""Plain text out of an uploaded file, for vector-store ingestion.

File search only ever sees text, so each format is reduced to what a reader would see: markup, scripts
and styles go, JSON keys stay next to their values, CSV cells keep their column names. The binary
formats are read by well-kept parsers (pypdf, python-docx, python-pptx, BeautifulSoup over lxml): a
hand-written PDF reader would fail on half the PDFs in the wild. The parser is chosen by the file's own
magic bytes when they name a container we read (a PDF called `report.txt` is still a PDF), else by
extension, else by the declared MIME type, else by looking at the decoded text, so `notes` or `Makefile`
still work. Every failure is an `ExtractionError` whose `code` is what OpenAI puts in a vector store
file's `last_error`: `unsupported_file` (a format we don't read, binary data) or `invalid_file` (a file
in a format we read that is corrupt, encrypted or holds no text).
"""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import PurePath

import charset_normalizer

SUPPORTED = "text and code files, Markdown, HTML, JSON/JSONL, CSV/TSV, PDF, DOCX and PPTX"

# Formats that are text once decoded (OpenAI's file-search list plus the usual code and config files).
TEXT_EXTENSIONS = frozenset("""
    txt text md markdown mdx rst adoc asciidoc org tex latex bib log nfo
    c h cc cpp cxx c++ hpp hh hxx cs css scss sass less go java kt kts scala groovy gradle
    js mjs cjs jsx ts tsx mts cts vue svelte php py pyi pyw rb erb sh bash zsh fish ps1 psm1 bat cmd
    rs swift m mm r jl lua pl pm dart ex exs erl hrl hs ml mli fs fsx clj cljs elm zig nim v sol
    sql graphql gql proto yaml yml toml ini cfg conf env properties xml xsd xsl rss atom plist
    diff patch tf hcl cmake mk makefile dockerfile gitignore editorconfig srt vtt
""".split())
_BY_EXTENSION = {
    "html": "html", "htm": "html", "xhtml": "html", "shtml": "html",
    "json": "json", "jsonl": "jsonl", "ndjson": "jsonl",
    "csv": "csv", "tsv": "tsv", "tab": "tsv",
    "pdf": "pdf", "docx": "docx", "pptx": "pptx",
}
_BY_MIME = {
    "application/pdf": "pdf", "text/html": "html", "application/xhtml+xml": "html",
    "application/json": "json", "application/jsonl": "jsonl", "application/x-ndjson": "jsonl",
    "application/x-jsonlines": "jsonl", "text/csv": "csv", "text/tab-separated-values": "tsv",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAX_UNZIPPED = 512 * 1024 * 1024  # an Office file inflating past this is a zip bomb, not a document
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f-\x9f]")  # keeps \t \n \r \f and ESC
_MAX_CONTROL_RATIO = 0.02
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{4,}")  # "Ïðèâåò": Cyrillic or Greek read as Windows-1252
_WESTERN_SIGNS = "’‘“”„–—…€©®™°·«»¿¡§£¥¢±×÷µ•†‰ "


class ExtractionError(Exception):
    """Why a file yields no text; `code` is `unsupported_file` or `invalid_file`, as in `last_error`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_last_error(self) -> dict:
        return {"code": self.code, "message": self.message}


def extract_text(data: bytes, filename: str, mime_type: str | None = None) -> str:
    """The readable text of a file, tidied (LF line ends, no control characters, no runs of blank lines)."""
    name = PurePath(filename or "").name or "file"
    bare = name.lower().lstrip(".")
    ext = PurePath(bare).suffix.lstrip(".") or (bare if bare in TEXT_EXTENSIONS else "")
    kind = _sniff_container(data, name) or _BY_EXTENSION.get(ext) or ("text" if ext in TEXT_EXTENSIONS else None)
    if kind is None and mime_type:
        declared = mime_type.split(";")[0].strip().lower()
        kind = _BY_MIME.get(declared) or ("text" if declared.startswith("text/") else None)
    if kind in _BINARY_PARSERS:
        text = _BINARY_PARSERS[kind](data, name)
    else:
        raw = _decode(data, name)
        text = _TEXT_PARSERS[kind or _sniff_text(raw)](raw, name)
    text = _tidy(text)
    if not text:
        raise ExtractionError("invalid_file", f"'{name}' contains no text that could be indexed.")
    return text


# -- choosing a parser -------------------------------------------------------------------------------------

def _sniff_container(data: bytes, name: str) -> str | None:
    """PDF and Office files by their magic bytes, whatever they are called."""
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(_OLE_MAGIC):
        raise ExtractionError("unsupported_file", f"'{name}' is a legacy Microsoft Office file (.doc/.ppt/.xls), which "
                              "file search cannot read; save it as .docx, .pptx or PDF.")
    if not data.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return None  # a damaged archive: let the extension pick the parser that reports it
    names = {entry.filename for entry in entries}
    if sum(entry.file_size for entry in entries) > _MAX_UNZIPPED:
        raise ExtractionError("invalid_file", f"'{name}' inflates to more than {_MAX_UNZIPPED >> 20} MB.")
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    raise ExtractionError("unsupported_file", f"'{name}' is a ZIP-based format file search cannot read (supported: {SUPPORTED}).")


def _sniff_text(raw: str) -> str:
    head = raw[:2048].lstrip().lower()
    if head.startswith(("<!doctype html", "<html")):
        return "html"
    if head[:1] in ("{", "["):
        try:
            json.loads(raw)
            return "json"
        except (ValueError, RecursionError):
            pass
    return "text"


def _decode(data: bytes, name: str) -> str:
    """UTF-8 (or the encoding a BOM names), else what charset-normalizer detects, else Latin-1; binary is refused."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec)
            except UnicodeDecodeError:
                raise ExtractionError("invalid_file", f"'{name}' starts with a {codec} byte-order mark but is not valid {codec}.") from None
    binary = ExtractionError("unsupported_file", f"'{name}' looks like binary data in a format file search cannot read "
                             f"(supported: {SUPPORTED}).")
    if b"\x00" in data:
        raise binary
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _legacy_decode(data)
    if text and (len(text) - len(_CONTROL.sub("", text))) / len(text) > _MAX_CONTROL_RATIO:
        raise binary
    return text


def _legacy_decode(data: bytes) -> str:
    """Windows-1252 when it reads as Western European text (most legacy files are; charset detectors
    misjudge short French or German text), else charset-normalizer's best guess, else Latin-1."""
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None:
        extra = _NON_ASCII.findall(western)
        if (len(extra) <= 0.3 * len(western) and not _NON_ASCII_RUN.search(western)
                and all(c.isalpha() or c in _WESTERN_SIGNS for c in set(extra))):
            return western
    for match in charset_normalizer.from_bytes(data):  # best first; UTF-16/32 without NULs is a misreading
        if not match.encoding.startswith(("utf_16", "utf_32")):
            return str(match)
    return data.decode("latin-1")


def _tidy(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. "\ud800" in JSON) would break tokenizers and databases
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = _CONTROL.sub("", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# -- text formats -------------------------------------------------------------------------------------------

_HTML_DROP = ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed"]
_HTML_BLOCKS = ["p", "div", "section", "article", "aside", "header", "footer", "nav", "main", "h1", "h2", "h3", "h4",
                "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "pre", "blockquote", "figure",
                "figcaption", "title", "form", "fieldset", "address", "details", "summary", "hr"]


def _html(raw: str, name: str) -> str:
    from bs4 import BeautifulSoup, Comment

    soup = BeautifulSoup(raw, "lxml")
    for tag in soup(_HTML_DROP):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for cell in soup.find_all(["td", "th"]):
        if cell.find_previous_sibling(["td", "th"]) is not None:
            cell.insert_before(" | ")
    for block in soup.find_all(_HTML_BLOCKS):  # block boundaries become line breaks; inline tags stay inline
        block.insert_before("\n")
        block.append("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().split("\n"))
    return "\n".join(line for line in lines if line)


def _flatten(value, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out)
    else:
        shown = value if isinstance(value, str) else json.dumps(value)
        out.append(f"{path}: {shown}" if path else shown)


def _records(values: list) -> str:
    """One block of `key.path: value` lines per record, records apart by a blank line."""
    blocks = []
    for value in values:
        lines: list[str] = []
        _flatten(value, "", lines)
        if lines:
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _json(raw: str, name: str, lines: bool = False) -> str:
    """A JSON document (a top-level list is a list of records) or JSON Lines, flattened by `_records`."""
    values, number = [], 0
    try:
        if not lines:
            value = json.loads(raw)
            values = value if isinstance(value, list) else [value]
        for number, line in enumerate(raw.splitlines() if lines else (), 1):
            if line.strip():
                values.append(json.loads(line))
        return _records(values)
    except (ValueError, RecursionError) as exc:
        where = f" line {number}" if lines else ""
        raise ExtractionError("invalid_file", f"'{name}'{where} is not valid JSON: {exc}") from None


def _csv(raw: str, name: str, delimiter: str | None = None) -> str:
    """Each row as `column: value` lines under the header's names, so a chunk keeps its cells' meaning."""
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(raw[:16384], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = [row for row in csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise ExtractionError("invalid_file", f"'{name}' is not valid CSV: {exc}") from None
    if not rows:
        return ""
    header = [cell.strip() or f"column {i + 1}" for i, cell in enumerate(rows[0])]
    if len(rows) == 1:
        return ", ".join(header)
    blocks = []
    for row in rows[1:]:
        names = header + [f"column {i + 1}" for i in range(len(header), len(row))]
        blocks.append("\n".join(f"{names[i]}: {cell.strip()}" for i, cell in enumerate(row) if cell.strip()))
    return "\n\n".join(blocks)


# -- binary formats -----------------------------------------------------------------------------------------

def _unreadable(name: str, kind: str, exc: Exception) -> ExtractionError:
    detail = str(exc).strip() or type(exc).__name__
    return ExtractionError("invalid_file", f"'{name}' could not be read as {kind}: {detail}")


def _pdf(data: bytes, name: str) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception:  # e.g. AES without the optional crypto library: no way in either way
                opened = 0
            if not opened:
                raise ExtractionError("invalid_file", f"'{name}' is an encrypted PDF; upload it without a password.")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except ExtractionError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise _unreadable(name, "a PDF", exc) from None
    text = "\n\n".join(page for page in pages if page)
    if not text.strip():
        raise ExtractionError("invalid_file", f"'{name}' has no extractable text (a scanned PDF needs OCR, which file search does not do).")
    return text


def _docx_blocks(container, out: list[str]) -> None:
    from docx.text.paragraph import Paragraph

    for block in container.iter_inner_content():
        if isinstance(block, Paragraph):
            out.append(block.text)
            continue
        for row in block.rows:  # a table: one line per row; merged cells repeat, so drop repeats
            cells: list[str] = []
            for cell in row.cells:
                inner: list[str] = []
                _docx_blocks(cell, inner)
                text = " ".join(" ".join(inner).split())
                if text and (not cells or cells[-1] != text):
                    cells.append(text)
            out.append(" | ".join(cells))


def _docx(data: bytes, name: str) -> str:
    import docx

    try:
        out: list[str] = []
        _docx_blocks(docx.Document(io.BytesIO(data)), out)
    except Exception as exc:
        raise _unreadable(name, "a Word document (.docx)", exc) from None
    return "\n".join(line for line in out if line.strip())


def _shape_texts(shapes):
    from pptx.shapes.group import GroupShape

    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _shape_texts(shape.shapes)
        elif getattr(shape, "has_text_frame", False):
            yield shape.text_frame.text
        elif getattr(shape, "has_table", False):
            for row in shape.table.rows:
                yield " | ".join(cell.text.strip() for cell in row.cells if cell.text.strip())


def _pptx(data: bytes, name: str) -> str:
    from pptx import Presentation

    slides = []
    try:
        for number, slide in enumerate(Presentation(io.BytesIO(data)).slides, 1):
            texts = [text.strip() for text in _shape_texts(slide.shapes) if text.strip()]
            notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
            if notes is not None and notes.text.strip():
                texts.append(f"Notes: {notes.text.strip()}")
            if texts:
                slides.append(f"Slide {number}\n" + "\n".join(texts))
    except Exception as exc:
        raise _unreadable(name, "a PowerPoint presentation (.pptx)", exc) from None
    return "\n\n".join(slides)


_TEXT_PARSERS = {"text": lambda raw, name: raw, "html": _html, "json": _json, "jsonl": lambda raw, name: _json(raw, name, True),
                 "csv": _csv, "tsv": lambda raw, name: _csv(raw, name, "\t")}
_BINARY_PARSERS = {"pdf": _pdf, "docx": _docx, "pptx": _pptx}
