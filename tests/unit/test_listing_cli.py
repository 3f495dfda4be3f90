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

# A real app's settings (not sandbox mode), so the provider credentials are the only gap.
REAL_APP = {
    "WECOM_SUITE_ID": "wwsuite0123456789",
    "WECOM_SUITE_SECRET": "suite-secret",  # pragma: allowlist secret
    "WECOM_TOKEN": "Token123",
    "WECOM_ENCODING_AES_KEY": "a" * 43,
}
PROVIDER = {
    "WECOM_PROVIDER_CORPID": "wwprovider0123",
    "WECOM_PROVIDER_SECRET": "provider-secret",  # pragma: allowlist secret
}
WARNING_EN = (
    "warning: business_settings.credentials  business_settings_url: "
    "https://app.example.com/admin cannot sign admins in: no provider credentials in this "
    "environment; expected: WECOM_PROVIDER_CORPID, WECOM_PROVIDER_SECRET set where the gateway "
    "runs (service/get_login_info needs the provider token)"
)


@pytest.fixture(autouse=True)
def sandbox_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sandbox mode whatever the developer's shell holds: its provider credentials apply."""
    for variable in [*REAL_APP, *PROVIDER, "WECOM_SANDBOX"]:
        monkeypatch.delenv(variable, raising=False)


def real_app(monkeypatch: pytest.MonkeyPatch, *, provider: bool) -> None:
    """Configure a real app in the environment, with or without the provider credentials."""
    for name, value in {**REAL_APP, **(PROVIDER if provider else {})}.items():
        monkeypatch.setenv(name, value)


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


def test_business_settings_url_without_provider_credentials_only_warns(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real app without provider credentials: a marked warning line, and still exit 0."""
    real_app(monkeypatch, provider=False)
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path), "--lang", "en") == 0
    assert capsys.readouterr().out.splitlines() == [
        WARNING_EN,
        f"{path}: no problems found, 1 warning(s)",
    ]


def test_warning_in_chinese(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``--lang zh`` the warning is marked 警告 and counted apart in the summary."""
    real_app(monkeypatch, provider=False)
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path), "--lang", "zh") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "警告：business_settings.credentials  business_settings_url："
        "https://app.example.com/admin 无法为管理员登录"
    )
    assert "WECOM_PROVIDER_CORPID, WECOM_PROVIDER_SECRET" in lines[0]
    assert lines[1:] == [f"{path}：未发现问题，1 个警告"]


def test_warning_json_has_severity_and_ok_true(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In JSON the warning says ``"severity": "warning"`` and ``ok`` stays true."""
    real_app(monkeypatch, provider=False)
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path), "--format", "json", "--lang", "en") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert [(item["rule"], item["field"], item["severity"]) for item in document["findings"]] == [
        ("business_settings.credentials", "business_settings_url", "warning")
    ]
    assert "WECOM_PROVIDER_SECRET" in document["findings"][0]["expected"]


def test_warning_does_not_hide_errors(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error next to the warning still fails (exit 1, ``ok`` false); only it is a problem."""
    real_app(monkeypatch, provider=False)
    listing = clean_listing()
    listing["slogan"] = "高"
    path = write_listing(folder, listing)
    assert run("listing", "check", str(path), "--lang", "en") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "text.length  slogan: 1 characters; expected: 2–10 characters",
        WARNING_EN,
        f"{path}: 1 problem(s) found, 1 warning(s)",
    ]
    assert run("listing", "check", str(path), "--format", "json", "--lang", "en") == 1
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    assert [item.get("severity", "error") for item in document["findings"]] == [
        "error",
        "warning",
    ]


def test_no_warning_with_provider_credentials(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real app with both provider credentials: the clean listing is clean."""
    real_app(monkeypatch, provider=True)
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path), "--lang", "en") == 0
    assert capsys.readouterr().out == f"{path}: no problems found\n"


@pytest.mark.parametrize("missing", sorted(PROVIDER))
def test_one_provider_credential_is_not_enough(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """The page needs both provider values; either one alone still warns."""
    real_app(monkeypatch, provider=True)
    monkeypatch.delenv(missing)
    path = write_listing(folder, clean_listing())
    assert run("listing", "check", str(path), "--lang", "en") == 0
    assert capsys.readouterr().out.splitlines()[0] == WARNING_EN


def test_no_warning_without_business_settings_url(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No business-settings URL, nothing to warn about (only the missing key is reported)."""
    real_app(monkeypatch, provider=False)
    listing = clean_listing()
    del listing["business_settings_url"]
    path = write_listing(folder, listing)
    assert run("listing", "check", str(path), "--format", "json", "--lang", "en") == 1
    document = json.loads(capsys.readouterr().out)
    assert [item["rule"] for item in document["findings"]] == ["key.missing"]


def test_sandbox_mode_has_the_sandbox_provider_credentials(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In sandbox mode the simulator's provider credentials apply, as for the gateway."""
    path = write_listing(folder, clean_listing(), "listing.json")
    assert run("listing", "check", str(path), "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "findings": []}
