"""The competition data format of study ``geoloc``: reading, validating, loading views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geolab.geoloc.dataset import (
    HEADINGS,
    Record,
    image_paths,
    load_views,
    read_dataset,
    read_uuids,
)

ZAGREB = ("45.8150", "15.9819")
SPLIT = ("43.5081", "16.4402")


def write_jpeg(path: Path, colour=(200, 40, 40), size=(16, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG", quality=95)


def make_dataset(root: Path, text: str, images: list[str] | None = None) -> Path:
    """``data.csv`` holding ``text``; four photos for each uuid in ``images`` (default: all)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.csv").write_text(text, encoding="utf-8")
    if images is None:
        lines = [line.split(",") for line in text.strip().splitlines()]
        col = [c.strip() for c in lines[0]].index("uuid")
        images = [values[col] for values in lines[1:]]
    for i, name in enumerate(images):
        for k, path in enumerate(image_paths(root, name)):
            write_jpeg(path, colour=(40 * i % 256, 60 * k, 100))
    return root


def test_reads_a_valid_dataset(tmp_path):
    root = make_dataset(tmp_path / "ds", f"uuid,latitude,longitude\na,{','.join(ZAGREB)}\n"
                                         f"b,{','.join(SPLIT)}\n")  # fmt: skip
    records, report = read_dataset(root)
    assert [r.uuid for r in records] == ["a", "b"]
    assert records[0].lat == pytest.approx(45.815) and records[0].lon == pytest.approx(15.9819)
    assert records[1].paths == tuple(root / "images" / "b" / f"{h}.jpg" for h in HEADINGS)
    assert [p.name for p in records[1].paths] == ["0.jpg", "90.jpg", "180.jpg", "270.jpg"]
    assert report["rows"] == 2 and report["records"] == 2 and report["has_coords"]
    assert report["skipped"] == {"outside_bbox": 0, "missing_images": 0, "corrupt_images": 0}


def test_unnamed_index_column_and_extra_columns(tmp_path):
    # as DataFrame.to_csv writes it: a leading unnamed index; plus extra columns, any order
    text = (
        ",pano_id,longitude,uuid,latitude,note\n"
        f"0,P1,{ZAGREB[1]},a,{ZAGREB[0]},x\n"
        f"1,P2,{SPLIT[1]},b,{SPLIT[0]},\n"
    )
    records, report = read_dataset(make_dataset(tmp_path / "ds", text))
    assert [(r.uuid, r.lat, r.lon) for r in records] == [
        ("a", 45.815, 15.9819),
        ("b", 43.5081, 16.4402),
    ]
    assert report["extra_columns"] == ["pano_id", "note"]


def test_test_set_without_coordinates(tmp_path):
    root = make_dataset(tmp_path / "ds", "uuid\na\nb\n")
    records, report = read_dataset(root, require_coords=False)
    assert [(r.uuid, r.lat, r.lon) for r in records] == [("a", None, None), ("b", None, None)]
    assert report["has_coords"] is False
    with pytest.raises(ValueError, match=r"data\.csv: missing column.*'latitude', 'longitude'"):
        read_dataset(root)


def test_coordinates_are_not_read_when_not_required(tmp_path):
    # outside the box, blank, not a number, only one of the two: all ignored, nothing skipped
    text = f"uuid,latitude,longitude\na,{','.join(SPLIT)}\nb,0,0\nc,,\nd,abc,inf\n"
    root = make_dataset(tmp_path / "ds", text)
    records, report = read_dataset(root, require_coords=False)
    assert [(r.uuid, r.lat, r.lon) for r in records] == [(u, None, None) for u in "abcd"]
    assert report["has_coords"] is False and report["records"] == 4
    assert report["skipped"] == {"outside_bbox": 0, "missing_images": 0, "corrupt_images": 0}
    assert report["extra_columns"] == ["latitude", "longitude"]
    (root / "data.csv").write_text("uuid,latitude\na,\n", encoding="utf-8")
    assert len(read_dataset(root, require_coords=False)[0]) == 1
    # required, the same file is read and checked as always
    with pytest.raises(ValueError, match="missing column"):
        read_dataset(root)


def test_missing_data_csv_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere[/\\]data\.csv: not found"):
        read_dataset(tmp_path / "nowhere")


def test_missing_column_names_file_and_column(tmp_path):
    root = make_dataset(tmp_path / "ds", "uuid,latitude\na,45.0\n")
    with pytest.raises(ValueError, match=r"ds[/\\]data\.csv: missing column\(s\) \['longitude'\]"):
        read_dataset(root)


def test_duplicate_uuids_name_the_uuids_and_lines(tmp_path):
    text = "uuid,latitude,longitude\na,45,16\nb,45,16\na,45,16\nc,45,16\nb,45,16\n"
    root = make_dataset(tmp_path / "ds", text, images=[])
    with pytest.raises(ValueError, match="2 duplicate") as err:
        read_dataset(root)
    assert "'a' on lines 2, 4" in str(err.value) and "'b' on lines 3, 6" in str(err.value)
    assert "data.csv" in str(err.value)


@pytest.mark.parametrize("bad", ["", "abc", "nan", "inf"])
def test_coordinate_not_a_number_names_the_line(tmp_path, bad):
    text = f"uuid,latitude,longitude\na,45,16\nb,{bad},16\n"
    root = make_dataset(tmp_path / "ds", text)
    with pytest.raises(ValueError, match=rf"data\.csv: line 3: latitude '{bad}' is not a number"):
        read_dataset(root)


def test_data_csv_not_utf8_names_the_file_and_line(tmp_path):
    root = make_dataset(tmp_path / "ds", "uuid\na\n")
    (root / "data.csv").write_bytes("uuid,note\na,café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"ds[/\\]data\.csv: line 2: byte 0xe9 is not UTF-8"):
        read_dataset(root, require_coords=False)
    with pytest.raises(ValueError, match=r"data\.csv: line 2: byte 0xe9"):
        read_uuids(root)
    # far into the file (past the first chunk the reader decodes), after a byte-order mark
    lines = ["uuid,note", *(f"u{i},plain" for i in range(3000)), "z,\u017dupanja"]
    data = b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8")
    (root / "data.csv").write_bytes(data.replace("\u017d".encode(), "\u017d".encode("cp1250")))
    with pytest.raises(ValueError, match=r"data\.csv: line 3002: byte 0x8e is not UTF-8"):
        read_dataset(root, require_coords=False)


def test_data_csv_not_csv_names_the_file_and_line(tmp_path):
    root = make_dataset(tmp_path / "ds", "uuid\na\n")
    (root / "data.csv").write_text(f'uuid,note\na,x\nb,"{"y" * 200_000}"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"data\.csv: line 3: not valid CSV \(field larger"):
        read_dataset(root, require_coords=False)


@pytest.mark.parametrize("uuid", ["..", "a/b", "  "])
def test_unsafe_or_empty_uuid_is_an_error(tmp_path, uuid):
    root = make_dataset(tmp_path / "ds", f"uuid,latitude,longitude\n{uuid},45,16\n", images=[])
    with pytest.raises(ValueError, match="line 2: uuid .* empty or not a folder name"):
        read_dataset(root)


def test_outside_the_bounding_box_is_skipped_and_listed(tmp_path):
    text = (
        "uuid,latitude,longitude\n"
        "in,45.0,16.0\n"
        "rome,41.9,12.5\n"
        "edge,46.6,19.5\n"  # the box's corner is inside
        "east,45.0,19.6\n"
    )
    records, report = read_dataset(make_dataset(tmp_path / "ds", text))
    assert [r.uuid for r in records] == ["in", "edge"]
    assert report["skipped"]["outside_bbox"] == 2
    assert report["outside_bbox"] == [
        {"uuid": "rome", "line": 3, "latitude": 41.9, "longitude": 12.5},
        {"uuid": "east", "line": 5, "latitude": 45.0, "longitude": 19.6},
    ]


def test_missing_image_is_skipped_and_listed(tmp_path):
    root = make_dataset(tmp_path / "ds", "uuid,latitude,longitude\na,45,16\nb,45,16\nc,45,16\n",
                        images=["a", "b"])  # fmt: skip
    (root / "images" / "b" / "90.jpg").unlink()
    records, report = read_dataset(root)
    assert [r.uuid for r in records] == ["a"]
    assert report["skipped"]["missing_images"] == 2
    missing = {(m["uuid"], Path(m["file"]).name) for m in report["missing_images"]}
    assert missing == {("b", "90.jpg"), ("c", "0.jpg")}


def test_corrupt_images_are_skipped_and_listed(tmp_path):
    text = "uuid,latitude,longitude\na,45,16\nb,45,16\nc,45,16\n"
    root = make_dataset(tmp_path / "ds", text)
    (root / "images" / "b" / "180.jpg").write_bytes(b"this is not a jpeg")
    whole = (root / "images" / "c" / "270.jpg").read_bytes()
    (root / "images" / "c" / "270.jpg").write_bytes(whole[: len(whole) // 2])  # truncated
    records, report = read_dataset(root)
    assert [r.uuid for r in records] == ["a"]
    assert report["skipped"]["corrupt_images"] == 2
    bad = {(c["uuid"], Path(c["file"]).name, c["line"]) for c in report["corrupt_images"]}
    assert bad == {("b", "180.jpg", 3), ("c", "270.jpg", 4)}
    assert all(c["error"] for c in report["corrupt_images"])
    # without decoding, only existence is checked
    records, report = read_dataset(root, check_images=False)
    assert [r.uuid for r in records] == ["a", "b", "c"]
    assert report["skipped"]["corrupt_images"] == 0


def test_photos_not_8_bits_per_channel_are_skipped_and_listed(tmp_path):
    text = "uuid,latitude,longitude\nok,45,16\ndeep,45,16\nfloat,45,16\nwide,45,16\n"
    root = make_dataset(tmp_path / "ds", text)
    ok, deep, fl, wide = (image_paths(root, u) for u in ("ok", "deep", "float", "wide"))
    Image.new("L", (16, 16), 90).save(ok[0], format="JPEG")  # grey, RGBA, palette: converted
    Image.new("RGBA", (16, 16), (9, 8, 7, 6)).save(ok[1], format="PNG")
    Image.new("P", (16, 16), 3).save(ok[2], format="PNG")
    Image.new("I;16", (16, 16), 40000).save(deep[1], format="PNG")
    Image.new("F", (16, 16), 0.5).save(fl[3], format="TIFF")
    Image.new("I", (16, 16), 70000).save(wide[0], format="TIFF")
    records, report = read_dataset(root)
    assert [r.uuid for r in records] == ["ok"]
    assert report["skipped"]["corrupt_images"] == 3
    bad = [(c["uuid"], Path(c["file"]).name, c["error"]) for c in report["corrupt_images"]]
    assert [b[:2] for b in bad] == [("deep", "90.jpg"), ("float", "270.jpg"), ("wide", "0.jpg")]
    for (_, _, error), mode in zip(bad, ("I;16", "F", "I"), strict=True):
        assert error.startswith(f"pixel format {mode} is not 8 bits per channel")
    assert load_views(records[0], 8).shape == (4, 8, 8, 3)
    # load_views refuses them too rather than clipping them to white
    with pytest.raises(ValueError, match=r"90\.jpg: pixel format I;16 is not 8 bits per channel"):
        load_views(Record("deep", 45.0, 16.0, deep), 8)


def test_load_views_resizes_in_heading_order(tmp_path):
    root = tmp_path / "ds"
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 250)]
    for path, colour in zip(image_paths(root, "a"), colours, strict=True):
        write_jpeg(path, colour, size=(40, 30))  # not square: stretched to a square
    record = Record("a", 45.0, 16.0, image_paths(root, "a"))
    views = load_views(record, 12)
    assert views.shape == (4, 12, 12, 3) and views.dtype == np.uint8
    means = views.reshape(4, -1, 3).mean(1)
    np.testing.assert_allclose(means, colours, atol=8)


def test_load_views_names_a_bad_file(tmp_path):
    root = make_dataset(tmp_path / "ds", "uuid,latitude,longitude\na,45,16\n")
    record = read_dataset(root)[0][0]
    record.paths[2].write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"180\.jpg: cannot decode"):
        load_views(record, 8)
    record.paths[2].unlink()
    with pytest.raises(ValueError, match=r"180\.jpg: photo not found"):
        load_views(record, 8)
    with pytest.raises(ValueError, match="size must be >= 1"):
        load_views(record, 0)
