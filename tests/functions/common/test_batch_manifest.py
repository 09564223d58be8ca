"""Batch manifests (JSON and CSV): good rows become per-file settings, each bad row rejects only its file with a
reason, a bad manifest as a whole is refused, and hostile values never get through."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common import batches, catalogs
from functions.common.batches import ManifestInvalid, parse_manifest, resolve_manifest
from functions.common.models import BatchDefaults, JobOptions

DEFAULTS = BatchDefaults()


def resolve(name: str, text: str | bytes, defaults: BatchDefaults = DEFAULTS) -> dict:
    data = text.encode() if isinstance(text, str) else text
    return resolve_manifest(parse_manifest(name, data, max_files=100), defaults)


def test_json_rows_get_sku_mode_options_and_the_defaults() -> None:
    manifest = {
        "defaults": {"preset": "amazon", "options": {"shadow": "none"}},
        "files": [
            {"file": "a.jpg", "sku": "SKU-1"},
            {
                "file": "b.jpg",
                "sku": 4711,
                "mode": "on-model",
                "pose_id": "front-relaxed",
                "background": "#FFFFFF",
            },
            {"file": "c.png", "priority": "low", "options": {"output_format": "jpeg", "quality": 80}},
        ],
    }
    files = resolve("manifest.json", json.dumps(manifest))["files"]
    assert files["a.jpg"]["sku"] == "SKU-1"
    assert files["a.jpg"]["mode"] == "ghost"
    assert files["a.jpg"]["options"]["preset"] == "amazon"
    assert files["a.jpg"]["options"]["shadow"] == "none"
    assert files["b.jpg"]["sku"] == "4711"
    assert files["b.jpg"]["mode"] == "on-model"
    assert files["b.jpg"]["options"]["pose_id"] == "front-relaxed"
    assert files["b.jpg"]["options"]["background"] == "#FFFFFF"
    assert files["c.png"]["priority"] == "low"
    assert files["c.png"]["options"]["output_format"] == "jpeg"
    assert files["c.png"]["sku"] is None
    for spec in files.values():
        JobOptions.model_validate(spec["options"])  # every resolved spec is a valid JobOptions


def test_the_batch_defaults_apply_under_the_manifest() -> None:
    batch_defaults = BatchDefaults(mode="on-model", options=JobOptions(preset="zalando"), priority="low")
    files = resolve("manifest.csv", "file,sku\nx.jpg,X\n", batch_defaults)["files"]
    assert files["x.jpg"]["mode"] == "on-model"
    assert files["x.jpg"]["options"]["preset"] == "zalando"
    assert files["x.jpg"]["options"]["pose_id"] == catalogs.default_pose()  # on-model always has a pose
    assert files["x.jpg"]["priority"] == "low"


def test_csv_with_the_documented_header_and_extra_option_columns() -> None:
    text = (
        "\ufefffile,sku,mode,pose_id,background,preset,quality,hollow\r\n"
        "a.jpg,SKU-1,ghost,,#EEEEEE,shopify,85,false\r\n"
        'b.jpg,"SKU, with comma",on-model,side-left,,square,,\r\n'
        ",,,,,,,\r\n"  # blank rows are skipped
    )
    files = resolve("manifest.csv", text)["files"]
    assert set(files) == {"a.jpg", "b.jpg"}
    assert files["a.jpg"]["options"]["background"] == "#EEEEEE"
    assert files["a.jpg"]["options"]["quality"] == 85
    assert files["a.jpg"]["options"]["hollow"] is False
    assert files["b.jpg"]["sku"] == "SKU, with comma"
    assert files["b.jpg"]["options"]["pose_id"] == "side-left"
    assert files["b.jpg"]["options"]["quality"] == 92  # an empty cell keeps the default


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"file": "a.jpg", "mode": "painting"}, "mode"),
        ({"file": "a.jpg", "preset": "ebay"}, "preset"),
        ({"file": "a.jpg", "pose_id": "moonwalk"}, "unknown pose"),
        ({"file": "a.jpg", "background": "library:nowhere"}, "unknown background"),
        ({"file": "a.jpg", "background": "transparent", "output_format": "jpeg"}, "transparent background"),
        ({"file": "a.jpg", "quality": 1000}, "quality"),
        ({"file": "a.jpg", "quality": "NaN"}, "quality"),
        ({"file": "a.jpg", "size": 100}, "size"),
        ({"file": "a.jpg", "sku": "x" * 101}, "sku must be at most 100"),
        ({"file": "a.jpg", "sku": "bad\u0000sku"}, "control characters"),
        ({"file": "a.jpg", "sku": ["list"]}, "sku must be a string"),
        ({"file": "a.jpg", "colour": "red"}, "unknown field"),
        ({"file": "a.jpg", "options": "fast"}, "options must be an object"),
        ({"file": "a.jpg", "options": {"preset": "ebay"}}, "preset"),
        ({"file": "a.jpg", "preset": "amazon", "background": "#EEEEEE"}, "pure white background"),
    ],
)
def test_a_bad_row_rejects_only_its_file_with_a_reason(row: dict, reason: str) -> None:
    manifest = {"files": [row, {"file": "good.jpg", "sku": "OK"}]}
    files = resolve("manifest.json", json.dumps(manifest))["files"]
    assert reason in files["a.jpg"]["error"]
    assert files["a.jpg"]["row"] == 1
    assert "error" not in files["good.jpg"]


@pytest.mark.parametrize(
    "name",
    ["../etc/passwd", "a/b.jpg", "..", ".hidden.jpg", "tab\there.jpg", " padded.jpg", "x" * 300, "a\\b.jpg"],
)
def test_hostile_file_names_name_no_file(name: str) -> None:
    result = resolve("manifest.json", json.dumps({"files": [{"file": name}, {"file": "ok.jpg"}]}))
    assert set(result["files"]) == {"ok.jpg"}
    assert result["problems"][0]["row"] == 1
    assert "file:" in result["problems"][0]["error"]


def test_rows_without_a_file_and_files_listed_twice() -> None:
    text = json.dumps(
        {
            "files": [
                {"sku": "no-file"},
                {"file": 42},
                "not an object",
                {"file": "twice.jpg", "sku": "A"},
                {"file": "twice.jpg", "sku": "B"},
                {"file": "manifest.json"},
            ]
        }
    )
    result = resolve("manifest.json", text)
    assert [p["row"] for p in result["problems"]] == [1, 2, 3, 6]
    assert result["problems"][2]["error"] == "the row is not an object"
    assert "listed more than once (rows 4, 5)" in result["files"]["twice.jpg"]["error"]
    assert set(result["files"]) == {"twice.jpg"}  # rows without a usable file name reject no file


def test_csv_rows_with_too_many_cells_are_refused() -> None:
    files = resolve("manifest.csv", "file,sku\na.jpg,A,extra\nb.jpg,B\n")["files"]
    assert "more cells" in files["a.jpg"]["error"]
    assert files["b.jpg"]["sku"] == "B"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("manifest.json", b"{not json", "not valid JSON"),
        ("manifest.json", b"[]", "must be a JSON object"),
        ("manifest.json", b'{"files": {}}', '"files" must be a list'),
        ("manifest.json", b'{"files": [], "defaults": {}}', "names no files"),
        ("manifest.json", b'{"files": [{"file": "a.jpg"}], "extra": 1}', "unknown top-level"),
        ("manifest.json", b'{"files": [{"file": "a.jpg", "quality": NaN}]}', "not valid JSON"),
        ("manifest.json", b'{"files": [{"file": "a.jpg"}], "defaults": []}', '"defaults" must be an object'),
        ("manifest.json", b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        ("manifest.json", "\u00e9".encode("latin-1"), "not UTF-8"),
        ("manifest.csv", b"", "empty"),
        ("manifest.csv", b"sku,mode\nA,ghost\n", '"file" column'),
        ("manifest.csv", b"file,file\na,b\n", "duplicate column"),
        ("manifest.csv", b"file,colour\na.jpg,red\n", "unknown column"),
        ("manifest.csv", b"file,options\na.jpg,{}\n", "unknown column"),
        ("manifest.csv", b"file,sku\na.jpg,\x00\n", "NUL"),
        ("manifest.csv", b"file,sku\n" + b"a.jpg," + b"x" * 200_000 + b"\n", "not valid CSV"),
        ("manifest.csv", b"file\n" + b"".join(f"f{i}.jpg\n".encode() for i in range(101)), "at most 100"),
    ],
)
def test_a_bad_manifest_as_a_whole_is_refused(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ManifestInvalid, match=reason):
        resolve(name, data)


def test_invalid_manifest_defaults_refuse_the_whole_manifest() -> None:
    for defaults in ({"preset": "ebay"}, {"mode": "sketch"}, {"colour": "red"}, {"options": []}):
        with pytest.raises(ManifestInvalid, match="default"):
            resolve("manifest.json", json.dumps({"defaults": defaults, "files": [{"file": "a.jpg"}]}))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["file", "sku", "mode", "preset", "quality", "background", "pose_id", "zzz"]),
            st.one_of(
                st.text(max_size=40),
                st.integers(),
                st.none(),
                st.booleans(),
                st.floats(allow_nan=False, allow_infinity=False),
            ),
            max_size=6,
        ),
        max_size=12,
    )
)
def test_any_json_rows_give_valid_specs_or_reasons_never_an_exception(rows: list[dict]) -> None:
    try:
        result = resolve("manifest.json", json.dumps({"files": rows}))
    except ManifestInvalid:
        assert rows == []  # only a manifest that names no files is refused as a whole here
        return
    for name, spec in result["files"].items():
        assert "/" not in name
        assert not name.startswith(".")
        if "error" in spec:
            assert isinstance(spec["error"], str)
            assert spec["error"]
        else:
            JobOptions.model_validate(spec["options"])
            assert spec["mode"] in {"ghost", "on-model"}
            assert spec["sku"] is None or (isinstance(spec["sku"], str) and len(spec["sku"]) <= 100)


@pytest.mark.parametrize(
    ("sku", "stem", "expected"),
    [
        ("SKU-1", "a", "SKU-1"),
        ("../../etc/passwd", "a", "etc_passwd"),
        ("Hemd Größe M", "a", "Hemd_Gr_e_M"),
        ("...", "front shot", "front_shot"),
        ("", "", ""),
        ("=cmd|' /C calc'!A0", "a", "cmd_C_calc_A0"),
    ],
)
def test_result_names_are_file_name_safe(sku: str, stem: str, expected: str) -> None:
    assert (batches.safe_name(sku) or batches.safe_name(stem)) == expected
