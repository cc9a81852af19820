"""How ``gatewayctl enqueue`` tells a CSV from a plain id list."""

from __future__ import annotations

from pathlib import Path

from cli.enqueue import Defaults, read_lines


def test_a_csv_without_the_csv_suffix_is_read_by_its_parcel_id_header(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("platform,state,county,parcel_id\ndemo,FL,dixie,123-45\n")

    [line] = read_lines(path, Defaults(None, None, None, None))

    assert line.request is not None
    assert (line.request.platform, line.request.county, line.request.parcel_id) == (
        "demo",
        "dixie",
        "123-45",
    )


def test_a_plain_list_is_one_id_a_line(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("010813000036341100\n010813000036380000\n")

    lines = read_lines(path, Defaults("demo", "FL", "dixie", None))

    assert [line.request.parcel_id for line in lines if line.request] == [
        "010813000036341100",
        "010813000036380000",
    ]
