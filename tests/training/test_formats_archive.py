"""Uploaded zips: unsafe entries and zip bombs are refused before anything is written."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from training.formats.archive import (
    ArchiveLimits,
    UnsafeArchive,
    check_zip,
    dataset_root,
    extract_zip,
    write_zip,
)


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix: the mode lives in the high 16 bits
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil.txt", "'..'"),
        ("set/../../evil.txt", "'..'"),
        ("/etc/evil.txt", "absolute"),
        ("C:/evil.txt", "drive letter"),
        ("..\\evil.txt", "'..'"),
    ],
)
def test_paths_leaving_the_folder_are_refused(tmp_path: Path, name: str, why: str) -> None:
    source = _zip({"set/ok.txt": b"fine", name: b"bad"})
    with pytest.raises(UnsafeArchive, match=why) as refused:
        extract_zip(source, tmp_path / "out")
    assert refused.value.entry == name
    assert not (tmp_path / "out" / "set" / "ok.txt").exists()  # vetted before any write
    assert not (tmp_path / "evil.txt").exists()


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    source = _zip({"set/ok.txt": b"fine"}, links={"set/link": "/etc/passwd"})
    with pytest.raises(UnsafeArchive, match="symbolic link") as refused:
        extract_zip(source, tmp_path / "out")
    assert refused.value.entry == "set/link"


def test_too_many_entries_or_too_many_bytes_are_a_zip_bomb(tmp_path: Path) -> None:
    many = _zip({f"f{i}.txt": b"x" for i in range(11)})
    with pytest.raises(UnsafeArchive, match="11 entries; the limit is 10"):
        extract_zip(many, tmp_path / "a", ArchiveLimits(max_entries=10))
    bomb = _zip({"zeros.bin": bytes(5 * 1024 * 1024)})  # 5 MB of zeros deflate to ~5 kB
    assert len(bomb.getvalue()) < 20_000
    with pytest.raises(UnsafeArchive, match="unpacks to over 1 MB"):
        extract_zip(bomb, tmp_path / "b", ArchiveLimits(max_total_bytes=1024 * 1024))
    assert not (tmp_path / "b" / "zeros.bin").exists()


def test_a_lying_size_is_refused(tmp_path: Path) -> None:
    bomb = _zip({"zeros.bin": bytes(300_000)})
    with zipfile.ZipFile(bomb) as archive:
        info = archive.infolist()[0]
        assert check_zip(archive, ArchiveLimits(max_total_bytes=400_000)) == [info]
    # The central directory claims less than the data holds: zipfile stops at the claimed
    # size and its CRC check fails, and our copy counts real bytes too; either way, refused.
    raw = bytearray(bomb.getvalue())
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (1000).to_bytes(4, "little")  # uncompressed size
    with pytest.raises(UnsafeArchive):
        extract_zip(io.BytesIO(bytes(raw)), tmp_path / "c", ArchiveLimits(max_total_bytes=2000))


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        extract_zip(io.BytesIO(b"plain text"), tmp_path / "out")


def test_a_good_zip_extracts_and_its_top_folder_is_the_root(tmp_path: Path) -> None:
    source = _zip(
        {
            "cells/images/a.jpg": b"jpeg",
            "cells/labels/a.txt": b"0 0.5 0.5 1 1\n",
            "__MACOSX/cells/._a.jpg": b"resource fork",
        }
    )
    written = extract_zip(source, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "cells/images/a.jpg",
        "cells/labels/a.txt",
    ]
    assert dataset_root(tmp_path / "out") == tmp_path / "out" / "cells"
    assert (tmp_path / "out" / "cells" / "labels" / "a.txt").read_text() == "0 0.5 0.5 1 1\n"


def test_write_zip_packs_files_and_bytes_under_a_prefix(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"\xff\xd8 jpeg bytes")
    out = tmp_path / "out.zip"
    assert (
        write_zip(out, [("images/a.jpg", image), ("data.yaml", b"names: [a]\n")], prefix="x/") == 2
    )
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ["x/images/a.jpg", "x/data.yaml"]
        assert archive.read("x/images/a.jpg") == image.read_bytes()
        assert archive.getinfo("x/images/a.jpg").compress_type == zipfile.ZIP_STORED
        assert archive.getinfo("x/data.yaml").compress_type == zipfile.ZIP_DEFLATED
    with pytest.raises(ValueError, match="refusing"):
        write_zip(tmp_path / "bad.zip", [("../a.txt", b"")])
