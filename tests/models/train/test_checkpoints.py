import hashlib

import pytest
import torch
from safetensors.torch import load_file

from models.train.checkpoints import CheckpointError, load_tensors, read_metadata, save_tensors


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_tensors_and_metadata_give_the_same_bytes_whatever_the_order(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {f"layer{i}.weight": torch.randn(3, i + 1, generator=g) for i in range(12)}
    meta = {f"key{i}": str(i) for i in range(20)}
    a = save_tensors(tensors, tmp_path / "a.safetensors", meta)
    b = save_tensors(
        dict(reversed(tensors.items())), tmp_path / "b.safetensors", dict(reversed(meta.items()))
    )
    assert sha(a) == sha(b)
    # still a plain safetensors file: the library reads it back exactly
    back = load_file(str(a))
    assert set(back) == set(tensors) and all(torch.equal(back[k], v) for k, v in tensors.items())
    assert read_metadata(a) == meta
    loaded, meta_back = load_tensors(b)
    assert meta_back == meta and all(torch.equal(loaded[k], v) for k, v in tensors.items())
    assert not list(tmp_path.glob("*.tmp-*"))


def test_a_file_that_is_not_safetensors_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_tensors(bad)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        read_metadata(bad)
