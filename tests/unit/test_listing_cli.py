"""``wecom-suite listing check|init`` through ``main([...])``: output, languages, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.listing import (
    clean_listing,
    copy_images,
    save_image,
    write_listing,
)
from wecom_suite.cli import main
from wecom_suite.listing.messages import EN, ZH
from wecom_suite.listing.rules import LISTING_KEYS, RULES, TEXT_LIMITS


def run(*argv: str) -> int:
    """Run the command line and return its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    assert isinstance(code, int)
    return code


def test_clean_listing_exits_0(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A clean listing prints only the summary line and exits 0."""
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path), "--lang", "en") == 0
    assert capsys.readouterr().out == f"{path}: no problems found\n"


def test_clean_json_listing_exits_0(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON listings are read by their extension."""
    path = write_listing(folder, clean_listing(), "listing.json")
    assert run("listing", "check", str(path), "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "findings": []}


def test_findings_print_one_line_each_and_exit_1(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each line names rule id, field, what is wrong and what is expected."""
    listing = clean_listing()
    listing["trusted_domain"] = "https://app.example.com"
    listing["name"] = "微信助手"
    path = write_listing(folder, listing)
    assert run("listing", "check", str(path), "--lang", "en") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "text.banned_word  name: banned word: 微信; expected: no banned or exaggerating words",
        "domain.scheme  trusted_domain: https://app.example.com has a scheme; "
        "expected: a bare domain, without http:// or https://",
        f"{path}: 2 problem(s) found",
    ]


def test_json_format_has_the_documented_shape(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``{"ok", "findings": [{"rule", "field", "message", "expected"}]}``."""
    save_image(folder / "images" / "m3.png", (1242, 2000))
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path), "--format", "json", "--lang", "en") == 1
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "ok": False,
        "findings": [
            {
                "rule": "image.dimensions",
                "field": "screenshots.mobile[2]",
                "message": "1242×2000 px",
                "expected": "exactly 1242×2208 px",
            }
        ],
    }


def test_chinese_locale_defaults_to_chinese(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``--lang``, a zh locale gets Chinese messages."""
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    listing = clean_listing()
    listing["slogan"] = "高"
    path = write_listing(folder, listing)
    assert run("listing", "check", str(path)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["text.length  slogan：1 个字；应为：2–10 个字", f"{path}：发现 1 个问题"]


def test_other_locale_defaults_to_english(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """LC_ALL overrides LANG, as in POSIX."""
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path)) == 0
    assert "no problems found" in capsys.readouterr().out


def test_png_renamed_jpg_is_reported_clearly(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message names the real format and the extension to use."""
    (folder / "images" / "logo.png").rename(folder / "images" / "logo.jpg")
    listing = clean_listing()
    listing["logo"] = "images/logo.jpg"
    path = write_listing(folder, listing)
    assert run("listing", "check", str(path), "--lang", "en") == 1
    out = capsys.readouterr().out
    assert "image.extension  logo: content is PNG but the name ends in .jpg" in out
    assert "a name ending in .png" in out


def test_corrupt_and_missing_images_are_findings_not_tracebacks(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad files the listing names are findings (exit 1), with the file name."""
    (folder / "images" / "m1.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    (folder / "images" / "d1.png").unlink()
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path), "--lang", "en") == 1
    captured = capsys.readouterr()
    assert "image.corrupt  screenshots.mobile[0]: not a readable image: m1.png" in captured.out
    assert "file.missing  screenshots.desktop[0]: file not found: images/d1.png" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_missing_listing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable listing is one error line on stderr, exit 2."""
    path = tmp_path / "absent.yaml"
    assert run("listing", "check", str(path), "--lang", "en") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: cannot read {path}: ")
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.yaml", "name: [会议助手\nslogan: x\n"),
        ("bad.json", '{"name": "会议助手",}'),
        ("list.yaml", "- name\n- slogan\n"),
        ("latin1.yaml", None),
    ],
)
def test_malformed_listing_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str | None
) -> None:
    """Malformed YAML/JSON, a non-mapping or non-UTF-8 text: one clear line, exit 2."""
    path = tmp_path / name
    if text is None:
        path.write_bytes("name: 会议".encode("gb18030"))
    else:
        path.write_text(text, encoding="utf-8")
    assert run("listing", "check", str(path), "--lang", "en") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read {path}: ")
    assert err.count("\n") == 1


def test_malformed_listing_in_json_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--format json`` the error is JSON on stdout, still exit 2."""
    path = tmp_path / "bad.yaml"
    path.write_text("name: [\n", encoding="utf-8")
    assert run("listing", "check", str(path), "--format", "json") == 2
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    assert document["findings"] == []
    assert "line" in document["error"]


def test_init_writes_a_template_that_checks_clean(
    tmp_path: Path, image_source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The template has every key, comments, and passes once its files exist."""
    path = tmp_path / "listing.yaml"
    assert run("listing", "init", str(path), "--lang", "en") == 0
    text = path.read_text(encoding="utf-8")
    assert "# " in text
    template = yaml.safe_load(text)
    top_level = {key for key in LISTING_KEYS if "." not in key}
    assert set(template) == top_level
    copy_images(image_source, tmp_path)
    capsys.readouterr()
    assert run("listing", "check", str(path), "--lang", "en") == 0


def test_init_does_not_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing listing is never overwritten."""
    path = tmp_path / "listing.yaml"
    path.write_text("mine", encoding="utf-8")
    assert run("listing", "init", str(path), "--lang", "en") == 1
    assert path.read_text(encoding="utf-8") == "mine"
    assert "not overwriting" in capsys.readouterr().err


def test_every_rule_has_messages_and_docs() -> None:
    """Every rule id has both languages' messages and a section in docs/listing.md."""
    docs = (Path(__file__).parents[2] / "docs" / "listing.md").read_text(encoding="utf-8")
    assert EN.keys() == ZH.keys()
    message_rules = {key if key in RULES else key.rpartition(".")[0] for key in EN}
    assert message_rules == set(RULES)
    for rule in RULES:
        assert f"`{rule}`" in docs, rule
    assert set(TEXT_LIMITS) <= set(LISTING_KEYS)
