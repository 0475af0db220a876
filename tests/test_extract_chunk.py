"""Text extraction and chunking for vector-store ingestion, on real documents built here.

PDFs come from fpdf2, Word and PowerPoint files from python-docx / python-pptx, so the parsers read the
same structures real tools write. Chunking is checked against the tokenizer itself: limits, overlap,
coverage of the text, no cut characters, and the strategy validation's 400s.
"""
from __future__ import annotations

import io
import json
import random
import time
import zipfile

import pytest

from app.core.errors import APIError
from app.core.tokens import count_tokens
from app.services.vector_stores.chunking import ChunkText, chunk_text, validate_chunking_strategy
from app.services.vector_stores.extract import ExtractionError, extract_text

SENTENCE_1 = "The lighthouse keeper logged every passing ship in a leather-bound book."
SENTENCE_2 = "Quarterly revenue grew by twelve percent in the northern region."


def make_pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Annual Report", level=1)
    document.add_paragraph(SENTENCE_1)
    table = document.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "Region", (0, 1): "Growth", (1, 0): "North", (1, 1): "Twelve percent"}.items():
        table.cell(r, c).text = text
    document.add_paragraph(SENTENCE_2)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    first = prs.slides.add_slide(prs.slide_layouts[1])
    first.shapes.title.text = "Launch Plan"
    first.placeholders[1].text = SENTENCE_1
    first.notes_slide.notes_text_frame.text = "Remember to thank the design team."
    second = prs.slides.add_slide(prs.slide_layouts[5])
    second.shapes.title.text = "Numbers"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text = "Quarter", "Revenue"
    table.cell(1, 0).text, table.cell(1, 1).text = "Q3", "4.2 million"
    group = second.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(4), Inches(4), Inches(1)).text_frame.text = SENTENCE_2
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def error_of(data: bytes, filename: str, mime: str | None = None) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        extract_text(data, filename, mime)
    return caught.value


# -- text formats ------------------------------------------------------------------------------------------

def test_plain_text_encodings_and_line_ends():
    assert extract_text(f"{SENTENCE_1}\r\nSecond line\r\n".encode(), "notes.txt") == f"{SENTENCE_1}\nSecond line"
    assert extract_text(b"\xef\xbb\xbf" + SENTENCE_1.encode(), "bom.txt") == SENTENCE_1
    assert extract_text("Grüße aus Köln".encode("utf-16"), "utf16.txt") == "Grüße aus Köln"
    latin = "Le café de la gare sert une crème brûlée délicieuse à côté du théâtre municipal."
    assert extract_text(latin.encode("cp1252"), "menu.txt") == latin  # short Western text: Windows-1252
    russian = "Привет, как дела? Это русский текст в старой кодировке Windows."
    assert extract_text(russian.encode("cp1251"), "letter.txt") == russian  # detected by charset-normalizer


def test_code_and_markdown_kept_as_text():
    code = 'def greet(name):\n    """Say hello."""\n    return f"Hello, {name}!"\n'
    assert extract_text(code.encode(), "greet.py") == code.strip()
    markdown = f"# Title\n\n- {SENTENCE_1}\n\n```js\nconsole.log(1)\n```"
    assert extract_text(markdown.encode(), "README.md") == markdown
    assert "FROM python:3.12" in extract_text(b"FROM python:3.12\nRUN pip install x\n", "Dockerfile")


def test_html_drops_scripts_styles_and_comments():
    html = f"""<!doctype html><html><head><title>Harbour Notes</title>
    <style>body {{ color: red; }} .secret-style {{}}</style>
    <script>var trackingPixel = "SCRIPT_NOISE";</script></head>
    <body><!-- COMMENT_NOISE --><nav>Home</nav>
    <p>The lighthouse keeper logged <b>every</b> passing ship in a <a href="#">leather-bound</a> book.</p>
    <noscript>NOSCRIPT_NOISE</noscript>
    <table><tr><th>Ship</th><th>Flag</th></tr><tr><td>Aurora</td><td>Norway</td></tr></table>
    <p>{SENTENCE_2}<br>After the break.</p></body></html>"""
    text = extract_text(html.encode(), "page.html")
    assert SENTENCE_1 in text and SENTENCE_2 in text  # inline tags do not split the sentence
    assert "Harbour Notes" in text and "Aurora | Norway" in text and "After the break." in text
    for noise in ("SCRIPT_NOISE", "trackingPixel", "color: red", "secret-style", "COMMENT_NOISE", "NOSCRIPT_NOISE", "<p>"):
        assert noise not in text


def test_json_and_jsonl_flattened_with_keys():
    doc = {"user": {"name": "Ada Lovelace", "languages": ["English", "French"]}, "active": True, "score": 9.5, "note": None}
    text = extract_text(json.dumps(doc).encode(), "user.json")
    for line in ("user.name: Ada Lovelace", "user.languages[0]: English", "user.languages[1]: French",
                 "active: true", "score: 9.5", "note: null"):
        assert line in text.splitlines()
    records = [{"id": 1, "title": SENTENCE_1}, {"id": 2, "title": SENTENCE_2}]
    jsonl = extract_text("\n".join(json.dumps(r) for r in records).encode(), "rows.jsonl")
    assert jsonl == f"id: 1\ntitle: {SENTENCE_1}\n\nid: 2\ntitle: {SENTENCE_2}"
    assert extract_text(json.dumps(records).encode(), "rows.json") == jsonl  # a top-level list: one block per record
    assert error_of(b'{"a": 1,', "broken.json").code == "invalid_file"
    bad_line = error_of(b'{"a": 1}\n{oops}\n', "rows.jsonl")
    assert bad_line.code == "invalid_file" and "line 2" in bad_line.message


def test_csv_and_tsv_rows_read_with_their_headers():
    csv_text = 'city,country,population\nOslo,Norway,"709,000"\nLyon,France,522000\n'
    text = extract_text(csv_text.encode(), "cities.csv")
    assert text == "city: Oslo\ncountry: Norway\npopulation: 709,000\n\ncity: Lyon\ncountry: France\npopulation: 522000"
    tsv = extract_text(b"name\trole\nGrace\tAdmiral\n", "crew.tsv")
    assert tsv == "name: Grace\nrole: Admiral"
    semicolons = extract_text(b"name;role;team\nGrace;Admiral;Navy\nAlan;Scientist;Bletchley\n", "crew.csv")
    assert "role: Scientist" in semicolons and "team: Bletchley" in semicolons


# -- binary formats ----------------------------------------------------------------------------------------

def test_pdf_pages_in_order():
    text = extract_text(make_pdf([SENTENCE_1, SENTENCE_2]), "report.pdf")
    assert " ".join(SENTENCE_1.split()) in " ".join(text.split())
    assert " ".join(SENTENCE_2.split()) in " ".join(text.split())
    assert text.index("lighthouse") < text.index("Quarterly")


def test_docx_paragraphs_and_table_cells():
    text = extract_text(make_docx(), "report.docx")
    assert text.splitlines() == ["Annual Report", SENTENCE_1, "Region | Growth", "North | Twelve percent", SENTENCE_2]


def test_pptx_slides_tables_groups_and_notes():
    text = extract_text(make_pptx(), "deck.pptx")
    for expected in ("Slide 1", "Launch Plan", SENTENCE_1, "Notes: Remember to thank the design team.",
                     "Slide 2", "Quarter | Revenue", "Q3 | 4.2 million", SENTENCE_2):
        assert expected in text
    assert text.index("Launch Plan") < text.index("Slide 2") < text.index("Numbers")


def test_format_sniffed_when_the_name_says_nothing():
    assert "lighthouse" in extract_text(make_pdf([SENTENCE_1]), "download")  # no extension: magic bytes
    assert "lighthouse" in extract_text(make_pdf([SENTENCE_1]), "report.txt")  # mislabelled: the bytes win
    assert SENTENCE_2 in extract_text(make_docx(), "upload.bin")
    assert SENTENCE_2 in extract_text(make_pptx(), "slides")
    html = b"<!DOCTYPE html><html><body><script>NOISE()</script><p>Hello there</p></body></html>"
    assert extract_text(html, "index") == "Hello there"
    assert extract_text(b'{"k": {"v": 1}}', "blob.dat") == "k.v: 1"
    assert extract_text(b"a,b\n1,2\n", "export", "text/csv; charset=utf-8") == "a: 1\nb: 2"


# -- failures ----------------------------------------------------------------------------------------------

def test_corrupt_documents_are_invalid_files():
    pdf = make_pdf([SENTENCE_1])
    for data, name in [(pdf[: len(pdf) // 3], "cut.pdf"), (b"%PDF-1.7\nthis is not a pdf at all", "fake.pdf"),
                       (b"definitely not a zip archive", "fake.docx"), (make_docx()[:600], "cut.docx"),
                       (b"PK\x03\x04 broken", "fake.pptx")]:
        error = error_of(data, name)
        assert error.code == "invalid_file", (name, error.message)
        assert name in error.message and error.as_last_error() == {"code": "invalid_file", "message": error.message}


def test_truncated_documents_only_ever_raise_extraction_errors():
    """Whatever the damage, a bad file fails with our error (so the ingest job can mark just that file)."""
    rng = random.Random(7)
    for data, name in [(make_pdf([SENTENCE_1, SENTENCE_2]), "a.pdf"), (make_docx(), "b.docx"), (make_pptx(), "c.pptx")]:
        for cut in sorted(rng.sample(range(1, len(data)), 12)):
            try:
                extract_text(data[:cut], name)
            except ExtractionError as exc:
                assert exc.code in ("invalid_file", "unsupported_file")


def test_empty_and_textless_files_are_invalid():
    assert error_of(b"", "empty.txt").code == "invalid_file"
    assert error_of(b"  \n\t\n ", "blank.md").code == "invalid_file"
    textless = error_of(make_pdf([""]), "scan.pdf")
    assert textless.code == "invalid_file" and "no extractable text" in textless.message
    assert error_of(b"[]", "empty.json").code == "invalid_file"


def test_encrypted_pdf_is_invalid():
    from fpdf import FPDF
    from fpdf.enums import EncryptionMethod

    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret", encryption_method=EncryptionMethod.RC4)
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text=SENTENCE_1)
    error = error_of(bytes(pdf.output()), "locked.pdf")
    assert error.code == "invalid_file" and "encrypted" in error.message


def test_binary_and_unknown_formats_are_unsupported():
    blob = random.Random(3).randbytes(4096)
    for name in ("blob.bin", "blob", "blob.txt", "photo.png"):
        error = error_of(blob, name)
        assert error.code == "unsupported_file" and "binary" in error.message
    rng = random.Random(4)
    no_nul = bytes(rng.randrange(1, 256) for _ in range(4096))
    assert error_of(no_nul, "noise.dat").code == "unsupported_file"
    assert error_of(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old.doc").code == "unsupported_file"
    spreadsheet = io.BytesIO()
    with zipfile.ZipFile(spreadsheet, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    assert error_of(spreadsheet.getvalue(), "sheet.xlsx").code == "unsupported_file"


# -- chunking ----------------------------------------------------------------------------------------------

def prose(words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocabulary = ("harbour keeper ship logged leather book revenue region northern quarterly grew percent the a of "
                  "and in every passing lantern tide storm").split()
    return " ".join(rng.choice(vocabulary) + ("." if rng.random() < 0.08 else "") for _ in range(words))


def check_chunks(text: str, chunks: list[ChunkText], max_tokens: int, overlap: int) -> None:
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    rebuilt = chunks[0].text
    for chunk in chunks:
        assert chunk.text == text[chunk.start:chunk.end]
        assert chunk.tokens == count_tokens(chunk.text) <= max_tokens
    for before, after in zip(chunks, chunks[1:]):
        assert before.start < after.start <= before.end < after.end  # ordered, overlapping or touching, no gaps
        shared = count_tokens(text[after.start:before.end])
        assert overlap <= shared <= overlap + 8, shared  # start moves back a few tokens at most, to a word break
        rebuilt += after.text[before.end - after.start:]
    assert rebuilt == text


@pytest.mark.parametrize("max_tokens,overlap", [(800, 400), (100, 50), (100, 0), (257, 31), (4096, 2048)])
def test_chunks_respect_limits_overlap_and_cover_the_text(max_tokens, overlap):
    text = prose(6000)
    chunks = chunk_text(text, max_tokens, overlap)
    assert len(chunks) >= count_tokens(text) // max_tokens
    check_chunks(text, chunks, max_tokens, overlap)
    assert all(c.tokens >= max_tokens - 16 for c in chunks[:-1])  # windows are nearly full, not timid
    if overlap == 0:
        assert "".join(c.text for c in chunks) == text


def test_windows_are_trimmed_when_a_slice_counts_longer(monkeypatch):
    """BPE may count a cut-out slice longer than its token window; the chunk must shrink to fit."""
    from app.core.tokens import encoding
    from app.services.vector_stores import chunking

    real, text = encoding(), prose(3000, seed=11)

    class Inflating:  # every slice (not the whole text) counts 3 tokens more than it really has
        max_token_value = real.max_token_value
        decode_single_token_bytes = staticmethod(real.decode_single_token_bytes)

        def encode_ordinary(self, piece: str) -> list[int]:
            tokens = real.encode_ordinary(piece)
            return tokens if piece is text else tokens + tokens[:3]

    inflating = Inflating()
    monkeypatch.setattr(chunking, "encoding", lambda model=None: inflating)
    chunks = chunk_text(text, 100, 20)
    assert all(c.tokens == count_tokens(c.text) + 3 <= 100 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(a.start < b.start <= a.end for a, b in zip(chunks, chunks[1:]))


def test_chunks_end_between_words():
    text = prose(3000, seed=5)
    for chunk in chunk_text(text, 120, 40)[:-1]:
        assert text[chunk.end].isspace() or text[chunk.end - 1].isspace(), repr(text[chunk.end - 10:chunk.end + 10])


def test_multibyte_text_is_never_cut_inside_a_character():
    rng = random.Random(2)
    text = "".join(rng.choice(["東京の天気は晴れです。", "🎉🚀", "Ελληνικά κείμενα ", "naïve café ", "\n"]) for _ in range(3000))
    chunks = chunk_text(text, 100, 30)
    check_chunks(text, chunks, 100, 30)
    assert not any("\ufffd" in c.text for c in chunks)


def test_short_empty_and_odd_texts():
    assert chunk_text("", 800, 400) == []
    assert chunk_text(" \n ", 800, 400) == []
    assert chunk_text(SENTENCE_1, 800, 400) == [ChunkText(SENTENCE_1, count_tokens(SENTENCE_1), 0, 0, len(SENTENCE_1))]
    nospace = "x" * 20000  # no word breaks anywhere: cut mid-run, still within the limit
    check_chunks(nospace, chunk_text(nospace, 100, 50), 100, 50)
    surrogate = chunk_text("before \ud800 after " * 300, 100, 20)
    assert surrogate and all(c.tokens <= 100 for c in surrogate)
    with pytest.raises(ValueError):
        chunk_text("abc", 100, 100)


def test_one_megabyte_is_chunked_quickly():
    text = prose(200_000, seed=9)[:1_000_000]
    chunk_text("warm up the tokenizer " * 400, 100, 50)
    started = time.perf_counter()
    chunks = chunk_text(text, 800, 400)
    elapsed = time.perf_counter() - started
    assert chunks[-1].end == len(text) and all(c.tokens <= 800 for c in chunks)
    assert elapsed < 1.0, f"chunking 1 MB took {elapsed:.2f} s"


# -- chunking strategy -------------------------------------------------------------------------------------

AUTO = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


def test_auto_and_static_strategies_normalised():
    assert validate_chunking_strategy(None) == AUTO
    assert validate_chunking_strategy({"type": "auto"}) == AUTO
    for max_tokens, overlap in [(100, 50), (4096, 2048), (101, 50), (800, 0)]:
        strategy = {"type": "static", "static": {"max_chunk_size_tokens": max_tokens, "chunk_overlap_tokens": overlap}}
        assert validate_chunking_strategy(strategy) == strategy


def strategy_error(strategy) -> APIError:
    with pytest.raises(APIError) as caught:
        validate_chunking_strategy(strategy)
    assert caught.value.status_code == 400 and caught.value.type == "invalid_request_error"
    return caught.value


@pytest.mark.parametrize("strategy,param,code", [
    ({"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
     "chunking_strategy.static.max_chunk_size_tokens", "integer_below_min_value"),
    ({"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
     "chunking_strategy.static.max_chunk_size_tokens", "integer_above_max_value"),
    ({"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101}},
     "chunking_strategy.static.chunk_overlap_tokens", "invalid_value"),
    ({"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": -1}},
     "chunking_strategy.static.chunk_overlap_tokens", "integer_below_min_value"),
    ({"type": "static", "static": {"max_chunk_size_tokens": "800", "chunk_overlap_tokens": 400}},
     "chunking_strategy.static.max_chunk_size_tokens", "invalid_type"),
    ({"type": "static", "static": {"max_chunk_size_tokens": True, "chunk_overlap_tokens": 0}},
     "chunking_strategy.static.max_chunk_size_tokens", "invalid_type"),
    ({"type": "static", "static": {"max_chunk_size_tokens": 800}},
     "chunking_strategy.static.chunk_overlap_tokens", "missing_required_parameter"),
    ({"type": "static"}, "chunking_strategy.static", "missing_required_parameter"),
    ({"type": "static", "static": [800, 400]}, "chunking_strategy.static", "invalid_type"),
    ({"type": "semantic"}, "chunking_strategy.type", "invalid_value"),
    ({"static": {}}, "chunking_strategy.type", "missing_required_parameter"),
    ({"type": "auto", "static": {}}, "chunking_strategy.static", "unknown_parameter"),
    ("auto", "chunking_strategy", "invalid_type"),
])
def test_bad_strategies_are_400s_naming_the_param(strategy, param, code):
    error = strategy_error(strategy)
    assert (error.param, error.code) == (param, code), error.message
    assert f"'{param}'" in error.message or param == "chunking_strategy.type" and "semantic" in error.message
