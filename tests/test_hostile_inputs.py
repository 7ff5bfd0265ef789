"""Checkpoint files as untrusted input, and checkpoints that survive failures.

MLP.load must check a file's configuration against the headers of its arrays before it builds
a network or reads an array (a small file must not make it allocate a big network or inflate a
big member); MLP.save must replace a file atomically (a failed save keeps the previous
checkpoint); and save and load agree on networks holding NaN or inf: neither writes nor
reads them.

The messages of individual bad files are in test_api_errors.py (LOAD_CASES); here are the
properties that need more than a message: what was allocated, what is left on disk.
"""

import errno
import io
import json
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import sdagd
from sdagd import optim

SIZES = [6, 5, 10]  # 95 parameters
CONFIG = dict(sizes=SIZES, activation="sigmoid", output="sigmoid", loss="mse", init="xavier", seed=0,
              leaky_slope=0.01, device="cpu")
BIG = 64 << 20  # bytes of a "bomb" member: far more than the file's configuration needs


def meta_bytes(config=CONFIG):
    return json.dumps({"format": 1, "config": config, "epochs_trained": 0}).encode()


def npy_bytes(array):
    """The .npy encoding of ``array`` (what np.savez stores as a member)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_header(shape, dtype="<f4"):
    """The .npy header (magic included) of an array of ``shape``, for members whose data is
    written separately."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def write_archive(path, members, compression=zipfile.ZIP_DEFLATED):
    """A zip of ``members``: name -> bytes, or name -> (header bytes, number of zero bytes after
    it), streamed so that the test itself stays small."""
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, content in members.items():
            with z.open(name, "w", force_zip64=True) as f:
                if isinstance(content, tuple):
                    header, zeros = content
                    f.write(header)
                    for _ in range(zeros >> 20):
                        f.write(bytes(1 << 20))
                else:
                    f.write(content)
    return path


def peak_of_failed_load(path, match):
    """Peak Python-heap bytes (NumPy's arrays included) while MLP.load(path) fails with
    ValueError matching ``match``."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as info:
            sdagd.MLP.load(path)
        return tracemalloc.get_traced_memory()[1], info.value
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------------------ validate first

@pytest.fixture
def networks_built(monkeypatch):
    """Counts the networks the C core is asked to build."""
    built = []
    real = sdagd._core.Net

    def counting(*args, **kwargs):
        built.append(args[0] if args else kwargs.get("sizes"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sdagd._core, "Net", counting)
    return built


def test_a_mismatch_is_found_before_any_network_is_built(tmp_path, networks_built):
    path = write_archive(tmp_path / "n.npz", {"meta.npy": npy_bytes(np.frombuffer(meta_bytes(), np.uint8)),
                                              "params.npy": npy_bytes(np.zeros(7, np.float32))})
    with pytest.raises(ValueError, match=r"params has shape \(7,\).*needs shape \(95,\)"):
        sdagd.MLP.load(path)
    assert networks_built == []


def test_a_small_file_asking_for_a_huge_network_is_refused_without_building_it(tmp_path, networks_built):
    huge = dict(CONFIG, sizes=[2**24, 2**24, 2**24])  # 2**49 parameters: 2 PB
    path = write_archive(tmp_path / "n.npz", {"meta.npy": npy_bytes(np.frombuffer(meta_bytes(huge), np.uint8)),
                                              "params.npy": npy_bytes(np.zeros(95, np.float32))})
    with pytest.raises(ValueError, match=r"params has shape \(95,\); the configuration .* needs shape \(\d{15},\)"):
        sdagd.MLP.load(path)
    assert networks_built == []


def test_a_member_bomb_is_not_inflated(tmp_path):
    """params.npy declares 16M float32 (64 MB of zeros, ~64 KB deflated) for a configuration that
    needs 95: refused from its header, before its data is read."""
    path = write_archive(tmp_path / "bomb.npz", {
        "meta.npy": npy_bytes(np.frombuffer(meta_bytes(), np.uint8)),
        "params.npy": (npy_header((BIG // 4,)), BIG)})
    assert path.stat().st_size < 1 << 20
    peak, error = peak_of_failed_load(path, r"params has shape \(16777216,\)")
    assert peak < 8 << 20, f"MLP.load allocated {peak / 2**20:.0f} MiB"


def test_a_huge_metadata_member_is_not_read(tmp_path):
    path = write_archive(tmp_path / "meta-bomb.npz", {
        "meta.npy": (npy_header((BIG,), "|u1"), BIG),
        "params.npy": npy_bytes(np.zeros(95, np.float32))})
    peak, error = peak_of_failed_load(path, r"meta must be at most 1048576 bytes of JSON text")
    assert peak < 8 << 20, f"MLP.load allocated {peak / 2**20:.0f} MiB"


def test_a_member_claiming_more_than_the_file_can_hold_is_refused(tmp_path):
    """A stored member whose zip directory entry claims 4 GB: no deflate stream of this file's
    size can hold that, so it is refused before anything is read."""
    path = write_archive(tmp_path / "n.npz", {"meta.npy": npy_bytes(np.frombuffer(meta_bytes(), np.uint8)),
                                              "params.npy": npy_bytes(np.zeros(95, np.float32))},
                         compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    # The central directory entry of params.npy (what zipfile reads): uncompressed size at 24.
    entry = data.rindex(b"PK\x01\x02", 0, data.rindex(b"params.npy"))
    assert struct.unpack_from("<I", data, entry + 24)[0] == 95 * 4 + 128  # not a zip64 entry
    struct.pack_into("<I", data, entry + 24, 0xFFFFFFF0)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"params claims \d+ bytes, more than a \d+-byte file can hold"):
        sdagd.MLP.load(path)


# ------------------------------------------------------------------------------ atomic save

def trained(seed=0):
    net = sdagd.MLP(SIZES, seed=seed)
    X = np.random.default_rng(seed).random((20, 6), dtype=np.float32)
    opt = optim.Adam()
    net.train_step(X, np.arange(20) % 10, opt)
    return net, opt


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    old_net, old_opt = trained(0)
    old_net.save(path, optimizer=old_opt)
    before = path.read_bytes()

    def disk_full(f, **arrays):  # writes part of the archive, then the disk is full
        f.write(b"PK\x03\x04" + bytes(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    new_net, new_opt = trained(1)
    with pytest.raises(OSError, match="No space left"):
        new_net.save(path, optimizer=new_opt)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # no temporary file left behind
    monkeypatch.undo()
    loaded, opt = sdagd.MLP.load(path, with_optimizer=True)
    np.testing.assert_array_equal(loaded._net.get_params(), old_net._net.get_params())


def test_an_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    trained(0)[0].save(path)
    before = path.read_bytes()

    def interrupted(f, **arrays):
        f.write(b"PK")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trained(1)[0].save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["checkpoint.npz"]


def test_save_leaves_only_its_file_with_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "n.npz"
    trained()[0].save(path)
    trained(1)[0].save(path)  # and replacing it
    assert os.listdir(tmp_path) == ["n.npz"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it, not 0o600


def test_save_into_a_missing_folder_names_the_file(tmp_path):
    path = tmp_path / "missing" / "n.npz"
    with pytest.raises(FileNotFoundError, match=r"cannot write .*missing/n\.npz"):
        trained()[0].save(path)


def test_save_over_a_folder_fails_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "n.npz").mkdir()
    with pytest.raises(OSError):
        trained()[0].save(tmp_path / "n.npz")
    assert os.listdir(tmp_path) == ["n.npz"] and (tmp_path / "n.npz").is_dir()


# ------------------------------------------------------------------------------ NaN and inf

def diverged():
    """A network whose parameters became inf (the loss stayed finite: saturated sigmoids)."""
    net = sdagd.MLP(SIZES, activation="sigmoid", output="linear")
    X = 10 * np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    opt = optim.SGD(lr=1e20, momentum=0.99)
    history = net.fit(X, np.arange(40) % 10, opt, epochs=3, batch_size=20, progress=False,
                      on_divergence="stop")
    assert history.diverged and not np.all(np.isfinite(net._net.get_params()))
    return net, opt


def test_a_diverged_network_is_not_saved_and_the_last_good_file_stays(tmp_path):
    path = tmp_path / "checkpoint.npz"
    good, _ = trained()
    good.save(path)
    before = path.read_bytes()
    net, opt = diverged()
    for kwargs in ({}, {"optimizer": opt}):
        with pytest.raises(ValueError, match=r"cannot save to .*checkpoint.npz: the parameters contain NaN or inf"):
            net.save(path, **kwargs)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["checkpoint.npz"]


def test_optimizer_state_with_nan_is_not_saved(tmp_path, monkeypatch):
    """The core refuses NaN state from outside (load_state_dict, set_state); a state that a
    diverged run left non-finite is stood in for by state_dict returning one."""
    net, opt = trained()
    state, step = opt._core.get_state()
    state[1, 3] = np.nan
    with pytest.raises(ValueError, match="state contains NaN or inf"):
        opt._core.set_state(state, step)
    saved = opt.state_dict()
    monkeypatch.setattr(opt, "state_dict", lambda: dict(saved, state=state))
    with pytest.raises(ValueError, match=r"the optimizer state contains NaN or inf"):
        net.save(tmp_path / "n.npz", optimizer=opt)
    assert not (tmp_path / "n.npz").exists()
    net.save(tmp_path / "n.npz")  # the network alone is fine


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_file_with_nan_or_inf_parameters_is_refused_on_load(tmp_path, bad):
    """Such files come from before save refused them, or from elsewhere: load says what is wrong
    (it used to fail inside the core, naming neither the file nor the cause)."""
    params = np.zeros(95, np.float32)
    params[40] = bad
    path = write_archive(tmp_path / "n.npz", {"meta.npy": npy_bytes(np.frombuffer(meta_bytes(), np.uint8)),
                                              "params.npy": npy_bytes(params)})
    with pytest.raises(ValueError, match=r"params holds NaN or inf \(a diverged network\?\)") as info:
        sdagd.MLP.load(path)
    assert str(path) in str(info.value)
