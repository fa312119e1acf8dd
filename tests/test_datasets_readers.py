"""The file readers of weft.datasets, on files the tests write and on the real shared sets."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import pickle
import struct
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from weft.data import getobs, numobs, obs_source, obsview
from weft.datasets import (
    COCO,
    MNIST,
    CIFARBinary,
    DataError,
    IdxArray,
    ImageFolder,
    SegmentationPairs,
    cifar10,
    cifar100,
)
from weft.datasets.files import ZipStore

# --- idx (MNIST) --------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, cut: int = 0) -> Path:
    code = {("u", 1): 0x08, ("i", 4): 0x0C}[array.dtype.kind, array.dtype.itemsize]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    data = data[: len(data) - cut]
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_files(root: Path, n: int = 5, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(root / f"train-images-idx3-ubyte{suffix}", images, gz=gz)
    write_idx(root / f"train-labels-idx1-ubyte{suffix}", labels, gz=gz)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files(tmp_path, gz):
    images, labels = mnist_files(tmp_path, gz=gz)
    data = MNIST(tmp_path, "train")
    assert numobs(data) == 5
    image, label = getobs(data, 3)
    np.testing.assert_array_equal(image, images[3])
    assert label == labels[3]
    batch_images, batch_labels = getobs(data, np.array([4, 0]))
    np.testing.assert_array_equal(batch_images, images[[4, 0]])
    np.testing.assert_array_equal(batch_labels, labels[[4, 0]])
    assert obs_source(data, 2).endswith(f"train-images-idx3-ubyte{'.gz' if gz else ''} item 2")


def test_idx_big_endian_values(tmp_path):
    values = np.arange(6, dtype=np.int32).reshape(3, 2) * 1000
    data = IdxArray(write_idx(tmp_path / "x.idx", values))
    np.testing.assert_array_equal(getobs(data, 1), [2000, 3000])


def test_idx_truncated_file_names_it(tmp_path):
    path = write_idx(tmp_path / "t.idx", np.zeros((4, 3, 3), np.uint8), cut=5)
    with pytest.raises(
        DataError, match=r"t\.idx is truncated: its header declares shape \(4, 3, 3\)"
    ):
        IdxArray(path)


def test_idx_truncated_gzip_names_it(tmp_path):
    path = write_idx(tmp_path / "t.gz", np.zeros((40, 9, 9), np.uint8), gz=True)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"t\.gz"):
        getobs(IdxArray(path), 0)


def test_idx_bad_magic(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(DataError, match=r"x\.idx is not an idx file: its first bytes 504b0304"):
        IdxArray(tmp_path / "x.idx")


def test_mnist_count_mismatch_and_missing(tmp_path):
    mnist_files(tmp_path, n=5, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"holds 5 images but .*train-labels-idx1-ubyte holds 4"):
        MNIST(tmp_path, "train")
    with pytest.raises(DataError, match=r"has neither t10k-images-idx3-ubyte\.gz nor"):
        MNIST(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        MNIST(tmp_path, "valid")


def test_mnist_real(shared_data):
    for name in ("mnist", "fashion_mnist"):
        train, test = MNIST(shared_data / name, "train"), MNIST(shared_data / name, "test")
        assert (numobs(train), numobs(test)) == (60000, 10000)
        images, labels = getobs(test, np.arange(100))
        assert images.shape == (100, 28, 28) and images.dtype == np.uint8
        assert set(labels.tolist()) <= set(range(10)) and images.max() > 200
    assert getobs(MNIST(shared_data / "mnist", "train"), 0)[1] == 5  # the famous first '5'


# --- CIFAR binary -------------------------------------------------------------------------------


def cifar_records(path: Path, labels: list[tuple[int, ...]]) -> np.ndarray:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8)
    path.write_bytes(
        b"".join(bytes(lab) + img.tobytes() for lab, img in zip(labels, images, strict=True))
    )
    return images.transpose(0, 2, 3, 1)


def test_cifar10_binary(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    expected = [
        cifar_records(folder / f"data_batch_{i}.bin", [(i,), (i + 1,)]) for i in range(1, 6)
    ]
    data = cifar10(tmp_path, "train")
    assert numobs(data) == 10
    image, label = getobs(data, 5)  # record 1 of data_batch_3
    np.testing.assert_array_equal(image, expected[2][1])
    assert label == 4
    assert obs_source(data, 5).endswith("data_batch_3.bin record 1")
    copy = pickle.loads(pickle.dumps(data))
    np.testing.assert_array_equal(getobs(copy, 9)[0], expected[4][1])


def test_cifar100_fine_and_coarse(tmp_path):
    images = cifar_records(tmp_path / "train.bin", [(3, 71), (19, 5)])
    fine, coarse = cifar100(tmp_path), cifar100(tmp_path, label="coarse")
    assert getobs(fine, 0)[1] == 71 and getobs(coarse, 0)[1] == 3
    np.testing.assert_array_equal(getobs(fine, 1)[0], images[1])


def test_cifar_truncated_and_missing(tmp_path):
    (tmp_path / "test_batch.bin").write_bytes(b"\0" * 3000)
    with pytest.raises(DataError, match=r"test_batch\.bin is truncated .* 3073-byte records"):
        CIFARBinary([tmp_path / "test_batch.bin"])
    with pytest.raises(DataError, match=r"does not hold the CIFAR-10 binary files \['data_batch_1"):
        cifar10(tmp_path, "train")


# --- image folders on disk and in zips ------------------------------------------------------------


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image[..., ::-1])[1].tobytes()


def image_tree(n_per_class: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {
        f"{cls}/{k}.png": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        for cls in ("dog", "cat")
        for k in range(n_per_class)
    }


def test_image_folder_on_disk(tmp_path):
    tree = image_tree()
    for name, image in tree.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(png(image))
    (tmp_path / "README.txt").write_text("not an image, not in a class folder")
    data = ImageFolder(tmp_path)
    assert data.classes == ["cat", "dog"] and numobs(data) == 4
    image, label = getobs(data, 2)
    np.testing.assert_array_equal(image, tree["dog/0.png"])
    assert label == 1
    assert obs_source(obsview(data, [3, 2]), 1) == str(tmp_path / "dog" / "0.png")


def write_zip(path: Path, tree: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in tree.items():
            z.writestr(name, data)
    return path


def _read_in_child(data, queue):
    queue.put(getobs(data, 1)[1])


def test_image_folder_in_zip_works_across_fork(tmp_path):
    tree = image_tree()
    archive = write_zip(tmp_path / "set.zip", {f"train/{k}": png(v) for k, v in tree.items()})
    data = ImageFolder(archive, "train")
    np.testing.assert_array_equal(getobs(data, 0)[0], tree["cat/0.png"])  # opens in the parent
    assert obs_source(data, 0) == f"{archive}:train/cat/0.png"
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        queue = ctx.Queue()
        child = ctx.Process(target=_read_in_child, args=(data, queue))
        child.start()
        assert queue.get(timeout=60) == 0
        child.join()
        assert child.exitcode == 0


def test_corrupt_image_names_file_and_index(tmp_path):
    tree = {k: png(v) for k, v in image_tree().items()}
    tree["dog/1.png"] = b"\x89PNG garbage"
    archive = write_zip(tmp_path / "bad.zip", tree)
    data = ImageFolder(archive)
    with pytest.raises(
        DataError,
        match=r"ImageFolder observation 3: cannot decode image file .*bad\.zip:dog/1\.png",
    ):
        getobs(data, 3)


def test_zip_store_reads_stored_and_deflated_members_alike(tmp_path):
    contents = {f"m{i}": bytes(np.random.default_rng(i).integers(0, 256, 300, dtype=np.uint8))
                for i in range(4)}  # fmt: skip
    path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i, (name, data) in enumerate(contents.items()):
            # a local extra field longer than the central one moves the data: found anyway
            info = zipfile.ZipInfo(name)
            info.extra = b"\xfe\xca\x04\x00pad!" if i == 1 else b""
            z.writestr(info, data, zipfile.ZIP_DEFLATED if i == 2 else zipfile.ZIP_STORED)
    store = ZipStore(path)
    assert [store.read(name) for name in contents] == list(contents.values())
    assert store.read("m0") == contents["m0"]  # from the cached span
    with pytest.raises(DataError, match=r"mixed\.zip:nope is not in the archive"):
        store.read("nope")


def test_zip_store_detects_a_corrupt_stored_member(tmp_path):
    path = write_zip(tmp_path / "c.zip", {"a.bin": b"x" * 100, "b.bin": b"y" * 100})
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"y" * 100) + 50] ^= 0xFF
    path.write_bytes(bytes(raw))
    store = ZipStore(path)
    assert store.read("a.bin") == b"x" * 100
    with pytest.raises(DataError, match=r"cannot read .*c\.zip:b\.bin: bad CRC-32"):
        store.read("b.bin")


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no images in .*empty: expected <class>/<image>"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere")
    archive = write_zip(tmp_path / "a.zip", {"cow/0.png": png(np.zeros((2, 2, 3), np.uint8))})
    with pytest.raises(DataError, match=r"class folders \['cow'\] that are not among the declared"):
        ImageFolder(archive, classes=["cat", "dog"])


def test_cifar10_jpg_zip_real(shared_data):
    data = ImageFolder(shared_data / "cifar10" / "cifar10_jpg.zip", "test")
    assert numobs(data) == 10000 and data.classes[0] == "airplane"
    image, label = getobs(data, 9999)
    assert image.shape == (32, 32, 3) and label == 9  # test images are sorted by class


# --- segmentation pairs ---------------------------------------------------------------------------


def test_segmentation_pairs(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "ann").mkdir()
    image = np.full((4, 6, 3), 200, np.uint8)
    mask = np.arange(24, dtype=np.uint8).reshape(4, 6) % 3
    (tmp_path / "img" / "a.jpg").write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    cv2.imwrite(str(tmp_path / "ann" / "a.png"), mask)
    data = SegmentationPairs(tmp_path / "img", tmp_path / "ann")
    got_image, got_mask = getobs(data, 0)
    assert got_image.shape == (4, 6, 3)
    np.testing.assert_array_equal(got_mask, mask)
    cv2.imwrite(str(tmp_path / "img" / "b.png"), image)
    with pytest.raises(
        DataError, match=r"1 images in .*img have no mask .*: b\.png \(pass strict=False"
    ):
        SegmentationPairs(tmp_path / "img", tmp_path / "ann")
    assert numobs(SegmentationPairs(tmp_path / "img", tmp_path / "ann", strict=False)) == 1
    cv2.imwrite(str(tmp_path / "ann" / "b.png"), mask[:2])
    with pytest.raises(
        DataError, match=r"observation 1: mask .*b\.png is 6x2 but its image .*b\.png is 6x4"
    ):
        getobs(SegmentationPairs(tmp_path / "img", tmp_path / "ann"), 1)


def test_segmentation_real(shared_data):
    camvid = SegmentationPairs(shared_data / "camvid_val/val", shared_data / "camvid_val/valannot")
    image, mask = getobs(camvid, 0)
    assert numobs(camvid) == 101 and image.shape == (360, 480, 3) and mask.max() <= 11
    pets = SegmentationPairs(
        shared_data / "pets_subset/images", shared_data / "pets_subset/annotations/trimaps"
    )
    image, mask = getobs(pets, 0)
    assert numobs(pets) == 150 and mask.shape == image.shape[:2]
    assert set(np.unique(mask).tolist()) <= {1, 2, 3}


# --- COCO -----------------------------------------------------------------------------------------


def coco_doc(**changes) -> dict:
    doc = {
        "images": [{"id": 7, "file_name": "a.png", "width": 8, "height": 6}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "bbox": [1, 2, 3, 4],
                "segmentation": [[1, 2, 4, 2, 4, 6]],
                "keypoints": [2, 3, 2, 0, 0, 0],
            }
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "eye"]}],
    }
    doc.update(changes)
    return doc


def test_coco(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((6, 8, 3), np.uint8))
    (tmp_path / "ann.json").write_text(json.dumps(coco_doc()))
    sample = getobs(COCO(tmp_path / "ann.json"), 0)
    assert sample["image"].shape == (6, 8, 3)
    np.testing.assert_array_equal(sample["boxes"], [[1, 2, 4, 6]])
    np.testing.assert_array_equal(sample["labels"], [1])
    np.testing.assert_array_equal(sample["polygons"][0][0], [[1, 2], [4, 2], [4, 6]])
    np.testing.assert_array_equal(sample["keypoints"], [[[2, 3, 2], [0, 0, 0]]])


def test_coco_errors(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"ann\.json is not valid JSON"):
        COCO(path)
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="is not a COCO file: it has no 'annotations' list"):
        COCO(path)
    bad = coco_doc()
    bad["annotations"][0]["image_id"] = 99
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="annotation 0 \\(id 1\\) refers to image id 99"):
        COCO(path)
    path.write_text(json.dumps(coco_doc()))
    with pytest.raises(DataError, match=r"COCO observation 0: cannot read .*a\.png"):
        getobs(COCO(path), 0)


def test_coco_real(shared_data):
    data = COCO(shared_data / "coco_keypoints" / "annotations.json")
    samples = [getobs(data, i) for i in range(numobs(data))]
    assert numobs(data) == 4 and sum(len(s["labels"]) for s in samples) == 14
    for s in samples:
        assert s["keypoints"].shape == (len(s["labels"]), 17, 3)
        h, w = s["image"].shape[:2]
        assert (s["boxes"][:, 2] <= w + 1).all() and (s["boxes"][:, 3] <= h + 1).all()


@pytest.mark.parametrize("parallel", ["thread", "process"])
def test_loader_names_the_corrupt_file(tmp_path, parallel):
    from weft.data import DataLoader

    tree = {k: png(v) for k, v in image_tree().items()}
    tree["cat/1.png"] = b"garbage"
    data = ImageFolder(write_zip(tmp_path / "c.zip", tree))
    with pytest.raises(DataError, match=r"sample 1 \(.*c\.zip:cat/1\.png\) failed in loader"):
        for _ in DataLoader(data, 4, parallel=parallel, workers=1):
            pass


def test_cifar10_jpg_matches_lossless_originals(shared_data):
    """The zip's JPEGs decode to the original pixels (RGB order, within JPEG loss)."""
    from weft.datasets import decode_image

    root = shared_data / "cifar10"
    data = ImageFolder(root / "cifar10_jpg.zip", "train")
    order = (root / "train_order.csv").read_text().splitlines()[1:6]
    for line in order:
        index, label, path = line.split(",")
        k = data.files.index(path.removeprefix("train/"))
        image, got_label = getobs(data, k)
        png = root / "first200_lossless_png" / "train" / f"{int(index) + 1}.png"
        original = decode_image(png.read_bytes(), str(png))
        assert got_label == int(label)
        assert np.abs(image.astype(int) - original).mean() < 12  # JPEG q75, 4:2:0
