"""Loading MNIST and other data sets stored as IDX files.

MNIST comes as four IDX files (a tiny big-endian array format): training and
test images (``*-images-idx3-ubyte``, N x 28 x 28 unsigned bytes) and their
labels (``*-labels-idx1-ubyte``, N unsigned bytes).  :func:`load_mnist` reads
them from a directory and returns float32 images scaled to [0, 1] together
with uint8 labels.  Each file may be stored plain or gzipped (``.gz``); when
both exist the plain one is used because it is faster to read.

Where the files are looked for
------------------------------
1. The ``path`` argument of :func:`load_mnist`.  Only that directory is used.
2. The environment variable ``SDAGD_DATA``.  Only that directory is used and
   nothing is downloaded, so that a CI job pointed at a shared copy fails
   loudly instead of quietly fetching the data from the internet.
3. The user cache directory ``$XDG_CACHE_HOME/sdagd/mnist`` (by default
   ``~/.cache/sdagd/mnist``).  Missing files are downloaded into it when
   ``download=True``.

Any other directory of IDX files with the same names and layout (a small
synthetic set, Fashion-MNIST, ...) loads the same way.  The SHA-256 of the
uncompressed content is checked only for files whose header announces the
real MNIST size, and can be switched off with ``verify=False``.

The module needs only the standard library and NumPy.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import operator
import os
import shutil
import stat
import struct
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._files import open_regular

__all__ = [
    "DatasetError",
    "DatasetNotFoundError",
    "MAX_IDX_BYTES",
    "MNIST_MIRRORS",
    "load_mnist",
    "mnist_cache_dir",
    "read_idx",
    "validation_split",
]

#: Environment variable naming a directory that holds the IDX files.
ENV_VAR = "SDAGD_DATA"

#: Base URLs tried in order when downloading; each must end with ``/``.
#: The original site (yann.lecun.com) now often refuses downloads, so these
#: are the mirrors that the common ML libraries use.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: Seconds to wait for a mirror to respond before trying the next one.
DOWNLOAD_TIMEOUT = 30.0

_IDX_UBYTE = 0x08
_IMAGE_SHAPE = (28, 28)
_NUM_CLASSES = 10


class _FileSpec(NamedTuple):
    magic: int  # expected IDX magic number
    what: str  # "images" or "labels", for error messages
    count: int  # number of items in the real MNIST file
    sha256: str  # SHA-256 of the real file's uncompressed content


_TRAIN_IMAGES = "train-images-idx3-ubyte"
_TRAIN_LABELS = "train-labels-idx1-ubyte"
_TEST_IMAGES = "t10k-images-idx3-ubyte"
_TEST_LABELS = "t10k-labels-idx1-ubyte"

# Checksums are of the uncompressed content, not of the .gz files: the same
# data is distributed with different gzip headers (timestamps, levels).
_MNIST_FILES = {
    _TRAIN_IMAGES: _FileSpec(
        0x00000803, "images", 60000,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    _TRAIN_LABELS: _FileSpec(
        0x00000801, "labels", 60000,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    _TEST_IMAGES: _FileSpec(
        0x00000803, "images", 10000,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    _TEST_LABELS: _FileSpec(
        0x00000801, "labels", 10000,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}


class DatasetError(ValueError):
    """A data file is missing, damaged or not in the expected format."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The data files could not be found (or downloaded).

    Subclasses both :class:`DatasetError` and :class:`FileNotFoundError`, so
    either can be caught.
    """


# --------------------------------------------------------------------------
# IDX reading
# --------------------------------------------------------------------------

def read_idx(filename) -> np.ndarray:
    """Read an IDX file of unsigned bytes into a NumPy array.

    Parameters
    ----------
    filename : str or os.PathLike
        The file to read.  A name ending in ``.gz`` is decompressed.

    Returns
    -------
    numpy.ndarray
        A new, writable ``uint8`` array with the shape given by the header.

    Raises
    ------
    DatasetError
        If the header is malformed, the element type is not unsigned byte
        (type code 0x08, the only one MNIST uses), a dimension is not
        positive, the header announces more than :data:`MAX_IDX_BYTES` of
        data, the data is shorter or longer than the header announces, or
        the gzip stream is damaged.
    FileNotFoundError
        If the file does not exist.
    OSError
        If the file cannot be opened or read; the message names the file.

    Notes
    -----
    An IDX file starts with a big-endian magic number: two zero bytes, a
    type code and the number of dimensions.  Then come the dimension sizes
    as big-endian 32-bit integers, then the data in row-major order.

    Memory: the header is read and checked first, and then no more than
    the data size it announces (plus one byte, to detect trailing data) is
    read or decompressed, in chunks as it arrives.  A damaged or hostile
    file (a gzip "bomb", ``/dev/zero``) therefore costs no more memory than
    the data it actually holds, up to the announced size, itself at most
    :data:`MAX_IDX_BYTES` (2 GiB).

    Examples
    --------
    >>> import tempfile, os
    >>> from sdagd.datasets import read_idx
    >>> fd, name = tempfile.mkstemp()
    >>> header = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3])  # 2 x 3 bytes
    >>> _ = os.write(fd, header + bytes([1, 2, 3, 4, 5, 6]))
    >>> os.close(fd)
    >>> read_idx(name)
    array([[1, 2, 3],
           [4, 5, 6]], dtype=uint8)
    >>> os.remove(name)
    """
    path = Path(filename)
    _, array = _read_idx_file(path)
    return array


#: Largest IDX payload read (bytes, after decompression).  Real data sets are
#: far below it (MNIST's training images: 47 MB, EMNIST's largest: 550 MB);
#: a header announcing more is taken for damage rather than allocated.
MAX_IDX_BYTES = 2**31

# Reading granularity: memory grows with the data actually present, not with
# what a (possibly damaged) header announces.
_CHUNK = 1 << 20

# How far a gzip stream whose header looks wrong is decompressed (and thrown
# away) to find out whether the stream itself is damaged: bounded, so that a
# gzip "bomb" costs a moment, not minutes.
_GZIP_DIAGNOSIS_BYTES = 64 << 20


#: Most dimensions an IDX header may declare: the fewest NumPy arrays allow (32 before NumPy 2).
_MAX_IDX_DIMS = 32


def _open_idx(path):
    """``path`` opened for binary reading (decompressed if it ends in .gz), refused unless it is
    a regular file: a FIFO would block the read, /dev/zero never end (see _files.open_regular)."""
    raw = open_regular(path, "IDX file")
    if not path.name.endswith(".gz"):
        return raw
    try:
        f = gzip.GzipFile(filename=str(path), fileobj=raw, mode="rb")
    except BaseException:
        raw.close()
        raise
    f.myfileobj = raw  # closed with it, as when gzip.open opens the file itself
    return f


def _read_idx_file(path, expected_magic=None, what=None):
    """Read and check the IDX file ``path`` (gzipped if its name ends in .gz).

    Returns ``(content, array)``: the whole uncompressed content (header
    included, for the checksum) as a bytearray, and a writable ``uint8``
    array viewing its data.  The header is parsed before any data is read;
    see :func:`read_idx` for the memory bound.  ``expected_magic`` and
    ``what`` are as in :func:`_check_idx_header`.
    """
    try:
        with _open_idx(path) as f:
            try:
                content, dims = _read_idx_header(f, path, expected_magic, what)
            except DatasetError:
                # In a gzip file a damaged stream can garble the header before
                # its checksum, at the end, can be verified: if the stream is
                # damaged, that is the error to report.
                if isinstance(f, gzip.GzipFile):
                    _read_at_most(f, _GZIP_DIAGNOSIS_BYTES)
                raise
            header_len = len(content)
            expected = math.prod(dims)
            size = _plain_file_size(f)
            if size is not None and size != header_len + expected:
                _report_size_mismatch(path, expected, size - header_len)
            _read_at_most(f, expected + 1, into=content)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DatasetError(
            f"{path}: damaged gzip data ({exc}); "
            "re-download or delete the file") from exc
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:  # the message names the file
            raise
        # A read failed (EIO, ...): "[Errno 5] Input/output error" alone names no file.
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    found = len(content) - header_len
    if found != expected:
        # Reading stopped one byte past the announced size: "more".
        _report_size_mismatch(
            path, expected, found if found < expected else None)
    array = np.frombuffer(content, dtype=np.uint8, offset=header_len)
    return content, array.reshape(dims)


def _read_idx_header(f, path, expected_magic, what):
    """Read and check the IDX header at the start of ``f``; return it (as a
    bytearray) and the dimensions, whose product is at most MAX_IDX_BYTES."""
    content = _read_at_most(f, 4, into=bytearray())
    ndim = _check_idx_header(content, path, expected_magic, what)
    header_len = 4 + 4 * ndim
    _read_at_most(f, header_len - 4, into=content)
    if len(content) < header_len:
        raise DatasetError(
            f"{path}: truncated header: {ndim} dimensions need "
            f"{header_len} bytes, found {len(content)}")
    dims = struct.unpack_from(f">{ndim}i", content, 4)
    if any(d <= 0 for d in dims):
        raise DatasetError(
            f"{path}: dimension sizes must be positive, got {dims}")
    # math.prod on Python ints cannot overflow, unlike a NumPy product.
    expected = math.prod(dims)
    if expected > MAX_IDX_BYTES:
        raise DatasetError(
            f"{path}: the header announces {dims} = {expected} data "
            f"bytes, more than the {MAX_IDX_BYTES} this reader "
            "accepts (sdagd.datasets.MAX_IDX_BYTES); the header is "
            "damaged, or the limit must be raised for this data set")
    return content, dims


def _read_at_most(f, n, into=None):
    """Read up to ``n`` bytes of ``f`` (fewer at its end) in chunks, appending
    them to the bytearray ``into`` (or discarding them, to reach errors);
    returns ``into``.  Memory grows with what is read, never ahead of it."""
    count = 0
    while count < n:
        chunk = f.read(min(_CHUNK, n - count))
        if not chunk:
            break
        count += len(chunk)
        if into is not None:
            into += chunk
    return into


def _plain_file_size(f):
    """Size of ``f`` if it is an uncompressed regular file, else None
    (gzip streams, pipes, devices: their size is only known by reading)."""
    if isinstance(f, gzip.GzipFile):
        return None
    info = os.fstat(f.fileno())
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _report_size_mismatch(path, expected, found):
    """Raise the DatasetError for ``found`` data bytes where ``expected``
    were announced; ``found=None`` means "more, not counted"."""
    if found is None:
        detail = "found more"
    elif found < expected:
        raise DatasetError(
            f"{path}: truncated: expected {expected} data bytes, "
            f"found {found}")
    else:
        detail = f"found {found} ({found - expected} extra)"
    raise DatasetError(
        f"{path}: trailing data: expected {expected} data bytes, {detail}")


def _check_idx_header(head, source, expected_magic=None, what=None):
    """Check the first 4 bytes of an IDX file; return its number of dimensions.

    ``source`` names the file in error messages.  If ``expected_magic`` is
    given, the magic number must equal it; it is checked first because a
    file of the wrong kind would otherwise fail later with a confusing
    complaint about its dimensions.
    """
    if len(head) < 4:
        raise DatasetError(
            f"{source}: too short for an IDX header ({len(head)} bytes)")
    magic = int.from_bytes(head[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(
            f"{source}: bad magic 0x{magic:08x}, "
            f"expected 0x{expected_magic:08x} ({what})")
    if head[0] != 0 or head[1] != 0:
        raise DatasetError(
            f"{source}: bad magic 0x{magic:08x}, not an IDX file "
            "(the first two bytes must be zero)")
    type_code, ndim = head[2], head[3]
    if type_code != _IDX_UBYTE:
        raise DatasetError(
            f"{source}: unsupported IDX element type 0x{type_code:02x}; "
            f"only 0x{_IDX_UBYTE:02x} (unsigned byte) is supported")
    if ndim == 0:
        raise DatasetError(f"{source}: IDX header declares 0 dimensions")
    if ndim > _MAX_IDX_DIMS:  # NumPy's limit; MNIST's files have 1 or 3
        raise DatasetError(
            f"{source}: IDX header declares {ndim} dimensions; at most "
            f"{_MAX_IDX_DIMS} are supported (the header is damaged)")
    return ndim


def _read_mnist_file(path, name, verify):
    """Read ``path`` and check it as the MNIST file ``name``."""
    spec = _MNIST_FILES[name]
    data, array = _read_idx_file(path, spec.magic, spec.what)
    # Only a file claiming to be the real MNIST size is expected to match the
    # known checksum; smaller or differently sized sets with the same names
    # (synthetic test data, subsets) are legitimate.
    if verify and array.shape[0] == spec.count:
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256:
            raise DatasetError(
                f"{path}: SHA-256 mismatch of the uncompressed content: "
                f"expected {spec.sha256}, got {digest}. The file is damaged "
                "or is not the original MNIST file; re-download or delete "
                "the file (or pass verify=False for other data sets with "
                "the same file names, such as Fashion-MNIST)")
    return array


# --------------------------------------------------------------------------
# Locating and downloading
# --------------------------------------------------------------------------

def mnist_cache_dir() -> Path:
    """Return the directory where downloaded MNIST files are kept.

    Returns
    -------
    pathlib.Path
        ``$XDG_CACHE_HOME/sdagd/mnist``, or ``~/.cache/sdagd/mnist`` when
        ``XDG_CACHE_HOME`` is unset or not an absolute path (the XDG base
        directory specification says to ignore relative values).  The
        directory is not created.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = Path.home() / ".cache"
    return Path(base) / "sdagd" / "mnist"


def _find_file(directory, name):
    """Return the plain or else the gzipped file ``name`` in ``directory``."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_all(directory):
    return {name: _find_file(directory, name) for name in _MNIST_FILES}


def _how_to_supply():
    return (
        "To supply the MNIST IDX files (plain or .gz), do one of:\n"
        "  - pass load_mnist(path='/dir/with/idx/files');\n"
        f"  - set {ENV_VAR}=/dir/with/idx/files;\n"
        f"  - allow download: leave {ENV_VAR} unset and call "
        f"load_mnist(download=True), which saves the files in "
        f"{mnist_cache_dir()}.")


def _download(directory, names):
    """Download the gzipped files ``names`` into ``directory``.

    Each file is fetched into a temporary file in ``directory``, checked
    exactly as load_mnist would check it, and only then renamed into place:
    an interrupted download or an error page from a mirror never leaves a
    file that looks valid.  Raises DatasetNotFoundError listing every URL
    tried if some file cannot be obtained from any mirror.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetNotFoundError(
            f"Cannot create the cache directory {directory} to download "
            f"MNIST into: {exc}\n{_how_to_supply()}") from exc

    failures = []
    for name in names:
        target = directory / f"{name}.gz"
        attempts = []
        for mirror in MNIST_MIRRORS:
            url = mirror + target.name
            try:
                _fetch_verified(url, target)
            # URLError, HTTPError and timeouts are OSErrors; a connection
            # dropped mid-body raises an HTTPException; an unusable URL or
            # bad content raises a ValueError (DatasetError is one).
            except (OSError, http.client.HTTPException, ValueError) as exc:
                attempts.append(f"    {url}: {exc}")
            else:
                break
        else:
            failures.append(f"  {name}.gz:\n" + "\n".join(attempts))
    if failures:
        raise DatasetNotFoundError(
            f"MNIST files missing from {directory} could not be downloaded:\n"
            + "\n".join(failures) + "\n" + _how_to_supply())


def _fetch_verified(url, target):
    """Fetch ``url`` and install it as ``target`` if it checks out."""
    # The temporary name keeps the .gz ending so that it is read as gzip,
    # and starts with a dot so that it is hidden while incomplete.
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=".tmp-", suffix=f"-{target.name}")
    tmp = Path(tmp_name)
    try:
        # urlopen is looked up at call time so that tests can monkeypatch it.
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
                url, timeout=DOWNLOAD_TIMEOUT) as response:
            shutil.copyfileobj(response, out)
        _read_mnist_file(tmp, target.name.removesuffix(".gz"), verify=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def load_mnist(path=None, *, download=True, verify=True) -> tuple:
    """Load MNIST as float32 images in [0, 1] and uint8 labels.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Directory holding ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each plain or with a ``.gz`` suffix
        (plain is preferred when both exist).  If given, only this directory
        is used.  Otherwise the directory in the environment variable
        ``SDAGD_DATA`` is used (and only it); otherwise the user cache
        directory (see :func:`mnist_cache_dir`).
    download : bool, default True
        Whether to download missing files into the cache directory.  Has no
        effect when ``path`` or ``SDAGD_DATA`` is given: those never
        download, so that a wrong setting fails rather than fetching data.
    verify : bool, default True
        Whether to check the SHA-256 of every file whose header announces
        the real MNIST size (60000 training or 10000 test items).  Pass
        ``verify=False`` for other data sets stored under the same file
        names with the same sizes, such as Fashion-MNIST.

    Returns
    -------
    (X_train, y_train), (X_test, y_test) : tuple of tuples of numpy.ndarray
        ``X_*`` are C-contiguous ``float32`` arrays of shape ``(N, 784)``
        holding the pixel bytes divided by 255, each row one image in
        row-major order.  ``y_*`` are ``uint8`` arrays of shape ``(N,)``
        with labels 0 to 9.

    Raises
    ------
    DatasetNotFoundError
        If a file is missing (and could not be downloaded).  The message
        names the directory searched and how to supply the files.
    DatasetError
        If a file is damaged or inconsistent: malformed IDX data, a wrong
        magic number, images that are not 28 x 28, different numbers of
        images and labels, labels outside 0 to 9, or a checksum mismatch.

    See Also
    --------
    validation_split : Hold out the last rows for validation.

    Examples
    --------
    >>> from sdagd.datasets import load_mnist, validation_split
    >>> (X_train, y_train), (X_test, y_test) = load_mnist()
    >>> X_train.shape, X_train.dtype, y_train.dtype
    ((60000, 784), dtype('float32'), dtype('uint8'))
    >>> X_test.shape, y_test.shape
    ((10000, 784), (10000,))
    >>> y_train[:10]
    array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4], dtype=uint8)
    >>> float(X_train.min()), float(X_train.max())
    (0.0, 1.0)
    >>> (X_tr, y_tr), (X_val, y_val) = validation_split(X_train, y_train)
    >>> len(X_tr), len(X_val)
    (50000, 10000)
    """
    if path is not None:
        directory, origin = Path(path).expanduser(), "given as path"
        may_download = False
    elif os.environ.get(ENV_VAR):
        directory = Path(os.environ[ENV_VAR]).expanduser()
        origin = f"from {ENV_VAR}"
        may_download = False
    else:
        directory, origin = mnist_cache_dir(), "the user cache directory"
        may_download = download

    files = _find_all(directory)
    missing = [name for name, found in files.items() if found is None]
    if missing and may_download:
        _download(directory, missing)
        files = _find_all(directory)
        missing = [name for name, found in files.items() if found is None]
    if missing:
        listed = ", ".join(f"{name}[.gz]" for name in missing)
        raise DatasetNotFoundError(
            f"MNIST files not found: {listed}\n"
            f"Looked in: {directory} ({origin}; nothing was downloaded)\n"
            + _how_to_supply())

    train = _load_split(files, _TRAIN_IMAGES, _TRAIN_LABELS, verify)
    test = _load_split(files, _TEST_IMAGES, _TEST_LABELS, verify)
    return train, test


def _load_split(files, images_name, labels_name, verify):
    """Load and cross-check one images/labels pair of found ``files``."""
    images_path, labels_path = files[images_name], files[labels_name]
    images = _read_mnist_file(images_path, images_name, verify)
    labels = _read_mnist_file(labels_path, labels_name, verify)
    # The magic numbers already guarantee 3-D images and 1-D labels.
    if images.shape[1:] != _IMAGE_SHAPE:
        rows, cols = images.shape[1:]
        raise DatasetError(
            f"{images_path}: images must be 28x28 pixels, found {rows}x{cols}")
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} "
            f"holds {len(labels)} labels")
    if labels.max() >= _NUM_CLASSES:
        index = int(np.argmax(labels >= _NUM_CLASSES))
        raise DatasetError(
            f"{labels_path}: label {labels[index]} at index {index} is out of "
            f"range; expected 0 to {_NUM_CLASSES - 1}")

    # astype makes a fresh C-contiguous array (the parsed one is a read-only
    # view of the file's bytes); dividing by a float32 255 in place keeps it
    # float32 and gives exactly the correctly rounded byte / 255.
    X = images.reshape(len(images), -1).astype(np.float32)
    X /= np.float32(255)
    return X, labels.copy()


def validation_split(X, y, n_val=10000) -> tuple:
    """Hold out the last ``n_val`` rows of a data set for validation.

    Parameters
    ----------
    X : numpy.ndarray
        Inputs, one row per example.
    y : numpy.ndarray
        Targets, same length as ``X``.
    n_val : int, default 10000
        Number of rows to hold out, from 1 to ``len(X) - 1``.

    Returns
    -------
    (X_train, y_train), (X_val, y_val) : tuple of tuples of numpy.ndarray
        The first ``len(X) - n_val`` rows and the last ``n_val`` rows.
        These are views of the inputs (no copy); slicing whole rows keeps a
        C-contiguous input C-contiguous.

    Raises
    ------
    ValueError
        If ``X`` and ``y`` differ in length or ``n_val`` is out of range.
    TypeError
        If ``n_val`` is not an integer.

    Examples
    --------
    >>> import numpy as np
    >>> from sdagd.datasets import validation_split
    >>> X, y = np.arange(10).reshape(5, 2), np.arange(5)
    >>> (X_tr, y_tr), (X_val, y_val) = validation_split(X, y, n_val=2)
    >>> y_tr, y_val
    (array([0, 1, 2]), array([3, 4]))
    """
    n_val = operator.index(n_val)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    if not 1 <= n_val <= n - 1:
        raise ValueError(
            f"n_val must be between 1 and {n - 1} (len(X) - 1), got {n_val}")
    split = n - n_val
    return (X[:split], y[:split]), (X[split:], y[split:])
