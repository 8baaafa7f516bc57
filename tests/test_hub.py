"""fasterpose.hub: downloads from a local HTTP server into a TORCH_HOME cache; every failure leaves it as it was."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from _http_server import closed_port_url, serve

from fasterpose import hub
from fasterpose.errors import CheckpointError

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # more than one read chunk
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_cache_dir_follows_torch_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert hub.cache_dir() == Path.home() / ".cache" / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert hub.cache_dir() == tmp_path / "th" / "hub" / "checkpoints"


def test_hash_prefix_from_name() -> None:
    assert hub.hash_prefix_from_name("resnet50-0676ba61.pth") == "0676ba61"
    assert hub.hash_prefix_from_name("shufflenetv2_x1-5666bf0f80.pth") == "5666bf0f80"
    assert hub.hash_prefix_from_name("pose_resnet_50_256x192.pth.tar") is None
    # MMPose names carry the hash before a date, not before the dot: not torch hub's convention
    assert hub.hash_prefix_from_name("res50_coco_256x192-ec54d7f3_20200709.pth") is None


def test_download_checks_hash_from_name_and_caches(cache: Path) -> None:
    name = f"weights-{SHA[:10]}.pth"
    with serve() as server:
        server.files[f"/models/{name}"] = PAYLOAD
        path = hub.cached_download(server.url(f"/models/{name}"), progress=False)
        assert path == cache / name and path.read_bytes() == PAYLOAD
        assert _listing(cache) == [name]
        again = hub.cached_download(server.url(f"/models/{name}"), progress=False)
        assert again == path and len(server.requests) == 1  # served from the cache


def test_cache_path_names_the_file_before_any_download(cache: Path) -> None:
    url = "https://example.org/a/b/yolox_tiny_8xb8-300e_humanart-6f3252f9.zip?download=1#top"
    assert hub.cache_path(url) == cache / "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip"  # the path, not the query
    assert hub.cache_path("https://example.org/dl?id=7", file_name="w.pth") == cache / "w.pth"
    assert not cache.exists()  # only a name: nothing is created
    with pytest.raises(hub.DownloadError, match="cannot tell the file name of https://example.org/; pass file_name"):
        hub.cache_path("https://example.org/")


def test_explicit_name_and_prefix(cache: Path) -> None:
    with serve() as server:
        server.files["/dl?id=7"] = PAYLOAD
        path = hub.cached_download(server.url("/dl?id=7"), file_name="res50_coco-x.pth", sha256_prefix=SHA[:8],
                                   progress=False)
        assert path == hub.cache_path(server.url("/dl?id=7"), file_name="res50_coco-x.pth")
    assert path.read_bytes() == PAYLOAD and _listing(cache) == ["res50_coco-x.pth"]


def test_hash_mismatch_keeps_nothing(cache: Path) -> None:
    name = f"weights-{'0' * 8}.pth"
    with serve() as server:
        server.files[f"/{name}"] = PAYLOAD
        with pytest.raises(hub.DownloadError, match=f"SHA-256 starts with {SHA[:8]}, expected 00000000"):
            hub.cached_download(server.url(f"/{name}"), progress=False)
    assert _listing(cache) == []


def test_truncated_transfer_keeps_nothing(cache: Path) -> None:
    with serve() as server:
        server.truncated["/w.pth"] = (PAYLOAD[:100000], len(PAYLOAD))
        with pytest.raises(hub.DownloadError, match=r"100000 of \d+ bytes|broke off"):
            hub.cached_download(server.url("/w.pth"), progress=False)
    assert _listing(cache) == []


def test_http_404_names_url_and_folder(cache: Path) -> None:
    with serve() as server:
        url = server.url("/missing-abcd.pth")
        with pytest.raises(hub.DownloadError) as info:
            hub.cached_download(url, progress=False)
    message = str(info.value)
    assert "HTTP 404" in message and url in message and str(cache) in message and "missing-abcd.pth" in message
    assert _listing(cache) == []


def test_no_network_names_url_file_and_folder(cache: Path) -> None:
    url = closed_port_url("/resnet18-f37072fd.pth")
    with pytest.raises(CheckpointError) as info:
        hub.cached_download(url, progress=False)
    message = str(info.value)
    assert url in message and str(cache) in message and "resnet18-f37072fd.pth" in message
    assert _listing(cache) == []


def test_corrupt_cached_file_is_reported_not_used(cache: Path) -> None:
    name = f"weights-{SHA[:8]}.pth"
    cache.mkdir(parents=True)
    corrupt = PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF])  # one byte changed, whatever its value
    (cache / name).write_bytes(corrupt)
    with pytest.raises(hub.DownloadError, match=f"cached file .*{name}.*Delete"):
        hub.cached_download(closed_port_url(f"/{name}"), progress=False)
    assert (cache / name).read_bytes() == corrupt  # reported, left for the user to delete


def test_hash_from_name_can_be_turned_off(cache: Path) -> None:
    """OpenMMLab's deploy zips carry another file's hash digits in their names: hash_from_name=False ignores them."""
    with serve() as server:
        server.files["/det-0123abcd.zip"] = PAYLOAD
        with pytest.raises(hub.DownloadError, match="expected 0123abcd"):
            hub.cached_download(server.url("/det-0123abcd.zip"), progress=False)
        assert _listing(cache) == []
        path = hub.cached_download(server.url("/det-0123abcd.zip"), hash_from_name=False, progress=False)
        assert path.read_bytes() == PAYLOAD
        # an explicit prefix is still checked
        (cache / "det-0123abcd.zip").unlink()
        with pytest.raises(hub.DownloadError):
            hub.cached_download(server.url("/det-0123abcd.zip"), sha256_prefix="ffff", hash_from_name=False,
                                progress=False)


def test_resumable_download_asks_for_the_rest_only(tmp_path: Path) -> None:
    dest = tmp_path / "big.zip"
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    with serve() as server:
        server.truncated["/big.zip"] = (PAYLOAD[:(1 << 20) + 7], len(PAYLOAD))
        with pytest.raises(hub.DownloadError, match=r"kept in .*big\.zip\.part: run again to resume\. do this"):
            hub.resumable_download(server.url("/big.zip"), dest, checksum=("md5", md5), hint="do this",
                                   progress=False)
        assert hub.partial_path(dest).stat().st_size == (1 << 20) + 7 and not dest.exists()
        server.files["/big.zip"] = PAYLOAD
        del server.truncated["/big.zip"]
        assert hub.resumable_download(server.url("/big.zip"), dest, checksum=("md5", md5), progress=False) == dest
        assert server.ranges_asked == [None, f"bytes={(1 << 20) + 7}-"]
    assert dest.read_bytes() == PAYLOAD and not hub.partial_path(dest).exists()


def test_resumable_download_whole_part_and_wrong_parts(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    part = hub.partial_path(dest)
    with serve() as server:
        server.files["/f.bin"] = PAYLOAD
        # a part that is already whole (killed before the rename), size unknown: the server's 416 says it is whole
        part.write_bytes(PAYLOAD)
        hub.resumable_download(server.url("/f.bin"), dest, progress=False)
        assert dest.read_bytes() == PAYLOAD and server.ranges_asked == [f"bytes={len(PAYLOAD)}-"]
        # a part longer than the published size is no prefix of it: downloaded afresh
        dest.unlink()
        part.write_bytes(PAYLOAD + b"extra")
        hub.resumable_download(server.url("/f.bin"), dest, size=len(PAYLOAD), progress=False)
        assert dest.read_bytes() == PAYLOAD and server.ranges_asked[-1] is None
        # a prefix that is wrong: the checksum fails on the whole file, which is deleted
        dest.unlink()
        part.write_bytes(b"X" * 1000)
        with pytest.raises(hub.DownloadError, match="SHA256 is .* it was deleted"):
            hub.resumable_download(server.url("/f.bin"), dest, checksum=("sha256", SHA), progress=False)
        assert not part.exists() and not dest.exists()
        # a server whose file is not the published size is refused before anything is written
        with pytest.raises(hub.DownloadError, match="not the published file"):
            hub.resumable_download(server.url("/f.bin"), dest, size=len(PAYLOAD) + 1, progress=False)
        assert not part.exists()
