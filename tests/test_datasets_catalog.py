"""The data set catalog: resolution, path-escape rejection, verified downloads from a local
HTTP server, and the messages for bad catalogs."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from weft.data import getobs, numobs
from weft.datasets import Catalog, DataError, Shapes, default_catalog, download, load


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving the files the test puts in `root`."""
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes())


def write_catalog(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- downloads ------------------------------------------------------------------------------------


def test_download_verifies_and_is_atomic(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"hello weft")
    target = tmp_path / "dl" / "f.bin"
    assert download(f"{url}/f.bin", target, sha(b"hello weft")).read_bytes() == b"hello weft"
    (root / "f.bin").write_bytes(b"changed upstream")
    assert download(f"{url}/f.bin", target, sha(b"hello weft")) == target  # cached, no refetch
    other = tmp_path / "dl" / "g.bin"
    with pytest.raises(
        DataError,
        match=rf"sha256 mismatch for {url}/f\.bin: expected {'0' * 64}, got {sha(b'changed upstream')}; nothing was kept",
    ):
        download(f"{url}/f.bin", other, "0" * 64)
    assert sorted(p.name for p in other.parent.iterdir()) == ["f.bin"]  # no partial file left
    with pytest.raises(
        DataError, match=r"cannot download .*/missing\.bin: HTTP 404 File not found"
    ):
        download(f"{url}/missing.bin", other, "0" * 64)


def test_catalog_downloads_a_set_on_load(server, isolated):
    root, url = server
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    files = {
        "train-images-idx3-ubyte.gz": idx_bytes(images),
        "train-labels-idx1-ubyte.gz": idx_bytes(np.array([3, 1], np.uint8)),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    listed = ",\n".join(f'{{ url = "{url}/{n}", sha256 = "{sha(d)}" }}' for n, d in files.items())
    catalog = Catalog.read(
        write_catalog(
            isolated / "Data.toml",
            f'[datasets.tiny]\nformat = "mnist"\nsplits = {{ train = "train" }}\nfiles = [\n{listed}\n]\n',
        )
    )
    entry = catalog["tiny"]
    assert not entry.present() and entry.location() == isolated / "cache" / "tiny"
    data = load("tiny", "train", catalog=catalog)
    np.testing.assert_array_equal(getobs(data, 1)[0], images[1])
    assert entry.present()
    assert sorted(p.name for p in (isolated / "cache").iterdir()) == [
        "tiny"
    ]  # staging renamed away


def test_catalog_download_mismatch_keeps_nothing(server, isolated):
    root, url = server
    (root / "a.bin").write_bytes(b"tampered")
    catalog = Catalog.read(
        write_catalog(
            isolated / "Data.toml",
            f'[datasets.bad]\nformat = "mnist"\nsplits = {{ train = "train" }}\n'
            f'files = [{{ url = "{url}/a.bin", sha256 = "{"ab" * 32}" }}]\n',
        )
    )
    with pytest.raises(DataError, match=f"expected {'ab' * 32}, got {sha(b'tampered')}"):
        load("bad", "train", catalog=catalog)
    assert not catalog["bad"].present()
    assert not list((isolated / "cache" / ".bad.partial").iterdir())
    with pytest.raises(DataError, match=r"is not at .*cache/bad \(download=False\)"):
        load("bad", "train", catalog=catalog, download=False)


def test_tar_archive_is_unpacked(server, isolated):
    root, url = server
    records = bytes([7]) + bytes(range(256)) * 12  # one CIFAR-10 record: label 7
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = len(records)
        tar.addfile(info, io.BytesIO(records))
    (root / "c.tar.gz").write_bytes(buffer.getvalue())
    catalog = Catalog.read(
        write_catalog(
            isolated / "Data.toml",
            f'[datasets.c10]\nformat = "cifar10-binary"\nsplits = {{ test = "test" }}\n'
            f'files = [{{ url = "{url}/c.tar.gz", sha256 = "{sha(buffer.getvalue())}" }}]\n',
        )
    )
    data = load("c10", "test", catalog=catalog)
    assert numobs(data) == 1 and getobs(data, 0)[1] == 7


def test_tar_with_escaping_member_is_refused(server, isolated):
    root, url = server
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (root / "e.tar.gz").write_bytes(buffer.getvalue())
    catalog = Catalog.read(
        write_catalog(
            isolated / "Data.toml",
            f'[datasets.e]\nformat = "mnist"\nsplits = {{ train = "train" }}\n'
            f'files = [{{ url = "{url}/e.tar.gz", sha256 = "{sha(buffer.getvalue())}" }}]\n',
        )
    )
    with pytest.raises(DataError, match=r"holds '\.\./evil\.txt', which is a link or lies outside"):
        load("e", "train", catalog=catalog)
    assert not (isolated / "cache" / "evil.txt").exists()


# --- resolution -----------------------------------------------------------------------------------


def test_search_path_order_and_relative_paths(isolated, monkeypatch):
    (isolated / "other" / "data").mkdir(parents=True)
    project = write_catalog(
        isolated / "Data.toml",
        '[datasets.mine]\nformat = "shapes"\nsplits = { train = { n = 3 } }\n'
        '[datasets.mnist]\ndescription = "project override"\nformat = "shapes"\n'
        "splits = { train = { n = 2 } }\n",
    )
    override = write_catalog(
        isolated / "other" / "Over.toml",
        '[datasets.mine]\nformat = "shapes"\npath = "data"\nsplits = { train = { n = 5 } }\n',
    )
    assert numobs(load("mine", "train")) == 3  # ./Data.toml
    assert default_catalog()["mnist"].description == "project override"  # beats the built-in
    monkeypatch.setenv("WEFT_CATALOG", str(override))
    entry = default_catalog()["mine"]
    assert (
        entry.catalog == str(override)
        and entry.location() == (isolated / "other" / "data").resolve()
    )
    assert numobs(load("mine", "train")) == 5
    assert default_catalog().files[:2] == [str(override), str(project)]


def test_user_catalog(isolated):
    write_catalog(
        isolated / "config" / "weft" / "Data.toml",
        '[datasets.user_set]\nformat = "shapes"\nsplits = { a = { n = 4 } }\n',
    )
    assert numobs(load("user_set", "a")) == 4


def test_weft_data_points_the_builtin_catalog_at_real_sets(isolated, monkeypatch, shared_data):
    monkeypatch.setenv("WEFT_DATA", str(shared_data))
    entry = default_catalog()["mnist"]
    assert entry.location() == shared_data / "mnist" and entry.present()
    assert numobs(load("cifar10_jpg", "test")) == 10000
    assert set(load("camvid_val")) == {"val"}


def test_builtin_without_data_points_at_cache(isolated):
    catalog = default_catalog()
    entry = catalog["cifar10"]
    assert entry.location() == isolated / "cache" / "cifar10_binary" and not entry.present()
    assert entry.files[0].url == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert isinstance(load("shapes", "valid"), Shapes)


@pytest.mark.parametrize(
    "path", ["../outside", "a/../../outside", "/etc/passwd"], ids=["up", "nested", "absolute"]
)
def test_paths_cannot_escape_the_catalog_folder(isolated, path):
    catalog = write_catalog(
        isolated / "cat" / "Data.toml",
        f'[datasets.x]\nformat = "mnist"\npath = "{path}"\nsplits = {{ train = "train" }}\n',
    )
    with pytest.raises(DataError, match=r"datasets\.x\.path: path .* (leads outside|is absolute)"):
        Catalog.read(catalog)


def test_split_paths_cannot_escape(isolated):
    (isolated / "cat" / "seg").mkdir(parents=True)
    catalog = Catalog.read(
        write_catalog(
            isolated / "cat" / "Data.toml",
            '[datasets.s]\nformat = "segmentation"\npath = "seg"\n'
            'splits = { val = { images = "../..", masks = "m" } }\n',
        )
    )
    with pytest.raises(DataError, match=r"datasets\.s\.splits: path '\.\./\.\.' leads outside"):
        load("s", "val", catalog=catalog)


# --- bad input ------------------------------------------------------------------------------------


def test_unknown_name_suggests_close_matches(isolated):
    with pytest.raises(DataError, match=r"unknown data set 'mnsit'; did you mean 'mnist'\?"):
        load("mnsit")
    with pytest.raises(DataError, match=r"unknown data set 'zzz'; known data sets: camvid_val"):
        load("zzz")


def test_unknown_split(isolated):
    with pytest.raises(DataError, match=r"has no split 'test'; its splits are 'train', 'valid'"):
        load("shapes", "test")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[datasets.x]\nformat = 1\nsplits = {}\n",
            r"datasets\.x\.format must be a string, got int",
        ),
        (
            '[datasets.x]\nformat = "mnist"\nsplit = {}\n',
            r"unknown keys \['split'\]; valid keys are \['classes', 'description'",
        ),
        ('[datasets.x]\nformat = "mnist"\n', r"datasets\.x has no 'splits'"),
        (
            '[datasets.x]\nformat = "jpeg2000"\nsplits = { a = "a" }\n',
            r"unknown format 'jpeg2000'; known formats are \['cifar10-binary'",
        ),
        ('[datasets.x]\nformat = "mnist"\nsplits = {}\n', r"datasets\.x\.splits is empty"),
        (
            '[datasets.x]\nformat = "mnist"\nsplits = { a = "a" }\nfiles = [{ url = "u", sha256 = "abc" }]\n',
            r"files\[0\]\.sha256 must be 64 hex digits, got 'abc'",
        ),
        (
            '[datasets.x]\nformat = "mnist"\nsplits = { a = "a" }\nclasses = [1, 2]\n',
            r"classes must be an array of strings",
        ),
        (
            '[dataset.x]\nformat = "mnist"\n',
            r"unknown top-level keys \['dataset'\]; the only valid one is 'datasets'",
        ),
        ("[datasets.x\n", r"is not valid TOML"),
    ],
    ids=[
        "type",
        "unknown-key",
        "no-splits",
        "format",
        "empty-splits",
        "sha",
        "classes",
        "top",
        "toml",
    ],
)
def test_bad_catalogs(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        Catalog.read(write_catalog(tmp_path / "Data.toml", text))


def test_missing_local_set_without_files(isolated):
    catalog = Catalog.read(
        write_catalog(
            isolated / "Data.toml",
            '[datasets.gone]\nformat = "mnist"\npath = "nothing"\nsplits = { train = "train" }\n',
        )
    )
    assert not catalog["gone"].present()
    with pytest.raises(
        DataError, match=r"gone is not at .*nothing and its catalog entry .* lists no files"
    ):
        load("gone", "train", catalog=catalog)


def test_example_catalog_parses(isolated):
    example = Path(__file__).resolve().parents[1] / "examples" / "Data.toml"
    catalog = Catalog.read(example)
    assert {"flowers", "streets", "people", "mnist_mirror", "shapes64"} <= set(catalog.entries)
    assert catalog["flowers"].location() == example.parent / "data" / "flowers"
    assert getobs(load("shapes64", "valid", catalog=catalog), 0)["image"].shape == (64, 64, 3)
