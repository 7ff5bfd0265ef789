"""Tests for sdagd.datasets: IDX parsing, MNIST loading, locating, download."""

import doctest
import gzip
import os
import struct
import subprocess
import sys
import tracemalloc
import urllib.error
import urllib.request

import numpy as np
import pytest

from sdagd import datasets
from sdagd.datasets import (
    DatasetError,
    DatasetNotFoundError,
    load_mnist,
    read_idx,
    validation_split,
)

NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def idx_bytes(array, *, magic=None, extra=b"", cut=0):
    """Encode a uint8 array as IDX bytes.

    ``magic`` overrides the magic number, ``extra`` is appended and ``cut``
    bytes are dropped from the end, to build damaged files.
    """
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = struct.pack(f">I{array.ndim}i", magic, *array.shape)
    data = header + array.tobytes() + extra
    return data[:len(data) - cut]


def write_file(directory, name, data, *, gz=False):
    """Write ``data`` to ``directory/name`` (``name.gz`` if ``gz``)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (f"{name}.gz" if gz else name)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_split(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def write_mnist(directory, *, gz=False, n_train=7, n_test=5, **override):
    """Write a small synthetic MNIST-layout set; return the raw arrays.

    ``override`` maps a file name (dashes as underscores) to the bytes to
    write instead of the good content.
    """
    raw = {}
    raw["train-images-idx3-ubyte"], raw["train-labels-idx1-ubyte"] = (
        make_split(n_train, 0))
    raw["t10k-images-idx3-ubyte"], raw["t10k-labels-idx1-ubyte"] = (
        make_split(n_test, 1))
    for name in NAMES:
        data = override.get(name.replace("-", "_"), idx_bytes(raw[name]))
        write_file(directory, name, data, gz=gz)
    return raw


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No SDAGD_DATA, a private cache directory and no network access.

    Returns the cache directory that load_mnist will use.
    """
    monkeypatch.delenv("SDAGD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError(f"network disabled in tests ({url})")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path / "xdg-cache" / "sdagd" / "mnist"


# --------------------------------------------------------------------------
# Loading good files
# --------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_load_synthetic(tmp_path, gz):
    raw = write_mnist(tmp_path, gz=gz)
    (X_train, y_train), (X_test, y_test) = load_mnist(tmp_path)

    for X, y, prefix, n in [(X_train, y_train, "train", 7),
                            (X_test, y_test, "t10k", 5)]:
        assert X.shape == (n, 784)
        assert X.dtype == np.float32
        assert X.flags.c_contiguous and X.flags.writeable
        assert y.shape == (n,)
        assert y.dtype == np.uint8
        assert y.flags.writeable
        images = raw[f"{prefix}-images-idx3-ubyte"]
        expected = (images.reshape(n, 784) / 255.0).astype(np.float32)
        np.testing.assert_array_equal(X, expected)
        np.testing.assert_array_equal(y, raw[f"{prefix}-labels-idx1-ubyte"])


def test_pixel_scaling_exact(tmp_path):
    # Every byte value, so the scaling is checked over its whole range.
    images = np.resize(np.arange(256, dtype=np.uint8), (1, 28, 28))
    write_mnist(tmp_path, n_train=1,
                train_images_idx3_ubyte=idx_bytes(images))
    (X, _), _ = load_mnist(tmp_path)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(
        X[0], images.reshape(784).astype(np.float32) / np.float32(255))


def test_plain_preferred_over_gzip(tmp_path):
    raw = write_mnist(tmp_path)
    # A broken .gz next to every good plain file must not be read.
    for name in NAMES:
        (tmp_path / f"{name}.gz").write_bytes(b"not gzip")
    (_, y_train), _ = load_mnist(tmp_path)
    np.testing.assert_array_equal(y_train, raw["train-labels-idx1-ubyte"])


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_file(tmp_path, "x", idx_bytes(array), gz=True)
    out = read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.dtype == np.uint8 and out.flags.writeable


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------
# Damaged or inconsistent files
# --------------------------------------------------------------------------

LABELS = np.array([1, 2, 3], dtype=np.uint8)


@pytest.mark.parametrize("data, message", [
    (idx_bytes(LABELS, cut=1), "truncated: expected 3 data bytes, found 2"),
    (idx_bytes(LABELS, extra=b"\0\0"),
     "trailing data: expected 3 data bytes, found 5"),
    (b"\0\0\x08", "too short for an IDX header"),
    (b"\0\0\x08\x02\0\0\0\x03", "truncated header"),
    (idx_bytes(LABELS, magic=0x01000801), "bad magic 0x01000801"),
    (idx_bytes(LABELS, magic=0x00000D01), "unsupported IDX element type 0x0d"),
    (b"\0\0\x08\x00", "0 dimensions"),
    (idx_bytes(np.zeros((2, 0), np.uint8)), "must be positive"),
    (b"\0\0\x08\x01\xff\xff\xff\xfe", "must be positive"),
], ids=["truncated", "trailing", "short", "short-header", "magic",
        "type", "ndim0", "zero-dim", "negative-dim"])
def test_read_idx_rejects(tmp_path, data, message):
    path = write_file(tmp_path, "bad", data)
    with pytest.raises(DatasetError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name, what", [
    ("train-labels-idx1-ubyte", "labels"),
    ("t10k-images-idx3-ubyte", "images"),
])
def test_wrong_magic(tmp_path, name, what):
    # Swap the kinds: a labels file holding images and vice versa.
    wrong = (np.zeros((7, 28, 28), np.uint8) if what == "labels"
             else np.zeros(5, np.uint8))
    write_mnist(tmp_path, **{name.replace("-", "_"): idx_bytes(wrong)})
    expected = 0x0801 if what == "labels" else 0x0803
    actual = 0x0803 if what == "labels" else 0x0801
    with pytest.raises(DatasetError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert f"bad magic 0x{actual:08x}, expected 0x{expected:08x} ({what})" \
        in message
    assert name in message


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_truncated_payload(tmp_path, gz):
    images, _ = make_split(7, 0)
    write_mnist(tmp_path, gz=gz,
                train_images_idx3_ubyte=idx_bytes(images, cut=100))
    with pytest.raises(DatasetError,
                       match=r"truncated: expected 5488 data bytes, "
                             r"found 5388") as info:
        load_mnist(tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_trailing_bytes(tmp_path):
    _, labels = make_split(5, 1)
    write_mnist(tmp_path, t10k_labels_idx1_ubyte=idx_bytes(labels, extra=b"x"))
    with pytest.raises(DatasetError, match="trailing data.*1 extra"):
        load_mnist(tmp_path)


def test_count_mismatch(tmp_path):
    write_mnist(tmp_path,
                train_labels_idx1_ubyte=idx_bytes(np.zeros(6, np.uint8)))
    with pytest.raises(DatasetError, match="7 images but .* 6 labels"):
        load_mnist(tmp_path)


def test_bad_image_dims(tmp_path):
    images = np.zeros((5, 28, 27), np.uint8)
    write_mnist(tmp_path, t10k_images_idx3_ubyte=idx_bytes(images))
    with pytest.raises(DatasetError, match="28x28 pixels, found 28x27"):
        load_mnist(tmp_path)


def test_labels_out_of_range(tmp_path):
    labels = np.array([0, 9, 3, 10, 4, 255, 1], dtype=np.uint8)
    write_mnist(tmp_path, train_labels_idx1_ubyte=idx_bytes(labels))
    with pytest.raises(DatasetError,
                       match="label 10 at index 3 is out of range"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "crc", "garbage"])
def test_damaged_gzip(tmp_path, damage):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "crc":
        data[-5] ^= 0xFF  # inside the CRC-32 of the gzip trailer
    else:
        data[20:40] = b"\xff" * 20  # inside the deflate stream
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="damaged gzip data") as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------

@pytest.mark.parametrize("prefix, n", [("train", 60000), ("t10k", 10000)])
def test_checksum_mismatch(tmp_path, prefix, n):
    # The real MNIST sizes with made-up content: MNIST by the headers, so
    # the checksums apply; not MNIST by the content.  The images file is
    # read first, so it is the one reported.  (The labels checksum alone is
    # exercised by test_download_rejects_bad_content.)
    labels = np.random.default_rng(2).integers(0, 10, n, dtype=np.uint8)
    write_mnist(tmp_path, **{
        f"n_{'test' if prefix == 't10k' else 'train'}": n,
        f"{prefix}_images_idx3_ubyte": idx_bytes(np.zeros((n, 28, 28),
                                                          np.uint8)),
        f"{prefix}_labels_idx1_ubyte": idx_bytes(labels),
    })

    with pytest.raises(DatasetError, match="SHA-256 mismatch") as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path / f"{prefix}-images-idx3-ubyte") in message
    assert "re-download or delete the file" in message
    assert "verify=False" in message

    train, test = load_mnist(tmp_path, verify=False)
    X, y = train if prefix == "train" else test
    assert X.shape == (n, 784)
    np.testing.assert_array_equal(y, labels)


# --------------------------------------------------------------------------
# Locating the files
# --------------------------------------------------------------------------

def test_missing_file_in_path(tmp_path, clean_env):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ValueError)
    assert "t10k-labels-idx1-ubyte" in message
    assert "train-labels-idx1-ubyte" not in message.split("\n")[0]
    assert str(tmp_path) in message
    assert "SDAGD_DATA" in message
    assert "path=" in message
    assert "download" in message
    # An explicit path never falls back to downloading.
    assert "given as path; nothing was downloaded" in message


def test_missing_in_sdagd_data_does_not_download(tmp_path, monkeypatch,
                                                 clean_env):
    monkeypatch.setenv("SDAGD_DATA", str(tmp_path / "empty"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()  # clean_env makes any download attempt fail loudly
    message = str(info.value)
    assert str(tmp_path / "empty") in message
    assert "from SDAGD_DATA" in message
    assert "nothing was downloaded" in message


def test_missing_in_cache_without_download(clean_env):
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(download=False)
    message = str(info.value)
    assert str(clean_env) in message
    assert "SDAGD_DATA" in message
    assert not clean_env.exists()


def test_path_beats_sdagd_data(tmp_path, monkeypatch, clean_env):
    raw = write_mnist(tmp_path / "explicit", n_train=3)
    write_mnist(tmp_path / "from-env", n_train=4)
    monkeypatch.setenv("SDAGD_DATA", str(tmp_path / "from-env"))

    (X_train, y_train), _ = load_mnist(tmp_path / "explicit")
    assert len(X_train) == 3
    np.testing.assert_array_equal(y_train, raw["train-labels-idx1-ubyte"])

    (X_train, _), _ = load_mnist()
    assert len(X_train) == 4


def test_sdagd_data_beats_cache(tmp_path, monkeypatch, clean_env):
    write_mnist(clean_env, n_train=3)
    write_mnist(tmp_path / "from-env", n_train=4)
    (X_train, _), _ = load_mnist()
    assert len(X_train) == 3
    monkeypatch.setenv("SDAGD_DATA", str(tmp_path / "from-env"))
    (X_train, _), _ = load_mnist()
    assert len(X_train) == 4


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert datasets.mnist_cache_dir() == tmp_path / "sdagd" / "mnist"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = tmp_path / "home" / ".cache" / "sdagd" / "mnist"
    # The XDG spec says relative values are to be ignored.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert datasets.mnist_cache_dir() == default
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datasets.mnist_cache_dir() == default


# --------------------------------------------------------------------------
# Downloading (from local file:// mirrors; there is no network in tests)
# --------------------------------------------------------------------------

# Saved before any test replaces it; file:// URLs need no network.
_real_urlopen = urllib.request.urlopen


@pytest.fixture
def local_mirror(tmp_path, monkeypatch, clean_env):
    """Serve a synthetic set from file:// URLs, after a mirror that fails.

    Returns the raw arrays of the served set.
    """
    mirror = tmp_path / "mirror"
    raw = write_mnist(mirror, gz=True)
    monkeypatch.setattr(urllib.request, "urlopen", _real_urlopen)
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", (
        (tmp_path / "dead-mirror").as_uri() + "/",
        mirror.as_uri() + "/",
    ))
    return raw


def test_download_into_cache(local_mirror, clean_env, monkeypatch):
    # One file is already cached; only the other three are fetched.
    write_file(clean_env, "t10k-labels-idx1-ubyte",
               idx_bytes(local_mirror["t10k-labels-idx1-ubyte"]))
    fetched = []

    def recording_urlopen(url, *args, **kwargs):
        fetched.append(url)
        return _real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", recording_urlopen)

    (X_train, y_train), (X_test, y_test) = load_mnist()

    assert sorted(p.name for p in clean_env.iterdir()) == sorted(
        [f"{name}.gz" for name in NAMES[:3]] + ["t10k-labels-idx1-ubyte"])
    assert not any("t10k-labels" in url for url in fetched)
    assert any("dead-mirror" in url for url in fetched)
    np.testing.assert_array_equal(
        y_train, local_mirror["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(
        X_test, local_mirror["t10k-images-idx3-ubyte"].reshape(5, 784)
        .astype(np.float32) / np.float32(255))

    # Once cached, loading needs no network at all.
    def no_network(url, *args, **kwargs):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    (X_again, _), _ = load_mnist()
    np.testing.assert_array_equal(X_again, X_train)


def test_download_rejects_bad_content(tmp_path, local_mirror, clean_env):
    # Real-size labels with the wrong checksum must not be installed.
    labels = np.zeros(60000, np.uint8)
    write_file(tmp_path / "mirror", "train-labels-idx1-ubyte",
               idx_bytes(labels), gz=True)
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert "SHA-256 mismatch" in message
    assert "train-labels-idx1-ubyte.gz" in message
    assert "SDAGD_DATA" in message
    assert not (clean_env / "train-labels-idx1-ubyte.gz").exists()
    # Good files were kept and no temporary files were left behind.
    assert sorted(p.name for p in clean_env.iterdir()) == sorted(
        f"{name}.gz" for name in NAMES if "train-labels" not in name)


def test_download_failure(clean_env):
    # clean_env makes every urlopen call fail like an offline machine.
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert str(clean_env) in message
    for mirror in datasets.MNIST_MIRRORS:
        assert mirror + "train-images-idx3-ubyte.gz" in message
    assert "network disabled in tests" in message
    assert "SDAGD_DATA" in message
    assert "path=" in message
    assert list(clean_env.iterdir()) == []


# --------------------------------------------------------------------------
# validation_split
# --------------------------------------------------------------------------

def test_validation_split_holds_out_last_rows():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.uint8)
    (X_tr, y_tr), (X_val, y_val) = validation_split(X, y, n_val=3)
    np.testing.assert_array_equal(X_tr, X[:7])
    np.testing.assert_array_equal(y_val, [7, 8, 9])
    np.testing.assert_array_equal(X_val, X[7:])
    assert X_tr.flags.c_contiguous and X_val.flags.c_contiguous


@pytest.mark.parametrize("n_val", [0, -1, 10, 11])
def test_validation_split_rejects_n_val(n_val):
    X, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="n_val"):
        validation_split(X, y, n_val=n_val)


def test_validation_split_rejects_length_mismatch():
    with pytest.raises(ValueError, match="10 rows but y has 9"):
        validation_split(np.zeros((10, 2)), np.zeros(9), n_val=2)


# --------------------------------------------------------------------------
# Hostile files: the header bounds what is read
# --------------------------------------------------------------------------

TRAILING_MB = 64  # far more than the header announces; compresses to ~64 KB


def write_bomb(path, header_count, *, gz):
    """An IDX labels file whose header announces ``header_count`` bytes but
    which holds TRAILING_MB MB of zeros after them: a gzip "bomb" (or a huge
    plain file), written in chunks so that the test itself stays small."""
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(struct.pack(">Ii", 0x0801, header_count))
        for _ in range(TRAILING_MB):
            f.write(bytes(1 << 20))
    return path


def peak_memory(fn):
    """Peak Python-heap bytes allocated while ``fn()`` runs (it must raise
    DatasetError); returns (peak, the error)."""
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as info:
            fn()
        return tracemalloc.get_traced_memory()[1], info.value
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_read_idx_reads_no_more_than_the_header_announces(tmp_path, gz):
    path = write_bomb(tmp_path / ("bomb.gz" if gz else "bomb"), 100, gz=gz)
    peak, error = peak_memory(lambda: read_idx(path))
    assert str(path) in str(error) and "trailing data" in str(error)
    assert "expected 100 data bytes" in str(error)
    # Inflating the whole file first would need TRAILING_MB MB.
    assert peak < 8 << 20, f"read_idx allocated {peak / 2**20:.0f} MiB"


def test_load_mnist_reads_no_more_than_the_header_announces(tmp_path):
    write_mnist(tmp_path, gz=True, n_test=100)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_bomb(path, 100, gz=True)
    peak, error = peak_memory(lambda: load_mnist(tmp_path))
    assert "t10k-labels-idx1-ubyte.gz: trailing data" in str(error)
    # The real files need ~0.5 MB; the bomb would need TRAILING_MB MB.
    assert peak < 8 << 20, f"load_mnist allocated {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_absurd_header_sizes_are_refused_before_reading(tmp_path, gz):
    # 2**31-1 x 2**31-1 x 2**31-1 bytes announced; the data is 64 MB.
    path = tmp_path / ("huge.gz" if gz else "huge")
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(struct.pack(">I3i", 0x0803, *[2**31 - 1] * 3))
        for _ in range(TRAILING_MB):
            f.write(bytes(1 << 20))
    peak, error = peak_memory(lambda: read_idx(path))
    assert str(path) in str(error) and "MAX_IDX_BYTES" in str(error)
    assert peak < 8 << 20, f"read_idx allocated {peak / 2**20:.0f} MiB"


def test_max_idx_bytes_applies(tmp_path, monkeypatch):
    path = write_file(tmp_path, "x", idx_bytes(np.zeros((4, 5), np.uint8)))
    monkeypatch.setattr(datasets, "MAX_IDX_BYTES", 19)
    with pytest.raises(DatasetError, match=r"\(4, 5\) = 20 data bytes, more "
                                           r"than the 19"):
        read_idx(path)
    monkeypatch.setattr(datasets, "MAX_IDX_BYTES", 20)
    assert read_idx(path).shape == (4, 5)


def test_gzip_with_a_bad_header_and_an_intact_stream_blames_the_header(
        tmp_path):
    """A header error in a gzip file makes the reader check the stream (a
    damaged stream garbles headers too); an intact one leaves the blame
    with the header."""
    data = idx_bytes(LABELS, magic=0x00000D01)
    path = write_file(tmp_path, "x", data, gz=True)
    with pytest.raises(DatasetError,
                       match="unsupported IDX element type 0x0d"):
        read_idx(path)


def run_reader(filename, tmp_path):
    """read_idx(filename) in a child process limited to 1 GiB of memory and
    60 s, so that a reader that does not stop cannot hang the test suite or
    exhaust the machine; returns the child's (exit code, output)."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from sdagd.datasets import read_idx, DatasetError\n"
        "try:\n"
        f"    read_idx({str(filename)!r})\n"
        "except DatasetError as exc:\n"
        "    print('DatasetError:', exc)\n"
        "    sys.exit(3)\n"
        "except OSError as exc:\n"
        "    print('OSError:', exc)\n"
        "    sys.exit(4)\n")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env,
                              capture_output=True, text=True, timeout=60,
                              cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"read_idx({filename}) did not return within 60 s")
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_reading_dev_zero_fails_at_once(tmp_path):
    """Refused before anything is read: a device is not a data file."""
    rc, out = run_reader("/dev/zero", tmp_path)
    assert rc == 4, out
    assert "/dev/zero: it is a device, not a regular IDX file" in out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("gz", [False, True])
def test_a_fifo_is_refused_without_blocking(tmp_path, gz):
    """A named pipe with no writer used to block read_idx forever (and one fed
    endlessly was read up to the announced size): only regular files are
    read, checked on the open file before any read."""
    fifo = tmp_path / ("stream.gz" if gz else "stream")
    os.mkfifo(fifo)
    rc, out = run_reader(fifo, tmp_path)
    assert rc == 4, out
    assert "it is a FIFO (named pipe), not a regular IDX file" in out


# --------------------------------------------------------------------------
# Real MNIST (needs SDAGD_DATA; see the mnist_dir fixture)
# --------------------------------------------------------------------------

def test_real_mnist_loads(mnist_dir):
    (X_train, y_train), (X_test, y_test) = load_mnist(mnist_dir)

    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for X, y in [(X_train, y_train), (X_test, y_test)]:
        assert X.dtype == np.float32 and X.flags.c_contiguous
        assert y.dtype == np.uint8
        assert X.min() == 0.0 and X.max() == 1.0
        counts = np.bincount(y, minlength=10)
        assert len(counts) == 10 and counts.sum() == len(y)
        assert counts.min() > 0.08 * len(y)  # every digit well represented
    assert X_train.mean() == pytest.approx(0.1307, abs=1e-3)


def test_load_mnist_docstring_example(mnist_dir, monkeypatch):
    # The example calls load_mnist() without a path, so it goes through
    # SDAGD_DATA.
    monkeypatch.setenv("SDAGD_DATA", str(mnist_dir))
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(load_mnist, globs={}):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0 and failed == 0


@pytest.mark.parametrize("function", [read_idx, validation_split])
def test_other_docstring_examples(function):
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(function, globs={}):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0 and failed == 0
