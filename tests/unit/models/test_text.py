"""clean_text: what reaches the tokenizer must be the visible text only."""

from __future__ import annotations

import pytest

from models.text import clean_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<p>Hello</p><p>World</p>", "Hello World"),
        ("line one<br>line two<br/>line three", "line one line two line three"),
        ("<ul><li>a</li><li>b</li></ul><div>c</div>", "a b c"),
        ("<b>bold</b>face and <a href='x'>link</a>", "boldface and link"),
        ("<html><head><title>T</title></head><body><h1>H</h1>text</body></html>", "T H text"),
        ("before<!-- a comment -->after", "beforeafter"),
    ],
)
def test_tags_are_stripped_and_blocks_separate_words(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


def test_script_and_style_contents_are_dropped() -> None:
    raw = (
        "<style>p { color: red; }</style>Visible"
        "<script type='text/javascript'>if (a < b && c) { alert('x'); }</script> text"
        "<SCRIPT>document.write('<p>hidden</p>')</SCRIPT>"
    )
    assert clean_text(raw) == "Visible text"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("caf&eacute; &#233; &#xE9;", "café é é"),
        ("<p>5 &lt; 6 &gt; 4</p>", "5 < 6 > 4"),
        ("x &lt;b&gt;not a tag&lt;/b&gt;", "x <b>not a tag</b>"),
        ("a&nbsp;&nbsp;b", "a b"),
        ("AT&T and R&D", "AT&T and R&D"),
    ],
)
def test_entities_are_unescaped_with_or_without_tags(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


def test_control_characters_removed_and_whitespace_controls_become_spaces() -> None:
    assert clean_text("a\x00b\x07c\x7fd\x9f") == "abcd"
    assert clean_text("tab\tnew\nline\r\nfeed\x0cvt\x0bsep\x1fend") == "tab new line feed vt sep end"


@pytest.mark.parametrize(
    "invisible",
    ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u202e"],
)
def test_zero_width_and_format_characters_removed(invisible: str) -> None:
    assert clean_text(f"zero{invisible}width") == "zerowidth"


def test_lone_surrogate_removed_so_the_tokenizer_never_sees_it() -> None:
    assert clean_text("bad\ud800text") == "badtext"


def test_whitespace_runs_collapse_to_one_space_and_ends_are_stripped() -> None:
    assert clean_text("  many \t\n  spaces\u00a0\u2003here\u3000 \n") == "many spaces here"


def test_result_is_nfc() -> None:
    assert clean_text("Cafe\u0301") == "Caf\u00e9"
    # A zero-width char between base and accent must not block composition.
    assert clean_text("e\u200b\u0301") == "\u00e9"


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "\n\t ", "\u200b\ufeff", "<p></p><br/>", "<script>x()</script>", "&nbsp;", "<!-- only -->"],
)
def test_nothing_visible_gives_empty_string(raw: str) -> None:
    assert clean_text(raw) == ""


@pytest.mark.parametrize(
    "raw",
    [
        "Plain ASCII text, with punctuation: 1 + 2 = 3!",
        "Ünïcödé façade — naïve café",
        "用户喜欢看体育新闻和科技评论",
        "Привет, мир",
        "مرحبا بالعالم",
        "1 > 0 but is 2 < 3?",
    ],
)
def test_clean_text_is_unchanged(raw: str) -> None:
    assert clean_text(raw) == raw


def test_non_latin_text_inside_html_kept() -> None:
    assert clean_text("<div>中文 <b>新闻</b></div>&amp;日本語") == "中文 新闻 &日本語"
